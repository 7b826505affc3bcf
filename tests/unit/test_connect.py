"""Connecting to a live directory: URL rules, the insecure-bind refusal, bind-name
forms, AD bind failure codes, secrets kept out of messages, and NTLM's message
exchange with MD4 from pycryptodome (OpenSSL 3 no longer has it; Samba does not
offer the Sicily NTLM bind ldap3 speaks, so the exchange is checked against the
MS-NLMP specification's own test vectors instead)."""
from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from reconciler.directory.ldap import connect as connect_module
from reconciler.directory.ldap.connect import (
    AD_BIND_CODES, ConnectFailed, bind_failure, bind_form, connect, refuse_insecure_bind,
)
from reconciler.directory.ldap.probe import ProbeFailed, describe_certificate, parse_url
from reconciler.errors import DirectoryError
from reconciler.policy.model import Bind, SecretRef, Tls
from tests.factories import directory as make_directory


def live(**overrides):
    values = dict(kind="active-directory", urls=("ldaps://dc1.corp.example.com",),
                  bind=Bind(user="CORP\\svc-sync", password=SecretRef("TEST_BIND_PASSWORD", "directories.corp.bind.password")))
    values.update(overrides)
    return make_directory(**values)


@pytest.mark.parametrize("url, host, port, ldaps", [
    ("ldaps://dc1.corp.example.com", "dc1.corp.example.com", 636, True),
    ("ldap://dc1.corp.example.com", "dc1.corp.example.com", 389, False),
    ("ldaps://127.0.0.1:3269", "127.0.0.1", 3269, True),
    ("LDAP://DC1:1389/", "dc1", 1389, False),
])
def test_urls_default_to_the_standard_ports(url, host, port, ldaps):
    endpoint = parse_url(url)
    assert (endpoint.host, endpoint.port, endpoint.ldaps) == (host, port, ldaps)


@pytest.mark.parametrize("url", ["https://dc1", "dc1.corp.example.com", "ldaps://", "ldap://dc1/DC=corp,DC=com"])
def test_other_urls_are_refused_with_a_reason(url):
    with pytest.raises(ProbeFailed) as raised:
        parse_url(url)
    assert raised.value.step == "url"


def test_a_simple_bind_over_plain_ldap_without_start_tls_is_refused():
    directory = live(urls=("ldap://dc1.corp.example.com",), tls=Tls(start_tls=False))
    with pytest.raises(ConnectFailed) as raised:
        refuse_insecure_bind(directory, parse_url(directory.urls[0]))
    assert "allow_insecure_bind: true" in raised.value.detail
    assert raised.value.step == "policy"


@pytest.mark.parametrize("overrides", [
    dict(urls=("ldap://dc1",), tls=Tls(start_tls=False), allow_insecure_bind=True),  # explicitly allowed
    dict(urls=("ldap://dc1",)),  # StartTLS (the default for ldap://)
    dict(urls=("ldaps://dc1",), tls=Tls(start_tls=False)),  # start_tls does not matter for ldaps
    dict(urls=("ldap://dc1",), tls=Tls(start_tls=False), bind=Bind(user="CORP\\svc", password=SecretRef("X", "p"),
                                                                     method="ntlm")),  # no clear-text password
    dict(urls=("ldap://dc1",), tls=Tls(start_tls=False), bind=None),  # anonymous
])
def test_binds_that_do_not_send_a_password_in_clear_are_allowed(overrides):
    directory = live(**overrides)
    refuse_insecure_bind(directory, parse_url(directory.urls[0]))


@pytest.mark.parametrize("user, form", [
    ("CN=svc-sync,OU=Service Accounts,DC=corp,DC=example,DC=com", "dn"),
    ("svc-sync@corp.example.com", "upn"),
    ("CORP\\svc-sync", "down-level"),
])
def test_the_three_bind_name_forms_are_recognised(user, form):
    assert bind_form(user) == form


@pytest.mark.parametrize("code", sorted(AD_BIND_CODES))
def test_ad_bind_failure_sub_codes_are_translated(code):
    result = {"result": 49, "description": "invalidCredentials",
              "message": f"80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563\x00"}
    message = bind_failure(result, "as CORP\\svc-sync")
    assert AD_BIND_CODES[code] in message
    assert f"AD code {code}" in message


def test_a_bind_failure_without_an_ad_code_still_says_what_happened():
    assert "wrong user name or password" in bind_failure(
        {"result": 49, "description": "invalidCredentials", "message": ""}, "as cn=svc")


def test_failover_reports_every_url_tried_and_never_the_password(monkeypatch):
    monkeypatch.setenv("TEST_BIND_PASSWORD", "Very-Secret-Passw0rd")
    directory = live(urls=("ldaps://127.0.0.1:1", "ldap://127.0.0.1:2"), connect_timeout=2.0)
    with pytest.raises(DirectoryError) as raised:
        connect(directory)
    message = str(raised.value)
    assert "ldaps://127.0.0.1:1: connection to 127.0.0.1:1 refused" in message
    assert "ldap://127.0.0.1:2: connection to 127.0.0.1:2 refused" in message
    assert "Very-Secret-Passw0rd" not in message


def test_ntlm_needs_the_down_level_name_form(monkeypatch):
    monkeypatch.setenv("TEST_BIND_PASSWORD", "x")
    directory = live(bind=Bind(user="svc@corp.example.com", password=SecretRef("TEST_BIND_PASSWORD", "p"), method="ntlm"))

    class Unused:
        password = None

    with pytest.raises(ConnectFailed, match=r"DOMAIN\\user"):
        connect_module.bind(directory, parse_url(directory.urls[0]), Unused())


# ── NTLM: MS-NLMP 4.2.4 (NTLMv2 authentication) test vectors ─────────────────

NLMP_CHALLENGE = bytes.fromhex(
    "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef"
    "00000000000000002400240044000000060070170000000f5300650072007600"
    "6500720002000c0044006f006d00610069006e0001000c005300650072007600"
    "6500720000000000"
)
NLMP_RESPONSE_KEY_NT = bytes.fromhex("0c868a403bfd7a93a3001ef22ef02e3f")  # NTOWFv2("Password", "User", "Domain")
NLMP_NT_PROOF_STR = bytes.fromhex("68cd0ab851e51c96aabc927bebef6a1c")


@pytest.fixture
def without_openssl_md4(monkeypatch):
    """Makes hashlib refuse MD4 as OpenSSL 3 does, so the pycryptodome path is the one tested everywhere."""
    original = hashlib.new

    def new(name, *args, **kwargs):
        if name.lower() == "md4":
            raise ValueError("unsupported hash type md4")
        return original(name, *args, **kwargs)

    monkeypatch.setattr(hashlib, "new", new)


def test_md4_is_available_for_ntlm(without_openssl_md4):
    connect_module.ensure_md4()  # does not raise: pycryptodome provides it


def test_ntlm_message_exchange_matches_the_specification(without_openssl_md4, monkeypatch):
    from ldap3.utils import ntlm

    monkeypatch.setattr(ntlm, "urandom", lambda n: b"\xaa" * n)  # the spec's ClientChallenge
    monkeypatch.setattr(ntlm.NtlmClient, "pack_windows_timestamp", staticmethod(lambda: b"\x00" * 8))  # Time = 0
    client = ntlm.NtlmClient(domain="Domain", user_name="User", password="Password")

    negotiate = client.create_negotiate_message()
    assert negotiate[:8] == b"NTLMSSP\x00" and struct.unpack("<I", negotiate[8:12])[0] == 1

    client.parse_challenge_message(NLMP_CHALLENGE)
    assert client.server_challenge == bytes.fromhex("0123456789abcdef")
    assert client.server_av_netbios_domain_name == "Domain"
    assert client.ntowf_v2() == NLMP_RESPONSE_KEY_NT

    authenticate = client.create_authenticate_message()
    assert authenticate[:8] == b"NTLMSSP\x00" and struct.unpack("<I", authenticate[8:12])[0] == 3

    def field(offset):
        length, _, start = struct.unpack("<HHI", authenticate[offset:offset + 8])
        return authenticate[start:start + length]

    nt_response = field(20)
    assert field(28).decode("utf-16-le") == "Domain"
    assert field(36).decode("utf-16-le") == "User"
    assert nt_response[:16] == NLMP_NT_PROOF_STR
    # and independently of ldap3: NTProofStr = HMAC_MD5(ResponseKeyNT, ServerChallenge + temp)
    expected = hmac.new(NLMP_RESPONSE_KEY_NT, bytes.fromhex("0123456789abcdef") + nt_response[16:], "md5").digest()
    assert nt_response[:16] == expected


def test_a_rejected_certificate_is_described_by_subject_issuer_and_expiry():
    import ssl

    from tests.servers.tls import make_tls

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        files = make_tls(folder)
        der = ssl.PEM_cert_to_DER_cert(open(files.cert_file).read())
    text = describe_certificate(der)
    assert text.startswith("subject CN=localhost,O=reconciler tests, issued by CN=reconciler test CA,O=reconciler tests")
    assert "valid until 20" in text


@pytest.fixture
def silent_server():
    """Accepts TCP connections (the kernel does) and never says a word: a hung domain controller."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.parametrize("scheme, during", [("ldaps", "the LDAPS handshake"), ("ldap", "the StartTLS request")])
def test_a_server_that_never_answers_is_given_up_on_after_the_timeouts(silent_server, monkeypatch, scheme, during):
    import time

    monkeypatch.setenv("TEST_BIND_PASSWORD", "x")
    directory = live(urls=(f"{scheme}://{silent_server}",), connect_timeout=1.0, operation_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(DirectoryError, match=f"no answer from {silent_server} within 1s during {during}"):
        connect(directory)
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("content, problem", [(None, "cannot be read"), ("not a certificate", "holds no PEM certificate")])
def test_a_ca_file_that_cannot_be_used_is_named(tmp_path, content, problem):
    from reconciler.directory.ldap.probe import tls_context

    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ProbeFailed, match=f"tls.ca_file {path} {problem}"):
        tls_context(str(path), verify=True)
