"""Step-by-step diagnosis of one directory URL: name resolution, TCP, TLS handshake.

`reconciler check` prints these steps; the reader runs them after a failed
connect so its message names the step that failed (and, for TLS, which
certificate was rejected and why) instead of ldap3's nested exception text.
"""
from __future__ import annotations

import datetime
import math
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

START_TLS_OID = "1.3.6.1.4.1.1466.20037"


class ProbeFailed(Exception):
    """One step failed; `detail` is a user-facing sentence without secrets."""

    def __init__(self, step: str, detail: str):
        super().__init__(detail)
        self.step = step
        self.detail = detail


@dataclass(frozen=True)
class Endpoint:
    url: str
    host: str
    port: int
    ldaps: bool  # TLS from the first byte (ldaps://) rather than StartTLS or plain

    def __str__(self) -> str:
        return self.url


def parse_url(url: str) -> Endpoint:
    """ldaps://host[:636] or ldap://host[:389]; anything else is a policy mistake."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ProbeFailed("url", f"{url!r} is not an ldap:// or ldaps:// URL with a host name")
    if parts.path not in ("", "/"):
        raise ProbeFailed("url", f"{url!r} has a path; give only scheme, host and port (search bases go in users/groups)")
    try:
        port = parts.port
    except ValueError:
        raise ProbeFailed("url", f"{url!r} has an invalid port") from None
    return Endpoint(url=url.strip(), host=parts.hostname, port=port or (636 if scheme == "ldaps" else 389),
                    ldaps=scheme == "ldaps")


def resolve(endpoint: Endpoint) -> str:
    """The addresses the host name resolves to, or ProbeFailed('dns')."""
    try:
        infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ProbeFailed("dns", f"cannot resolve {endpoint.host}: {error.strerror}; check the host name in urls "
                                 f"and this machine's DNS") from None
    addresses = sorted({info[4][0] for info in infos})
    return f"{endpoint.host} resolves to {', '.join(addresses)}"


def tcp_connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except socket.timeout:
        raise ProbeFailed("tcp", f"no answer from {endpoint.host}:{endpoint.port} within {timeout:g}s "
                                 f"(a firewall dropping packets, or the wrong port)") from None
    except ConnectionRefusedError:
        raise ProbeFailed("tcp", f"connection to {endpoint.host}:{endpoint.port} refused: nothing listens there "
                                 f"(is the directory server running, is the port right?)") from None
    except OSError as error:
        raise ProbeFailed("tcp", f"cannot connect to {endpoint.host}:{endpoint.port}: {error.strerror or error}") from None


def tcp(endpoint: Endpoint, timeout: float) -> str:
    tcp_connect(endpoint, timeout).close()
    return f"{endpoint.host}:{endpoint.port} accepts connections"


def tls_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except ssl.SSLError:  # before OSError, its base class
        raise ProbeFailed("tls", f"tls.ca_file {ca_file} holds no PEM certificate; give the CA certificate "
                                 f"in PEM form (-----BEGIN CERTIFICATE-----)") from None
    except OSError as error:
        raise ProbeFailed("tls", f"tls.ca_file {ca_file} cannot be read: {error.strerror}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def tls_handshake(endpoint: Endpoint, ca_file: str | None, verify: bool, timeout: float) -> str:
    """Completes a TLS handshake (ldaps:// directly, ldap:// after StartTLS) and describes the certificate.

    A verification failure names the server's certificate (subject, issuer,
    validity) and OpenSSL's reason, because "certificate verify failed" alone
    does not tell the user whether to fix tls.ca_file, the URL's host name or
    the server's certificate.
    """
    context = tls_context(ca_file, verify)
    try:
        tls_socket = _handshake(endpoint, context, timeout)
    except ssl.SSLCertVerificationError as error:
        certificate = describe_certificate(_peer_certificate(endpoint, timeout))
        reason = (error.verify_message or str(error)).rstrip(".")
        raise ProbeFailed("tls", f"the certificate {endpoint.host}:{endpoint.port} presented ({certificate}) was "
                                 f"rejected: {reason}; {_advice(reason, ca_file)}") from None
    except ssl.SSLError as error:
        raise ProbeFailed("tls", f"TLS handshake with {endpoint.host}:{endpoint.port} failed: "
                                 f"{error.reason or error}; is this port speaking "
                                 f"{'LDAPS' if endpoint.ldaps else 'LDAP with StartTLS'}?") from None
    except socket.timeout:
        kind = "LDAPS" if endpoint.ldaps else "StartTLS"
        raise ProbeFailed("tls", _no_answer(endpoint, timeout, f"the {kind} handshake")) from None
    except ConnectionError as error:
        kind = "LDAPS" if endpoint.ldaps else "StartTLS"
        raise ProbeFailed("tls", f"{endpoint.host}:{endpoint.port} closed the connection during the {kind} "
                                 f"handshake ({error.__class__.__name__}); is the scheme (ldap:// or ldaps://) "
                                 f"right for this port?") from None
    try:
        certificate = describe_certificate(tls_socket.getpeercert(binary_form=True))
        return f"{tls_socket.version()}, certificate {certificate}" + ("" if verify else " (NOT verified: tls.verify is false)")
    finally:
        tls_socket.close()


def _no_answer(endpoint: Endpoint, timeout: float, during: str) -> str:
    return (f"no answer from {endpoint.host}:{endpoint.port} within {timeout:g}s during {during}: the server is hung "
            f"or the port is not an LDAP port (timeouts.connect)")


def _advice(reason: str, ca_file: str | None) -> str:
    lowered = reason.lower()
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        return "use a host name in urls that the certificate names"
    if "expired" in lowered or "not yet valid" in lowered:
        return "the server's certificate must be renewed (or the clock here is wrong)"
    if ca_file:
        return f"is tls.ca_file ({ca_file}) the CA that issued it?"
    return "set tls.ca_file to the CA that issued it"


def _handshake(endpoint: Endpoint, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    if endpoint.ldaps:
        raw = tcp_connect(endpoint, timeout)
        try:
            return context.wrap_socket(raw, server_hostname=endpoint.host)
        except BaseException:
            raw.close()
            raise
    return _start_tls(endpoint, context, timeout)


def _start_tls(endpoint: Endpoint, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    """StartTLS spoken by ldap3, then the handshake with our own context so the
    verification error keeps OpenSSL's reason."""
    from ldap3 import NONE, Connection, Server

    server = Server(endpoint.host, port=endpoint.port, use_ssl=False, get_info=NONE, connect_timeout=timeout)
    connection = Connection(server, receive_timeout=max(1, int(timeout + 0.999)), raise_exceptions=False)
    from ldap3.core.exceptions import LDAPCommunicationError

    try:
        connection.open()
    except LDAPCommunicationError as error:
        tcp(endpoint, timeout)  # raises the TCP step's message if that is the cause
        raise ProbeFailed("tcp", f"cannot open an LDAP connection to {endpoint.host}:{endpoint.port}: {error}") from None
    try:
        connection.extended(START_TLS_OID)
    except LDAPCommunicationError as error:
        if "timed out" in str(error):
            raise ProbeFailed("tls", _no_answer(endpoint, timeout, "the StartTLS request")) from None
        raise ProbeFailed("tls", f"{endpoint.host}:{endpoint.port} closed the connection when asked for StartTLS; "
                                 f"if it is an LDAPS port, use ldaps://") from None
    if connection.result.get("description") != "success":
        result = connection.result
        connection.unbind()
        raise ProbeFailed("tls", f"{endpoint.host}:{endpoint.port} refused StartTLS: {result.get('description')} "
                                 f"{result.get('message') or ''}".rstrip() + "; configure TLS on the server or use ldaps://")
    raw = connection.socket
    raw.settimeout(timeout)
    try:
        return context.wrap_socket(raw, server_hostname=endpoint.host)
    except BaseException:
        raw.close()
        raise


def _peer_certificate(endpoint: Endpoint, timeout: float) -> bytes | None:
    """The server's certificate fetched without verification, only to describe it."""
    try:
        tls_socket = _handshake(endpoint, tls_context(None, verify=False), timeout)
    except Exception:
        return None
    try:
        return tls_socket.getpeercert(binary_form=True)
    finally:
        tls_socket.close()


def describe_certificate(der: bytes | None) -> str:
    """'subject CN=localhost,O=..., issued by CN=..., valid until 2026-11-23' from a DER certificate."""
    if not der:
        return "certificate not available"
    try:
        subject, issuer, not_after = _certificate_fields(der)
    except Exception:  # a certificate pyasn1 cannot walk is still worth a message
        return "a certificate that could not be decoded"
    return f"subject {subject}, issued by {issuer}, valid until {not_after}"


_NAME_TYPES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
               "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "emailAddress"}


def _certificate_fields(der: bytes) -> tuple[str, str, str]:
    # pyasn1 comes with ldap3; decoding without a spec walks the generic
    # structure: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version,
    # serial, signature, issuer, validity, subject, ... } ... }
    from pyasn1.codec.der import decoder

    certificate, _ = decoder.decode(der)
    tbs = certificate[0]
    # the version field is context-tagged [0]; v1 certificates leave it out
    offset = 1 if len(tbs[0].tagSet) > 1 else 0
    issuer, validity, subject = tbs[offset + 2], tbs[offset + 3], tbs[offset + 4]
    return _name(subject), _name(issuer), _time(validity[1])


def _name(name) -> str:
    parts = []
    for rdn in reversed(list(name)):
        for attribute in rdn:
            oid = str(attribute[0])
            value = attribute[1]
            text = bytes(value.asOctets()).decode("utf-8", "replace") if hasattr(value, "asOctets") else str(value)
            parts.append(f"{_NAME_TYPES.get(oid, oid)}={text}")
    return ",".join(parts) or "(empty)"


def _time(value) -> str:
    text = bytes(value.asOctets()).decode("ascii")
    fmt = "%y%m%d%H%M%SZ" if len(text) == 13 else "%Y%m%d%H%M%SZ"
    return datetime.datetime.strptime(text, fmt).strftime("%Y-%m-%d %H:%M UTC")
