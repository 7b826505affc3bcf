"""Microsoft Graph over HTTPS: one GET at a time, complete or a `DirectoryError`.

What it follows (Microsoft's documentation of Graph v1.0):
- paging: a collection comes a page at a time; `@odata.nextLink` is the next page's URL, used as
  it is, and its absence marks the last page (https://learn.microsoft.com/en-us/graph/paging).
  A next link to another host, one seen before, or a page without `value` is a broken chain:
  the read is refused, never cut short.
- throttling: 429 (and 503, 504) carry `Retry-After` in seconds; the request is repeated after
  that wait (https://learn.microsoft.com/en-us/graph/throttling). The waits of one read add up
  to at most `throttle_budget` seconds; a wait that would pass it ends the read at once.
  Without `Retry-After` the wait doubles from 1 s. A lost connection is retried the same way.
- errors: `{"error": {"code", "message", "innerError": {"request-id", "date"}}}`
  (https://learn.microsoft.com/en-us/graph/errors). 401 `InvalidAuthenticationToken`: the token
  expired, so it is renewed once and the request repeated. 403: the application permission is
  missing or not consented, named in the message. 400 `Request_UnsupportedQuery`: the filter.
- advanced queries: a filter with `ne`, `not` or `endsWith` is sent with
  `ConsistencyLevel: eventual` and `$count=true`
  (https://learn.microsoft.com/en-us/graph/aad-advanced-queries).
- delta queries (`DeltaRound`): a round follows `@odata.nextLink` to the page that carries
  `@odata.deltaLink`, the link the next round starts from; a page with neither is a broken chain.
  410 Gone (a synchronization reset, with a `Location` to start again from) and the codes
  `syncStateNotFound`, `syncStateInvalid`, `resyncRequired` (an expired or unknown token) raise
  `TokenRefused`, as 400 and 404 do for a kept link: the caller reads in full
  (https://learn.microsoft.com/en-us/graph/delta-query-overview, "Synchronization reset", "Token duration").

Tokens never leave for another host: redirects are not followed and next links are checked.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import httpx

from ...errors import DirectoryError
from ...policy.model import Directory
from ..delta import TokenRefused
from .auth import Tokens, scrub, tls_context, token_roles

PAGE_SIZE = 999  # the most Graph returns a page for /users, /groups and member lists
RETRIED = {429, 500, 502, 503, 504}
MAX_ATTEMPTS = 12  # per request, whatever the budget says
# higher permissions that include the one named (https://learn.microsoft.com/en-us/graph/permissions-reference)
ENOUGH = {
    "User.Read.All": {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
    "GroupMember.Read.All": {"GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
                             "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
}


# error codes with which Graph refuses a delta or skip token it no longer (or never) knew
# (https://learn.microsoft.com/en-us/graph/errors, https://learn.microsoft.com/en-us/graph/delta-query-overview)
REFUSING_CODES = {"syncstatenotfound", "syncstateinvalid", "resyncrequired"}


class NotFound(Exception):
    """404 for a single object (a group ID that names nothing): the caller words it."""


class GraphClient:
    def __init__(self, directory: Directory, tokens: Tokens | None = None, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, transport: httpx.BaseTransport | None = None):
        graph = directory.graph
        assert graph is not None
        self.directory = directory
        self.root = graph.graph.rstrip("/")
        self.base = self.root + "/v1.0/"
        self.tokens = tokens or Tokens(directory)
        self.sleep, self.clock = sleep, clock
        self.budget = graph.throttle_budget
        self.waited = 0.0  # seconds spent waiting out throttling, this read
        self.requests = 0
        self.retries = 0
        self._token: str | None = None
        self._http = httpx.Client(
            timeout=httpx.Timeout(connect=directory.connect_timeout, read=directory.operation_timeout,
                                  write=directory.operation_timeout, pool=directory.connect_timeout),
            verify=tls_context(directory),
            trust_env=True,  # HTTPS_PROXY, NO_PROXY
            follow_redirects=False,  # a redirect would carry the token somewhere else
            headers={"Accept": "application/json"},
            transport=transport,
        )

    @property
    def source(self) -> str:
        return self.root

    def close(self) -> None:
        self._http.close()
        self.tokens.close()

    # ── one request ──

    def token(self) -> str:
        if self._token is None:
            self._token = self.tokens.token()
        return self._token

    def get(self, url: str, what: str, permission: str, params: dict | None = None,
            headers: dict | None = None, refuse: Callable[[int, str | None], bool] | None = None) -> dict:
        """The JSON of a 200 answer to GET `url` (absolute, or relative to /v1.0/); retried on throttling and
        lost connections within the budget, the token renewed once on 401. `what` words the request in
        messages ("reading /users, page 3"); `permission` is the application permission it needs.
        `refuse(status, code)`: the answers that mean Graph will not answer from a delta token; they raise
        `TokenRefused` (the caller reads in full) instead of `DirectoryError`."""
        full = url if url.startswith("https://") or url.startswith("http://") else self.base + url.lstrip("/")
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                answer = self._http.get(full, params=params, headers={
                    **(headers or {}), "Authorization": f"Bearer {self.token()}"})
            except httpx.TransportError as error:
                self._wait(None, attempt, what, self._transport_cause(error))
                continue
            status = answer.status_code
            if status == 200:
                try:
                    body = answer.json()
                except ValueError:
                    raise self._error(what, "Graph answered 200 with a body that is not JSON") from None
                if not isinstance(body, dict):
                    raise self._error(what, "Graph answered with JSON that is not an object")
                return body
            code, message = error_of(answer)
            if status == 401 and not renewed:
                renewed = True
                self._token = self.tokens.renew()
                continue
            if status in RETRIED:
                self._wait(retry_after(answer.headers.get("retry-after")), attempt, what,
                           f"{status} {code or answer.reason_phrase}")
                continue
            if refuse is not None and refuse(status, code):
                said = f"{status} {answer.reason_phrase}" + (f", {code}" if code else "")
                if answer.headers.get("location"):
                    said += "; Graph asks for a full synchronization"
                raise TokenRefused(said)
            if status == 404:
                raise NotFound(message)
            raise self._status_error(what, permission, status, code, message)

    def _wait(self, seconds: float | None, attempt: int, what: str, cause: str) -> None:
        """Waits as Graph asked (or 1, 2, 4... s) if the budget allows; else ends the read."""
        if seconds is None:
            seconds = min(2.0 ** (attempt - 1), 30.0)
        left = self.budget - self.waited
        if attempt >= MAX_ATTEMPTS:
            raise self._error(what, f"{cause}, still after {attempt} attempts; nothing was planned, run it again later")
        if seconds > left:
            raise self._error(what, f"{cause}: Graph asks to wait {seconds:g} s, and {left:g} s are left of "
                                    f"directories.{self.directory.name}.throttle_budget ({self.budget:g} s, "
                                    f"{self.waited:g} s waited already); nothing was planned: run it again later "
                                    f"or raise throttle_budget")
        self.retries += 1
        self.waited += seconds
        self.sleep(seconds)

    def _status_error(self, what: str, permission: str, status: int, code: str | None, message: str) -> DirectoryError:
        said = f"{status} {code}: {message}" if code else f"{status}: {message}"
        if status == 401:
            return self._error(what, f"{said}; Graph refused a fresh token too: check that tenant and client_id name "
                                     f"the same app, and that the token is for {self.root}")
        if status == 403:
            roles = token_roles(self._token or "")
            granted = f"the token carries {', '.join(roles)}" if roles else "the token carries no application permission"
            return self._error(what, f"{said}; the app needs the application permission {permission} (Microsoft Graph "
                                     f"→ Application permissions, not Delegated) with admin consent; {granted}")
        if status == 400:
            return self._error(what, f"{said}; check users.filter and groups.filter (OData, as Graph's $filter takes "
                                     f"it) and the group names in member_of")
        return self._error(what, said)

    def _transport_cause(self, error: httpx.TransportError) -> str:
        host = urlsplit(self.base).netloc
        text = str(error) or type(error).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text:
            ca = self.directory.tls.ca_file
            raise DirectoryError(f"directory {self.directory.name}: the TLS certificate of {host} is not trusted: "
                                 f"{text}; " + (f"is tls.ca_file ({ca}) the CA that issued it?" if ca
                                                else "set tls.ca_file to the CA that issued it"))
        if isinstance(error, httpx.ConnectError):
            return f"cannot connect to {host} ({text})"
        if isinstance(error, httpx.TimeoutException):
            return f"{host} did not answer in time ({type(error).__name__})"
        return f"the connection to {host} broke ({type(error).__name__}: {text})"

    def _error(self, what: str, cause: str) -> DirectoryError:
        return DirectoryError(scrub(f"directory {self.directory.name}: {what}: {cause}", self.tokens.secrets))

    # ── collections ──

    def pages(self, path: str, what: str, permission: str, params: dict | None = None,
              advanced: bool = False) -> Iterator[list[dict]]:
        """Each page's `value` of a collection, following `@odata.nextLink` to the last page."""
        headers = {"ConsistencyLevel": "eventual"} if advanced else None
        params = {**(params or {}), **({"$count": "true"} if advanced else {})}
        url: str | None = self.base + path.lstrip("/")
        seen: set[str] = set()
        number = 0
        while url is not None:
            number += 1
            where = f"{what}, page {number}"
            body = self.get(url, where, permission, params if number == 1 else None, headers)
            value = body.get("value")
            if not isinstance(value, list):
                raise self._error(where, "the page has no value list; the read is incomplete")
            yield value
            link = body.get("@odata.nextLink")
            if link is None:
                return
            url = self._next(link, where, seen)

    def _next(self, link: Any, where: str, seen: set[str], name: str = "@odata.nextLink") -> str:
        if not isinstance(link, str) or not link:
            raise self._error(where, f"{name} is not a URL; the chain of pages is broken, so the read is incomplete")
        if not self.ours(link):
            parts = urlsplit(link)
            raise self._error(where, f"{name} points to {parts.scheme}://{parts.netloc}, not to {self.root}; "
                                     f"the token is not sent elsewhere, so the read is incomplete")
        if link in seen:
            raise self._error(where, f"{name} repeats an earlier page's; the chain of pages loops, so the read "
                                     "is incomplete")
        seen.add(link)
        return link

    def ours(self, link: str) -> bool:
        """Whether `link` is a URL of this Graph endpoint (scheme and host), the only place the token goes."""
        parts, mine = urlsplit(link), urlsplit(self.base)
        return (parts.scheme, parts.netloc) == (mine.scheme, mine.netloc)

    def delta_round(self, url: str, what: str, permission: str, params: dict | None = None, *,
                    minimal: bool = False, kept: bool = False) -> "DeltaRound":
        """One round of a delta query from `url` (`users/delta` with query parameters, or a kept
        `@odata.deltaLink`); `minimal`: `Prefer: return=minimal`, updated objects with their changed
        properties only; `kept`: `url` is a kept delta link, so 400 and 404 to it refuse the token too."""
        return DeltaRound(self, url, what, permission, params, minimal, kept)

    def collect(self, path: str, what: str, permission: str, params: dict | None = None,
                advanced: bool = False) -> list[dict]:
        found: list[dict] = []
        for page in self.pages(path, what, permission, params, advanced):
            found += page
        return found


class DeltaRound:
    """The pages of one delta round, in order (iterate once); `link` is the round's `@odata.deltaLink` once the
    last page is read. Graph documents that every page carries exactly one of `@odata.nextLink` and
    `@odata.deltaLink`, so a page with neither is a broken chain (`DirectoryError`), as a failed page is."""

    def __init__(self, client: GraphClient, url: str, what: str, permission: str, params: dict | None,
                 minimal: bool, kept: bool):
        self.client, self.url, self.what, self.permission = client, url, what, permission
        self.params, self.kept = params, kept
        self.headers = {"Prefer": "return=minimal"} if minimal else None
        self.link: str | None = None
        self.pages = 0

    def __iter__(self) -> Iterator[list[dict]]:
        client = self.client
        url = self.url if self.url.startswith(("https://", "http://")) else client.base + self.url.lstrip("/")
        seen: set[str] = set()
        while True:
            self.pages += 1
            first = self.pages == 1
            where = f"{self.what}, page {self.pages}"

            def refuse(status: int, code: str | None) -> bool:
                return status == 410 or (code or "").lower() in REFUSING_CODES or (
                    first and self.kept and status in (400, 404))

            body = client.get(url, where, self.permission, self.params if first else None, self.headers, refuse)
            value = body.get("value")
            if not isinstance(value, list):
                raise client._error(where, "the page has no value list; the read is incomplete")
            yield value
            next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
            if next_link is not None:
                url = client._next(next_link, where, seen)
                continue
            if delta_link is None:
                raise client._error(where, "the page has neither @odata.nextLink nor @odata.deltaLink; the chain of "
                                           "pages is broken, so the read is incomplete")
            self.link = client._next(delta_link, where, seen, "@odata.deltaLink")
            return


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (Graph sends seconds; an HTTP date is read too)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        import datetime

        return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def error_of(answer: httpx.Response) -> tuple[str | None, str]:
    """(code, message) of Graph's error body; the body's first line when it is not Graph's shape."""
    try:
        error = answer.json().get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "").strip() or answer.reason_phrase
            request = (error.get("innerError") or error.get("innererror") or {}).get("request-id")
            return error.get("code"), message + (f" (request-id {request})" if request else "")
    except (ValueError, AttributeError):
        pass
    text = answer.text.strip().splitlines()[0][:200] if answer.text.strip() else answer.reason_phrase
    return None, text
