"""HTTP to a SCIM 2.0 service provider (RFC 7644), and what it says it supports.

One `ScimClient` per store: bearer token in the Authorization header (never
kept anywhere else, never in a message), TLS verified, plain http:// only to a
loopback host, the standard proxy variables honoured (httpx's trust_env),
timeouts on every phase, and retries with backoff on 429 and 5xx that wait as
long as the server's Retry-After asks.

A request that is not idempotent (POST) is retried after a 5xx or a lost
connection only through `create`, which first looks the resource up by its
externalId: the server may have created it before the answer was lost, and a
blind retry would make a duplicate.
"""
from __future__ import annotations

import email.utils
import ipaddress
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)
DEFAULT_ATTEMPTS = 5  # the first try and four retries
DEFAULT_MAX_WAIT = 60.0  # seconds; a longer Retry-After is cut to this
DEFAULT_PAGE_SIZE = 200
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})  # not 501: "not implemented" will not change


class ScimHttpError(Exception):
    """A request that failed for good: what was being done, the HTTP status and the server's detail."""

    def __init__(self, what: str, status: int | None, detail: str, scim_type: str | None = None,
                 retry_after: float | None = None, maybe_applied: bool = False, permanent: bool = False):
        self.what, self.status, self.detail, self.scim_type = what, status, detail, scim_type
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied  # the server may have carried it out before the failure
        self.permanent = permanent  # trying again cannot help (an untrusted certificate)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.status is None:
            return f"{self.what}: {self.detail}"
        kind = f" ({self.scim_type})" if self.scim_type else ""
        return f"{self.what}: HTTP {self.status}{kind}: {self.detail}"


def answer_lost(error: ScimHttpError) -> bool:
    """No answer says whether the server carried the request out: none came, or a server error came."""
    return error.status is None or error.status >= 500


class ScimUrlError(ValueError):
    """The base URL cannot be used; the message says why."""


class ScimTokenError(ValueError):
    """The bearer token cannot be sent; the message names where it comes from, never its value."""


# RFC 6750 §2.1 b64token: what an Authorization: Bearer header may carry
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def check_token(token: str, source: str = "the token") -> str:
    """The token without surrounding whitespace (a trailing newline from a file is common), if a bearer header
    can carry it; otherwise ScimTokenError saying what is wrong with it and naming `source`
    (e.g. "store.token: the environment variable SCIM_TOKEN"), never the token."""
    token = token.strip()
    if not token:
        problem = "holds an empty token"
    elif any(character.isspace() for character in token):
        problem = "holds a token with whitespace (a line break or space) inside"
    elif not token.isascii():
        problem = "holds a token with non-ASCII characters"
    elif not token.isprintable():
        problem = "holds a token with control characters"
    elif not BEARER_TOKEN.fullmatch(token):
        problem = "holds a token with characters a bearer token cannot have"
    else:
        return token
    raise ScimTokenError(
        f"{source} {problem}; a bearer token is letters, digits and -._~+/ with = only at the end (RFC 6750): "
        "set it to the token exactly as the SCIM server issued it"
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """The base URL without a trailing slash; https, or http to a loopback host only."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ScimUrlError("store.url must be an https:// URL of the SCIM base, e.g. https://app.example.com/scim/v2")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ScimUrlError(
            f"store.url: http:// to {parts.hostname} would send the token in clear; use https:// "
            "(http only to a loopback host)"
        )
    if parts.username or parts.password:
        raise ScimUrlError("store.url must not hold credentials; the bearer token goes in store.token")
    if parts.query or parts.fragment:
        raise ScimUrlError("store.url must be the SCIM base URL without a query or fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def parse_retry_after(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - now()).total_seconds())


def error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """The server's `detail` and `scimType` (RFC 7644 §3.12), or a short form of whatever it sent."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and (body.get("detail") or body.get("scimType")):
        detail = str(body.get("detail") or "").strip() or response.reason_phrase or "no detail"
        scim_type = body.get("scimType")
        return " ".join(detail.split()), str(scim_type) if scim_type else None
    text = " ".join(response.text.split())[:200]
    return (text or response.reason_phrase or "no detail"), None


@dataclass(frozen=True)
class Capabilities:
    """What /ServiceProviderConfig says the server supports (RFC 7643 §5). Missing means unsupported."""

    patch: bool = False
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    filter: bool = False
    filter_max_results: int | None = None
    etag: bool = False

    @classmethod
    def from_document(cls, document: Any) -> Capabilities:
        if not isinstance(document, dict):
            return cls()

        def feature(name: str) -> dict:
            value = document.get(name)
            return value if isinstance(value, dict) else {}

        def supported(name: str) -> bool:
            return feature(name).get("supported") is True

        def number(name: str, key: str) -> int:
            value = feature(name).get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

        return cls(
            patch=supported("patch"),
            bulk=supported("bulk") and number("bulk", "maxOperations") > 0,
            bulk_max_operations=number("bulk", "maxOperations"),
            bulk_max_payload=number("bulk", "maxPayloadSize"),
            filter=supported("filter"),
            filter_max_results=number("filter", "maxResults") or None,
            etag=supported("etag"),
        )


def filter_value(value: str) -> str:
    """A string as a SCIM filter literal: JSON string syntax (RFC 7644 §3.4.2.2)."""
    return json.dumps(value, ensure_ascii=False)


class ScimClient:
    """The requests the SCIM store makes; every failure leaves as ScimHttpError."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        max_wait: float = DEFAULT_MAX_WAIT,
        page_size: int = DEFAULT_PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        token_hint: str = "the token",
    ):
        self.base_url = check_base_url(base_url)
        token = check_token(token, token_hint)  # before anything is sent, and never retried
        self.attempts, self.max_wait, self.page_size, self.sleep = attempts, max_wait, page_size, sleep
        self.token_hint = token_hint  # names where the token comes from, e.g. "${SCIM_TOKEN}"
        self.requests_made = 0
        self._capabilities: Capabilities | None = None
        self._list_by_search = False  # GET ignored startIndex: list with POST /.search (list_all)
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {token}", "Accept": f"{SCIM_JSON}, application/json"},
            timeout=timeout,
            verify=True,
            trust_env=True,  # HTTP(S)_PROXY, ALL_PROXY, NO_PROXY, SSL_CERT_FILE
            follow_redirects=False,  # a redirect would carry the token somewhere else
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # ── one request, with retries ──

    def request(self, method: str, path: str, what: str, *, body: Any = None, params: dict | None = None,
                idempotent: bool = True, expect: tuple[int, ...] = ()) -> httpx.Response:
        """A 2xx response (or one whose status is in `expect`), retried on 429 and, when idempotent, 5xx."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: self._retryable(e, idempotent)),
            sleep=self.sleep,
            reraise=True,
        )
        return self._retried(retrying, self._send, method, path, what, body, params, expect)

    @staticmethod
    def _retried(retrying: Retrying, call: Callable[..., Any], *args: Any) -> Any:
        """Runs the call under the retrying policy; a final failure says how many attempts it took."""
        try:
            return retrying(call, *args)
        except ScimHttpError as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            if attempts > 1 and "gave up after" not in error.detail:
                error.detail = f"{error.detail} (gave up after {attempts} attempts)"
            raise

    def _send(self, method: str, path: str, what: str, body: Any, params: dict | None,
              expect: tuple[int, ...]) -> httpx.Response:
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": SCIM_JSON} if content is not None else {}
        self.requests_made += 1
        try:
            response = self._http.request(method, path.lstrip("/"), content=content, params=params, headers=headers)
        except httpx.TransportError as error:
            never_sent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
            raise ScimHttpError(what, None, self._transport_detail(error), maybe_applied=not never_sent,
                                permanent="CERTIFICATE_VERIFY_FAILED" in str(error)) from None
        if response.is_success or response.status_code in expect:
            return response
        detail, scim_type = error_detail(response)
        if response.status_code == 401:
            detail = f"{detail}; the server did not accept {self.token_hint}: check that it is current"
        elif response.status_code == 403:
            detail = f"{detail}; {self.token_hint} may not do this: it needs read and write access to Users and Groups"
        elif 300 <= response.status_code < 400:
            detail = f"redirected to {response.headers.get('location', '?')}; point store.url at the SCIM base itself"
        raise ScimHttpError(
            what, response.status_code, detail, scim_type,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            maybe_applied=response.status_code >= 500,
        )

    def _transport_detail(self, error: httpx.TransportError) -> str:
        host = urlsplit(self.base_url).netloc
        if isinstance(error, httpx.ConnectTimeout):
            return f"no answer from {host} within the connect timeout"
        if isinstance(error, httpx.TimeoutException):
            return f"{host} did not answer in time ({type(error).__name__})"
        if isinstance(error, httpx.ProxyError):
            return f"the proxy refused the connection to {host}: {error}; check HTTPS_PROXY/NO_PROXY"
        if isinstance(error, httpx.ConnectError):
            reason = str(error) or "connection refused"
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                return (f"the TLS certificate of {host} is not trusted: {reason}; "
                        "set SSL_CERT_FILE to a bundle holding your CA")
            return f"cannot connect to {host}: {reason}"
        return f"the connection to {host} broke: {(str(error) or type(error).__name__).rstrip('.')}"

    @staticmethod
    def _retryable(error: BaseException, idempotent: bool) -> bool:
        if not isinstance(error, ScimHttpError) or error.permanent:
            return False
        if error.status == 429:
            return True  # the server did nothing; it asks us to come back later
        if error.status is None:
            return idempotent or not error.maybe_applied
        return idempotent and error.status in RETRYABLE_STATUSES

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ScimHttpError) and error.retry_after is not None:
            return min(error.retry_after, self.max_wait)
        # exponential from half a second, with jitter so many clients do not retry in step
        return min(self.max_wait, 0.5 * 2 ** (state.attempt_number - 1) + random.uniform(0, 0.5))

    # ── JSON verbs ──

    def get(self, path: str, what: str, params: dict | None = None) -> Any:
        return self._json(self.request("GET", path, what, params=params), what)

    def put(self, path: str, body: dict, what: str) -> Any:
        return self._json(self.request("PUT", path, what, body=body), what)

    def patch(self, path: str, operations: list[dict], what: str) -> None:
        # PATCH replaces and removes are idempotent; adds of members too (a member is a set element)
        self.request("PATCH", path, what, body={"schemas": [PATCH_OP], "Operations": operations})

    def delete(self, path: str, what: str) -> None:
        """DELETE; a 404 after a retry means the first attempt went through."""
        attempts = 0

        def send() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            return self._send("DELETE", path, what, None, None, (404,) if attempts > 1 else ())

        retrying = Retrying(stop=stop_after_attempt(self.attempts), wait=self._wait,
                            retry=retry_if_exception(lambda e: self._retryable(e, True)), sleep=self.sleep, reraise=True)
        self._retried(retrying, send)

    def post(self, path: str, body: dict, what: str) -> Any:
        return self._json(self.request("POST", path, what, body=body, idempotent=False), what)

    def create(self, endpoint: str, resource: dict, what: str) -> dict:
        """POST a resource that carries an externalId; after a 5xx or lost answer, find it before trying again."""
        external_id = resource["externalId"]
        retrying = Retrying(stop=stop_after_attempt(self.attempts), wait=self._wait,
                            retry=retry_if_exception(lambda e: isinstance(e, ScimHttpError) and not e.permanent and (
                                e.status in RETRYABLE_STATUSES or e.status is None)),
                            sleep=self.sleep, reraise=True)
        lost: list[bool] = []

        def attempt() -> dict:
            if lost:  # the previous attempt may have created it
                found = [r for r in self.find(endpoint, "externalId", external_id, what) if r.get("externalId") == external_id]
                if found:
                    return found[0]
            try:
                return self.post(endpoint, resource, what)
            except ScimHttpError as error:
                if error.maybe_applied:
                    lost.append(True)
                raise

        return self._retried(retrying, attempt)

    def bulk(self, operations: list[dict], what: str) -> list[dict]:
        """POST /Bulk with failOnErrors 1; the per-operation results in order (RFC 7644 §3.7)."""
        body = {"schemas": [BULK_REQUEST], "failOnErrors": 1, "Operations": operations}
        # not retried after a 5xx or a lost answer: which operations ran is unknown; the caller re-reads
        answer = self._json(self.request("POST", "Bulk", what, body=body, idempotent=False), what)
        results = answer.get("Operations") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise ScimHttpError(what, 200, "the Bulk response has no Operations list")
        return results

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ScimHttpError(what, response.status_code, "the answer is not JSON; is store.url the SCIM base?") from None

    # ── discovery and listing ──

    def capabilities(self) -> Capabilities:
        """What the server supports; a server without /ServiceProviderConfig gets the basics only."""
        if self._capabilities is None:
            try:
                document = self.get("ServiceProviderConfig", "reading /ServiceProviderConfig")
            except ScimHttpError as error:
                if error.status not in (404, 501):
                    raise
                document = None
            self._capabilities = Capabilities.from_document(document)
        return self._capabilities

    def list_all(self, endpoint: str, what: str) -> list[dict]:
        """Every resource of an endpoint, page by page with startIndex/count; each id once.

        What RFC 7644 lets servers do differently here, and how the listing copes:
        - a page may hold fewer resources than `count` asked for (§3.4.2.4: the server may cap it, and says so
          in itemsPerPage): the next page starts after what actually came back, and the listing ends when
          totalResults is reached or a page comes back empty;
        - query parameters may be sent in a POST to `/<endpoint>/.search` instead of the URL (§3.4.3). A server
          that answers a GET for startIndex 21 with a page that says it starts at 1 and holds nothing new has
          not read the URL's startIndex (SCIMMY on express 5: the routers' numeric casts of the query are
          lost, and every GET answers the first 20): the listing starts again with POST /.search, whose numbers
          travel in a JSON body, and keeps to it for the rest of this client's life;
        - the list may change while it is read: a listing whose distinct ids do not add up to totalResults is
          read once more, then refused with what was seen (never a short read taken for the whole).
        """
        for _ in range(2):  # a listing that changed while it was read gets one more read
            resources, total = self._list_pages(endpoint, what)
            if total is None or len(resources) == total:
                return list(resources.values())
        searched = " (POST /.search too)" if self._list_by_search else ""
        raise ScimHttpError(
            what, None,
            f"the server reported {total} resources but {len(resources)} distinct ones came back page by page"
            f"{searched} (the list changed while it was read, or the server ignores startIndex); try again",
        )

    def _list_pages(self, endpoint: str, what: str) -> tuple[dict[str, dict], int | None]:
        caps = self.capabilities()
        count = min(self.page_size, caps.filter_max_results or self.page_size)
        resources: dict[str, dict] = {}
        start, total = 1, None
        while True:
            page = self._page(endpoint, what if start == 1 else f"{what} (from {start})", start, count)
            listed = [r for r in page.get("Resources") or [] if isinstance(r, dict)]
            if isinstance(page.get("totalResults"), int):
                total = page["totalResults"]
            new = [r for r in listed if isinstance(r.get("id"), str) and r["id"] not in resources]
            answered = page.get("startIndex")
            if (start > 1 and listed and not new and isinstance(answered, int) and answered != start
                    and not self._list_by_search and self._search_listing(endpoint, what)):
                return self._list_pages(endpoint, what)  # from the start again, by POST /.search
            for resource in new:
                resources.setdefault(resource["id"], resource)
            start += len(listed)  # the server may return fewer than asked (itemsPerPage): go on from there
            if not listed or total is None or start > total:
                return resources, total

    def _page(self, endpoint: str, what: str, start: int, count: int) -> dict:
        """One page of a listing: GET with startIndex/count in the URL, or POST /.search once GET was found deaf."""
        if self._list_by_search:
            searching = f"(POST /{endpoint}/.search)"
            what = what.replace(f"(GET /{endpoint})", searching) if f"(GET /{endpoint})" in what else f"{what} {searching}"
            page = self._json(self.request("POST", f"{endpoint}/.search", what, idempotent=True, body={
                "schemas": [SEARCH_REQUEST], "startIndex": start, "count": count}), what)
        else:
            page = self.get(endpoint, what, params={"startIndex": start, "count": count})
        if not isinstance(page, dict):
            raise ScimHttpError(what, 200, "the answer is not a SCIM ListResponse")
        return page

    def _search_listing(self, endpoint: str, what: str) -> bool:
        """Whether POST /<endpoint>/.search answers a ListResponse; if so, listings use it from now on."""
        self._list_by_search = True
        try:
            self._page(endpoint, what, 1, 1)
        except ScimHttpError as error:
            self._list_by_search = False
            if error.status is None or (error.status >= 500 and error.status != 501):
                raise  # the server or the network failed: not an answer about /.search
            # no /.search here (404, 405, 501...): GET it is, and the listing's own check says what came back
        return self._list_by_search

    def find(self, endpoint: str, attribute: str, value: str, what: str) -> list[dict]:
        """Resources whose attribute equals value: a server-side filter when supported, else the whole list."""
        if self.capabilities().filter:
            page = self.get(endpoint, f"{what} (looking up {attribute})",
                            params={"filter": f"{attribute} eq {filter_value(value)}"})
            listed = page.get("Resources") if isinstance(page, dict) else None
            return [r for r in listed or [] if isinstance(r, dict)]
        return [r for r in self.list_all(endpoint, f"{what} (looking up {attribute})") if r.get(attribute) == value]
