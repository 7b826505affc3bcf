"""Hybrid identities in the desired state: an Entra ID record whose onPremisesImmutableId is the base64 of an
AD entry's objectGUID (what Entra Connect writes: https://learn.microsoft.com/en-us/entra/identity/hybrid/connect/
plan-connect-design-concepts, sourceAnchor) is matched to that entry before email."""
from __future__ import annotations

from dataclasses import replace

from reconciler.desired import build_desired_state
from reconciler.desired.hybrid import hybrid_matches
from reconciler.directory.entra.hybrid import immutable_id, immutable_id_guid
from reconciler.model import DirectoryEntry
from reconciler.policy.model import FLAVOUR_SCHEMAS, AttributeMapping, Identity, Template, UserScope
from tests.factories import directory, person, policy, read

CHEN = "050c86bd-84e0-464b-83f2-f1936e85df08"
OSEI = "5a1f3c2e-7b8d-4e6f-9a0b-1c2d3e4f5a6b"
PATEL = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"

CLOUD = directory("cloud", kind="entra-id", flavour="entra-id", schema=FLAVOUR_SCHEMAS["entra-id"], path=None,
                  users=UserScope(("/users",), filter="userType eq 'Member'"),
                  mapping=AttributeMapping(email=(Template("{mail}"), Template("{userPrincipalName}")),
                                           display_name=Template("{displayName}")))


def cloud(upn: str, mail: str | None, *, synced_from: str | None = None, object_id: str | None = None,
          disabled: bool = False) -> DirectoryEntry:
    attributes = {"displayname": (upn.split("@")[0],), "userprincipalname": (upn,)}
    if mail:
        attributes["mail"] = (mail,)
    if synced_from:
        attributes["onpremisesimmutableid"] = (immutable_id(synced_from),)
    return DirectoryEntry("cloud", upn, object_id or f"id-{upn}", upn, attributes, disabled, "/users")


def plan(*reads, precedence=("corp", "cloud"), merge_by_email=True):
    p = policy(directory("corp"), CLOUD, identity=Identity(merge_by_email=merge_by_email, precedence=precedence))
    return build_desired_state(p, list(reads))


def verdict(state, dn):
    return next(v for v in state.verdicts if v.dn == dn)


def test_immutable_id_is_the_base64_of_the_guid_bytes():
    assert immutable_id(CHEN) == "vYYMBeCES0aD8vGTboXfCA=="  # corp.ldif's objectGUID of Margaret Chen, as Entra Connect
    assert immutable_id_guid("vYYMBeCES0aD8vGTboXfCA==") == CHEN
    assert immutable_id_guid("not base64!") is None and immutable_id_guid("YWJj") is None  # 3 bytes: another anchor


def test_a_person_whose_cloud_mail_differs_is_one_user_joined_by_the_anchor():
    chen = person("Margaret Chen", anchor=CHEN, mail="Margaret.Chen@corp.example.com")
    state = plan(read(chen), read(cloud("mchen@corp.example.com", "margaret.chen@example.com", synced_from=CHEN),
                                  directory="cloud"))
    assert list(state.users) == [f"corp:{CHEN}"]
    user = state.users[f"corp:{CHEN}"]
    assert user.email == "margaret.chen@corp.example.com"  # corp wins by precedence
    assert [str(link) for link in user.links] == ["cloud:id-mchen@corp.example.com", f"corp:{CHEN}"]
    reason = verdict(state, "mchen@corp.example.com").reason
    assert f"joined to {chen.dn} in corp by onPremisesImmutableId" in reason and reason.startswith("in scope of cloud")
    assert "joined to mchen@corp.example.com in cloud by onPremisesImmutableId" in verdict(state, chen.dn).reason


def test_precedence_still_decides_whose_email_and_attributes_win():
    chen = person("Margaret Chen", anchor=CHEN, mail="Margaret.Chen@corp.example.com")
    state = plan(read(chen), read(cloud("mchen@corp.example.com", "margaret.chen@example.com", synced_from=CHEN),
                                  directory="cloud"), precedence=("cloud", "corp"))
    (user,) = state.users.values()
    assert (user.key, user.email) == ("cloud:id-mchen@corp.example.com", "margaret.chen@example.com")


def test_a_cloud_record_whose_email_is_another_persons_is_a_conflict_and_the_ad_entries_go_on():
    chen = person("Margaret Chen", anchor=CHEN, mail="Margaret.Chen@corp.example.com")
    osei = person("Samuel Osei", anchor=OSEI, mail="Samuel.Osei@corp.example.com")
    confused = cloud("mchen@corp.example.com", "samuel.osei@corp.example.com", synced_from=CHEN)
    state = plan(read(chen, osei), read(confused, directory="cloud"))
    assert sorted(u.email for u in state.users.values()) == ["margaret.chen@corp.example.com", "samuel.osei@corp.example.com"]
    assert all(len(u.links) == 1 for u in state.users.values())
    v = verdict(state, "mchen@corp.example.com")
    assert v.verdict == "ignored" and v.reason == (
        f"conflict: onPremisesImmutableId ties it to {chen.dn} in corp, but its email samuel.osei@corp.example.com is "
        f"that of {osei.dn} in corp; it is not imported")


def test_a_cloud_account_claiming_by_email_someone_whose_cloud_record_is_another_is_a_conflict():
    osei = person("Samuel Osei", anchor=OSEI, mail="Samuel.Osei@corp.example.com")
    synced = cloud("sosei@corp.example.com", "Samuel.Osei@corp.example.com", synced_from=OSEI)
    by_hand = cloud("samuel.osei@example.onmicrosoft.com", "Samuel.Osei@corp.example.com")
    state = plan(read(osei), read(synced, by_hand, directory="cloud"))
    (user,) = state.users.values()
    assert {str(link) for link in user.links} == {f"corp:{OSEI}", "cloud:id-sosei@corp.example.com"}
    v = verdict(state, "samuel.osei@example.onmicrosoft.com")
    assert v.verdict == "ignored" and "whose record in cloud by onPremisesImmutableId is sosei@corp.example.com" in v.reason


def test_two_cloud_records_with_one_immutable_id_are_both_left_out():
    osei = person("Samuel Osei", anchor=OSEI)
    one, two = cloud("a@x.com", "a@x.com", synced_from=OSEI), cloud("b@x.com", "b@x.com", synced_from=OSEI)
    state = plan(read(osei), read(one, two, directory="cloud"))
    assert [u.key for u in state.users.values()] == [f"corp:{OSEI}"]
    for dn in ("a@x.com", "b@x.com"):
        assert verdict(state, dn).reason.startswith("conflict: the same onPremisesImmutableId as")


def test_the_anchor_joins_even_when_merge_by_email_is_false():
    chen = person("Margaret Chen", anchor=CHEN, mail="Margaret.Chen@corp.example.com")
    patel = person("Ravi Patel", anchor=PATEL, mail="Ravi.Patel@corp.example.com")
    state = plan(read(chen, patel), read(cloud("mchen@corp.example.com", "margaret.chen@example.com", synced_from=CHEN),
                                         cloud("other@corp.example.com", "Ravi.Patel@corp.example.com"),
                                         directory="cloud"), merge_by_email=False)
    assert len(state.users[f"corp:{CHEN}"].links) == 2  # joined by anchor
    assert "identity.merge_by_email is false" in verdict(state, patel.dn).reason  # by email only: a conflict, as before


def test_an_immutable_id_of_another_source_anchor_leaves_email_to_decide():
    chen = person("Margaret Chen", anchor=CHEN, mail="Margaret.Chen@corp.example.com")
    record = cloud("mchen@corp.example.com", "Margaret.Chen@corp.example.com")
    record = replace(record, attributes={**record.attributes, "onpremisesimmutableid": ("E12345",)})  # employeeID-based
    state = plan(read(chen), read(record, directory="cloud"))
    (user,) = state.users.values()
    assert len(user.links) == 2 and "onPremisesImmutableId" not in verdict(state, "mchen@corp.example.com").reason


def test_one_person_in_two_domains_and_the_cloud_is_one_user():
    chen = person("Margaret Chen", anchor=CHEN, mail="Margaret.Chen@corp.example.com")
    emea = replace(person("Margaret Chen", anchor="11111111-2222-3333-4444-555555555555",
                          mail="Margaret.Chen@corp.example.com"), directory="emea", dn="CN=Margaret Chen,DC=emea")
    p = policy(directory("corp"), directory("emea"), CLOUD)
    state = build_desired_state(p, [read(chen), read(emea, directory="emea"),
                                    read(cloud("mchen@corp.example.com", "margaret.chen@example.com", synced_from=CHEN),
                                         directory="cloud")])
    (user,) = state.users.values()
    assert len(user.links) == 3


def test_without_an_entra_directory_nothing_changes():
    candidates = []
    assert hybrid_matches(candidates, None) == (candidates, {})  # type: ignore[arg-type]
