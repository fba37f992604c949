#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""
Write the seed corpus of the fuzz targets (tests/fuzz/corpus/TARGET/NAME)
from readable streams: the checked-in files are this script's output, plus
inputs the fuzzers found that crashed (kept by hand, named crash-*).

    python3 tests/fuzz/gen_corpus.py        (rewrites the generated seeds)

The binary layouts are the ones the targets' comments describe.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

REQ, RESP = 0, 1

# ---- fuzz_http / fuzz_http_win7 / fuzz_ws records ---------------------------


def seg(d, data):
    """A readable segment: one syscall's bytes in direction d."""
    n = len(data)
    assert 0 < n <= 65535
    if n <= 30:
        return bytes([d | (n << 3)]) + data
    if n <= 286:
        return bytes([d, n - 31]) + data
    return bytes([d | (31 << 3)]) + struct.pack("<H", n) + data


def split(d, data, *cuts):
    """data as several segments, cut at the given offsets."""
    out, prev = b"", 0
    for c in list(cuts) + [len(data)]:
        if c > prev:
            out += seg(d, data[prev:c])
        prev = c
    return out


def bytewise(d, data):
    return b"".join(seg(d, data[i:i + 1]) for i in range(len(data)))


def faulty(d, data, k):
    """A segment whose reads fail from offset k on (a page not present)."""
    n = len(data)
    assert 0 < n <= 30 or 31 <= n <= 286
    if n <= 30:
        return bytes([d | (1 << 1) | (n << 3), k]) + data
    return bytes([d | (1 << 1), n - 31, k]) + data


def unreadable(d, v, shift=0):
    """(v + 1) << shift bytes that cannot be read (sendfile)."""
    return bytes([d | (2 << 1) | (shift << 3)]) + struct.pack("<H", v)


CLOSE = bytes([3 << 1 | (0 << 3)])
SHUT_WR = bytes([3 << 1 | (1 << 3)])
TICK = bytes([3 << 1 | (2 << 3)])

# config byte
SERVER, CLIENT, SERVER_RESYNC, CLIENT_RESYNC = 0, 1, 2, 3
TRACES = 0x04
SAMPLE_ALL, SAMPLE_PARENT, SAMPLE_CAP = 0x08, 0x10, 0x18
ROUTES = 0x20


def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: localhost:3000\r\nUser-Agent: t\r\n" + extra + b"\r\n"


def resp(body=b"hi", status=b"200 OK", extra=b""):
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain;charset=utf-8\r\n"
            b"Date: Sun, 22 Nov 2026 09:54:49 GMT\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


CANNED = {
    400: b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n",
    408: b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
    505: b"HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\r\n",
}

TP = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WS_REQ = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
WS_101 = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def frame(op, payload=b"", fin=True, masked=False, rsv=0, force_len=None):
    """One WebSocket frame (RFC 6455 5.2)."""
    n = len(payload)
    l7 = force_len or (n if n < 126 else 126 if n < 65536 else 127)
    h = bytes([(0x80 if fin else 0) | (rsv << 4) | op, (0x80 if masked else 0) | l7])
    if l7 == 126:
        h += struct.pack(">H", n)
    elif l7 == 127:
        h += struct.pack(">Q", n)
    if masked:
        key = b"\x37\xfa\x21\x3d"
        h += key
        payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return h + payload


def chunked(*parts, ext=b""):
    out = b""
    for p in parts:
        out += b"%x" % len(p) + ext + b"\r\n" + p + b"\r\n"
    return out + b"0\r\n\r\n"


def http_seeds():
    s = {}
    s["get"] = bytes([SERVER]) + seg(REQ, get(b"/hello?x=1")) + seg(RESP, resp())
    s["keepalive"] = bytes([SERVER | ROUTES]) + b"".join(
        seg(REQ, get(b"/users/%d" % i)) + seg(RESP, resp(b"{}")) for i in range(3)) + CLOSE
    s["pipelined"] = (bytes([SERVER]) + seg(REQ, get(b"/a") * 3 + get(b"/b") + get(b"/a")) +
                      seg(RESP, resp() * 5))
    s["pipeline_overflow"] = (bytes([SERVER]) +
                              seg(REQ, b"".join(get(b"/p%d" % i) for i in range(12))) +
                              seg(RESP, resp() * 12))
    body = b'{"name":"x","n":12345}'
    post = (b"POST /api/items HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    s["post_cl_split"] = (bytes([SERVER]) + seg(REQ, post) + split(REQ, body, 5, 9) +
                          seg(RESP, resp(b"created", b"201 Created")))
    creq = (b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    cbody = chunked(b"hello", b" world" * 3, b"!")
    s["post_chunked_split"] = (bytes([SERVER]) + seg(REQ, creq) +
                               split(REQ, cbody, 1, 2, 4, 10, 14, 30) + seg(RESP, resp()))
    s["post_chunked_ext"] = (bytes([SERVER]) + seg(REQ, creq + chunked(b"abc", ext=b";x=1")) +
                             seg(RESP, resp()))
    chead = b"HTTP/1.1 200 OK\r\nDate: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    cresp = chunked(b"a" * 40, b"b" * 300, b"c")
    s["resp_chunked_split"] = (bytes([SERVER]) + seg(REQ, get(b"/stream")) + seg(RESP, chead) +
                               split(RESP, cresp, 1, 3, 45, 46, 47, 360) + seg(REQ, get(b"/next")) +
                               seg(RESP, resp()))
    s["resp_chunked_big"] = (bytes([SERVER]) + seg(REQ, get(b"/big")) +
                             seg(RESP, chead + b"100000\r\n") + unreadable(RESP, 0xffff, 4) +
                             seg(RESP, b"\r\n0\r\n\r\n"))
    s["head_204_304_100"] = (bytes([SERVER]) +
                             seg(REQ, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n") +
                             seg(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n") +
                             seg(REQ, get(b"/n")) + seg(RESP, b"HTTP/1.1 204 No Content\r\n\r\n") +
                             seg(REQ, get(b"/c", b"If-None-Match: \"x\"\r\n")) +
                             seg(RESP, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n") +
                             seg(REQ, post) +
                             seg(RESP, b"HTTP/1.1 100 Continue\r\n\r\n") + seg(REQ, body) +
                             seg(RESP, resp()))
    s["http10_until_close"] = (bytes([SERVER]) + seg(REQ, b"GET / HTTP/1.0\r\n\r\n") +
                               seg(RESP, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n") +
                               seg(RESP, b"body until the connection ends") + SHUT_WR + CLOSE)
    for code, text in CANNED.items():
        s["canned_%d" % code] = (bytes([SERVER]) + seg(REQ, get(b"/x")) + TICK +
                                 seg(RESP, text) + CLOSE)
    s["reject_method"] = bytes([SERVER]) + seg(REQ, b"FOO / HTTP/1.1\r\nHost: h\r\n\r\n")
    s["reject_tls"] = bytes([SERVER]) + seg(REQ, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    s["reject_version"] = bytes([SERVER]) + seg(REQ, b"GET / HTTP/2.0\r\nHost: h\r\n\r\n")
    s["reject_host"] = (bytes([SERVER]) + seg(REQ, b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n") +
                        seg(RESP, CANNED[400]))
    s["reject_cl_te"] = (bytes([SERVER]) +
                         seg(REQ, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
    s["reject_bad_cl"] = (bytes([SERVER]) +
                          seg(REQ, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n"))
    s["reject_bad_chunk"] = (bytes([SERVER]) + seg(REQ, creq + b"zz\r\nab\r\n") +
                             seg(RESP, CANNED[400]))
    s["absolute_long_path"] = (bytes([SERVER | ROUTES]) +
                               seg(REQ, get(b"http://example.com:8080/" + b"seg/" * 60 + b"?q=1")) +
                               seg(RESP, resp()))
    long_field = b"X-Long: " + b"v" * 700 + b"\r\n"
    s["long_field_split"] = (bytes([SERVER]) + split(REQ, get(b"/l", long_field), 40, 300, 600) +
                             seg(RESP, resp()))
    s["bytewise"] = (bytes([SERVER]) + bytewise(REQ, get(b"/b")) +
                     bytewise(RESP, resp(b"ok", extra=b"Transfer-Encoding: identity\r\n")))
    s["sendfile_body"] = (bytes([SERVER]) + seg(REQ, get(b"/file")) +
                          seg(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n") +
                          unreadable(RESP, 2999, 10) + seg(REQ, get(b"/file")) +
                          seg(RESP, resp()))
    s["connect_tunnel"] = (bytes([SERVER]) +
                           seg(REQ, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n") +
                           seg(RESP, b"HTTP/1.1 200 Connection Established\r\n\r\n") +
                           seg(REQ, b"\x16\x03\x01 tunnelled bytes") + seg(RESP, b"\x16\x03\x03 back"))
    s["head_too_large"] = (bytes([SERVER]) + seg(REQ, get(b"/big", b"X-Big: " + b"b" * 16400 + b"\r\n")) +
                           seg(RESP, CANNED[431]))
    s["too_many_fields"] = (bytes([SERVER]) +
                            seg(REQ, get(b"/f", b"".join(b"X-%d: v\r\n" % i for i in range(200)))) +
                            seg(RESP, CANNED[431]))
    long_cl = b"POST /l HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"0" * 300 + b"5\r\n\r\nhello"
    s["long_cl_split"] = bytes([SERVER]) + split(REQ, long_cl, 40, 320) + seg(RESP, resp())
    long_te = (b"POST /l HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + b" " * 280 +
               b"chunked\r\n\r\n0\r\n\r\n")
    s["long_te_split"] = bytes([SERVER]) + split(REQ, long_te, 50, 320) + seg(RESP, resp())
    s["head_overflow"] = (bytes([SERVER]) +
                          seg(REQ, b"".join(b"HEAD /h%d HTTP/1.1\r\nHost: h\r\n\r\n" % i
                                            for i in range(14))) +
                          seg(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" * 14))
    s["faulty_read"] = (bytes([SERVER]) + faulty(REQ, get(b"/f"), 20) + seg(REQ, get(b"/g")) +
                        seg(RESP, resp()) + faulty(RESP, resp(), 5))
    s["upgrade_refused"] = (bytes([SERVER]) + seg(REQ, WS_REQ) +
                            seg(RESP, b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n") +
                            seg(REQ, get(b"/after")) + seg(RESP, resp()))
    s["client"] = (bytes([CLIENT]) + seg(REQ, get(b"/upstream")) + seg(RESP, resp(b"x" * 40)) +
                   seg(REQ, get(b"/a")) + seg(RESP, CANNED[400]) + CLOSE)
    s["client_upgrade"] = (bytes([CLIENT]) + seg(REQ, WS_REQ) + seg(RESP, WS_101) +
                           seg(REQ, frame(1, b"hello", masked=True)))
    s["resync"] = (bytes([SERVER_RESYNC]) + seg(REQ, b"ody of a request from before\r\nmore\r\n") +
                   seg(RESP, resp(b"ok")) + seg(REQ, get(b"/now")) + seg(RESP, resp()))
    s["client_resync"] = (bytes([CLIENT_RESYNC]) + seg(RESP, b"tail\r\n\r\n") +
                          seg(REQ, get(b"/x")) + seg(RESP, resp()))
    s["traced"] = (bytes([SERVER | TRACES | SAMPLE_PARENT]) +
                   seg(REQ, get(b"/t?q=1", b"traceparent: " + TP + b"\r\n"
                                b"tracestate: rojo=00f067aa0ba902b7, congo=t61rcWkgMzE\r\n")) +
                   seg(RESP, resp()) +
                   seg(REQ, get(b"/t?q=1", b"traceparent: " + TP[:-1] + b"0\r\n")) +
                   seg(RESP, resp()))
    s["traced_pipelined"] = (bytes([SERVER | TRACES | SAMPLE_ALL]) +
                             seg(REQ, b"".join(get(b"/p%d" % (i % 3)) for i in range(11))) +
                             seg(RESP, resp() * 4) + CLOSE)
    s["traced_bad_parent"] = (bytes([SERVER | TRACES | SAMPLE_CAP]) +
                              seg(REQ, get(b"/", b"traceparent: " + TP.upper() + b"\r\n"
                                           b"traceparent: " + TP + b"\r\n")) +
                              seg(RESP, resp()))
    ws = (frame(1, b"Hello", masked=True) + frame(1, b"frag", fin=False, masked=True) +
          frame(9, b"ping", masked=True) + frame(0, b"ment", masked=True) +
          frame(2, b"\x00" * 200, masked=True) + frame(8, b"\x03\xe8", masked=True))
    wso = frame(1, b"welcome") + frame(10, b"ping") + frame(2, b"b" * 300) + frame(8, b"\x0f\xa1")
    s["ws_upgrade"] = (bytes([SERVER | TRACES | SAMPLE_ALL]) + seg(REQ, WS_REQ) +
                       seg(RESP, WS_101 + frame(1, b"hi")) + split(REQ, ws, 1, 3, 7, 20) +
                       split(RESP, wso, 2, 5, 12) + CLOSE)
    return s


def ws_seeds():
    s = {}
    pre = bytes([SERVER])
    s["text_echo"] = pre + seg(REQ, frame(1, b"Hello", masked=True)) + seg(RESP, frame(1, b"Hello"))
    s["fragments_ping"] = pre + seg(REQ, frame(1, b"ab", fin=False, masked=True) +
                                    frame(9, b"", masked=True) + frame(0, b"cd", fin=False, masked=True) +
                                    frame(0, b"ef", masked=True))
    s["len16_split"] = pre + split(REQ, frame(2, b"z" * 1000, masked=True), 1, 2, 3, 5, 8)
    s["len64_unreadable"] = (pre + seg(RESP, frame(2, b"", force_len=127)[:2] +
                                       struct.pack(">Q", 70000)) + unreadable(RESP, 0xffff) +
                             seg(RESP, b"x" * 4464 + frame(10, b"")))
    s["close_codes"] = (pre + seg(REQ, frame(8, b"\x03\xe8bye", masked=True)) +
                        seg(RESP, frame(8, b"")) + CLOSE)
    s["close_split_code"] = pre + split(REQ, frame(8, b"\x0f\xa1", masked=True), 6, 7)
    s["bytewise"] = pre + bytewise(REQ, frame(1, b"abc", masked=True) + frame(10, b"", masked=True))
    s["err_opcode"] = pre + seg(REQ, frame(3, b"x", masked=True))
    s["err_rsv"] = pre + seg(RESP, frame(1, b"x", rsv=2))
    s["err_unmasked"] = pre + seg(REQ, frame(1, b"x"))
    s["err_masked_server"] = pre + seg(RESP, frame(1, b"x", masked=True))
    s["err_long_control"] = pre + seg(REQ, frame(9, b"p" * 126, masked=True))
    s["err_orphan_cont"] = pre + seg(REQ, frame(0, b"x", masked=True))
    s["err_len_msb"] = pre + seg(RESP, b"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01")
    s["faulty_header"] = (pre + faulty(REQ, frame(1, b"x" * 40, masked=True), 1) +
                          faulty(RESP, frame(8, b"\x03\xe8"), 3))
    s["many_small"] = pre + seg(RESP, b"".join(frame(1, b"m%d" % i) for i in range(40)))
    return s


def tp_seeds():
    return {
        "valid_sampled": TP,
        "valid_unsampled": TP[:-1] + b"0",
        "upper": TP.upper(),
        "zero_trace": b"00-" + b"0" * 32 + TP[35:],
        "zero_parent": TP[:36] + b"0" * 16 + TP[52:],
        "version_ff": b"ff" + TP[2:],
        "version_01_longer": b"01" + TP[2:] + b"-what-the-future-holds",
        "version_01_bad_tail": b"01" + TP[2:] + b"x",
        "v00_longer": TP + b"-x",
        "short": TP[:54],
        "dashes_moved": TP[:2] + b"x" + TP[3:],
        "empty": b"",
    }


def routes_seeds():
    def r(maxr, *lines):
        return bytes([maxr]) + b"\n".join(lines)
    return {
        "ids": r(20, b"/users/42", b"/users/43/posts", b"/orders/3f2b1c6a-9d4e-4b7a-8c1d-2e3f4a5b6c7d",
                 b"/obj/5f1d7e2a9b3c4d6e8f7a", b"/deadbeefdeadbeef"),
        "patterns": r(10, b"@/users/:id", b"@/static/*", b"@/a/:x/b", b"/users/7", b"/static/js/app.js",
                      b"/users/7/", b"/a/1/b", b"!/static/some/long/trunc"),
        "bad_patterns": r(10, b"@users", b"@/a/*/b", b"@/x/:", b"@/sp ace", b"@/q?x", b"@/%zz",
                          b"@/ok/%41"),
        "absolute": r(10, b"http://example.com:8080/a/b?x=1", b"HTTPS://h", b"https://h?x",
                      b"http://h#frag"),
        "connect": r(5, b"example.com:443", b"*", b"", b"?only=query"),
        "escapes": r(10, b"/caf\xc3\xa9/%zz/%41/\"q\"/back\\slash/ /\x01", b"/%", b"/%4"),
        "truncated": r(10, b"!/a/b/c/partial", b"!", b"!http://hostname-only", b"!/x?y"),
        "long": r(10, b"/" + b"segment/" * 30, b"/" + b"x" * 200),
        "overflow": r(2, b"/a", b"/b", b"/c", b"/d", b"/a"),
        "forget": r(10, b"/a/1", b"-/a/1", b"/b", b"-/never", b"/a/1"),
        "zero_routes": r(0, b"/a", b"@/b"),
        "empty_segments": r(10, b"//a", b"/a/", b"///", b"/a//b/"),
    }


def escape_seeds():
    return {
        "ascii": b"/users/42?x=1",
        "quotes": b'say "hi" \\ back\\slash',
        "newlines": b"line1\nline2\r\n\ttab",
        "controls": bytes(range(0, 32)) + b"\x7f",
        "utf8": "café €uro 𝄞 ✓".encode(),
        "invalid_utf8": b"\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe0\x80\x80 \xff \x80 \xc3",
        "truncated_seq": b"abc\xe2\x82",
        "empty": b"",
    }


def values_seeds():
    def v(which, text):
        return bytes([which]) + text
    s = {}
    # " -1" was once taken as 2^64 - 1 bytes, "+5" and " 7" as numbers (fuzz_values)
    for i, t in enumerate([b"4G", b"512KiB", b"64M", b"1T", b"3KB", b"0", b"-1", b" -1",
                           b"18446744073709551615K", b"7x"]):
        s["bytes_%d" % i] = v(0, t)
    for i, t in enumerate([b"9464", b"0", b"65536", b"+5", b" 7", b"99999999999999999999"]):
        s["uint_%d" % i] = v(1, t)
    for i, t in enumerate([b"20:40", b"5", b"0:1", b"1:0", b"4294967296:1", b"10:999999999", b":"]):
        s["rate_%d" % i] = v(2, t)
    for i, t in enumerate([b"100", b"100:20", b"100:100", b"1", b"5:"]):
        s["shed_%d" % i] = v(3, t)
    for i, t in enumerate([b"10.0.0.0/8", b"10.1.2.3/8", b"192.168.1.7", b"2001:db8::/32",
                           b"::ffff:1.2.3.4/120", b"fe80::1/129", b"1.2.3.4/33", b"1.2.3.4/",
                           b"/8"]):
        s["cidr_%d" % i] = v(4, t)
    s["cidr_file"] = v(5, b"# allow list\n10.0.0.0/8\n  192.168.0.0/16  # office\n\n2001:db8::/48\n")
    s["cidr_file_bad"] = v(5, b"10.0.0.0/8\nnot-an-address\n")
    s["cidr_file_full"] = v(5, b"1.1.1.1\n2.2.2.2\n3.3.3.3\n4.4.4.4\n5.5.5.5\n")
    for i, t in enumerate([b"127.0.0.1:9464", b":9464", b"[::1]:9464", b"[fe80::1%eth0]:1",
                           b"localhost:80", b"::1:80", b"1.2.3.4:0", b"1.2.3.4:65536", b"[::1]",
                           b"[::1]x"]):
        s["listen_%d" % i] = v(6, t)
    for i, t in enumerate([b"api-key=secret,tenant = acme ", b"a=%0d%0aInjected: 1", b"k=v%2Cw",
                           b"=v", b"k", b"k=%", b"a=1,b=2,c=3,d=4,e=5", b"x\x01y=1"]):
        s["headers_%d" % i] = v(7, t)
    for i, t in enumerate([b"gzip, deflate, br", b"gzip;q=0", b"x-gzip;q=0.5", b"*",
                           b"identity, GZIP ;q=1.000", b"br;q=1, gzip;q=0.000"]):
        s["gzip_%d" % i] = v(8, t)

    def traces(sw, env, flags):
        names = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL",
                 "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS",
                 "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION",
                 "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                 "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"]
        fnames = ["otlp_endpoint", "otlp_headers", "compression", "zipkin_url", "file",
                  "sampler", "ratio", "service"]
        fields = [env.get(n, b"") for n in names] + [flags.get(n, b"") for n in fnames]
        return v(9, bytes([sw]) + b"\n".join(fields))
    s["traces_env"] = traces(0, {"OTEL_EXPORTER_OTLP_ENDPOINT": b"http://collector:4318/",
                                 "OTEL_EXPORTER_OTLP_HEADERS": b"k=v",
                                 "OTEL_TRACES_SAMPLER": b"parentbased_traceidratio",
                                 "OTEL_TRACES_SAMPLER_ARG": b"0.25",
                                 "OTEL_SERVICE_NAME": b"shop"}, {})
    s["traces_flags"] = traces(1 | 4 | 16, {}, {"otlp_endpoint": b"https://h/v1/traces",
                                                "ratio": b"0.5", "compression": b"none",
                                                "zipkin_url": b"http://z:9411/api/v2/spans"})
    s["traces_bad"] = traces(8, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": b"grpc://h:4317",
                                 "OTEL_EXPORTER_OTLP_PROTOCOL": b"grpc"}, {})
    s["traces_disabled"] = traces(2, {"OTEL_SDK_DISABLED": b"true",
                                      "OTEL_EXPORTER_OTLP_ENDPOINT": b"http://c:4318",
                                      "OTEL_TRACES_EXPORTER": b"zipkin"},
                                  {"file": b"/tmp/spans.jsonl", "sampler": b"always_off"})
    s["traces_query_url"] = traces(0, {}, {"otlp_endpoint": b"http://h/?x=1"})
    for i, t in enumerate([b"api", b"strict", b"burst", b"nope"]):
        s["preset_%d" % i] = v(10, t)
    return s


def main():
    targets = {"http": http_seeds(), "ws": ws_seeds(), "traceparent": tp_seeds(),
               "routes": routes_seeds(), "escape": escape_seeds(), "values": values_seeds()}
    for t, seeds in targets.items():
        d = os.path.join(OUT, t)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if not f.startswith("crash-"):
                os.remove(os.path.join(d, f))
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%-12s %3d seeds" % (t, len(seeds)))


if __name__ == "__main__":
    main()
