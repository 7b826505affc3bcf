"""`reconciler check` for a kind entra-id directory: each step that can fail, in order.

Live: for the token service and for Graph, name resolution, TCP and the TLS handshake (the
certificate named when it is rejected); then a token (the token service's AADSTS error in
words); then the application permissions the token carries against what the policy needs
(User.Read.All; GroupMember.Read.All with member_of or groups), read from its `roles` claim;
then one small read of each kind the plan makes (users with the filter, each member_of group,
groups). A snapshot: whether the file reads as one.
"""
from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from ...errors import ReconcilerError
from ...policy.model import Directory
from .. import CheckStep
from ..ldap.probe import describe_certificate
from .auth import Tokens, token_roles
from .graph import ENOUGH, GraphClient
from .readers import GROUPS, USERS, LiveGraph, load_snapshot


def check_directory(directory: Directory) -> list[CheckStep]:
    graph = directory.graph
    assert graph is not None
    if graph.snapshot:
        try:
            users, groups = load_snapshot(graph.snapshot)
        except ReconcilerError as error:
            return [CheckStep("snapshot", False, str(error))]
        return [CheckStep("snapshot", True, f"{graph.snapshot}: {len(users)} users, {len(groups)} groups")]
    steps: list[CheckStep] = []
    reachable = True
    for what, url in (("login", graph.login), ("graph", graph.graph)):
        reachable &= _check_endpoint(directory, what, url, steps)
    if not reachable:
        return steps
    tokens = Tokens(directory)
    try:
        token = tokens.token()
    except ReconcilerError as error:
        steps.append(CheckStep("token", False, str(error)))
        return steps
    steps.append(CheckStep("token", True, f"signed in to tenant {tokens.tenant} as app {tokens.client_id} "
                                          f"({tokens.credential.hint or 'credential'})"))
    roles = token_roles(token)
    needed = [USERS] + ([GROUPS] if directory.users.member_of or graph.read_groups else [])
    permitted = True
    for permission in needed:
        granting = sorted(set(roles) & ENOUGH[permission])
        if granting:
            steps.append(CheckStep(f"permission {permission}", True, f"granted ({', '.join(granting)})"))
        else:
            permitted = False
            held = f"the token carries {', '.join(roles)}" if roles else "the token carries no application permission"
            steps.append(CheckStep(f"permission {permission}", False,
                                   f"missing: add the application permission {permission} (Microsoft Graph → "
                                   f"Application permissions) to app {tokens.client_id} and grant admin consent; {held}"))
    if not permitted:
        return steps
    client = GraphClient(directory, tokens)
    reader = LiveGraph(directory, client)
    try:
        steps.extend(_check_reads(directory, client, reader))
    finally:
        client.close()
    return steps


def _check_endpoint(directory: Directory, what: str, url: str, steps: list[CheckStep]) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    name = f"{what} {parts.scheme}://{parts.netloc}"
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
    except socket.gaierror as error:
        steps.append(CheckStep(f"dns {name}", False, f"cannot resolve {host}: {error.strerror}; check this machine's "
                                                     f"DNS, or endpoints.{what}"))
        return False
    steps.append(CheckStep(f"dns {name}", True, f"{host} resolves to {', '.join(addresses)}"))
    timeout = directory.connect_timeout
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        steps.append(CheckStep(f"tcp {name}", False, f"no answer from {host}:{port} within {timeout:g}s (a firewall, or "
                                                     f"a proxy is needed: HTTPS_PROXY is honoured by the read)"))
        return False
    except OSError as error:
        steps.append(CheckStep(f"tcp {name}", False, f"cannot connect to {host}:{port}: {error.strerror or error}"))
        return False
    steps.append(CheckStep(f"tcp {name}", True, f"{host}:{port} accepts connections"))
    if parts.scheme != "https":
        raw.close()
        steps.append(CheckStep(f"tls {name}", True, "plain HTTP (a loopback endpoint): traffic is not encrypted"))
        return True
    tls = directory.tls
    try:
        context = ssl.create_default_context(cafile=tls.ca_file) if tls.verify else ssl._create_unverified_context()
    except (ssl.SSLError, OSError):
        raw.close()
        steps.append(CheckStep(f"tls {name}", False, f"tls.ca_file {tls.ca_file} holds no PEM certificate or cannot be read"))
        return False
    try:
        with context.wrap_socket(raw, server_hostname=host) as secure:
            certificate = describe_certificate(secure.getpeercert(binary_form=True))
            steps.append(CheckStep(f"tls {name}", True, f"{secure.version()}, certificate {certificate}"))
            return True
    except ssl.SSLCertVerificationError as error:
        reason = (error.verify_message or str(error)).rstrip(".")
        advice = (f"is tls.ca_file ({tls.ca_file}) the CA that issued it? A TLS-inspecting proxy needs its CA there"
                  if tls.ca_file else "a TLS-inspecting proxy? set tls.ca_file to its CA")
        steps.append(CheckStep(f"tls {name}", False, f"the certificate of {host}:{port} was rejected: {reason}; {advice}"))
    except (ssl.SSLError, OSError) as error:
        steps.append(CheckStep(f"tls {name}", False, f"TLS handshake with {host}:{port} failed: {error}"))
    finally:
        raw.close()
    return False


def _check_reads(directory: Directory, client: GraphClient, reader: LiveGraph) -> list[CheckStep]:
    from ...odata import needs_advanced_query

    steps: list[CheckStep] = []
    scope = directory.users
    params = {"$select": "id", "$top": "1", **({"$filter": scope.filter} if scope.filter else {})}
    advanced = bool(scope.filter) and needs_advanced_query(scope.filter)
    try:
        page = next(client.pages("users", "reading /users", USERS, params, advanced), [])
        found = "at least one user matches" if page else "readable, but no user matches"
        steps.append(CheckStep("read users", True, f"{found} {scope.filter}" if scope.filter else found))
    except ReconcilerError as error:
        steps.append(CheckStep("read users", False, str(error)))
    for ref in scope.member_of:
        try:
            group = reader.group(ref)
            steps.append(CheckStep(f"read member_of {ref}", True,
                                   f"the group {group.get('displayName')} ({group.get('id')})"))
        except ReconcilerError as error:
            steps.append(CheckStep(f"read member_of {ref}", False, str(error)))
    if directory.graph.read_groups:
        gfilter = directory.groups.filter
        try:
            page = next(client.pages("groups", "reading /groups", GROUPS,
                                     {"$select": "id", "$top": "1", **({"$filter": gfilter} if gfilter else {})},
                                     bool(gfilter) and needs_advanced_query(gfilter)), [])
            steps.append(CheckStep("read groups", True, ("at least one group matches " if page else
                                                         "readable, but no group matches ") + gfilter))
        except ReconcilerError as error:
            steps.append(CheckStep("read groups", False, str(error)))
    return steps
