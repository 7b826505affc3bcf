"""The SCIM HTTP client on a scripted transport: URL rules, retries and Retry-After, messages, discovery fallbacks."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from reconciler.store.scim.client import (
    Capabilities,
    ScimClient,
    ScimHttpError,
    ScimUrlError,
    check_base_url,
    parse_retry_after,
)

TOKEN = "s3cret-token-value"
BASE = "https://scim.example.com/v2"


class Script:
    """Answers requests from a list of (status, body, headers) in order, recording each request."""

    def __init__(self, *answers, config: dict | None = None):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.config = config

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ServiceProviderConfig") and self.config is not None:
            return httpx.Response(200, json=self.config)
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = (answer + ({},))[:3] if len(answer) == 2 else answer
        return httpx.Response(status, json=body, headers=headers) if body is not None else httpx.Response(status, headers=headers)


def client(script: Script, **options) -> tuple[ScimClient, list[float]]:
    slept: list[float] = []
    made = ScimClient(BASE, TOKEN, transport=httpx.MockTransport(script), sleep=slept.append,
                      token_hint="the token in ${SCIM_TOKEN}", **options)
    return made, slept


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": detail}
    return {**body, "scimType": scim_type} if scim_type else body


# ── the base URL ──

@pytest.mark.parametrize("url", ["https://app.example.com/scim/v2/", "http://127.0.0.1:8080/v2", "http://localhost/v2",
                                 "http://[::1]:9000/scim"])
def test_https_anywhere_and_http_only_to_loopback(url):
    assert check_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url, message", [
    ("http://app.example.com/scim/v2", "would send the token in clear"),
    ("http://10.0.0.5/scim", "would send the token in clear"),
    ("ftp://app.example.com/scim", "must be an https:// URL"),
    ("https://user:pw@app.example.com/scim", "must not hold credentials"),
    ("https://app.example.com/scim?tenant=1", "without a query"),
])
def test_unusable_base_urls_are_refused(url, message):
    with pytest.raises(ScimUrlError, match=message):
        check_base_url(url)


# ── retries ──

def test_429_is_retried_after_the_seconds_retry_after_asks():
    script = Script((429, error_body(429, "slow down"), {"Retry-After": "3"}),
                    (429, error_body(429, "slow down"), {"Retry-After": "1"}), (200, {"id": "1"}))
    scim, slept = client(script)
    assert scim.get("Users/1", "reading user") == {"id": "1"}
    assert slept == [3.0, 1.0] and len(script.requests) == 3


def test_a_post_is_retried_after_429_too_since_the_server_did_nothing():
    script = Script((429, error_body(429, "later"), {"Retry-After": "2"}), (201, {"id": "new"}))
    scim, slept = client(script)
    assert scim.post("Users", {"userName": "a"}, "creating") == {"id": "new"} and slept == [2.0]


def test_retry_after_as_an_http_date_and_capped_at_max_wait():
    now = datetime(2026, 11, 21, 9, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=lambda: now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    script = Script((503, error_body(503, "maintenance"), {"Retry-After": "3600"}), (200, {}))
    scim, slept = client(script, max_wait=20)
    scim.get("Users", "listing")
    assert slept == [20]


def test_5xx_on_a_read_backs_off_and_gives_up_with_the_servers_detail():
    script = Script(*[(500, error_body(500, "database   unavailable"))] * 3)
    scim, slept = client(script, attempts=3)
    with pytest.raises(ScimHttpError) as failure:
        scim.get("Users", "listing users (GET /Users)")
    assert failure.value.message == "listing users (GET /Users): HTTP 500: database unavailable (gave up after 3 attempts)"
    assert len(slept) == 2 and all(0 < s <= 60 for s in slept) and slept[1] >= slept[0] - 0.5


def test_a_post_is_not_blindly_retried_after_a_500():
    script = Script((500, error_body(500, "oops")))
    scim, _ = client(script)
    with pytest.raises(ScimHttpError) as failure:
        scim.post("Users", {"userName": "a"}, "creating user")
    assert failure.value.maybe_applied and len(script.requests) == 1


def test_501_and_4xx_are_not_retried():
    for status in (501, 400, 404, 409):
        script = Script((status, error_body(status, "no")))
        scim, slept = client(script)
        with pytest.raises(ScimHttpError):
            scim.get("Users", "listing")
        assert len(script.requests) == 1 and slept == []


def test_a_lost_answer_to_a_create_is_looked_up_by_external_id_instead_of_posting_again():
    found = {"id": "u-7", "externalId": "corp:a1", "userName": "a@corp.example.com"}
    script = Script(httpx.ReadError("connection reset"),  # the POST reached the server; its answer did not
                    (200, {"totalResults": 1, "Resources": [found]}), config={"filter": {"supported": True}})
    scim, _ = client(script)
    assert scim.create("Users", {"externalId": "corp:a1", "userName": "a@corp.example.com"}, "creating user") == found
    assert [r.method for r in script.requests] == ["POST", "GET"]
    assert script.requests[1].url.params["filter"] == 'externalId eq "corp:a1"'


def test_without_filtering_the_lookup_lists_and_compares_here():
    script = Script(httpx.ReadError("reset"),
                    (200, {"totalResults": 1, "Resources": [{"id": "u-1", "externalId": "corp:other"}]}),
                    (201, {"id": "u-2", "externalId": "corp:a1"}), config={"filter": {"supported": False}})
    scim, _ = client(script)
    assert scim.create("Users", {"externalId": "corp:a1"}, "creating user")["id"] == "u-2"  # not there: posted again
    assert [r.method for r in script.requests] == ["POST", "GET", "POST"]
    assert "filter" not in script.requests[1].url.params


def test_a_delete_whose_answer_was_lost_counts_as_done_when_the_retry_finds_nothing():
    script = Script(httpx.ReadError("reset"), (404, error_body(404, "User 'u-1' not found")))
    scim, _ = client(script)
    scim.delete("Users/u-1", "deleting user")
    assert [r.method for r in script.requests] == ["DELETE", "DELETE"]


# ── messages ──

def test_errors_name_the_resource_status_type_and_detail_and_never_the_token():
    script = Script((409, error_body(409, "userName is taken", "uniqueness")))
    scim, _ = client(script)
    with pytest.raises(ScimHttpError) as failure:
        scim.post("Users", {"userName": "a"}, "creating user corp:a1 (POST /Users)")
    assert failure.value.message == "creating user corp:a1 (POST /Users): HTTP 409 (uniqueness): userName is taken"
    assert TOKEN not in failure.value.message and TOKEN not in repr(failure.value)


def test_a_refused_token_is_named_by_its_variable_only():
    scim, _ = client(Script((401, error_body(401, "Authorization failure"))))
    with pytest.raises(ScimHttpError) as failure:
        scim.get("Users", "listing users (GET /Users)")
    assert "HTTP 401" in failure.value.message and "${SCIM_TOKEN}" in failure.value.message
    assert TOKEN not in failure.value.message


def test_the_token_goes_only_in_the_authorization_header_and_redirects_are_not_followed():
    script = Script((302, None, {"Location": "https://elsewhere.example.net/v2/Users"}))
    scim, _ = client(script)
    with pytest.raises(ScimHttpError) as failure:
        scim.get("Users", "listing")
    assert "redirected to https://elsewhere.example.net" in failure.value.message
    assert len(script.requests) == 1 and script.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(script.requests[0].headers)


def test_a_non_json_error_body_is_shortened_to_one_line():
    def html(request):
        return httpx.Response(502, text="<html>\n<body>Bad   gateway</body>\n</html>")
    scim = ScimClient(BASE, TOKEN, transport=httpx.MockTransport(html), sleep=lambda s: None, attempts=1)
    with pytest.raises(ScimHttpError) as failure:
        scim.get("Users", "listing")
    assert failure.value.message == "listing: HTTP 502: <html> <body>Bad gateway</body> </html>"


# ── discovery and listing ──

def test_service_provider_config_features_and_safe_defaults():
    assert Capabilities.from_document(None) == Capabilities()
    assert Capabilities.from_document({"patch": {"supported": "yes"}, "filter": []}) == Capabilities()
    full = Capabilities.from_document({
        "patch": {"supported": True}, "filter": {"supported": True, "maxResults": 200},
        "bulk": {"supported": True, "maxOperations": 100, "maxPayloadSize": 1048576}, "etag": {"supported": True}})
    assert full == Capabilities(patch=True, bulk=True, bulk_max_operations=100, bulk_max_payload=1048576,
                                filter=True, filter_max_results=200, etag=True)
    no_room = Capabilities.from_document({"bulk": {"supported": True, "maxOperations": 0}})
    assert not no_room.bulk  # announced, but no operation would fit


def test_a_server_without_service_provider_config_gets_the_basics():
    scim, _ = client(Script((404, error_body(404, "not found"))))
    assert scim.capabilities() == Capabilities()


def test_listing_follows_start_index_with_the_servers_page_size():
    users = [{"id": f"u{i}"} for i in range(7)]

    def pages(request):
        if request.url.path.endswith("/ServiceProviderConfig"):
            return httpx.Response(200, json={"filter": {"supported": True, "maxResults": 5}})
        start, count = int(request.url.params["startIndex"]), int(request.url.params["count"])
        assert count == 5  # never more than maxResults
        page = users[start - 1:start - 1 + 3]  # the server sends fewer than asked
        return httpx.Response(200, json={"totalResults": 7, "itemsPerPage": len(page), "startIndex": start, "Resources": page})

    scim = ScimClient(BASE, TOKEN, transport=httpx.MockTransport(pages), sleep=lambda s: None)
    assert [u["id"] for u in scim.list_all("Users", "listing users")] == [f"u{i}" for i in range(7)]


def test_a_listing_that_keeps_changing_is_an_error_not_a_short_read():
    def shifting(request):
        if request.url.path.endswith("/ServiceProviderConfig"):
            return httpx.Response(404)
        start = int(request.url.params["startIndex"])
        return httpx.Response(200, json={"totalResults": 4, "Resources": [{"id": "same"}] * (2 if start < 4 else 0)})

    scim = ScimClient(BASE, TOKEN, transport=httpx.MockTransport(shifting), sleep=lambda s: None)
    with pytest.raises(ScimHttpError, match="reported 4 resources but 1 distinct ones came back"):
        scim.list_all("Users", "listing users")


def test_requests_send_scim_json():
    script = Script((201, {"id": "1"}))
    scim, _ = client(script)
    scim.post("Users", {"userName": "zoë"}, "creating")
    request = script.requests[0]
    assert request.headers["content-type"] == "application/scim+json"
    assert json.loads(request.content) == {"userName": "zoë"}
