"""A loopback fake of the Microsoft identity platform's token endpoint and of Microsoft Graph v1.0.

No Entra ID tenant can run here, so this is the one server the tests fake. It serves HTTPS
with the test CA's certificate (tests/servers/tls.py), so TLS is verified as users verify it,
and answers in the shapes Microsoft documents:

- OpenID discovery, GET /{tenant}/v2.0/.well-known/openid-configuration, and the client
  credentials grant, POST /{tenant}/oauth2/v2.0/token, with a client secret, a certificate
  (a JWT assertion signed with the key, its thumbprint in the header, checked against the
  registered certificate) or a federated token; errors as `{"error", "error_description":
  "AADSTS...", "error_codes": [...]}`
  (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
  .../certificate-credentials, .../workload-identity-federation);
- GET /v1.0/users, /v1.0/users/{id}, /v1.0/groups, /v1.0/groups/{id}, /v1.0/groups/{id}/members,
  /v1.0/groups/{id}/transitiveMembers (with the /microsoft.graph.user cast),
  /v1.0/{users|groups}/{id}/memberOf: `{"@odata.context", "value": [...], "@odata.nextLink"}`,
  `$select`, `$filter` (reconciler.odata's evaluator), `$top` (1-999, default 100), `$count`,
  `ConsistencyLevel: eventual` required for advanced filters, `$skiptoken` paging
  (https://learn.microsoft.com/en-us/graph/api/user-list, .../group-list,
  .../group-list-members, .../group-list-transitivemembers, https://learn.microsoft.com/en-us/graph/paging,
  https://learn.microsoft.com/en-us/graph/aad-advanced-queries);
- errors `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`:
  401 InvalidAuthenticationToken for a missing or expired token, 403 Authorization_RequestDenied
  without the application permission, 404 Request_ResourceNotFound, 400 Request_UnsupportedQuery
  (https://learn.microsoft.com/en-us/graph/errors);
- throttling: 429 TooManyRequests (and 503) with `Retry-After` in seconds, injected by `Fault`s
  (https://learn.microsoft.com/en-us/graph/throttling);
- delta queries, GET /v1.0/users/delta and /v1.0/groups/delta
  (https://learn.microsoft.com/en-us/graph/delta-query-overview, https://learn.microsoft.com/en-us/graph/api/user-delta,
  https://learn.microsoft.com/en-us/graph/api/group-delta, https://learn.microsoft.com/en-us/graph/delta-query-groups):
  a round of pages linked by `@odata.nextLink` (`$skiptoken`), the last carrying `@odata.deltaLink`
  (`$deltatoken`), `$select` given once and kept in the tokens, `$deltatoken=latest` (a delta link and no
  objects: "sync from now"), `$filter` of `id eq '…'` joined by `or` only (50 at most), no `$top`, `$orderby`
  or `$expand`; the first round holds every object, a later one what changed after its token: new objects
  whole, updated ones with their selected properties (only the changed ones with `Prefer: return=minimal`;
  without it the others too, never-set ones left out), a change to a property not selected not at all, removed
  ones as `{"id", "@removed": {"reason": "changed" | "deleted"}}` (soft- or hard-deleted), and a group's
  membership changes as `members@delta` (removed members with `@removed`), split over several items of the
  same group when `delta_members_per_item` says so, and every change repeated when `delta_replays` (Graph
  may replay). The tenant changes between reads through `add_user`, `update_user`, `disable_user`,
  `delete_user(hard=)`, `restore_user`, `add_group`, `update_group`, `delete_group`, `add_member`,
  `remove_member`, which keep the change log deltas are answered from (`load` replaces the tenant without
  one). `expire_delta_links()` makes every link issued so far refused: 410 Gone with a `Location` to start
  again from (a synchronization reset), or with `status=400` the `syncStateNotFound` of an expired token;
  an unknown token is `syncStateNotFound` too. `next_link` breaks delta chains as it breaks other pages
  (and `no-link`: a page with neither link);
- GitHub Actions' OIDC token service, GET /_github/token?audience=... (`{"value": jwt}`), for
  federated credentials from a workflow (https://docs.github.com/en/actions/security-for-github-actions/
  security-hardening-your-deployments/about-security-hardening-with-openid-connect).

What it cannot know: Graph's real limits and timings, eventual consistency, every query Graph
takes and every error it gives; the tests say which documented shape each case follows. Of delta
queries in particular: the lag before a change shows in a delta (replication), which properties Graph
really tracks (it evaluates no $filter on deltas either), how it splits pages, whether a restored
object's memberships come back, and the token lifetime (7 days for directory objects).
"""
from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from reconciler.odata import FilterError, Unsupported, parse as parse_filter

USERS_READ = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
GROUPS_READ = {"GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All",
               "Directory.Read.All", "Directory.ReadWrite.All"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_jwt(claims: dict) -> str:
    """A token shaped like Entra ID's access tokens (header.payload.signature); the fake does not sign them."""
    header = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": "fake"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(secrets.token_bytes(32))}"


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@dataclass
class App:
    """An app registration with its credentials and the application permissions consented for it."""

    client_id: str
    roles: list[str] = field(default_factory=lambda: ["User.Read.All", "GroupMember.Read.All"])
    secret: str | None = None
    certificate_pem: bytes | None = None  # the public certificate uploaded to the app
    federated: tuple[str, str] | None = None  # (issuer, subject) of a federated credential
    enabled: bool = True


@dataclass
class Fault:
    """Answer matching requests with `status` instead (or drop the connection), after `skip` of them."""

    path: str  # a prefix of the request path, e.g. /v1.0/users or /contoso.onmicrosoft.com/oauth2
    status: int = 429
    retry_after: str | None = None
    times: int | None = 1  # None: every matching request from then on
    skip: int = 0
    when: Callable[["Seen"], bool] | None = None  # more conditions, on the request
    code: str | None = None
    message: str | None = None
    drop: bool = False
    seen: int = 0
    fired: int = 0

    def fires(self, request: "Seen") -> bool:
        if not request.path.startswith(self.path) or (self.when is not None and not self.when(request)):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass
class Stamp:
    """The change log of one object, in the fake's sequence numbers: what a delta after a token reports."""

    id: str  # as Graph spells it
    created: int = 0  # added (or restored) at; 0: there from the start
    props: dict[str, int] = field(default_factory=dict)  # property -> last changed at
    members: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # member id -> (at, @odata.type, id)
    removed: tuple[int, str] | None = None  # (at, "changed" | "deleted") while it is deleted


_ID_EQ = re.compile(r"\s*id\s+eq\s+'([^']*)'\s*", re.IGNORECASE)


def id_filter(text: str) -> set[str] | None:
    """The ids of a delta query's `$filter` (`id eq '…' or id eq '…'`, the only filter delta takes), None otherwise."""
    ids = set()
    for part in re.split(r"\s+or\s+", text.strip(), flags=re.IGNORECASE):
        match = _ID_EQ.fullmatch(part)
        if match is None:
            return None
        ids.add(match.group(1).lower())
    return ids


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    form: dict[str, str] = field(default_factory=dict)


class FakeEntra:
    """One tenant: its users and groups (the snapshot format of examples/entra/cloud.json), its apps."""

    def __init__(self, tls, data: dict, tenant: str = "contoso.onmicrosoft.com",
                 tenant_id: str = "8f2e4a61-1c3b-4d5e-9f70-a1b2c3d4e5f6"):
        self.tls = tls
        self.tenant, self.tenant_id = tenant, tenant_id
        self.apps: dict[str, App] = {}
        self.faults: list[Fault] = []
        self.log: list[Seen] = []
        self.page_size = 999  # the most this Graph returns a page, whatever $top asks
        self.token_lifetime = 3599
        self.tokens: dict[str, dict] = {}  # access token -> its claims
        self.tokens_issued = 0
        self.next_link: str = "normal"  # or: other-host, garbage, loop, missing-value
        self.github_tokens: dict[str, str] = {}  # request bearer -> the id token handed out
        self.lock = threading.Lock()
        self._pages: dict[str, tuple[str, int]] = {}  # skiptoken -> (query key, offset)
        self._cache: dict[tuple, list[dict]] = {}
        self.delta_page_size = 100  # objects per delta page (Graph decides; $top is not taken)
        self.delta_members_per_item: int | None = None  # split a group's members@delta over items of this many
        self.delta_replays = False  # every change of a later round sent twice
        self.seq = 0  # the change log's clock
        self.stamps: dict[tuple[str, str], Stamp] = {}  # (users|groups, lower-cased id) -> its changes
        self.deleted: dict[str, dict[str, dict]] = {"users": {}, "groups": {}}  # soft-deleted (deletedItems)
        self._delta_links: dict[str, dict] = {}  # deltatoken -> {kind, select, ids, seq, refused}
        self._delta_pages: dict[str, tuple[list[dict], int, dict]] = {}  # skiptoken -> (items, offset, next link)
        self.load(data)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ── set-up ──

    def load(self, data: dict) -> None:
        with self.lock:
            self.users = [dict(u) for u in data.get("users", [])]  # copies: the mutations change these
            self.groups = [{k: v for k, v in g.items() if k != "members"} for g in data.get("groups", [])]
            self.members = {g["id"].lower(): [dict(m) for m in g.get("members") or []] for g in data.get("groups", [])}
            self._cache.clear()

    # ── changes between reads (what deltas report) ──

    def _stamp(self, kind: str, object_id: str) -> Stamp:
        key = (kind, object_id.lower())
        if key not in self.stamps:
            self.stamps[key] = Stamp(object_id)
        return self.stamps[key]

    def _tick(self) -> int:
        self.seq += 1
        self._cache.clear()
        return self.seq

    def _objects(self, kind: str) -> list[dict]:
        return self.users if kind == "users" else self.groups

    def _find(self, kind: str, object_id: str) -> dict:
        found = next((o for o in self._objects(kind) if o["id"].lower() == object_id.lower()), None)
        if found is None:
            raise KeyError(f"no {kind[:-1]} {object_id} in the fake tenant")
        return found

    def add_user(self, user: dict) -> dict:
        with self.lock:
            self.users.append(dict(user))
            stamp = self._stamp("users", user["id"])
            stamp.created, stamp.removed = self._tick(), None
        return user

    def update_user(self, object_id: str, **changes: Any) -> None:
        """Sets properties (None clears one), each a change a delta reports."""
        self._update("users", object_id, changes)

    def disable_user(self, object_id: str) -> None:
        self.update_user(object_id, accountEnabled=False)

    def delete_user(self, object_id: str, hard: bool = False) -> None:
        """Soft-deletes (restorable, `@removed` reason changed) or hard-deletes (reason deleted) a user; either
        way it leaves its groups, as in Entra ID."""
        self._delete("users", object_id, hard)

    def restore_user(self, object_id: str) -> None:
        """Brings a soft-deleted user back (reported whole, as a new one); its memberships do not come back."""
        with self.lock:
            user = self.deleted["users"].pop(object_id.lower())
            self.users.append(user)
            stamp = self._stamp("users", object_id)
            stamp.created, stamp.removed = self._tick(), None

    def add_group(self, group: dict) -> None:
        with self.lock:
            self.groups.append({k: v for k, v in group.items() if k != "members"})
            self.members[group["id"].lower()] = list(group.get("members") or [])
            stamp = self._stamp("groups", group["id"])
            stamp.created, stamp.removed = self._tick(), None

    def update_group(self, object_id: str, **changes: Any) -> None:
        self._update("groups", object_id, changes)

    def delete_group(self, object_id: str, hard: bool = False) -> None:
        self._delete("groups", object_id, hard)

    def add_member(self, group_id: str, member_id: str, kind: str = "user") -> None:
        with self.lock:
            odata = f"#microsoft.graph.{kind}"
            self.members.setdefault(group_id.lower(), []).append({"@odata.type": odata, "id": member_id})
            self._stamp("groups", group_id).members[member_id.lower()] = (self._tick(), odata, member_id)

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            self._leave(group_id.lower(), member_id)

    def _leave(self, group_key: str, member_id: str) -> bool:
        members = self.members.get(group_key, [])
        gone = [m for m in members if m["id"].lower() == member_id.lower()]
        if not gone:
            return False
        self.members[group_key] = [m for m in members if m not in gone]
        group = next((g for g in self.groups if g["id"].lower() == group_key), None)
        stamp = self._stamp("groups", group["id"] if group else group_key)
        stamp.members[member_id.lower()] = (self._tick(), gone[0].get("@odata.type", "#microsoft.graph.user"), member_id)
        return True

    def _update(self, kind: str, object_id: str, changes: dict) -> None:
        with self.lock:
            found = self._find(kind, object_id)
            stamp = self._stamp(kind, object_id)
            for name, value in changes.items():
                found[name] = value
                stamp.props[name] = self._tick()

    def _delete(self, kind: str, object_id: str, hard: bool) -> None:
        with self.lock:
            key = object_id.lower()
            if key in self.deleted[kind]:  # already soft-deleted: now for good
                if not hard:
                    return
                self.deleted[kind].pop(key)
            else:
                found = self._find(kind, object_id)
                self._objects(kind).remove(found)
                if not hard:
                    self.deleted[kind][key] = found
                for group_key in list(self.members):
                    self._leave(group_key, object_id)
                if kind == "groups":
                    self.members.pop(key, None)
            self._stamp(kind, object_id).removed = (self._tick(), "deleted" if hard else "changed")

    def expire_delta_links(self, status: int = 410) -> None:
        """Every delta link issued so far is refused from now on: 410 Gone with a `Location` header (Graph's
        synchronization reset), or another status with `syncStateNotFound` (a token past its lifetime)."""
        with self.lock:
            for held in self._delta_links.values():
                held["refused"] = status

    def register(self, app: App) -> App:
        self.apps[app.client_id] = app
        return app

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (as after a revocation, or a long read)."""
        with self.lock:
            for claims in self.tokens.values():
                claims["exp"] = 0

    def start(self) -> "FakeEntra":
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-entra", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{self.tenant}/oauth2/v2.0/token"

    def graph_requests(self, prefix: str = "/v1.0/") -> list[Seen]:
        return [r for r in self.log if r.path.startswith(prefix)]

    def github_oidc(self, subject: str = "repo:example/policies:ref:refs/heads/main") -> tuple[str, str]:
        """(ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN) of a fake workflow run."""
        bearer = "gha-" + secrets.token_hex(12)
        self.github_tokens[bearer] = subject
        return f"{self.url}/_github/token?api-version=2.0", bearer

    def federated_token(self, issuer: str, subject: str, audience: str = "api://AzureADTokenExchange",
                        lifetime: int = 3600) -> str:
        return unsigned_jwt({"iss": issuer, "sub": subject, "aud": audience, "exp": int(time.time()) + lifetime})

    # ── the token service ──

    def token_answer(self, tenant: str, form: dict[str, str]) -> tuple[int, dict]:
        def refuse(status: int, error: str, code: int, text: str) -> tuple[int, dict]:
            trace = str(uuid.uuid4())
            return status, {"error": error, "error_description": f"AADSTS{code}: {text} Trace ID: {trace} "
                                                                 f"Correlation ID: {uuid.uuid4()} Timestamp: 2025-01-01",
                            "error_codes": [code], "timestamp": "2025-01-01 00:00:00Z", "trace_id": trace}

        if tenant.lower() not in (self.tenant.lower(), self.tenant_id):
            return refuse(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you have "
                                                        "the correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return refuse(400, "unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' "
                                                              f"was not found in the directory '{self.tenant}'.")
        if not app.enabled:
            return refuse(400, "unauthorized_client", 7000112, "Application is disabled.")
        if form.get("scope") != f"{self.url}/.default":
            return refuse(400, "invalid_scope", 1002012, f"The provided value for scope {form.get('scope')} is not valid.")
        if "client_secret" in form:
            if app.secret is None or form["client_secret"] != app.secret:
                return refuse(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                                                              "sent in the request is the client secret value, not the "
                                                              "client secret ID.")
        elif form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            refused = self._assertion_refused(app, form.get("client_assertion", ""))
            if refused:
                return refuse(401, "invalid_client", *refused)
        else:
            return refuse(400, "invalid_client", 7000218, "The request body must contain the following parameter: "
                                                          "'client_assertion' or 'client_secret'.")
        now = int(time.time())
        claims = {"aud": self.url, "iss": f"https://sts.windows.net/{self.tenant_id}/", "appid": app.client_id,
                  "tid": self.tenant_id, "roles": list(app.roles), "iat": now, "exp": now + self.token_lifetime,
                  "oid": str(uuid.uuid4())}
        token = unsigned_jwt(claims)
        with self.lock:
            self.tokens[token] = claims
            self.tokens_issued += 1
        return 200, {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime,
                     "access_token": token}

    def _assertion_refused(self, app: App, assertion: str) -> tuple[int, str] | None:
        import jwt

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return 50027, "JWT token is invalid or malformed."
        if "x5t" in header or "x5t#S256" in header:  # a certificate credential
            if app.certificate_pem is None:
                return 700027, "Client assertion failed signature validation. The key was not found."
            from cryptography import x509

            certificate = x509.load_pem_x509_certificate(app.certificate_pem)
            try:
                claims = jwt.decode(assertion, certificate.public_key(), algorithms=["PS256", "RS256"],
                                    audience=self.token_endpoint)
            except jwt.PyJWTError as error:
                return 700027, f"Client assertion failed signature validation. ({type(error).__name__})"
            if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
                return 700023, "Client assertion audience claim does not match Realm issuer."
            return None
        claims = jwt_claims(assertion)  # a federated token: trusted by its issuer and subject
        if app.federated is None or (claims.get("iss"), claims.get("sub")) != app.federated:
            return 70021, ("No matching federated identity record found for presented assertion. Assertion Issuer: "
                           f"'{claims.get('iss')}'. Assertion Subject: '{claims.get('sub')}'.")
        if claims.get("aud") != "api://AzureADTokenExchange":
            return 700212, "No matching federated identity record found for presented assertion audience."
        if int(claims.get("exp", 0)) < time.time():
            return 700024, "Client assertion is not within its valid time range."
        return None

    # ── Graph ──

    def graph_answer(self, request: Seen) -> tuple[int, dict, dict]:
        """(status, JSON body, extra headers) for a Graph request."""
        bearer = request.headers.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else ""
        claims = self.tokens.get(token)
        if claims is None:
            return self.graph_error(401, "InvalidAuthenticationToken", "Access token is empty." if not token else
                                    "IDX14100: JWT is not well formed.")
        if claims["exp"] < time.time():
            return self.graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        parts = request.path[len("/v1.0/"):].strip("/").split("/")
        roles = set(claims["roles"])
        needs = USERS_READ if parts[0] == "users" and len(parts) <= 2 else GROUPS_READ
        if not roles & needs:
            return self.graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        if len(parts) == 2 and parts[0] in ("users", "groups") and parts[1] in ("delta", "microsoft.graph.delta"):
            return self.delta(parts[0], request)
        return self.collection_or_object(parts, request)

    # ── delta queries ──

    def _sync_state_not_found(self) -> tuple[int, dict, dict]:
        return self.graph_error(400, "syncStateNotFound", "The sync state generation is not found. The delta token "
                                                          "is expired and data must be synchronized again.")

    def _delta_link(self, kind: str, select: str | None, ids: set[str] | None, seq: int) -> str:
        token = "dlt" + secrets.token_urlsafe(32)
        self._delta_links[token] = {"kind": kind, "select": select, "ids": ids, "seq": seq, "refused": None}
        return f"{self.url}/v1.0/{kind}/delta?{urlencode({'$deltatoken': token})}"

    def delta(self, kind: str, request: Seen) -> tuple[int, dict, dict]:
        query = {k.lower(): v for k, v in request.query.items()}
        context = f"{self.url}/v1.0/$metadata#{kind}"
        skip = query.get("$skiptoken")
        if skip is not None:
            held_page = self._delta_pages.get(skip)
            if held_page is None:
                return self._sync_state_not_found()
            items, offset, after = held_page
        else:
            for name in ("$top", "$orderby", "$expand", "$search", "$count"):
                if name in query:
                    return self.graph_error(400, "Request_UnsupportedQuery", f"The query parameter {name} is not "
                                                                             "supported with delta queries.")
            token = query.get("$deltatoken")
            if token == "latest":
                with self.lock:
                    link = self._delta_link(kind, query.get("$select"), None, self.seq)
                return 200, {"@odata.context": context, "@odata.deltaLink": link, "value": []}, {}
            if token is not None:
                held = self._delta_links.get(token)
                if held is None or held["kind"] != kind:
                    return self._sync_state_not_found()
                if held["refused"] == 410:
                    return self.graph_error(410, "resyncRequired", "The delta token is no longer valid; start again "
                                                                   "with a full synchronization.",
                                            {"Location": f"{self.url}/v1.0/{kind}/delta?$deltatoken="})
                if held["refused"]:
                    status, body, headers = self._sync_state_not_found()
                    return held["refused"], body, headers
                select, ids, since = held["select"], held["ids"], held["seq"]
            else:
                select, ids, since = query.get("$select"), None, None
                if query.get("$filter"):
                    ids = id_filter(query["$filter"])
                    if ids is None:
                        return self.graph_error(400, "Request_UnsupportedQuery", "Unsupported query: delta takes "
                                                                                 "$filter only as id eq '…'.")
                    if len(ids) > 50:
                        return self.graph_error(400, "Request_UnsupportedQuery", "A delta $filter takes at most 50 ids.")
            minimal = "return=minimal" in request.headers.get("prefer", "").lower()
            with self.lock:
                items = self.delta_items(kind, select, ids, since, minimal)
                after = {"select": select, "ids": ids, "seq": self.seq}
            offset = 0
        size = self.delta_page_size
        body: dict[str, Any] = {"@odata.context": context, "value": items[offset:offset + size]}
        if offset + size < len(items):
            skiptoken = "dsk" + secrets.token_urlsafe(24)
            self._delta_pages[skiptoken] = (items, offset + size, after)
            link: Any = f"{self.url}/v1.0/{kind}/delta?{urlencode({'$skiptoken': skiptoken})}"
            if self.next_link == "other-host":
                link = link.replace("127.0.0.1", "localhost")
            elif self.next_link == "garbage":
                link = 12345
            elif self.next_link == "loop" and skip is not None:
                link = f"{self.url}/v1.0/{kind}/delta?{urlencode({'$skiptoken': skip})}"
            elif self.next_link == "missing-value" and offset > 0:
                body.pop("value")
            if self.next_link != "no-link":
                body["@odata.nextLink"] = link
        else:
            with self.lock:
                body["@odata.deltaLink"] = self._delta_link(kind, after["select"], after["ids"], after["seq"])
        return 200, body, {}

    def delta_items(self, kind: str, select: str | None, ids: set[str] | None, since: int | None,
                    minimal: bool) -> list[dict]:
        """The objects of a delta round: all of them (`since` None), or what changed after `since`."""
        names = [n.strip() for n in select.split(",") if n.strip()] if select else None
        lowered = {n.lower() for n in names} if names else None
        members_wanted = kind == "groups" and (lowered is None or "members" in lowered)
        properties = ",".join(n for n in names if n.lower() != "members") if names else None
        items: list[dict] = []
        for obj in self._objects(kind):
            key = obj["id"].lower()
            if ids is not None and key not in ids:
                continue
            stamp = self.stamps.get((kind, key))
            if since is None or (stamp is not None and stamp.created > since):  # whole, as a new object
                if names is None:
                    item = dict(obj)
                else:
                    item = {**(self.project(obj, properties) if properties else {}), "id": obj["id"]}
                current = [{"@odata.type": m.get("@odata.type", "#microsoft.graph.user"), "id": m["id"]}
                           for m in self.members.get(key, [])] if members_wanted else []
                items += self._with_members(item, current)
                continue
            if stamp is None:
                continue
            changed = [p for p, at in stamp.props.items() if at > since and (lowered is None or p.lower() in lowered)]
            moved = sorted((m for m in stamp.members.values() if m[0] > since), key=lambda m: m[0]) if members_wanted else []
            if not changed and not moved:
                continue  # a change to a property not selected is not reported
            if minimal:
                item = {"id": obj["id"], **{p: obj.get(p) for p in changed}}
            else:  # every selected property that is set, and those cleared now
                projected = self.project(obj, properties) if properties else dict(obj)
                item = {k: v for k, v in projected.items() if v is not None or k in changed}
                item["id"] = obj["id"]
            entries = []
            for _at, odata, member_id in moved:
                entry = {"@odata.type": odata, "id": member_id}
                if not any(m["id"].lower() == member_id.lower() for m in self.members.get(key, [])):
                    entry["@removed"] = {"reason": "deleted"}
                entries.append(entry)
            items += self._with_members(item, entries)
        if since is not None:
            for (object_kind, key), stamp in sorted(self.stamps.items()):
                if object_kind == kind and stamp.removed and stamp.removed[0] > since and (ids is None or key in ids):
                    items.append({"id": stamp.id, "@removed": {"reason": stamp.removed[1]}})
            if self.delta_replays:
                items += copy.deepcopy(items)
        return items

    def _with_members(self, item: dict, entries: list[dict]) -> list[dict]:
        if not entries:
            return [item]
        size = self.delta_members_per_item or len(entries)
        return [{**item, "members@delta": entries[start:start + size]} for start in range(0, len(entries), size)]

    def graph_error(self, status: int, code: str, message: str, headers: dict | None = None) -> tuple[int, dict, dict]:
        return status, {"error": {"code": code, "message": message, "innerError": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4()),
            "client-request-id": str(uuid.uuid4())}}}, headers or {}

    def collection_or_object(self, parts: list[str], request: Seen) -> tuple[int, dict, dict]:
        kind = parts[0]
        if kind not in ("users", "groups"):
            return self.graph_error(400, "BadRequest", f"Resource not found for the segment '{kind}'.")
        objects = self.users if kind == "users" else self.groups
        if len(parts) == 1:
            return self.page(kind, objects, request, "#microsoft.graph.user" if kind == "users" else "#microsoft.graph.group")
        found = next((o for o in objects if o["id"].lower() == parts[1].lower()), None)
        if found is None:
            return self.graph_error(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist or one of "
                                                                     "its queried reference-property objects are not present.")
        if len(parts) == 2:
            return 200, self.project(found, request.query.get("$select")), {}
        relation, cast = parts[2], parts[3] if len(parts) > 3 else None
        if relation == "members" and kind == "groups":
            related = self.direct_members(found["id"])
        elif relation == "transitiveMembers" and kind == "groups":
            related = self.transitive_members(found["id"])
        elif relation == "memberOf":
            related = [dict(g, **{"@odata.type": "#microsoft.graph.group"}) for g in self.groups
                       if any(m["id"].lower() == found["id"].lower() for m in self.members.get(g["id"].lower(), ()))]
        else:
            return self.graph_error(400, "BadRequest", f"Resource not found for the segment '{relation}'.")
        if cast is not None:
            if cast not in ("microsoft.graph.user", "microsoft.graph.group"):
                return self.graph_error(400, "Request_UnsupportedQuery", "Unsupported OData cast.")
            related = [o for o in related if o.get("@odata.type") == "#" + cast]
        return self.page("/".join(parts), related, request, None)

    def direct_members(self, group_id: str) -> list[dict]:
        users = {u["id"].lower(): u for u in self.users}
        groups = {g["id"].lower(): g for g in self.groups}
        found = []
        for m in self.members.get(group_id.lower(), ()):
            source = groups if m.get("@odata.type") == "#microsoft.graph.group" else users
            target = source.get(m["id"].lower())
            found.append({**(target or {}), **m})
        return found

    def transitive_members(self, group_id: str) -> list[dict]:
        seen: dict[str, dict] = {}
        queue, visited = [group_id.lower()], set()
        while queue:
            current = queue.pop(0)
            if current in visited:
                continue
            visited.add(current)
            for m in self.direct_members(current):
                seen.setdefault(m["id"].lower(), m)
                if m.get("@odata.type") == "#microsoft.graph.group":
                    queue.append(m["id"].lower())
        return list(seen.values())

    @staticmethod
    def project(obj: dict, select: str | None, odata_type: str | None = None) -> dict:
        if not select:
            out = dict(obj)
        else:
            names = [name.strip() for name in select.split(",") if name.strip()]
            wanted = {name.lower() for name in names}
            out = {k: v for k, v in obj.items() if k.lower() in wanted or k == "@odata.type"}
            if len(out) < len(names) + ("@odata.type" in out):
                present = {k.lower() for k in out}
                for name in names:  # a property not set is returned as null
                    if name.lower() not in present:
                        out[name] = None
        if odata_type and "@odata.type" not in out and not select:
            out["@odata.type"] = odata_type
        return out

    def page(self, key: str, objects: list[dict], request: Seen, odata_type: str | None) -> tuple[int, dict, dict]:
        query = request.query
        token = query.get("$skiptoken")
        if token is not None:
            state = self._pages.get(token)
            if state is None:
                return self.graph_error(400, "Directory_ExpiredPageToken", "The specified page token value has expired "
                                                                           "and can no longer be included in your request.")
            cache_key, offset = state
        else:
            offset = 0
            cache_key = (key, query.get("$filter"), query.get("$select"))
        top = query.get("$top")
        if top is not None and (not top.isdigit() or not 1 <= int(top) <= 999):
            return self.graph_error(400, "Request_BadRequest", f"Invalid page size specified: '{top}'. Must be between "
                                                               "1 and 999 inclusive.")
        text = query.get("$filter")
        if cache_key not in self._cache:
            matches = None
            if text:
                try:
                    compiled = parse_filter(text)
                except (FilterError, Unsupported) as error:
                    return self.graph_error(400, "BadRequest", f"Invalid filter clause: {error.message}")
                if compiled.advanced and (request.headers.get("consistencylevel") != "eventual"
                                          or query.get("$count") != "true"):
                    return self.graph_error(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter "
                                                                             "clause specified for property of resource.")
                matches = compiled.matches
            self._cache[cache_key] = [o for o in objects if matches is None or matches(o)]
        selected = self._cache[cache_key]
        projected = (cache_key, "projected")  # each object projected once per query, not once per page asked
        if projected not in self._cache:
            self._cache[projected] = [self.project(o, query.get("$select"), odata_type) for o in selected]
        size = min(int(top) if top else 100, self.page_size)
        chunk = self._cache[projected][offset:offset + size]
        body: dict[str, Any] = {"@odata.context": f"{self.url}/v1.0/$metadata#{key.split('/')[0]}", "value": chunk}
        if query.get("$count") == "true" and token is None:
            body["@odata.count"] = len(selected)
        if offset + size < len(selected):
            if self.next_link == "missing-value" and offset > 0:
                body.pop("value")
            skiptoken = "RFNwdAIAAQAAA" + secrets.token_urlsafe(24)
            self._pages[skiptoken] = (cache_key, offset + size)
            kept = {k: v for k, v in query.items() if k != "$skiptoken"}
            link = f"{self.url}/v1.0/{key}?{urlencode({**kept, '$skiptoken': skiptoken})}"
            if self.next_link == "other-host":
                link = link.replace("127.0.0.1", "localhost")
            elif self.next_link == "garbage":
                link = 12345
            elif self.next_link == "loop" and token is not None:
                link = f"{self.url}/v1.0/{key}?{urlencode({**kept, '$skiptoken': token})}"
            body["@odata.nextLink"] = link
        return 200, body, {}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeEntra
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _seen(self, method: str, form: dict | None = None) -> Seen:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = Seen(method, parts.path, query, headers, form=form or {})
        with self.owner.lock:
            self.owner.log.append(seen)
        return seen

    def _fault(self, seen: Seen) -> bool:
        for fault in self.owner.faults:
            if fault.fires(seen):
                if fault.drop:
                    self.close_connection = True
                    seen.status = -1
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return True
                code = fault.code or {429: "TooManyRequests", 503: "ServiceUnavailable", 500: "InternalServerError",
                                      403: "Authorization_RequestDenied"}.get(fault.status, "Error")
                message = fault.message or {429: "Too many requests. Please retry after a while.",
                                            503: "The service is currently unavailable."}.get(fault.status, "Injected.")
                status, body, _ = self.owner.graph_error(fault.status, code, message)
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._send(seen, status, body, headers)
                return True
        return False

    def _send(self, seen: Seen, status: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        seen.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json; odata.metadata=minimal")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        seen = self._seen("GET")
        if self._fault(seen):
            return
        owner = self.owner
        path = seen.path
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = path.strip("/").split("/")[0]
            base = f"{owner.url}/{tenant}"
            self._send(seen, 200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode", "issuer": f"{base}/v2.0",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": f"{base}/discovery/v2.0/keys", "response_types_supported": ["code", "id_token"],
                "tenant_region_scope": "EU"})
            return
        if path == "/_github/token":
            bearer = seen.headers.get("authorization", "")[7:]
            subject = owner.github_tokens.get(bearer)
            if subject is None:
                self._send(seen, 401, {"message": "Bad credentials"})
                return
            token = owner.federated_token("https://token.actions.githubusercontent.com", subject,
                                          seen.query.get("audience", ""))
            self._send(seen, 200, {"count": 1, "value": token})
            return
        if path.startswith("/v1.0/"):
            status, body, headers = owner.graph_answer(seen)
            self._send(seen, status, body, headers)
            return
        self._send(seen, 404, {"error": {"code": "NotFound", "message": f"no route {path}"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        seen = self._seen("POST", form)
        if self._fault(seen):
            return
        parts = seen.path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            status, body = self.owner.token_answer(parts[0], form)
            self._send(seen, status, body)
            return
        self._send(seen, 404, {"error": "not_found"})


def make_tenant(people: int, *, domain: str = "contoso.com", key_owners_every: int = 7, disabled_every: int = 50,
                guests: int = 3) -> dict:
    """A tenant of `people` members (and a few guests) in the snapshot format: every `disabled_every`th one disabled,
    every `key_owners_every`th one in Key Owners, some of them through the nested group Key Owners - Field, and a
    group per department for group-teams. Deterministic."""
    namespace = uuid.UUID("0a7c9a52-7a0e-4d5c-8a3e-5d2f6b1c9e00")
    departments = ["Engineering", "Sales", "Finance", "Operations", "Support"]
    users: list[dict] = []
    for n in range(people):
        users.append({
            "id": str(uuid.uuid5(namespace, f"user-{n}")), "accountEnabled": n % disabled_every != disabled_every - 1,
            "businessPhones": [], "department": departments[n % len(departments)], "displayName": f"Person {n:06d}",
            "givenName": "Person", "surname": f"{n:06d}", "jobTitle": "Staff", "mail": f"person.{n:06d}@{domain}",
            "mobilePhone": None, "officeLocation": None, "onPremisesImmutableId": None, "userType": "Member",
            "userPrincipalName": f"p{n:06d}@{domain}"})
    for n in range(guests):
        users.append({"id": str(uuid.uuid5(namespace, f"guest-{n}")), "accountEnabled": True, "displayName": f"Guest {n}",
                      "mail": f"guest{n}@partner.example", "userType": "Guest",
                      "userPrincipalName": f"guest{n}_partner.example#EXT#@{domain}"})
    owners = [u for i, u in enumerate(users[:people]) if i % key_owners_every == 0]
    field = {"id": str(uuid.uuid5(namespace, "group-field")), "displayName": "Key Owners - Field", "securityEnabled": True,
             "members": [{"@odata.type": "#microsoft.graph.user", "id": u["id"]} for u in owners[1::2]]}
    key_owners = {"id": str(uuid.uuid5(namespace, "group-key-owners")), "displayName": "Key Owners", "securityEnabled": True,
                  "members": [{"@odata.type": "#microsoft.graph.user", "id": u["id"]} for u in owners[0::2]]
                  + [{"@odata.type": "#microsoft.graph.group", "id": field["id"]}]}
    teams = [{"id": str(uuid.uuid5(namespace, f"team-{d}")), "displayName": f"Team {d}", "securityEnabled": True,
              "members": [{"@odata.type": "#microsoft.graph.user", "id": u["id"]} for u in users[:people]
                          if u["department"] == d]} for d in departments]
    mail_list = {"id": str(uuid.uuid5(namespace, "group-mail")), "displayName": "Everyone (mail)", "securityEnabled": False,
                 "members": []}
    return {"users": users, "groups": [key_owners, field, *teams, mail_list]}
