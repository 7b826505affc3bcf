"""A bound, encrypted connection to a live directory, with failover across `urls`.

Policy rules enforced here: LDAPS by default; ldap:// upgrades with StartTLS
unless `tls.start_tls: false`; certificates are verified unless `tls.verify:
false`; a simple bind that would send the password in clear is refused unless
`allow_insecure_bind: true`. The password is read from its `${VAR}` only when
binding and is dropped from the ldap3 connection right after (ldap3's
`Connection.__repr__` prints it verbatim).
"""
from __future__ import annotations

import math
import re
import ssl

from ldap3 import ANONYMOUS, NONE, NTLM, SIMPLE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from ...errors import DirectoryError
from ...policy.model import Directory
from .lean_decoder import install as install_lean_decoder
from .probe import Endpoint, ProbeFailed, parse_url, resolve, tcp, tls_handshake

# Active Directory puts the reason for a failed bind in the diagnostic message,
# "80090308: LdapErr: ... AcceptSecurityContext error, data 52e, v4563".
AD_BIND_CODES: dict[str, str] = {
    "525": "no such user: the bind name does not match any account",
    "52e": "wrong password for the bind account (or unknown user name)",
    "530": "the bind account may not log on at this time (logon hours)",
    "531": "the bind account may not log on from this computer (logon workstations)",
    "532": "the bind account's password has expired",
    "533": "the bind account is disabled",
    "701": "the bind account has expired",
    "773": "the bind account must change its password before it can log on",
    "775": "the bind account is locked out",
}
_AD_DATA = re.compile(r"\bdata ([0-9a-f]{3,8})\b", re.IGNORECASE)


class ConnectFailed(Exception):
    """One URL could not be used; `step` is dns|tcp|tls|bind|policy|url, `detail` a sentence without secrets."""

    def __init__(self, step: str, detail: str, try_next: bool = True):
        super().__init__(detail)
        self.step = step
        self.detail = detail
        self.try_next = try_next  # False when another URL would fail the same way (wrong password)


def endpoints(directory: Directory) -> list[Endpoint]:
    if not directory.urls:
        raise DirectoryError(f"directory {directory.name}: no urls; a live directory needs at least one "
                             f"ldaps:// or ldap:// URL", directory.location)
    try:
        return [parse_url(url) for url in directory.urls]
    except ProbeFailed as failure:
        raise DirectoryError(f"directory {directory.name}: {failure.detail}", directory.location) from None


def uses_start_tls(directory: Directory, endpoint: Endpoint) -> bool:
    return not endpoint.ldaps and directory.tls.start_tls


def is_encrypted(directory: Directory, endpoint: Endpoint) -> bool:
    return endpoint.ldaps or uses_start_tls(directory, endpoint)


def bind_form(user: str) -> str:
    """Which of the three name forms AD accepts for a simple bind: dn, upn or down-level (DOMAIN\\user)."""
    if "\\" in user:
        return "down-level"
    if "=" in user:
        return "dn"
    if "@" in user:
        return "upn"
    return "name"


def refuse_insecure_bind(directory: Directory, endpoint: Endpoint) -> None:
    """A simple bind over plain ldap:// sends the password in clear: only when the policy says so."""
    bind = directory.bind
    if is_encrypted(directory, endpoint) or bind is None or bind.password is None or bind.method != "simple":
        return
    if not directory.allow_insecure_bind:
        raise ConnectFailed(
            "policy",
            f"refusing a simple bind over plain {endpoint.url}: it would send the password unencrypted; use ldaps://, "
            f"leave tls.start_tls on, or set allow_insecure_bind: true for directory {directory.name}",
        )


def _tls(directory: Directory, endpoint: Endpoint) -> Tls:
    return Tls(
        validate=ssl.CERT_REQUIRED if directory.tls.verify else ssl.CERT_NONE,
        ca_certs_file=directory.tls.ca_file,
        sni=endpoint.host,
    )


def open_endpoint(directory: Directory, endpoint: Endpoint) -> Connection:
    """An open, not yet bound connection with TLS as the policy says; ConnectFailed naming the step otherwise."""
    refuse_insecure_bind(directory, endpoint)
    if directory.tls.ca_file and is_encrypted(directory, endpoint):
        try:
            open(directory.tls.ca_file, "rb").close()
        except OSError as error:
            raise ConnectFailed("tls", f"tls.ca_file {directory.tls.ca_file} cannot be read: {error.strerror}",
                                try_next=False) from None
    server = Server(
        endpoint.host,
        port=endpoint.port,
        use_ssl=endpoint.ldaps,
        tls=_tls(directory, endpoint) if is_encrypted(directory, endpoint) else None,
        get_info=NONE,
        connect_timeout=directory.connect_timeout,
    )
    connection = Connection(
        server,
        receive_timeout=math.ceil(directory.operation_timeout),  # ldap3 packs it into SO_RCVTIMEO as an integer
        raise_exceptions=False,
        auto_referrals=False,  # a referral is reported, never silently chased or dropped
        read_only=True,
        return_empty_attributes=False,
    )
    install_lean_decoder(connection)  # search entries decoded straight to raw values: most of a big read's time
    try:
        connection.open()
        if uses_start_tls(directory, endpoint):
            connection.start_tls()
    except LDAPException as error:
        close_quietly(connection)
        raise _diagnose(directory, endpoint, error) from None
    return connection


def _diagnose(directory: Directory, endpoint: Endpoint, error: Exception) -> ConnectFailed:
    """Re-runs the connection steps one by one so the message names the step that fails."""
    try:
        resolve(endpoint)
        tcp(endpoint, directory.connect_timeout)
        if is_encrypted(directory, endpoint):
            tls_handshake(endpoint, directory.tls.ca_file, directory.tls.verify, directory.connect_timeout)
    except ProbeFailed as failure:
        return ConnectFailed(failure.step, failure.detail)
    return ConnectFailed("tcp", f"cannot open a connection to {endpoint.url}: {error}")


def bind(directory: Directory, endpoint: Endpoint, connection: Connection) -> None:
    """Binds as the policy's account; ConnectFailed('bind') with AD's reason translated."""
    spec = directory.bind
    if spec is None or spec.user is None:
        connection.authentication = ANONYMOUS
        connection.user = connection.password = None
        who = "anonymously"
    else:
        if spec.method == "ntlm":
            ensure_md4()
            if bind_form(spec.user) != "down-level":
                raise ConnectFailed("bind", f"bind.method ntlm needs the user as DOMAIN\\user, not {spec.user!r}",
                                    try_next=False)
            connection.authentication = NTLM
        else:
            connection.authentication = SIMPLE
        connection.user = spec.user
        connection.password = spec.password.resolve() if spec.password is not None else None
        if connection.password is None or connection.password == "":
            connection.password = None
            raise ConnectFailed("bind", f"bind.user is {spec.user!r} but bind.password is missing or empty; an empty "
                                        f"password would be an unauthenticated bind", try_next=False)
        who = f"as {spec.user}"
    try:
        ok = connection.bind()
    except LDAPException as error:
        hint = ("; the server does not offer NTLM through the Sicily bind ldap3 speaks (Samba does not): "
                "use a simple bind over ldaps://" if connection.authentication == NTLM else "")
        raise ConnectFailed("bind", f"connection lost during the bind {who}: {error}{hint}") from None
    finally:
        connection.password = None  # ldap3 would keep it, and repr() would show it
    if not ok:
        raise ConnectFailed("bind", bind_failure(connection.result, who), try_next=_retryable(connection.result))


def _retryable(result: dict) -> bool:
    # busy/unavailable on one domain controller: another may answer. Bad credentials are the same everywhere,
    # and retrying them on every DC only brings the account closer to a lockout.
    return result.get("description") in ("busy", "unavailable", "unwillingToPerform", "other")


def bind_failure(result: dict, who: str) -> str:
    description = result.get("description") or f"result code {result.get('result')}"
    message = (result.get("message") or "").strip()
    match = _AD_DATA.search(message)
    if match and match.group(1).lower() in AD_BIND_CODES:
        code = match.group(1).lower()
        return f"bind {who} failed: {AD_BIND_CODES[code]} (AD code {code})"
    if description == "invalidCredentials":
        return f"bind {who} failed: wrong user name or password (invalidCredentials)"
    if description == "strongerAuthRequired":
        return (f"bind {who} failed: the server requires an encrypted or signed connection "
                f"(strongerAuthRequired); use ldaps:// or StartTLS")
    detail = f": {message}" if message else ""
    return f"bind {who} failed: {description}{detail}"


def ensure_md4() -> None:
    """ldap3's NTLM hashes the password with MD4; OpenSSL 3 dropped it, ldap3 falls back to pycryptodome."""
    import hashlib

    try:
        hashlib.new("md4", b"")
        return
    except ValueError:
        pass
    try:
        from Crypto.Hash import MD4  # noqa: F401
    except ImportError:
        raise ConnectFailed("bind", "bind.method ntlm needs MD4, which this Python's OpenSSL lacks; "
                                    "install pycryptodome (pip install pycryptodome)", try_next=False) from None


def close_quietly(connection: Connection) -> None:
    try:
        connection.unbind()
    except Exception:  # already broken: nothing left to close cleanly
        pass


def connect(directory: Directory) -> tuple[Connection, Endpoint]:
    """Tries each URL in order and returns the first bound connection, or raises
    DirectoryError listing what went wrong with each URL tried."""
    failures: list[str] = []
    for endpoint in endpoints(directory):
        try:
            connection = open_endpoint(directory, endpoint)
        except ConnectFailed as failure:
            failures.append(f"{endpoint.url}: {failure.detail}")
            if failure.try_next:
                continue
            break
        try:
            bind(directory, endpoint, connection)
        except ConnectFailed as failure:
            close_quietly(connection)
            failures.append(f"{endpoint.url}: {failure.detail}")
            if failure.try_next:
                continue
            break
        return connection, endpoint
    raise DirectoryError(f"directory {directory.name}: cannot connect; " + "; ".join(failures), directory.location)
