"""Fault-injecting HTTP/1.1 reverse proxy for tests against moto_server.

The proxy runs in the test process (one thread per client connection) on
127.0.0.1 and forwards every request to an upstream on loopback. It keeps
the request target, the Host header, the other headers in their order and
the body bytes unchanged, so a SigV4 signature made for the proxy's
host:port stays valid. Rules set from the test decide which requests get a
fault:

    with MotoServer() as moto, FaultProxy(moto) as proxy:
        proxy.add_fault(SLOW_DOWN, method="PUT", query=r"partNumber=2", count=2)
        run_stowage([...], env=moto.env(endpoint_url=proxy.endpoint))
        assert [r.fault for r in proxy.requests_matching(query="partNumber=2")][:3] == \\
            [SLOW_DOWN, SLOW_DOWN, None]

A rule matches a request when every given pattern matches: method
(case-insensitive, exact), path, query and body (regular expressions
searched in the path without the query string, in the raw query string, and
in the request body decoded as Latin-1). Among the requests that a rule
matches, it fires on the nth and the count - 1 after it (count=None: on every
one from the nth on). When several rules could fire, the first one added
fires, and every matching rule still counts the request. DROP_DURING_BODY
rules are checked as soon as the headers are read, before any other rule,
because the body has not arrived yet.

Fault kinds and their parameters:

    INTERNAL_ERROR   500 InternalError
    SLOW_DOWN        503 SlowDown
    REQUEST_TIMEOUT  400 RequestTimeout, then the connection is closed (as S3 does)
    EXPIRED_TOKEN    400 ExpiredToken
    CLOCK_SKEW       403 RequestTimeTooSkewed; skew_seconds (default 3600): how far the
                     server clock (ServerTime and the Date header) is ahead
    REDIRECT         301 PermanentRedirect with x-amz-bucket-region; region (default
                     eu-west-1), endpoint (default BUCKET.s3.REGION.amazonaws.com, text only)
    ERROR            any error: status, code, message; shape "s3" (<Error>) or
                     "query" (RDS/STS <ErrorResponse>)
    DROP_DURING_BODY close after after_bytes of the request body (default half);
                     nothing is forwarded
    DROP_AFTER_BODY  read the whole request, forward nothing, close
    DROP_BEFORE_RESPONSE  forward the request (it takes effect upstream), discard
                     the response, close
    STALL            wait seconds (default 60) before forwarding; then="forward"
                     (default) or "close"
    STALL_BODY       send the response headers and half the body, wait seconds, send the rest
    TRUNCATE         send keep_bytes of the response body (default half), then close
    CORRUPT          invert one byte of the response body at offset (default the middle)
    REWRITE          function(status, headers, body) -> (status, headers, body) applied
                     to the upstream response; headers is a list of (name, value)

Every DROP_* fault, TRUNCATE and STALL with then="close" take reset=True to
close with a TCP reset instead of a FIN.
"""

import base64
import email.utils
import hashlib
import http.client
import http.server
import os
import re
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

INTERNAL_ERROR = "internal_error"
SLOW_DOWN = "slow_down"
REQUEST_TIMEOUT = "request_timeout"
EXPIRED_TOKEN = "expired_token"
CLOCK_SKEW = "clock_skew"
REDIRECT = "redirect"
ERROR = "error"
DROP_DURING_BODY = "drop_during_body"
DROP_AFTER_BODY = "drop_after_body"
DROP_BEFORE_RESPONSE = "drop_before_response"
STALL = "stall"
STALL_BODY = "stall_body"
TRUNCATE = "truncate"
CORRUPT = "corrupt"
REWRITE = "rewrite"

# Parameters each kind accepts; add_fault rejects any other.
_KIND_PARAMETERS = {
    INTERNAL_ERROR: set(),
    SLOW_DOWN: set(),
    REQUEST_TIMEOUT: set(),
    EXPIRED_TOKEN: set(),
    CLOCK_SKEW: {"skew_seconds"},
    REDIRECT: {"region", "endpoint"},
    ERROR: {"status", "code", "message", "shape"},
    DROP_DURING_BODY: {"after_bytes", "reset"},
    DROP_AFTER_BODY: {"reset"},
    DROP_BEFORE_RESPONSE: {"reset"},
    STALL: {"seconds", "then", "reset"},
    STALL_BODY: {"seconds"},
    TRUNCATE: {"keep_bytes", "reset"},
    CORRUPT: {"offset"},
    REWRITE: {"function"},
}

# Status, code and message of the fixed S3 errors, with AWS's wording.
_S3_ERRORS = {
    INTERNAL_ERROR: (500, "InternalError", "We encountered an internal error. Please try again."),
    SLOW_DOWN: (503, "SlowDown", "Please reduce your request rate."),
    REQUEST_TIMEOUT: (400, "RequestTimeout",
                      "Your socket connection to the server was not read from or written to "
                      "within the timeout period. Idle connections will be closed."),
    EXPIRED_TOKEN: (400, "ExpiredToken", "The provided token has expired."),
}

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade"}

_COPY_CHUNK = 64 * 1024


class Rule:
    """A fault rule. matched counts the requests it matched, applied those it changed."""

    def __init__(self, kind, method=None, path=None, query=None, body=None, nth=1, count=1, **params):
        if kind not in _KIND_PARAMETERS:
            raise ValueError("unknown fault kind %r; expected one of %s" % (kind, ", ".join(sorted(_KIND_PARAMETERS))))
        unknown = set(params) - _KIND_PARAMETERS[kind]
        if unknown:
            raise ValueError("fault %s does not take %s" % (kind, ", ".join(sorted(unknown))))
        if kind == DROP_DURING_BODY and body is not None:
            raise ValueError("a drop_during_body rule cannot match the body, which has not arrived yet")
        if kind == ERROR and not {"status", "code"} <= set(params):
            raise ValueError("an error rule needs status and code (message and shape are optional)")
        if kind == REWRITE and not callable(params.get("function")):
            raise ValueError("a rewrite rule needs a callable function")
        if nth < 1 or (count is not None and count < 1):
            raise ValueError("nth and count start at 1 (count=None: no limit)")
        self.kind = kind
        self.method = method.upper() if method else None
        self.path = re.compile(path) if path is not None else None
        self.query = re.compile(query) if query is not None else None
        if isinstance(body, str):
            body = body.encode("latin-1")
        self.body = re.compile(body) if body is not None else None
        self.nth = nth
        self.count = count
        self.params = params
        self.matched = 0
        self.applied = 0

    def __repr__(self):
        return "Rule(%s, method=%s, path=%s, query=%s, nth=%d, count=%s, applied=%d)" % (
            self.kind, self.method, self.path and self.path.pattern, self.query and self.query.pattern,
            self.nth, self.count, self.applied)

    def matches(self, method, path, query, body):
        if self.method is not None and method.upper() != self.method:
            return False
        if self.path is not None and not self.path.search(path):
            return False
        if self.query is not None and not self.query.search(query):
            return False
        if self.body is not None and (body is None or not self.body.search(body)):
            return False
        return True

    def _take(self):
        """Count one more match; return True when the rule fires on it."""
        self.matched += 1
        if self.matched < self.nth:
            return False
        if self.count is not None and self.applied >= self.count:
            return False
        self.applied += 1
        return True


class RequestRecord:
    """One request seen by the proxy.

    status is the status the client received, or None when the connection
    was closed before a status line. upstream_status is the status the
    upstream returned, or None when nothing was forwarded. fault is the
    kind that was applied, or None, and detail contains facts about it such
    as the corrupted offset. body is kept for bodies up to the proxy's
    record_body_limit, else None.
    """

    def __init__(self, method, path, query, headers):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = None
        self.body_size = 0
        self.body_sha256 = None
        self.status = None
        self.upstream_status = None
        self.fault = None
        self.detail = {}
        self.started = time.monotonic()
        self.finished = None

    def header(self, name, default=None):
        """Return the first request header called name (case-insensitive)."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    def __repr__(self):
        query = "?" + self.query if self.query else ""
        return "<%s %s%s -> %s%s>" % (self.method, self.path, query, self.status,
                                       " fault=%s" % self.fault if self.fault else "")


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of upstream, with fault rules.

    upstream is a MotoServer (or any object with an endpoint attribute), a
    URL such as "http://127.0.0.1:PORT", or a port on 127.0.0.1. It must be
    a loopback address.
    """

    def __init__(self, upstream, upstream_timeout=300, record_body_limit=64 * 1024):
        if hasattr(upstream, "endpoint"):
            upstream = upstream.endpoint
        if isinstance(upstream, int):
            upstream = "http://127.0.0.1:%d" % upstream
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or parsed.hostname not in ("127.0.0.1", "localhost", "::1") or not parsed.port:
            raise ValueError("upstream must be http://127.0.0.1:PORT (loopback only), not %r" % upstream)
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port
        self.upstream_timeout = upstream_timeout
        self.record_body_limit = record_body_limit
        self.host = "127.0.0.1"
        self.port = None
        self._rules = []
        self._records = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections = set()
        self._server = None
        self._thread = None

    def __repr__(self):
        return "FaultProxy(port=%s -> %s:%s)" % (self.port, self.upstream_host, self.upstream_port)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.stop()
        return False

    @property
    def endpoint(self):
        """Base URL of the proxy, http://127.0.0.1:PORT."""
        return "http://%s:%d" % (self.host, self.port)

    def start(self):
        """Bind port 0 on 127.0.0.1 and serve in a daemon thread."""
        self._stopping.clear()
        self._server = _Server((self.host, 0), _ProxyHandler)
        self._server.proxy = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fault-proxy-%d" % self.port, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop accepting, end stalls and close every open client connection.

        A stalled request ends with its connection closed, not forwarded.
        """
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        self._server = None

    # Rules -----------------------------------------------------------------

    def add_fault(self, kind, method=None, path=None, query=None, body=None, nth=1, count=1, **params):
        """Add a rule (see the module documentation) and return it."""
        rule = Rule(kind, method=method, path=path, query=query, body=body, nth=nth, count=count, **params)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule):
        with self._lock:
            self._rules.remove(rule)

    def clear_rules(self):
        with self._lock:
            self._rules.clear()

    @property
    def rules(self):
        with self._lock:
            return list(self._rules)

    # Records ---------------------------------------------------------------

    @property
    def requests(self):
        """Return the records of every request so far, in order of arrival.

        A request still in progress (stalled, for example) has finished None.
        """
        with self._lock:
            return list(self._records)

    def requests_matching(self, method=None, path=None, query=None, fault=None):
        """Return the records with the given method and fault whose path and query match the given patterns."""
        result = []
        for record in self.requests:
            if method is not None and record.method.upper() != method.upper():
                continue
            if path is not None and not re.search(path, record.path):
                continue
            if query is not None and not re.search(query, record.query):
                continue
            if fault is not None and record.fault != fault:
                continue
            result.append(record)
        return result

    def clear_requests(self):
        with self._lock:
            self._records.clear()

    def clear(self):
        """Remove every rule and record."""
        self.clear_rules()
        self.clear_requests()

    # Used by the handler ---------------------------------------------------

    def _select(self, early, method, path, query, body):
        """Return the rule that fires on this request, or None.

        early selects the DROP_DURING_BODY rules, checked before the body is read.
        """
        chosen = None
        with self._lock:
            for rule in self._rules:
                if (rule.kind == DROP_DURING_BODY) != early:
                    continue
                if not rule.matches(method, path, query, body):
                    continue
                if chosen is None:
                    if rule._take():
                        chosen = rule
                else:
                    rule.matched += 1
        return chosen

    def _record(self, record):
        with self._lock:
            self._records.append(record)

    def _track(self, connection, active):
        with self._lock:
            if active:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _ClientGone(Exception):
    """The client closed the connection while the proxy was writing to it."""


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 300

    def setup(self):
        super().setup()
        self.proxy = self.server.proxy
        self.proxy._track(self.connection, True)

    def finish(self):
        self.proxy._track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args):
        """Keep the test output clean, because the records contain what happened."""

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (OSError, http.client.HTTPException, ValueError, _ClientGone):
            # OSError covers resets and timeouts, and ValueError a malformed chunk size.
            self.close_connection = True

    def __getattr__(self, name):
        # Every method (GET, PUT, POST, DELETE, HEAD, ...) goes to one handler.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    # Request side ----------------------------------------------------------

    def _handle(self):
        path, _, query = self.path.partition("?")
        record = RequestRecord(self.command, path, query, list(self.headers.items()))
        self.proxy._record(record)
        try:
            self._handle_request(record)
        finally:
            record.finished = time.monotonic()

    def _handle_request(self, record):
        method, path, query = record.method, record.path, record.query

        rule = self.proxy._select(True, method, path, query, None)
        if rule is not None:
            record.fault = rule.kind
            limit = rule.params.get("after_bytes")
            if limit is None:
                length = self._content_length()
                limit = length // 2 if length else 0
            body, _ = self._read_body(limit)
            self._note_body(record, body)
            record.detail["after_bytes"] = len(body)
            self._drop(rule)
            return

        body, _ = self._read_body(None)
        self._note_body(record, body)
        rule = self.proxy._select(False, method, path, query, body)
        kind = rule.kind if rule is not None else None
        record.fault = kind
        params = rule.params if rule is not None else {}

        if kind in _S3_ERRORS:
            status, code, message = _S3_ERRORS[kind]
            self._send_error(record, status, code, message, close=(kind == REQUEST_TIMEOUT))
            return
        if kind == CLOCK_SKEW:
            self._send_clock_skew(record, params.get("skew_seconds", 3600))
            return
        if kind == REDIRECT:
            self._send_redirect(record, params.get("region", "eu-west-1"), params.get("endpoint"))
            return
        if kind == ERROR:
            self._send_error(record, params["status"], params["code"], params.get("message", ""),
                             shape=params.get("shape", "s3"))
            return
        if kind == DROP_AFTER_BODY:
            self._drop(rule)
            return
        if kind == STALL:
            seconds = params.get("seconds", 60)
            record.detail["seconds"] = seconds
            stopping = self.proxy._stopping.wait(seconds)
            if stopping or params.get("then", "forward") == "close":
                self._drop(rule)
                return

        self._forward(record, body, rule)

    def _content_length(self):
        value = self.headers.get("Content-Length")
        return int(value) if value is not None else None

    def _read_body(self, limit):
        """Read the request body (Content-Length or chunked); stop after limit bytes when given.

        Returns (body, complete). A chunked body is returned decoded and is
        forwarded with a Content-Length.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = self._content_length() or 0
        size = length if limit is None else min(limit, length)
        body = self._read_exactly(size)
        return body, size == length

    def _read_exactly(self, size):
        parts = []
        remaining = size
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _COPY_CHUNK))
            if not chunk:
                raise ConnectionResetError("client closed the connection during the request body")
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _read_chunked(self, limit):
        parts = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            if not size_line:
                raise ConnectionResetError("client closed the connection during a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts), True
            if limit is not None and total + size > limit:
                parts.append(self._read_exactly(limit - total))
                return b"".join(parts), False
            parts.append(self._read_exactly(size))
            total += size
            self.rfile.readline(8)

    def _note_body(self, record, body):
        record.body_size = len(body)
        record.body_sha256 = hashlib.sha256(body).hexdigest()
        if len(body) <= self.proxy.record_body_limit:
            record.body = body

    # Faults without forwarding ---------------------------------------------

    def _drop(self, rule):
        """Close the client connection without a response, with a FIN or (reset=True) a TCP reset."""
        self.close_connection = True
        if rule.params.get("reset"):
            # close() with a zero linger time sends RST. The socket closes only
            # once rfile and wfile, which hold references to it, are closed.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
            return
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _request_ids(self):
        request_id = os.urandom(8).hex().upper()
        host_id = base64.b64encode(os.urandom(48)).decode()
        return request_id, host_id

    def _send_error(self, record, status, code, message, close=False, shape="s3",
                    extra_elements=(), extra_headers=(), date=None):
        request_id, host_id = self._request_ids()
        elements = "".join("<%s>%s</%s>" % (name, escape(str(value)), name) for name, value in extra_elements)
        if shape == "query":
            sender = "Receiver" if status >= 500 else "Sender"
            body = ('<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>%s</Type>'
                    "<Code>%s</Code><Message>%s</Message>%s</Error><RequestId>%s</RequestId></ErrorResponse>"
                    % (sender, escape(code), escape(message), elements, request_id))
            headers = [("x-amzn-RequestId", request_id), ("Content-Type", "text/xml")]
        else:
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>%s'
                    "<RequestId>%s</RequestId><HostId>%s</HostId></Error>"
                    % (escape(code), escape(message), elements, request_id, host_id))
            headers = [("x-amz-request-id", request_id), ("x-amz-id-2", host_id),
                       ("Content-Type", "application/xml")]
        headers += list(extra_headers)
        headers += [("Date", email.utils.formatdate(date, usegmt=True)), ("Server", "AmazonS3")]
        record.detail["code"] = code
        self._send_response(record, status, http.client.responses.get(status, "Error"), headers,
                            body.encode(), close=close)

    def _send_clock_skew(self, record, skew_seconds):
        server_time = datetime.now(timezone.utc) + timedelta(seconds=skew_seconds)
        request_time = self.headers.get("X-Amz-Date") or self.headers.get("Date") or ""
        record.detail["skew_seconds"] = skew_seconds
        self._send_error(
            record, 403, "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            extra_elements=[("RequestTime", request_time),
                            ("ServerTime", server_time.strftime("%Y-%m-%dT%H:%M:%SZ")),
                            ("MaxAllowedSkewMilliseconds", 900000)],
            date=server_time.timestamp())

    def _send_redirect(self, record, region, endpoint):
        bucket = self._bucket_name()
        if endpoint is None:
            endpoint = "%s.s3.%s.amazonaws.com" % (bucket, region) if bucket else "s3.%s.amazonaws.com" % region
        record.detail["region"] = region
        self._send_error(
            record, 301, "PermanentRedirect",
            "The bucket you are attempting to access must be addressed using the specified endpoint. "
            "Please send all future requests to this endpoint.",
            extra_elements=[("Endpoint", endpoint), ("Bucket", bucket)],
            extra_headers=[("x-amz-bucket-region", region)])

    def _bucket_name(self):
        """Return the bucket of a virtual-hosted (BUCKET.localhost) or path-style request."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        labels = host.split(".")
        if len(labels) > 1 and not host.replace(".", "").isdigit():
            return labels[0]
        return self.path.split("?")[0].lstrip("/").split("/")[0]

    # Forwarding ------------------------------------------------------------

    def _forward(self, record, body, rule):
        """Send the request upstream unchanged and relay the response, applying response faults."""
        upstream = http.client.HTTPConnection(self.proxy.upstream_host, self.proxy.upstream_port,
                                              timeout=self.proxy.upstream_timeout)
        try:
            try:
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                for name, value in self.headers.items():
                    if name.lower() in _HOP_BY_HOP:
                        continue
                    upstream.putheader(name, value)
                if chunked:
                    upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body if body else None)
                response = upstream.getresponse()
            except (OSError, http.client.HTTPException) as error:
                record.detail["upstream_error"] = str(error)
                self._send_response(record, 502, "Bad Gateway", [("Content-Type", "text/plain")],
                                    ("fault proxy: upstream failed: %s\n" % error).encode())
                return
            record.upstream_status = response.status
            self._relay(record, response, rule)
        finally:
            upstream.close()

    def _relay(self, record, response, rule):
        kind = rule.kind if rule is not None else None
        params = rule.params if rule is not None else {}
        headers = [(name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP]
        status, reason = response.status, response.reason

        if kind == DROP_BEFORE_RESPONSE:
            response.read()
            self._drop(rule)
            return

        has_body = self.command != "HEAD" and status not in (204, 304) and status >= 200
        length = response.getheader("Content-Length")
        if kind == REWRITE or (has_body and length is None):
            body = response.read()
            if kind == REWRITE:
                original_status = status
                status, headers, body = params["function"](status, headers, body)
                if status != original_status:
                    reason = http.client.responses.get(status, "Unknown")
                record.detail["rewritten"] = True
            if has_body:
                headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
            length = len(body)
            source = _BytesSource(body)
        else:
            length = int(length) if length is not None else 0
            source = response
        if not has_body:
            # A HEAD response keeps the upstream Content-Length: the size of the object.
            response.read()
            self._send_head(record, status, reason, headers)
            return

        self._send_head(record, status, reason, headers)
        if kind == CORRUPT:
            offset = params.get("offset", length // 2)
            record.detail["offset"] = offset if offset < length else None
            self._copy_body(source, length, corrupt_offset=offset)
        elif kind == TRUNCATE:
            keep = params.get("keep_bytes", length // 2)
            record.detail["keep_bytes"] = min(keep, length)
            self._copy_body(source, min(keep, length))
            self._drop(rule)
        elif kind == STALL_BODY:
            seconds = params.get("seconds", 60)
            record.detail["seconds"] = seconds
            self._copy_body(source, length // 2)
            if self.proxy._stopping.wait(seconds):
                self._drop(rule)
                return
            self._copy_body(source, length - length // 2)
        else:
            self._copy_body(source, length)

    def _copy_body(self, source, size, corrupt_offset=None):
        """Copy size bytes from source to the client, inverting the byte at corrupt_offset."""
        position = 0
        while position < size:
            chunk = source.read(min(_COPY_CHUNK, size - position))
            if not chunk:
                raise ConnectionResetError("upstream closed the connection during the response body")
            if corrupt_offset is not None and position <= corrupt_offset < position + len(chunk):
                index = corrupt_offset - position
                chunk = chunk[:index] + bytes([chunk[index] ^ 0xFF]) + chunk[index + 1:]
            self._write(chunk)
            position += len(chunk)

    def _send_head(self, record, status, reason, headers, close=False):
        lines = ["HTTP/1.1 %d %s\r\n" % (status, reason)]
        for name, value in headers:
            lines.append("%s: %s\r\n" % (name, value))
        if close or self.close_connection:
            self.close_connection = True
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        self._write("".join(lines).encode("latin-1"))
        record.status = status

    def _send_response(self, record, status, reason, headers, body, close=False):
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        self._send_head(record, status, reason, headers, close=close)
        if self.command != "HEAD" and body:
            self._write(body)

    def _write(self, data):
        try:
            self.wfile.write(data)
        except OSError as error:
            raise _ClientGone(str(error)) from error


class _BytesSource:
    """A read(size) interface over bytes, like http.client.HTTPResponse."""

    def __init__(self, data):
        self._data = data
        self._position = 0

    def read(self, size):
        chunk = self._data[self._position:self._position + size]
        self._position += len(chunk)
        return chunk

