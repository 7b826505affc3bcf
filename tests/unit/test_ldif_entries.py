"""entries.py: raw values -> DirectoryEntry the same way for the LDIF and the live sources."""
from __future__ import annotations

import uuid

import pytest
from ldap3.protocol.formatters.formatters import format_uuid_le

from reconciler.directory.entries import anchor_text, is_disabled, make_entry, make_group, template_attributes
from reconciler.errors import DirectoryError
from reconciler.policy.model import FLAVOUR_SCHEMAS, Directory, DisabledRule, GroupScope, AttributeMapping, Template, UserScope

GUID = uuid.UUID("0b5c9c2e-7f4d-4e8a-9a3b-1c2d3e4f5a6b")


def directory(flavour="active-directory", **mapping) -> Directory:
    return Directory(
        name="corp",
        kind="ldif",
        flavour=flavour,
        schema=FLAVOUR_SCHEMAS[flavour],
        users=UserScope(search_bases=("OU=People,DC=x",)),
        groups=GroupScope(),
        mapping=AttributeMapping(
            email=(Template("{mail}"), Template("{sAMAccountName}@corp.example.com")),
            display_name=Template("{displayName}"),
            attributes=(("department", Template("{Department}")),),
            **mapping,
        ),
    )


def test_object_guid_bytes_become_the_ad_guid_string_like_ldap3_prints_it():
    text = anchor_text("corp", "CN=A", "objectGUID", [GUID.bytes_le])
    assert text == format_uuid_le(GUID.bytes_le).strip("{}") == str(GUID)


def test_object_guid_given_as_text_is_accepted_in_canonical_form():
    assert anchor_text("corp", "CN=A", "objectGUID", ["{" + str(GUID).upper() + "}"]) == str(GUID)


def test_entry_uuid_is_kept_as_text_from_bytes_or_str():
    assert anchor_text("ldap", "uid=a", "entryUUID", [b"6f1d7a3e-0000-1000-8000-000000000001"]) == "6f1d7a3e-0000-1000-8000-000000000001"


@pytest.mark.parametrize("values, what", [([], "has no objectGUID"), ([b"short"], "invalid objectGUID"),
                                          ([GUID.bytes_le, GUID.bytes_le], "2 values")])
def test_missing_or_bad_anchor_names_the_entry(values, what):
    with pytest.raises(DirectoryError, match=f"directory corp: entry CN=Ann,DC=x .*{what}"):
        anchor_text("corp", "CN=Ann,DC=x", "objectGUID", values)


@pytest.mark.parametrize(
    "rule, values, disabled",
    [
        (DisabledRule("userAccountControl", flag=2), ["514"], True),
        (DisabledRule("userAccountControl", flag=2), [b"66050"], True),
        (DisabledRule("userAccountControl", flag=2), ["512"], False),
        (DisabledRule("userAccountControl", flag=2), ["66048"], False),
        (DisabledRule("userAccountControl", flag=2), [], False),
        (DisabledRule("pwdAccountLockedTime"), ["000001010000Z"], True),
        (DisabledRule("pwdAccountLockedTime"), [], False),
        (DisabledRule("nsAccountLock", equals="TRUE"), ["true"], True),
        (DisabledRule("nsAccountLock", equals="TRUE"), ["false"], False),
    ],
)
def test_disabled_rules(rule, values, disabled):
    assert is_disabled(rule, values) is disabled


def test_template_attributes_are_every_mapped_attribute_lower_cased():
    assert template_attributes(directory().mapping) == {"mail", "samaccountname", "displayname", "department"}


def test_make_entry_keeps_only_needed_attributes_with_lower_cased_names():
    entry = make_entry(
        directory(),
        "CN=Ann,OU=People,DC=x",
        {"objectGUID": [GUID.bytes_le], "sAMAccountName": [b"ann"], "MAIL": ["ann@x"], "DisplayName": ["Ann | <A>"],
         "department": ["Eng"], "telephoneNumber": ["123"], "userAccountControl": ["514"]},
        search_base="OU=People,DC=x",
        groups={"cn=g,dc=x"},
    )
    assert entry.anchor == str(GUID)
    assert entry.account_name == "ann"
    assert entry.attributes == {"department": ("Eng",), "displayname": ("Ann | <A>",), "mail": ("ann@x",), "samaccountname": ("ann",)}
    assert entry.disabled is True
    assert entry.search_base == "OU=People,DC=x"
    assert entry.groups == {"cn=g,dc=x"}
    assert entry.first("Mail") == "ann@x"


def test_make_group_falls_back_to_the_rdn_for_its_name():
    group = make_group(directory(), "CN=Leads,DC=x", {"objectGUID": [GUID.bytes_le]}, members={"cn=ann,dc=x"})
    assert (group.name, group.anchor, group.members) == ("Leads", str(GUID), {"cn=ann,dc=x"})
