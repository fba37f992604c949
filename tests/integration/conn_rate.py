#!/usr/bin/env python3
"""Paced TCP clients for the rate-limiter tests (Python 3 stdlib only).

Meant to run inside a client network namespace (see netns.py), e.g.

    ip netns exec NS python3 tests/integration/conn_rate.py HOST PORT \\
        --rate 50 --seconds 2 --timeout 0.5 [--http | --hold]

HOST is an IPv4 or IPv6 literal. Prints exactly one JSON line on stdout and
exits 0 (exit 2: bad arguments).

Connection mode (default): attempt k starts at k/RATE seconds, for every k
below RATE*SECONDS (a late process catches up with the schedule, it never
skips a slot, so `attempted` is RATE*SECONDS rounded down). The sockets are
non-blocking and watched by one selector, so many attempts are in flight at
once. An attempt is `ok` when its handshake completes within TIMEOUT of its
start and, with --http, the response to
`GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n` starts with
`HTTP/1.1 ` within a further TIMEOUT (cut short at the hard stop, SECONDS +
TIMEOUT + 1.5 s); it is `failed` otherwise (timeout, refused, reset, ...).
A socket is closed at its deadline, so a dropped SYN counts as failed
instead of being rescued by the kernel's SYN retransmission (1 s, above the
usual TIMEOUT of 0.5 s).

    {"attempted": N, "ok": N, "failed": N, "seconds": <attempt phase>,
     "ok_times": [<start of each ok attempt, s after the first, ms rounded>],
     "errors": {"timeout": N, "ECONNREFUSED": N, ...}}

Hold mode (--hold): ONE connection (TCP_NODELAY, so each request is its own
packet), `GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n` written at RATE per second
for SECONDS, the keep-alive responses parsed (Content-Length or chunked
bodies, so a body or a read boundary cannot fake or hide a status line) and
counted until all are in or SECONDS + TIMEOUT have passed.

    {"sent": N, "responses": N, "seconds": <send phase>, "closed": <peer
     closed>, "error": null | "<what went wrong>"}

`seconds` is the measured length of the paced phase: from the first slot
until SECONDS have passed and every slot was used (SECONDS and a few ms).
`sent` counts requests fully handed to the kernel. Runtime is bounded by
SECONDS + TIMEOUT + 1.5 s in connection mode and by TIMEOUT (connect) +
SECONDS + TIMEOUT in hold mode, plus interpreter start-up.
"""

import argparse
import collections
import errno
import heapq
import itertools
import json
import math
import resource
import selectors
import socket
import sys
import time

CONN_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
HOLD_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
STATUS_PREFIX = b"HTTP/1.1 "
SLACK = 1.5  # connection mode: hard stop at SECONDS + TIMEOUT + SLACK


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def raise_fd_limit():
    """Many attempts are in flight at once: lift the soft fd limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def err_name(code):
    return errno.errorcode.get(code, "errno%d" % code)


def n_slots(rate, seconds):
    """How many paced slots fit: at most rate*seconds (float noise forgiven)."""
    return max(0, int(math.floor(rate * seconds + 1e-9)))


# ---------------------------------------------------------------------------
# Connection mode
# ---------------------------------------------------------------------------

class Attempt:
    """One connection attempt: connect, then (with --http) send and read."""

    __slots__ = ("sock", "started", "deadline", "state", "out", "head")

    def __init__(self, sock, started, deadline):
        self.sock = sock
        self.started = started    # seconds after the attempt phase began
        self.deadline = deadline  # monotonic
        self.state = "connect"    # connect -> send -> recv (with --http)
        self.out = CONN_REQUEST
        self.head = b""


def run_connections(host, port, rate, seconds, timeout, http):
    fam = family_of(host)
    addr = (host, port, 0, 0) if fam == socket.AF_INET6 else (host, port)
    total = n_slots(rate, seconds)
    sel = selectors.DefaultSelector()
    deadlines = []  # heap of (deadline, tiebreak, seq, Attempt); stale entries skipped
    tiebreak = itertools.count()
    live = {}       # seq -> Attempt still open
    result = {"attempted": 0, "ok": 0, "failed": 0, "seconds": 0.0,
              "ok_times": [], "errors": {}}

    def finish(seq, ok, why=None):
        a = live.pop(seq)
        try:
            sel.unregister(a.sock)
        except (KeyError, ValueError):
            pass
        a.sock.close()
        if ok:
            result["ok"] += 1
            result["ok_times"].append(round(a.started, 3))
        else:
            result["failed"] += 1
            result["errors"][why] = result["errors"].get(why, 0) + 1

    def connected(seq, a):
        if not http:
            finish(seq, True)
            return
        # The response gets its own TIMEOUT, counted from the handshake.
        a.state = "send"
        a.deadline = min(time.monotonic() + timeout, hard_end)
        heapq.heappush(deadlines, (a.deadline, next(tiebreak), seq, a))
        sel.modify(a.sock, selectors.EVENT_WRITE, seq)

    def start_attempt(seq):
        now = time.monotonic()
        result["attempted"] += 1
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
        except OSError as e:  # e.g. EMFILE: a failed attempt, not a crash
            result["failed"] += 1
            why = err_name(e.errno)
            result["errors"][why] = result["errors"].get(why, 0) + 1
            return
        s.setblocking(False)
        a = Attempt(s, now - t0, now + timeout)
        live[seq] = a
        sel.register(s, selectors.EVENT_WRITE, seq)
        heapq.heappush(deadlines, (a.deadline, next(tiebreak), seq, a))
        rc = s.connect_ex(addr)
        if rc == 0:
            connected(seq, a)
        elif rc != errno.EINPROGRESS:
            finish(seq, False, err_name(rc))

    def on_event(seq):
        a = live[seq]
        if a.state == "connect":
            rc = a.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc:
                finish(seq, False, err_name(rc))
            else:
                connected(seq, a)
        elif a.state == "send":
            try:
                n = a.sock.send(a.out)
            except OSError as e:
                finish(seq, False, err_name(e.errno))
                return
            a.out = a.out[n:]
            if not a.out:
                a.state = "recv"
                sel.modify(a.sock, selectors.EVENT_READ, seq)
        else:
            try:
                data = a.sock.recv(4096)
            except OSError as e:
                finish(seq, False, err_name(e.errno))
                return
            if not data:
                finish(seq, False, "eof")
                return
            a.head += data
            if len(a.head) >= len(STATUS_PREFIX):
                if a.head.startswith(STATUS_PREFIX):
                    finish(seq, True)
                else:
                    finish(seq, False, "bad_response")

    t0 = time.monotonic()
    phase_end = t0 + seconds
    hard_end = phase_end + timeout + SLACK
    seq = 0
    phase_over = False
    while True:
        now = time.monotonic()
        # Start every attempt that is due (catching up if we fell behind).
        while not phase_over and seq < total and t0 + seq / rate <= now:
            start_attempt(seq)
            seq += 1
        if not phase_over and now >= phase_end:
            phase_over = True
            result["seconds"] = round(now - t0, 3)
        # Expire attempts whose deadline passed: closing the socket stops any
        # SYN retransmission.
        while deadlines and deadlines[0][0] <= now:
            _, _, dseq, a = heapq.heappop(deadlines)
            if live.get(dseq) is a and a.deadline <= now:
                finish(dseq, False, "timeout")
        if phase_over and not live:
            break
        # Sleep until the next slot, the next deadline or the phase end.
        wake = hard_end
        if not phase_over:
            wake = min(wake, phase_end)
            if seq < total:
                wake = min(wake, t0 + seq / rate)
        if deadlines:
            wake = min(wake, deadlines[0][0])
        for key, _ in sel.select(max(0.0, wake - time.monotonic())):
            if key.data in live:
                on_event(key.data)
    sel.close()
    return result


# ---------------------------------------------------------------------------
# Hold mode
# ---------------------------------------------------------------------------

class ResponseCounter:
    """Counts HTTP/1.1 responses in a byte stream fed in arbitrary pieces.

    Bodies are skipped by Content-Length or chunked framing, so a status line
    is only looked for where a response must start."""

    def __init__(self):
        self.buf = b""
        self.count = 0
        self.state = "head"    # head | body | chunk_size | chunk_data | trailer | broken
        self.left = 0          # bytes of body/chunk (+ CRLF) still to skip
        self.error = None

    def feed(self, data):
        self.buf += data
        try:
            while self.state != "broken" and self._step():
                pass
        except ValueError as e:  # a length or chunk size that is not a number
            self._broken("bad framing: %s" % e)

    def _step(self):
        """Advance by one parsing step; False when more data is needed."""
        if self.state == "head":
            if self.buf and not STATUS_PREFIX.startswith(self.buf[:len(STATUS_PREFIX)]):
                return self._broken("response does not start with %r: %r"
                                    % (STATUS_PREFIX, self.buf[:40]))
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            self.count += 1
            lines = head.split(b"\r\n")
            status = lines[0].split(b" ", 2)
            code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip().lower()
            if code // 100 == 1 or code in (204, 304):
                return True
            if b"chunked" in headers.get(b"transfer-encoding", b""):
                self.state = "chunk_size"
            elif b"content-length" in headers:
                self.left = int(headers[b"content-length"])
                self.state = "body"
            else:
                return self._broken("response without length: body runs to close")
            return True
        if self.state in ("body", "chunk_data"):
            n = min(self.left, len(self.buf))
            self.buf, self.left = self.buf[n:], self.left - n
            if self.left:
                return False
            self.state = "head" if self.state == "body" else "chunk_size"
            return True
        if self.state == "chunk_size":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(self.buf[:end].split(b";")[0], 16)
            self.buf = self.buf[end + 2:]
            if size == 0:
                self.state = "trailer"
            else:
                self.left, self.state = size + 2, "chunk_data"  # data + CRLF
            return True
        # trailer: header lines until an empty line
        end = self.buf.find(b"\r\n")
        if end < 0:
            return False
        line, self.buf = self.buf[:end], self.buf[end + 2:]
        if not line:
            self.state = "head"
        return True

    def _broken(self, why):
        self.state, self.error = "broken", why
        return False


def run_hold(host, port, rate, seconds, timeout):
    fam = family_of(host)
    addr = (host, port, 0, 0) if fam == socket.AF_INET6 else (host, port)
    total = n_slots(rate, seconds)
    result = {"sent": 0, "responses": 0, "seconds": 0.0, "closed": False, "error": None}
    counter = ResponseCounter()
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    try:
        s.connect(addr)
    except OSError as e:
        s.close()
        result["error"] = "connect: %s" % (err_name(e.errno) if e.errno else e)
        return result
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)

    t0 = time.monotonic()
    phase_end = t0 + seconds
    read_end = phase_end + timeout
    queued = 0          # requests appended to `out`
    out = b""
    pending = collections.deque()  # byte offset at which each unsent request ends
    written = 0         # bytes handed to the kernel
    phase_over = False
    while True:
        now = time.monotonic()
        while not phase_over and queued < total and t0 + queued / rate <= now:
            out += HOLD_REQUEST
            queued += 1
            pending.append(written + len(out))
        if not phase_over and now >= phase_end:
            phase_over = True
            result["seconds"] = round(now - t0, 3)
        if out and not result["closed"]:
            try:
                n = s.send(out)
            except BlockingIOError:
                n = 0
            except OSError as e:
                result["error"] = "send: %s" % err_name(e.errno)
                break
            out, written = out[n:], written + n
            while pending and pending[0] <= written:
                pending.popleft()
                result["sent"] += 1
        if now >= read_end or result["closed"] or counter.error:
            break
        if phase_over and not out and counter.count >= result["sent"]:
            break
        wake = read_end
        if not phase_over:
            wake = min(wake, phase_end)
            if queued < total:
                wake = min(wake, t0 + queued / rate)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
        sel.modify(s, events)
        for _, mask in sel.select(max(0.0, wake - time.monotonic())):
            if not mask & selectors.EVENT_READ:
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                result["error"] = "recv: %s" % err_name(e.errno)
                result["closed"] = True
                continue
            if data:
                counter.feed(data)
            else:
                result["closed"] = True
    if not phase_over:  # left early (peer closed, error)
        result["seconds"] = round(time.monotonic() - t0, 3)
    if counter.error and result["error"] is None:
        result["error"] = counter.error
    result["responses"] = counter.count
    sel.close()
    s.close()
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("host", help="IPv4 or IPv6 literal")
    ap.add_argument("port", type=int)
    ap.add_argument("--rate", type=float, required=True, help="attempts (requests) per second")
    ap.add_argument("--seconds", type=float, required=True, help="length of the paced phase")
    ap.add_argument("--timeout", type=float, default=0.5,
                    help="connection mode: handshake (and response) limit; hold mode: "
                         "extra time to read responses (default 0.5)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--http", action="store_true", help="send a GET on each connection")
    mode.add_argument("--hold", action="store_true",
                      help="one keep-alive connection, requests paced at --rate")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.seconds < 0 or args.timeout <= 0:
        ap.error("--rate and --timeout must be > 0, --seconds >= 0")
    raise_fd_limit()
    if args.hold:
        result = run_hold(args.host, args.port, args.rate, args.seconds, args.timeout)
    else:
        result = run_connections(args.host, args.port, args.rate, args.seconds,
                                 args.timeout, args.http)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
