"""`reconciler check` for one live directory: each step that can fail, in order.

Per URL: name resolution, TCP connect, TLS handshake (a rejected certificate is
named, with OpenSSL's reason), bind (AD's sub-codes translated). Then, over the
first URL that bound: whether the bind account can read each search base and
each member_of group. A step that fails ends that URL's steps; the read steps
run only if some URL bound.
"""
from __future__ import annotations

from ldap3 import BASE
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException

from ...errors import ReconcilerError
from ...policy.model import Directory
from .. import CheckStep
from .connect import ConnectFailed, bind, close_quietly, is_encrypted, open_endpoint
from .paged import client_side_cause, result_cause
from .probe import Endpoint, ProbeFailed, parse_url, resolve, tcp, tls_handshake


def check_directory(directory: Directory) -> list[CheckStep]:
    if not directory.urls:
        return [CheckStep("urls", False, "no urls: a live directory needs at least one ldaps:// or ldap:// URL")]
    steps: list[CheckStep] = []
    bound = None
    for url in directory.urls:
        connection = _check_url(directory, url, steps)
        if connection is not None and bound is None:
            bound = connection
        elif connection is not None:
            close_quietly(connection)
    if bound is None:
        return steps
    try:
        steps.extend(_check_reads(directory, bound))
    finally:
        close_quietly(bound)
    return steps


def _check_url(directory: Directory, url: str, steps: list[CheckStep]):
    """Appends this URL's steps; returns a bound connection if every step passed."""
    try:
        endpoint = parse_url(url)
    except ProbeFailed as failure:
        steps.append(CheckStep(f"url {url}", False, failure.detail))
        return None
    probes = [("dns", lambda: resolve(endpoint)), ("tcp", lambda: tcp(endpoint, directory.connect_timeout))]
    if is_encrypted(directory, endpoint):
        probes.append(("tls", lambda: tls_handshake(endpoint, directory.tls.ca_file, directory.tls.verify,
                                                     directory.connect_timeout)))
    for name, probe in probes:
        try:
            steps.append(CheckStep(f"{name} {url}", True, probe()))
        except ProbeFailed as failure:
            steps.append(CheckStep(f"{name} {url}", False, failure.detail))
            return None
    if not is_encrypted(directory, endpoint):
        steps.append(CheckStep(f"tls {url}", True, "plain LDAP (tls.start_tls is false): traffic is not encrypted"))
    return _check_bind(directory, endpoint, steps)


def _check_bind(directory: Directory, endpoint: Endpoint, steps: list[CheckStep]):
    name = f"bind {endpoint.url}"
    try:
        connection = open_endpoint(directory, endpoint)
    except ConnectFailed as failure:
        steps.append(CheckStep(name if failure.step in ("policy", "bind") else f"{failure.step} {endpoint.url}",
                               False, failure.detail))
        return None
    try:
        bind(directory, endpoint, connection)
    except (ConnectFailed, ReconcilerError) as failure:  # ReconcilerError: the password's ${VAR} is not set
        close_quietly(connection)
        steps.append(CheckStep(name, False, getattr(failure, "detail", None) or str(failure)))
        return None
    who = directory.bind.user if directory.bind and directory.bind.user else "anonymous"
    steps.append(CheckStep(name, True, f"bound as {who}"))
    return connection


def _check_reads(directory: Directory, connection) -> list[CheckStep]:
    targets = [("users base", base, directory.users.filter, directory.users.scope)
               for base in directory.users.search_bases]
    targets += [("groups base", base, directory.groups.filter, directory.groups.scope)
                for base in directory.groups.search_bases]
    targets += [("member_of group", dn, None, "base") for dn in directory.users.member_of]
    return [_check_read(connection, *target) for target in targets]


def _check_read(connection, what: str, base: str, ldap_filter: str | None, scope: str) -> CheckStep:
    """The base entry itself must be readable; with a filter, one matching entry is asked for too, which
    also proves the server accepts the filter."""
    from .paged import SCOPES

    name = f"read {what} {base}"
    try:
        connection.search(base, "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
        if connection.result.get("result") != 0 or not _entries(connection):
            cause = (result_cause(connection.result) if connection.result.get("result") != 0
                     else "the base entry is not visible")
            return CheckStep(name, False, f"cannot read {base}: {cause} "
                                          f"(a base the bind account may not read looks like one that does not exist)")
        if ldap_filter is None:
            return CheckStep(name, True, "readable")
        connection.search(base, ldap_filter, search_scope=SCOPES[scope], attributes=["1.1"], size_limit=1)
        code = connection.result.get("description")
        if code not in ("success", "sizeLimitExceeded"):
            return CheckStep(name, False, f"searching {base} with {ldap_filter}: {result_cause(connection.result)}")
        found = "at least one entry matches" if _entries(connection) else "readable, but no entry matches"
        return CheckStep(name, True, f"{found} {ldap_filter}")
    except LDAPCommunicationError as error:
        return CheckStep(name, False, f"the connection was lost while reading {base}: {error}")
    except LDAPException as error:
        return CheckStep(name, False, f"searching {base} with {ldap_filter}: {client_side_cause(error)}")


def _entries(connection) -> list:
    return [r for r in connection.response or () if r.get("type") == "searchResEntry"]


