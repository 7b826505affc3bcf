"""A small HTTP proxy on loopback that passes requests to a server, and fails the ones a test asks it to.

Used in front of the SCIM test server: point store.url at `proxy.url` (a reverse
proxy), or set HTTP_PROXY to `proxy.address` and keep the server's own URL (a
forward proxy: the request line then holds the absolute URL). Faults, each for
matching requests (method and path prefix), after letting `skip` of them through:

- `status`: answer with that status instead of forwarding (e.g. 429 with
  Retry-After, 500), `times` times;
- `drop`: close the connection without an answer, before or after forwarding
  the request (after: the server did the work and the client never hears it).

It runs in a thread of the test process, on its own port (https with a test
certificate if asked), and is stopped by the fixture. It forwards at most `max_requests` requests, so a runaway retry
loop ends.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
              "proxy-authorization", "proxy-authenticate"}


@dataclass
class Fault:
    action: str  # "status" | "drop"
    method: str | None = None
    path_prefix: str = ""
    skip: int = 0  # matching requests let through first
    times: int | None = 1  # None: every matching request from then on
    status: int = 500
    retry_after: str | None = None
    detail: str = "injected by the test proxy"
    after_forwarding: bool = False  # drop: the server has handled the request
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if not path.startswith(self.path_prefix):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass
class Seen:
    method: str
    path: str
    outcome: str  # the status forwarded or injected, or "dropped"
    forward_proxy: bool = False


@dataclass
class _State:
    faults: list[Fault] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultProxy:
    def __init__(self, upstream: str, max_requests: int = 20000, tls: tuple[str, str] | None = None):
        """`tls`: (certificate file, key file) to serve https:// with, for the TLS verification tests."""
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.upstream_path = parts.path.rstrip("/")
        self.max_requests = max_requests
        self.state = _State()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms to each
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args) -> None:  # quiet: the log list is the record
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.address = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.url = f"{self.address}{self.upstream_path}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)
        self.thread.start()

    # ── what tests call ──

    def inject(self, action: str, **options) -> Fault:
        fault = Fault(action, **options)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def heal(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    @property
    def log(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.log)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    # ── serving ──

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self.state.lock:
            if len(self.state.log) >= self.max_requests:
                return Fault("status", status=503, detail="the test proxy's request budget is spent")
            for fault in self.state.faults:
                if fault.matches(method, path):
                    return fault
        return None

    def _record(self, method: str, path: str, outcome: str, forward: bool) -> None:
        with self.state.lock:
            self.state.log.append(Seen(method, path, outcome, forward))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        target = handler.path
        forward = target.startswith("http://")
        path = urlsplit(target).path + (f"?{urlsplit(target).query}" if urlsplit(target).query else "") if forward else target
        relative = path[len(self.upstream_path):] if path.startswith(self.upstream_path) else path
        fault = self._fault_for(handler.command, relative)
        if fault is not None and fault.action == "status":
            self._record(handler.command, relative, str(fault.status), forward)
            self._answer(handler, fault.status, {"Retry-After": fault.retry_after} if fault.retry_after else {},
                         ('{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],'
                          f'"status":"{fault.status}","detail":"{fault.detail}"}}').encode())
            return
        if fault is not None and fault.action == "drop" and not fault.after_forwarding:
            self._record(handler.command, relative, "dropped", forward)
            self._drop(handler)
            return
        status, headers, answer = self._forward(handler, path, body)
        if fault is not None and fault.action == "drop":
            self._record(handler.command, relative, "dropped", forward)
            self._drop(handler)
            return
        self._record(handler.command, relative, str(status), forward)
        self._answer(handler, status, headers, answer)

    def _forward(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            connection.request(handler.command, path, body=body or None, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
            return response.status, kept, answer
        finally:
            connection.close()

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, headers: dict, body: bytes) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if status != 204:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if status != 204 and body:
            handler.wfile.write(body)

    @staticmethod
    def _drop(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)  # the client sees the connection end, no answer
        except OSError:
            pass
