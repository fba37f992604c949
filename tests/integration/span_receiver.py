"""A test collector for bunscope's trace exporters (Python 3 stdlib only).

SpanReceiver is an HTTP server in a thread that accepts what bunscope ships:

  POST /v1/traces     OTLP/HTTP with the JSON encoding (gzip or not)
  POST /api/v2/spans  Zipkin v2 JSON

It decodes and validates every body on its own (json and gzip from the
standard library, never the project's code), then normalizes each span to one
dict shape shared by both protocols, so that tests compare spans against what
the clients did without caring about the wire format:

    with SpanReceiver() as rx:
        ... start bunscope with --traces-otlp rx.otlp_url ...
        spans = rx.wait_spans(3, timeout=10, kind="otlp",
                              pred=lambda s: s["kind"] == "server")
        assert rx.errors == []

A body that breaks the protocol is answered 400 and its reason appended to
`errors` (tests assert errors == []). go_down() / come_back() make the
collector really unreachable and then reachable again on the same port, and
respond_with() scripts failure statuses (503, 429, ...) for retry tests.

Normalized span (both protocols):
  trace_id     32 lowercase hex (a 16-hex Zipkin trace id is zero-padded)
  span_id      16 lowercase hex
  parent_id    16 lowercase hex, or None for a root span
  name, kind   kind: "server" / "client" (other OTLP kinds by their names)
  start_ns, end_ns   ints (Zipkin: microseconds x 1000)
  status       "error" / "unset" / "ok"; status_message (str, "" if none)
  attrs        OTLP attributes (intValue -> int, doubleValue -> float, ...)
               or Zipkin tags (strings, as sent)
  resource     OTLP resource attributes, or {"service.name": serviceName}
  trace_state  str ("" if none; always "" for Zipkin)
  proto        "otlp" / "zipkin"
  OTLP only:   scope ({"name", "version"}), flags (int or None)
  Zipkin only: local_port, remote_ip, remote_port (None when absent), shared
"""

import collections
import gzip
import http.server
import ipaddress
import json
import re
import socket
import sys
import threading
import time

from harness import free_port, wait_until

OTLP_PATH = "/v1/traces"
ZIPKIN_PATH = "/api/v2/spans"
_PROTO_OF_PATH = {OTLP_PATH: "otlp", ZIPKIN_PATH: "zipkin"}

_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX16 = re.compile(r"[0-9a-f]{16}\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_INT_STR = re.compile(r"-?[0-9]+\Z")

U64_MAX = 2 ** 64 - 1
I64_MIN, I64_MAX = -2 ** 63, 2 ** 63 - 1

# Span timestamps must be wall-clock times near the receiver's own clock:
# catches microseconds-for-nanoseconds and monotonic-for-realtime mix-ups.
PLAUSIBLE_PAST_NS = 7 * 24 * 3600 * 10 ** 9
PLAUSIBLE_FUTURE_NS = 3600 * 10 ** 9

OTLP_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client",
              4: "producer", 5: "consumer"}
OTLP_STATUS = {0: "unset", 1: "ok", 2: "error"}
ZIPKIN_KINDS = {"SERVER": "server", "CLIENT": "client",
                "PRODUCER": "producer", "CONSUMER": "consumer"}

# Field names each OTLP/JSON message may carry (lowerCamelCase, as the
# OTLP/JSON mapping requires). A real collector ignores unknown fields; this
# one rejects them so that a misspelled field cannot pass unnoticed.
_OTLP_FIELDS = {
    "request": {"resourceSpans"},
    "resourceSpans": {"resource", "scopeSpans", "schemaUrl"},
    "resource": {"attributes", "droppedAttributesCount"},
    "scopeSpans": {"scope", "spans", "schemaUrl"},
    "scope": {"name", "version", "attributes", "droppedAttributesCount"},
    "span": {"traceId", "spanId", "traceState", "parentSpanId", "flags", "name",
             "kind", "startTimeUnixNano", "endTimeUnixNano", "attributes",
             "droppedAttributesCount", "events", "droppedEventsCount", "links",
             "droppedLinksCount", "status"},
    "status": {"code", "message"},
    "keyValue": {"key", "value"},
    "anyValue": {"stringValue", "intValue", "boolValue", "doubleValue"},
}
_ZIPKIN_FIELDS = {
    "span": {"traceId", "name", "parentId", "id", "kind", "timestamp", "duration",
             "debug", "shared", "localEndpoint", "remoteEndpoint", "annotations",
             "tags"},
    "endpoint": {"serviceName", "ipv4", "ipv6", "port"},
    "annotation": {"timestamp", "value"},
}


class ReceiverError(ValueError):
    """A request the receiver refuses; `status` is the HTTP answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _fail(where, message, status=400):
    raise ReceiverError("%s: %s" % (where, message) if where else message, status)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_fields(obj, allowed, where):
    if not isinstance(obj, dict):
        _fail(where, "expected a JSON object, got %s" % type(obj).__name__)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        _fail(where, "unknown field(s) %s" % ", ".join(unknown))


def count_by(spans, key):
    """collections.Counter of span[key] (or key(span) when key is callable)."""
    get = key if callable(key) else (lambda s: s[key])
    return collections.Counter(get(s) for s in spans)


# ---------------------------------------------------------------------------
# Body decoding (shared by both protocols)
# ---------------------------------------------------------------------------

def _media_type(value):
    return (value or "").split(";", 1)[0].strip().lower()


def decode_body(raw, headers):
    """Bytes of a POST body -> parsed JSON. Checks Content-Type, gunzips when
    Content-Encoding says gzip (after checking the gzip magic), refuses other
    encodings, invalid UTF-8, NaN/Infinity and duplicate object keys."""
    ctype = headers.get("content-type")
    if _media_type(ctype) != "application/json":
        _fail("Content-Type", "expected application/json, got %r" % (ctype,), 415)
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    if encoding == "gzip":
        if raw[:2] != b"\x1f\x8b":
            _fail("body", "Content-Encoding: gzip but no gzip magic (starts %r)" % raw[:8])
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as e:
            _fail("body", "bad gzip data: %s" % e)
    elif encoding == "identity":
        if raw[:2] == b"\x1f\x8b":
            _fail("body", "gzip data without Content-Encoding: gzip")
        data = raw
    else:
        _fail("Content-Encoding", "unsupported %r" % encoding, 415)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail("body", "not UTF-8: %s" % e)

    def no_duplicates(pairs):
        obj = {}
        for k, v in pairs:
            if k in obj:
                raise ReceiverError("body: duplicate JSON key %r" % k)
            obj[k] = v
        return obj

    def no_constants(name):
        raise ReceiverError("body: %s is not JSON" % name)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates,
                          parse_constant=no_constants), len(data)
    except json.JSONDecodeError as e:
        _fail("body", "invalid JSON: %s" % e)


def _check_time_ns(ns, where):
    now = time.time_ns()
    if not now - PLAUSIBLE_PAST_NS <= ns <= now + PLAUSIBLE_FUTURE_NS:
        _fail(where, "%d ns is not a wall-clock time near now (%d)" % (ns, now))


# ---------------------------------------------------------------------------
# OTLP/JSON
# ---------------------------------------------------------------------------

def _otlp_value(value, where, counts):
    _check_fields(value, _OTLP_FIELDS["anyValue"], where)
    if len(value) != 1:
        _fail(where, "exactly one of stringValue/intValue/boolValue/doubleValue "
                     "expected, got %r" % sorted(value))
    (field, v), = value.items()
    if field == "stringValue":
        if not isinstance(v, str):
            _fail(where, "stringValue must be a string, got %r" % (v,))
        return v
    if field == "boolValue":
        if not isinstance(v, bool):
            _fail(where, "boolValue must be true/false, got %r" % (v,))
        return v
    if field == "doubleValue":
        if not (_is_int(v) or isinstance(v, float)):
            _fail(where, "doubleValue must be a number, got %r" % (v,))
        return float(v)
    # intValue: an int64, a JSON string in the OTLP/JSON mapping; a number is
    # accepted too but counted apart (posts() int_numbers).
    if isinstance(v, str):
        if not _INT_STR.match(v):
            _fail(where, "intValue string %r is not an integer" % v)
        counts["int_strings"] += 1
        n = int(v)
    elif _is_int(v):
        counts["int_numbers"] += 1
        n = v
    else:
        _fail(where, "intValue must be a string of digits or an integer, got %r" % (v,))
    if not I64_MIN <= n <= I64_MAX:
        _fail(where, "intValue %d does not fit an int64" % n)
    return n


def _otlp_attrs(attrs, where, counts):
    if not isinstance(attrs, list):
        _fail(where, "attributes must be a list, got %s" % type(attrs).__name__)
    out = {}
    for i, kv in enumerate(attrs):
        w = "%s[%d]" % (where, i)
        _check_fields(kv, _OTLP_FIELDS["keyValue"], w)
        key = kv.get("key")
        if not isinstance(key, str) or not key:
            _fail(w, "key must be a non-empty string, got %r" % (key,))
        if key in out:
            _fail(w, "duplicate attribute key %r" % key)
        if "value" not in kv:
            _fail(w, "attribute %r has no value" % key)
        out[key] = _otlp_value(kv["value"], "%s(%s).value" % (w, key), counts)
    return out


def _otlp_id(v, pattern, nhex, where, required):
    if v is None or v == "":
        if required:
            _fail(where, "missing")
        return None
    if not isinstance(v, str) or not pattern.match(v):
        _fail(where, "must be %d lowercase hex digits, got %r" % (nhex, v))
    if set(v) == {"0"}:
        _fail(where, "all zeros (an invalid id)")
    return v


def _otlp_time(v, where):
    if not isinstance(v, str) or not _DIGITS.match(v):
        _fail(where, "must be a string of digits (fixed64 in OTLP/JSON), got %r" % (v,))
    n = int(v)
    if n > U64_MAX:
        _fail(where, "%s does not fit a fixed64" % v)
    _check_time_ns(n, where)
    return n


def _opt_count(obj, field, where):
    if field in obj and (not _is_int(obj[field]) or obj[field] < 0):
        _fail("%s.%s" % (where, field), "must be a non-negative integer, got %r"
              % (obj[field],))


def _otlp_span(sp, resource, scope, where, counts):
    _check_fields(sp, _OTLP_FIELDS["span"], where)
    trace_id = _otlp_id(sp.get("traceId"), _HEX32, 32, where + ".traceId", True)
    span_id = _otlp_id(sp.get("spanId"), _HEX16, 16, where + ".spanId", True)
    parent_id = _otlp_id(sp.get("parentSpanId"), _HEX16, 16, where + ".parentSpanId", False)
    name = sp.get("name")
    if not isinstance(name, str) or not name:
        _fail(where + ".name", "must be a non-empty string, got %r" % (name,))
    kind = sp.get("kind")
    if not _is_int(kind) or kind not in OTLP_KINDS:
        _fail(where + ".kind", "must be an integer SpanKind (0..5), got %r" % (kind,))
    start = _otlp_time(sp.get("startTimeUnixNano"), where + ".startTimeUnixNano")
    end = _otlp_time(sp.get("endTimeUnixNano"), where + ".endTimeUnixNano")
    if end < start:
        _fail(where, "endTimeUnixNano %d < startTimeUnixNano %d" % (end, start))
    trace_state = sp.get("traceState", "")
    if not isinstance(trace_state, str):
        _fail(where + ".traceState", "must be a string, got %r" % (trace_state,))
    flags = sp.get("flags")
    if flags is not None and (not _is_int(flags) or not 0 <= flags <= 0xFFFFFFFF):
        _fail(where + ".flags", "must be a fixed32, got %r" % (flags,))
    for field in ("droppedAttributesCount", "droppedEventsCount", "droppedLinksCount"):
        _opt_count(sp, field, where)
    for field in ("events", "links"):
        if field in sp and not isinstance(sp[field], list):
            _fail(where + "." + field, "must be a list")
    status, message = "unset", ""
    if "status" in sp:
        st = sp["status"]
        _check_fields(st, _OTLP_FIELDS["status"], where + ".status")
        code = st.get("code", 0)
        if not _is_int(code) or code not in OTLP_STATUS:
            _fail(where + ".status.code", "must be 0, 1 or 2, got %r" % (code,))
        message = st.get("message", "")
        if not isinstance(message, str):
            _fail(where + ".status.message", "must be a string, got %r" % (message,))
        status = OTLP_STATUS[code]
    attrs = _otlp_attrs(sp.get("attributes", []), where + ".attributes", counts)
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_id": parent_id,
        "name": name, "kind": OTLP_KINDS[kind], "start_ns": start, "end_ns": end,
        "status": status, "status_message": message, "attrs": attrs,
        "resource": dict(resource), "trace_state": trace_state, "proto": "otlp",
        "scope": dict(scope), "flags": flags,
    }


def parse_otlp(doc, counts):
    """An ExportTraceServiceRequest (parsed JSON) -> normalized spans.
    counts["int_strings"] / counts["int_numbers"] are incremented per intValue."""
    _check_fields(doc, _OTLP_FIELDS["request"], "request")
    rss = doc.get("resourceSpans")
    if not isinstance(rss, list):
        _fail("resourceSpans", "must be a list, got %r" % (type(rss).__name__,))
    spans = []
    for i, rs in enumerate(rss):
        w = "resourceSpans[%d]" % i
        _check_fields(rs, _OTLP_FIELDS["resourceSpans"], w)
        res = rs.get("resource")
        _check_fields(res, _OTLP_FIELDS["resource"], w + ".resource")
        if "attributes" not in res:
            _fail(w + ".resource", "has no attributes")
        _opt_count(res, "droppedAttributesCount", w + ".resource")
        resource = _otlp_attrs(res["attributes"], w + ".resource.attributes", counts)
        sss = rs.get("scopeSpans")
        if not isinstance(sss, list) or not sss:
            _fail(w + ".scopeSpans", "must be a non-empty list, got %r" % (sss,))
        for j, ss in enumerate(sss):
            ws = "%s.scopeSpans[%d]" % (w, j)
            _check_fields(ss, _OTLP_FIELDS["scopeSpans"], ws)
            scope = {}
            if "scope" in ss:
                sc = ss["scope"]
                _check_fields(sc, _OTLP_FIELDS["scope"], ws + ".scope")
                for field in ("name", "version"):
                    if not isinstance(sc.get(field, ""), str):
                        _fail(ws + ".scope." + field, "must be a string")
                    scope[field] = sc.get(field, "")
                _otlp_attrs(sc.get("attributes", []), ws + ".scope.attributes", counts)
            lst = ss.get("spans")
            if not isinstance(lst, list) or not lst:
                _fail(ws + ".spans", "must be a non-empty list, got %r" % (lst,))
            for k, sp in enumerate(lst):
                spans.append(_otlp_span(sp, resource, scope, "%s.spans[%d]" % (ws, k),
                                        counts))
    if not spans:
        _fail("request", "no spans at all (an exporter should not POST empty batches)")
    return spans


# ---------------------------------------------------------------------------
# Zipkin v2 JSON
# ---------------------------------------------------------------------------

def _zipkin_endpoint(ep, where):
    _check_fields(ep, _ZIPKIN_FIELDS["endpoint"], where)
    for field in ("serviceName", "ipv4", "ipv6"):
        if field in ep and not isinstance(ep[field], str):
            _fail(where + "." + field, "must be a string, got %r" % (ep[field],))
    for field, cls in (("ipv4", ipaddress.IPv4Address), ("ipv6", ipaddress.IPv6Address)):
        if field in ep:
            try:
                cls(ep[field])
            except ValueError:
                _fail(where + "." + field, "not an address: %r" % ep[field])
    if "port" in ep and (not _is_int(ep["port"]) or not 0 < ep["port"] < 65536):
        _fail(where + ".port", "must be an integer 1..65535, got %r" % (ep["port"],))
    return ep


def _zipkin_id(v, patterns, where, required):
    if v is None:
        if required:
            _fail(where, "missing")
        return None
    if not isinstance(v, str) or not any(p.match(v) for p in patterns):
        _fail(where, "must be %s lowercase hex digits, got %r"
              % ("16 or 32" if len(patterns) > 1 else "16", v))
    if set(v) == {"0"}:
        _fail(where, "all zeros (an invalid id)")
    return v


def _zipkin_span(sp, where):
    _check_fields(sp, _ZIPKIN_FIELDS["span"], where)
    trace_id = _zipkin_id(sp.get("traceId"), (_HEX16, _HEX32), where + ".traceId", True)
    span_id = _zipkin_id(sp.get("id"), (_HEX16,), where + ".id", True)
    parent_id = _zipkin_id(sp.get("parentId"), (_HEX16,), where + ".parentId", False)
    name = sp.get("name")
    if not isinstance(name, str) or not name:
        _fail(where + ".name", "must be a non-empty string, got %r" % (name,))
    kind = sp.get("kind")
    if kind not in ZIPKIN_KINDS:
        _fail(where + ".kind", "must be SERVER/CLIENT/PRODUCER/CONSUMER, got %r" % (kind,))
    ts, dur = sp.get("timestamp"), sp.get("duration")
    if not _is_int(ts) or ts <= 0:
        _fail(where + ".timestamp", "must be a positive integer (us), got %r" % (ts,))
    _check_time_ns(ts * 1000, where + ".timestamp")
    # Zipkin's API: durations under a microsecond are rounded up to 1.
    if not _is_int(dur) or dur < 1:
        _fail(where + ".duration", "must be an integer >= 1 (us), got %r" % (dur,))
    for field in ("debug", "shared"):
        if field in sp and not isinstance(sp[field], bool):
            _fail(where + "." + field, "must be true/false, got %r" % (sp[field],))
    local = _zipkin_endpoint(sp.get("localEndpoint", {}), where + ".localEndpoint")
    remote = _zipkin_endpoint(sp.get("remoteEndpoint", {}), where + ".remoteEndpoint")
    tags = sp.get("tags", {})
    if not isinstance(tags, dict):
        _fail(where + ".tags", "must be an object")
    for k, v in tags.items():
        if not isinstance(v, str):
            _fail("%s.tags[%r]" % (where, k), "must be a string, got %r" % (v,))
    annotations = sp.get("annotations", [])
    if not isinstance(annotations, list):
        _fail(where + ".annotations", "must be a list")
    for i, a in enumerate(annotations):
        wa = "%s.annotations[%d]" % (where, i)
        _check_fields(a, _ZIPKIN_FIELDS["annotation"], wa)
        if not _is_int(a.get("timestamp")) or not isinstance(a.get("value"), str):
            _fail(wa, "needs an integer timestamp and a string value, got %r" % (a,))
    status, message = "unset", ""
    if tags.get("otel.status_code") == "OK":
        status = "ok"
    if "error" in tags or tags.get("otel.status_code") == "ERROR":
        status = "error"
        message = tags.get("error") or tags.get("otel.status_description", "")
    return {
        "trace_id": trace_id.rjust(32, "0"), "span_id": span_id, "parent_id": parent_id,
        "name": name, "kind": ZIPKIN_KINDS[kind],
        "start_ns": ts * 1000, "end_ns": (ts + dur) * 1000,
        "status": status, "status_message": message, "attrs": dict(tags),
        "resource": {"service.name": local.get("serviceName")},
        "trace_state": "", "proto": "zipkin",
        "local_port": local.get("port"),
        "remote_ip": remote.get("ipv4", remote.get("ipv6")),
        "remote_port": remote.get("port"),
        "shared": sp.get("shared", False),
    }


def parse_zipkin(doc):
    """A Zipkin v2 span list (parsed JSON) -> normalized spans."""
    if not isinstance(doc, list):
        _fail("body", "a Zipkin v2 POST is a JSON array, got %s" % type(doc).__name__)
    if not doc:
        _fail("body", "no spans at all (an exporter should not POST empty batches)")
    return [_zipkin_span(sp, "spans[%d]" % i) for i, sp in enumerate(doc)]


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections, so that going
    down can cut the keep-alive ones too (a stopped collector must not keep
    answering on a connection accepted earlier)."""

    allow_reuse_address = True  # SO_REUSEADDR: come_back() rebinds the port
    daemon_threads = True

    def __init__(self, addr, handler, receiver):
        self.receiver = receiver
        self.open_conns = {}  # socket -> connection number
        self.conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self.conns_lock:
            self.open_conns[request] = self.receiver._new_conn()
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conns_lock:
            self.open_conns.pop(request, None)
        super().shutdown_request(request)

    def conn_number(self, request):
        with self.conns_lock:
            return self.open_conns.get(request)

    def handle_error(self, request, client_address):
        # A peer (or go_down) cutting a connection is not news; anything else
        # is a bug here and gets socketserver's traceback on stderr.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def cut_connections(self):
        with self.conns_lock:
            socks = list(self.open_conns)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real collector
    server_version = "bunscope-span-receiver/1"
    timeout = 60  # an idle keep-alive connection is dropped after this

    def do_POST(self):
        self.server.receiver._handle_post(self)

    def _not_post(self):
        self.server.receiver._handle_other(self)

    do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _not_post

    def log_message(self, *args):
        pass


def _read_chunked(rfile, limit):
    body = b""
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            _fail("body", "truncated chunk size line")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            _fail("body", "bad chunk size line %r" % line)
        if size == 0:
            while True:  # trailers up to the empty line
                t = rfile.readline(8192)
                if t in (b"\r\n", b"\n"):
                    return body
                if not t:
                    _fail("body", "truncated chunked trailer")
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.read(2) != b"\r\n":
            _fail("body", "truncated chunk")
        body += chunk
        if len(body) > limit:
            _fail("body", "larger than %d bytes" % limit, 413)


class SpanReceiver:
    """An OTLP/HTTP JSON + Zipkin v2 collector for tests (see the module doc).

    Accepted spans (answered 2xx) are kept in arrival order; a POST answered
    with a scripted status (respond_with) is validated and recorded in posts()
    but its spans are not kept: the exporter is expected to send them again.
    Answers: OTLP 200 with `{}` (an empty ExportTraceServiceResponse), Zipkin
    202 with no body (what a real Zipkin answers; zipkin_status to change)."""

    MAX_BODY = 64 * 1024 * 1024

    def __init__(self, host="127.0.0.1", port=None, zipkin_status=202):
        self.host = host
        self.port = port
        self.zipkin_status = zipkin_status
        self._lock = threading.Lock()
        self._spans = []
        self._posts = []
        self._errors = []
        self._script = []  # [status, remaining count, retry_after]
        self._nconns = 0
        self._server = None
        self._thread = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        self._listen(pick_port=self.port is None)
        return self

    def __exit__(self, *exc):
        self.go_down()
        return False

    def _listen(self, pick_port=False):
        for attempt in range(5):
            if pick_port:
                self.port = free_port()
            try:
                server = _Server((self.host, self.port), _Handler, self)
                break
            except OSError as e:
                if not pick_port or attempt == 4:
                    raise AssertionError("span receiver cannot listen on %s:%s: %s"
                                         % (self.host, self.port, e))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="span-receiver-%d" % self.port, daemon=True)
        self._thread.start()

    @property
    def up(self):
        return self._server is not None

    def go_down(self):
        """Stop for real: close the listening socket (new connections are
        refused) and cut every open connection, idle keep-alive ones included.
        What was received so far stays readable. No-op when already down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # serve_forever returns: nothing more is accepted
        server.cut_connections()
        server.server_close()
        self._thread.join(10)
        self._thread = None

    def come_back(self):
        """Listen again on the same port (SO_REUSEADDR) and resume reception.
        No-op when already up."""
        if self._server is None:
            self._listen(pick_port=False)

    def respond_with(self, status, count=1, retry_after=None):
        """Answer the next `count` valid POSTs (either protocol) with `status`
        instead of 2xx (with a Retry-After header when retry_after is given).
        Calls queue up: respond_with(503); respond_with(429) -> 503, then 429."""
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._script.append([int(status), int(count), retry_after])

    def clear(self):
        """Forget the spans, posts and errors received so far (and any
        scripted responses not used yet)."""
        with self._lock:
            self._spans.clear()
            self._posts.clear()
            self._errors.clear()
            self._script.clear()

    # -- what was received -------------------------------------------------

    @property
    def otlp_url(self):
        return "http://%s:%d%s" % (self._url_host(), self.port, OTLP_PATH)

    @property
    def zipkin_url(self):
        return "http://%s:%d%s" % (self._url_host(), self.port, ZIPKIN_PATH)

    def _url_host(self):
        return "[%s]" % self.host if ":" in self.host else self.host

    @property
    def errors(self):
        """Why POSTs were refused (400/404/405/415...), oldest first (a copy)."""
        with self._lock:
            return list(self._errors)

    @property
    def connections(self):
        """TCP connections accepted so far (shows keep-alive reuse)."""
        with self._lock:
            return self._nconns

    def spans(self, kind=None):
        """Accepted normalized spans so far, in arrival order (a copy);
        kind "otlp"/"zipkin" keeps one protocol's."""
        with self._lock:
            return [dict(s) for s in self._spans if kind is None or s["proto"] == kind]

    def posts(self, kind=None):
        """One dict per POST (refused ones included), oldest first:
        path, proto ("otlp"/"zipkin"/None), headers (lower-case names),
        gzip (Content-Encoding: gzip), raw_len (bytes on the wire), body_len
        (decoded bytes, None if not decoded), nspans, status_sent, retry_after
        (header sent, or None), int_strings / int_numbers (OTLP intValues sent
        as JSON strings / numbers), error (str or None), conn (connection
        number, 1-based), t (time.monotonic() at arrival)."""
        with self._lock:
            return [dict(p, headers=dict(p["headers"])) for p in self._posts
                    if kind is None or p["proto"] == kind]

    def wait_spans(self, n, timeout, kind=None, pred=None):
        """Poll until at least n accepted spans (of protocol `kind`, matching
        pred(span)) are here; return all the matching ones. Fails at once when
        a POST was refused, and on timeout with what was received."""

        class Found(list):
            def __repr__(self):
                return "%d matching span(s)" % len(self)

        def matching():
            return Found(s for s in self.spans(kind) if pred is None or pred(s))

        what = "%d span(s)%s%s" % (n, " (%s)" % kind if kind else "",
                                   " matching the predicate" if pred else "")
        try:
            found = wait_until(matching, timeout, what, check=lambda v: len(v) >= n,
                               abort=lambda v: bool(self.errors))
        except AssertionError as e:
            posts = self.posts()
            raise AssertionError(
                "%s\n  span receiver: %d matching, %d span(s) in all (%s), %d POST(s), "
                "up=%s\n  errors: %r\n  last POST: %r"
                % (e, len(matching()), len(self.spans()),
                   dict(count_by(self.spans(), "proto")), len(posts), self.up,
                   self.errors[-3:], posts[-1] if posts else None)) from None
        return list(found)

    # -- request handling (handler threads) --------------------------------

    def _new_conn(self):
        with self._lock:
            self._nconns += 1
            return self._nconns

    def _handle_other(self, h):
        with self._lock:
            self._errors.append("%s %s: method not allowed" % (h.command, h.path))
        self._respond(h, 405, b"POST only\n", "text/plain", close=True)

    def _handle_post(self, h):
        headers = {}
        for k, v in h.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        rec = {"path": h.path, "proto": _PROTO_OF_PATH.get(h.path), "headers": headers,
               "gzip": (headers.get("content-encoding") or "").strip().lower() == "gzip",
               "raw_len": None, "body_len": None, "nspans": 0, "status_sent": None,
               "retry_after": None, "int_strings": 0, "int_numbers": 0, "error": None,
               "conn": h.server.conn_number(h.connection), "t": time.monotonic()}
        close = False
        spans = []
        try:
            try:
                raw = self._read_body(h, headers)
            except ReceiverError:
                close = True  # framing is lost: do not read another request
                raise
            rec["raw_len"] = len(raw)
            if rec["proto"] is None:
                _fail("path", "%r is neither %s nor %s" % (h.path, OTLP_PATH, ZIPKIN_PATH),
                      404)
            doc, rec["body_len"] = decode_body(raw, headers)
            if rec["proto"] == "otlp":
                counts = {"int_strings": 0, "int_numbers": 0}
                spans = parse_otlp(doc, counts)
                rec.update(counts)
            else:
                spans = parse_zipkin(doc)
            rec["nspans"] = len(spans)
        except Exception as e:  # noqa: BLE001 - anything unexpected is a refusal too
            status = e.status if isinstance(e, ReceiverError) else 400
            msg = str(e) if isinstance(e, ReceiverError) else "%s: %s" % (type(e).__name__, e)
            rec["error"] = msg
            rec["status_sent"] = status
            with self._lock:
                self._errors.append("POST %s: %s" % (h.path, msg))
                self._posts.append(rec)
            self._respond(h, status, (msg + "\n").encode(), "text/plain", close=close)
            return
        with self._lock:
            scripted = None
            if self._script:
                scripted = self._script[0]
                scripted[1] -= 1
                if scripted[1] == 0:
                    self._script.pop(0)
            if scripted is None:
                status = 200 if rec["proto"] == "otlp" else self.zipkin_status
                self._spans.extend(spans)
            else:
                status, rec["retry_after"] = scripted[0], scripted[2]
            rec["status_sent"] = status
            self._posts.append(rec)
        extra = {}
        if rec["retry_after"] is not None:
            extra["Retry-After"] = str(rec["retry_after"])
        if scripted is not None:
            body, ctype = b'{"code":14,"message":"scripted failure"}', "application/json"
        elif rec["proto"] == "otlp":
            body, ctype = b"{}", "application/json"
        else:
            body, ctype = b"", None
        self._respond(h, status, body, ctype, extra=extra)

    def _read_body(self, h, headers):
        te = (headers.get("transfer-encoding") or "").strip().lower()
        if te:
            if te != "chunked":
                _fail("Transfer-Encoding", "unsupported %r" % te, 501)
            if "content-length" in headers:
                _fail("headers", "both Transfer-Encoding and Content-Length")
            return _read_chunked(h.rfile, self.MAX_BODY)
        cl = headers.get("content-length")
        if cl is None:
            _fail("headers", "no Content-Length and not chunked", 411)
        if not _DIGITS.match(cl.strip()):
            _fail("Content-Length", "bad value %r" % cl)
        n = int(cl)
        if n > self.MAX_BODY:
            _fail("Content-Length", "%d is larger than %d" % (n, self.MAX_BODY), 413)
        raw = h.rfile.read(n)
        if len(raw) != n:
            _fail("body", "truncated: %d of %d bytes" % (len(raw), n))
        return raw

    @staticmethod
    def _respond(h, status, body, ctype, close=False, extra=None):
        try:
            h.send_response(status)
            if ctype:
                h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            if close:
                h.send_header("Connection", "close")
                h.close_connection = True
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            h.close_connection = True  # the client (or go_down) cut the connection


# ---------------------------------------------------------------------------
# Self-test: python3 tests/integration/span_receiver.py
# ---------------------------------------------------------------------------

def _post(url, body, headers, timeout=5):
    """POST with urllib; returns (status, headers with lower-case names, body).
    An HTTP error status is returned, not raised; connection errors raise."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _self_test():
    import http.client
    import urllib.error

    t0 = time.monotonic()
    now_ns = time.time_ns()
    tid, sid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "a3ce929d0e0e4736"

    def otlp_doc(span_overrides=None, pid_value=None):
        span = {
            "traceId": tid, "spanId": sid, "parentSpanId": pid,
            "traceState": "congo=t61rcWkgMzE", "flags": 257,
            "name": "GET /users/:id", "kind": 2,
            "startTimeUnixNano": str(now_ns), "endTimeUnixNano": str(now_ns + 1500000),
            "attributes": [
                {"key": "http.request.method", "value": {"stringValue": "GET"}},
                {"key": "http.response.status_code", "value": {"intValue": "500"}},
                {"key": "server.port", "value": {"intValue": 3000}},
                {"key": "bunscope.sampled", "value": {"boolValue": True}},
                {"key": "ratio", "value": {"doubleValue": 0.5}},
            ],
            "status": {"code": 2, "message": "HTTP 500"},
        }
        span.update(span_overrides or {})
        return {"resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "bun-app"}},
                {"key": "process.pid", "value": {"intValue": pid_value or "4242"}},
                {"key": "host.name", "value": {"stringValue": "box"}},
                {"key": "telemetry.sdk.name", "value": {"stringValue": "bunscope"}},
            ]},
            "scopeSpans": [{"scope": {"name": "bunscope", "version": "0.1"},
                            "spans": [span]}],
        }]}

    zipkin_doc = [{
        "traceId": tid, "id": "b7ad6b7169203331", "kind": "CLIENT",
        "name": "get", "timestamp": now_ns // 1000, "duration": 2500,
        "localEndpoint": {"serviceName": "bun-app", "port": 3000},
        "remoteEndpoint": {"ipv4": "127.0.0.1", "port": 8080},
        "tags": {"http.request.method": "GET", "http.response.status_code": "200"},
    }]
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    js = {"Content-Type": "application/json"}

    def enc(doc):
        return json.dumps(doc).encode()

    def expect(cond, what):
        if not cond:
            raise AssertionError(what)
        print("ok   %s" % what)

    with SpanReceiver() as rx:
        port = rx.port
        print("receiver on %s and %s" % (rx.otlp_url, rx.zipkin_url))

        # 1. OTLP, gzip, normalized
        st, hdr, body = _post(rx.otlp_url, gzip.compress(enc(otlp_doc())),
                              dict(gz, Authorization="Bearer x"))
        expect(st == 200 and body == b"{}" and hdr["content-type"] == "application/json",
               "OTLP gzip POST -> 200 {}")
        (s,) = rx.spans("otlp")
        want = {
            "trace_id": tid, "span_id": sid, "parent_id": pid, "name": "GET /users/:id",
            "kind": "server", "start_ns": now_ns, "end_ns": now_ns + 1500000,
            "status": "error", "status_message": "HTTP 500",
            "attrs": {"http.request.method": "GET", "http.response.status_code": 500,
                      "server.port": 3000, "bunscope.sampled": True, "ratio": 0.5},
            "resource": {"service.name": "bun-app", "process.pid": 4242,
                         "host.name": "box", "telemetry.sdk.name": "bunscope"},
            "trace_state": "congo=t61rcWkgMzE", "proto": "otlp",
            "scope": {"name": "bunscope", "version": "0.1"}, "flags": 257,
        }
        expect(s == want, "OTLP span normalized")
        (p,) = rx.posts("otlp")
        expect(p["gzip"] and p["nspans"] == 1 and p["status_sent"] == 200
               and p["int_strings"] == 2 and p["int_numbers"] == 1
               and p["headers"]["authorization"] == "Bearer x"
               and p["raw_len"] < p["body_len"],
               "OTLP post recorded (gzip, intValue 2 strings + 1 number, headers)")

        # 2. Zipkin, plain, normalized
        st, _, body = _post(rx.zipkin_url, enc(zipkin_doc), js)
        expect(st == 202 and body == b"", "Zipkin POST -> 202")
        (z,) = rx.spans("zipkin")
        expect(z == {
            "trace_id": tid, "span_id": "b7ad6b7169203331", "parent_id": None,
            "name": "get", "kind": "client", "start_ns": now_ns // 1000 * 1000,
            "end_ns": (now_ns // 1000 + 2500) * 1000, "status": "unset",
            "status_message": "", "attrs": zipkin_doc[0]["tags"],
            "resource": {"service.name": "bun-app"}, "trace_state": "", "proto": "zipkin",
            "local_port": 3000, "remote_ip": "127.0.0.1", "remote_port": 8080,
            "shared": False}, "Zipkin span normalized")
        expect(len(rx.wait_spans(2, 1)) == 2 and count_by(rx.spans(), "proto")
               == {"otlp": 1, "zipkin": 1}, "wait_spans(2) and count_by")
        expect(rx.errors == [], "no errors so far")

        # 3. invalid bodies are refused with 400 and recorded
        bad = [
            (rx.otlp_url, gz, enc(otlp_doc()), "gzip header, no gzip magic"),
            (rx.otlp_url, {"Content-Type": "text/plain"}, enc(otlp_doc()), "Content-Type"),
            (rx.otlp_url, js, enc(otlp_doc({"traceId": "0" * 32})), "all-zero traceId"),
            (rx.otlp_url, js, enc(otlp_doc({"spanId": sid.upper()})), "uppercase spanId"),
            (rx.otlp_url, js, enc(otlp_doc({"startTimeUnixNano": now_ns})), "numeric time"),
            (rx.otlp_url, js, enc(otlp_doc({"endTimeUnixNano": str(now_ns - 1)})), "end<start"),
            (rx.otlp_url, js, enc(otlp_doc({"kind": "SPAN_KIND_SERVER"})), "kind as string"),
            (rx.otlp_url, js, enc(otlp_doc({"parentSpanID": pid})), "misspelled field"),
            (rx.otlp_url, js, enc(otlp_doc(pid_value="42x")), "bad intValue"),
            (rx.zipkin_url, js, enc([dict(zipkin_doc[0], tags={"n": 1})]), "non-string tag"),
            (rx.zipkin_url, js, enc([dict(zipkin_doc[0], timestamp=now_ns)]), "ns timestamp"),
        ]
        for url, headers, body, what in bad:
            st, _, _ = _post(url, body, headers)
            expect(st in (400, 415) and len(rx.errors) == 1, "refused (%d): %s -> %s"
                   % (st, what, rx.errors[-1:]))
            rx.clear()
        st, _, _ = _post(rx.otlp_url, enc(otlp_doc(pid_value=4242)), js)
        expect(st == 200 and rx.posts()[0]["int_numbers"] == 2 and not rx.posts()[0]["gzip"]
               and rx.spans()[0]["parent_id"] == pid, "plain OTLP, numeric intValues accepted")
        st, _, _ = _post(rx.otlp_url, enc(otlp_doc({"parentSpanId": ""})), js)
        expect(st == 200 and rx.spans()[-1]["parent_id"] is None,
               "empty parentSpanId is a root span")

        # 4. wait_spans times out with a useful message
        try:
            rx.wait_spans(100, 0.2, kind="zipkin")
        except AssertionError as e:
            msg = str(e)
        else:
            raise AssertionError("wait_spans(100) did not time out")
        expect("0 matching" in msg and "last POST" in msg, "wait_spans timeout message")

        # 5. go_down: refused, and a kept-alive connection is cut too
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", OTLP_PATH, body=enc(otlp_doc()), headers=js)
        r = conn.getresponse()
        r.read()
        expect(r.status == 200 and not r.will_close, "keep-alive connection open")
        rx.go_down()
        try:
            _post(rx.otlp_url, enc(otlp_doc()), js)
        except urllib.error.URLError as e:
            refused = isinstance(e.reason, ConnectionRefusedError)
        except ConnectionRefusedError:
            refused = True
        else:
            refused = False
        expect(refused, "down: POST refused (ConnectionRefusedError)")
        try:
            conn.request("POST", OTLP_PATH, body=enc(otlp_doc()), headers=js)
            conn.getresponse().read()
            cut = False
        except (OSError, http.client.HTTPException):
            cut = True
        conn.close()
        expect(cut, "down: the old keep-alive connection is cut too")
        n_before = len(rx.spans())

        # 6. come_back: same port, works again
        rx.come_back()
        st, _, _ = _post(rx.otlp_url, gzip.compress(enc(otlp_doc())), gz)
        expect(rx.port == port and st == 200 and len(rx.spans()) == n_before + 1,
               "come_back: same port %d, POST accepted" % port)

        # 7. respond_with: scripted 503s (spans not kept), then 2xx again
        rx.clear()
        rx.respond_with(503, count=2, retry_after=1)
        results = []
        for url in (rx.otlp_url, rx.zipkin_url, rx.zipkin_url):
            doc = otlp_doc() if url == rx.otlp_url else zipkin_doc
            st, hdr, _ = _post(url, enc(doc), js)
            results.append((st, hdr.get("retry-after")))
        expect(results == [(503, "1"), (503, "1"), (202, None)],
               "respond_with(503, count=2, retry_after=1): %r" % results)
        expect([p["status_sent"] for p in rx.posts()] == [503, 503, 202]
               and len(rx.spans()) == 1 and rx.spans()[0]["proto"] == "zipkin",
               "scripted POSTs recorded, their spans not kept")
        expect(rx.errors == [], "no errors")
    expect(not rx.up, "stopped on exit")
    print("self-test passed in %.2fs" % (time.monotonic() - t0))


if __name__ == "__main__":
    try:
        _self_test()
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
