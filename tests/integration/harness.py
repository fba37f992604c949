"""Shared helpers for the bunscope integration tests (Python 3 stdlib only).

Ground truth in these tests comes from clients (what they sent and received)
or from Bun itself (the test app's control server), never from bunscope.

Main pieces:
  BunApp        the Bun test app (tests/apps/server.js) as a context manager
  Bunscope      build/bunscope as a context manager; scrape() parses /metrics
  parse_metrics an independent Prometheus text-format (0.0.4) parser
  wait_until    poll a condition with a deadline (never sleep to synchronise)
  HTTPReader    read HTTP/1.x responses off a raw socket (IPv4 and IPv6)
  privileged    decorator for tests that need the daemon (root + BPF)
"""

import contextlib
import shutil
import functools
import gzip as gzip_mod
import http.client
import http.server
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUN = Path(os.environ.get("BUN", REPO / ".deps" / "bin" / "bun"))
BUNSCOPE_BIN = Path(os.environ.get("BUNSCOPE_BIN", REPO / "build" / "bunscope"))
APP_JS = REPO / "tests" / "apps" / "server.js"

REQUIRE_PRIVILEGED_ENV = "BUNSCOPE_REQUIRE_PRIVILEGED"

DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
                    1, 2.5, 5, 7.5, 10, math.inf]
SIZE_BUCKETS = [0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576,
                4194304, 16777216, math.inf]

DUR = "http_server_request_duration_seconds"
REQ_SIZE = "http_server_request_body_size_bytes"
RESP_SIZE = "http_server_response_body_size_bytes"
ACTIVE = "http_server_active_requests"
REJECTED = "bunscope_http_requests_rejected_total"
ABORTED = "bunscope_http_requests_aborted_total"
CONN_OPENED = "bunscope_http_connections_opened_total"
CONN_CLOSED = "bunscope_http_connections_closed_total"
REJECT_REASONS = ["method", "target", "version", "header", "too_large", "host",
                  "content_length", "transfer_encoding", "chunked", "tls",
                  "garbage", "late"]

# Tails of the bunscope logs of the current test, for the runner to print on
# failure: list of (description, text).
LOG_TAILS = []


# ---------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------

class Skip(Exception):
    """Raised to skip a test; the message is the reason."""


class PrerequisiteError(AssertionError):
    """Something the test needs is missing (daemon binary, root under
    BUNSCOPE_REQUIRE_PRIVILEGED=1): the runner prints just the message."""


class TestTimeout(BaseException):
    """Raised inside a test when its time is up (BaseException: not swallowed
    by `except Exception`), so that finally blocks still clean up."""


def require_privileged_set():
    return os.environ.get(REQUIRE_PRIVILEGED_ENV, "") == "1"


def check_privileged(binary=None):
    """Skip unless we can run the daemon (binary, by default BUNSCOPE_BIN); a
    skip is a failure under BUNSCOPE_REQUIRE_PRIVILEGED=1. A missing binary is
    always a failure."""
    binary = binary if binary is not None else BUNSCOPE_BIN
    if os.geteuid() != 0:
        if require_privileged_set():
            raise PrerequisiteError(
                "needs root (BPF), and %s=1 forbids skipping privileged tests"
                % REQUIRE_PRIVILEGED_ENV)
        raise Skip("needs root (BPF)")
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise PrerequisiteError(
            "the daemon binary %s does not exist or is not executable: build it "
            "first (`make`, `make asan`), or point BUNSCOPE_BIN at it" % binary)


def privileged(fn=None):
    """Decorator marking a test that needs the daemon (root + BPF).

    Can also be called inline as privileged() at the top of a test."""
    if fn is None:
        check_privileged()
        return None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        check_privileged()
        return fn(*args, **kwargs)

    wrapper.privileged = True
    return wrapper


# ---------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------

def wait_until(fn, timeout, what, check=None, abort=None, interval=0.05):
    """Poll fn() until check(value) (default: truthiness) holds; return the value.

    abort(value) -> True fails immediately (e.g. a counter overshot). An
    exception raised by fn counts as an observation and polling goes on.
    On timeout raises AssertionError naming `what` and the last observation."""
    deadline = time.monotonic() + timeout
    last = "<never observed>"
    while True:
        try:
            value = fn()
        except (DaemonExited, ParseError):
            raise  # polling cannot fix these
        except (OSError, ValueError, KeyError, http.client.HTTPException,
                AssertionError) as e:
            last = "exception %s: %s" % (type(e).__name__, e)
        else:
            last = value
            ok = check(value) if check is not None else bool(value)
            if ok:
                return value
            if abort is not None and abort(value):
                raise AssertionError("while waiting for %s: gave up, observed %r"
                                     % (what, value))
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s; last observed: %r"
                                 % (timeout, what, last))
        time.sleep(interval)


def wait_value(fn, expected, timeout, what, overshoot_fails=False):
    """wait_until fn() == expected. With overshoot_fails, a value > expected
    fails at once (for monotonic counters)."""
    abort = (lambda v: v > expected) if overshoot_fails else None
    return wait_until(fn, timeout, "%s == %r" % (what, expected),
                      check=lambda v: v == expected, abort=abort)


# ---------------------------------------------------------------------------
# Ports and processes
# ---------------------------------------------------------------------------

_handed_out = set()


def free_port():
    """A TCP port free on both 127.0.0.1 and :: (dual stack) right now."""
    for _ in range(100):
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
        except OSError:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise AssertionError("could not find a free port")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def bpf_ids(pid):
    """{"prog": ids, "map": ids, "link": ids} held by pid's descriptors."""
    ids = {"prog": set(), "map": set(), "link": set()}
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, fd))
            if "bpf" not in target:
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                info = f.read()
        except OSError:
            continue
        for kind in ("prog", "map", "link"):
            m = re.search(r"^%s_id:\s*(\d+)" % kind, info, re.M)
            if m and (kind != "prog" or "bpf-prog" in target):
                ids[kind].add(int(m.group(1)))
    return ids


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def stop_process(proc, sig=signal.SIGTERM, timeout=5.0):
    """Signal a Popen and wait; SIGKILL if it does not exit in time.
    Returns the exit code (negative: killed by that signal)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def tail(path, lines=80, max_bytes=64 * 1024):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def run(cmd, timeout=60, **kw):
    """subprocess.run with captured text output and a mandatory timeout."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


# ---------------------------------------------------------------------------
# The Bun test app
# ---------------------------------------------------------------------------

class BunApp:
    """tests/apps/server.js under Bun. Use as a context manager:

        with BunApp() as app:
            app.pid, app.port, app.control_port, app.stats(), app.release()
    """

    def __init__(self, port=None, control_port=None, ready_timeout=20.0, env=None,
                 app_js=APP_JS, bun=None):
        self.app_js = app_js
        self.bun = Path(bun) if bun is not None else BUN  # e.g. a symlink: another comm
        self._fixed_ports = port is not None or control_port is not None
        self.port = port
        self.control_port = control_port
        self.ready_timeout = ready_timeout
        self.extra_env = env or {}
        self.proc = None
        self.pid = None
        self.ready_at = None
        self._tmp = None
        self._drain = None
        self.control_requests = 0  # requests made to the control server so far

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        if not self.bun.exists():
            raise AssertionError("Bun not found at %s: run scripts/deps.sh" % self.bun)
        self._tmp = tempfile.mkdtemp(prefix="bunapp-")
        attempts = 1 if self._fixed_ports else 3
        for attempt in range(attempts):
            if not self._fixed_ports:
                self.port, self.control_port = free_port(), free_port()
            if self._start_once(attempt):
                return
        raise AssertionError("the Bun app did not start:\n" + tail(self.log_path))

    def _start_once(self, attempt):
        self.log_path = os.path.join(self._tmp, "app-%d.log" % attempt)
        env = dict(os.environ)
        env.update({"PORT": str(self.port), "CONTROL_PORT": str(self.control_port)})
        env.update({k: str(v) for k, v in self.extra_env.items()})
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen([str(self.bun), str(self.app_js)], cwd=str(REPO), env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + self.ready_timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                stop_process(self.proc, signal.SIGKILL)
                raise AssertionError("the Bun app did not print 'ready' within %.0fs:\n%s"
                                     % (self.ready_timeout, tail(self.log_path)))
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:  # stdout closed: the app died
                self.proc.wait()
                log_text = tail(self.log_path)
                if "EADDRINUSE" in log_text or "in use" in log_text:
                    return False  # port race: retry with other ports
                raise AssertionError("the Bun app exited (%s) before 'ready':\n%s"
                                     % (self.proc.returncode, log_text))
            buf += chunk
            m = re.search(rb"^ready (\d+)\s*$", buf, re.M)
            if m:
                self.ready_at = time.monotonic()
                self.pid = int(m.group(1))
                if self.pid != self.proc.pid:
                    raise AssertionError("app says pid %d, we started %d"
                                         % (self.pid, self.proc.pid))
                self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
                self._drain.start()
                return True

    def _drain_stdout(self):
        try:
            with open(self.log_path, "ab") as log:
                for line in self.proc.stdout:
                    log.write(b"stdout: " + line)
                    log.flush()
        except (OSError, ValueError):
            pass

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 5.0)
            if self.proc.stdout:
                with contextlib.suppress(OSError):
                    self.proc.stdout.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def comm(self):
        return read_comm(self.pid)

    def url(self, path="/", host="127.0.0.1"):
        h = "[%s]" % host if ":" in host else host
        return "http://%s:%d%s" % (h, self.port, path)

    def _control(self, path):
        self.control_requests += 1
        status, _, body = http_request("127.0.0.1", self.control_port, "GET", path, timeout=10)
        if status != 200:
            raise AssertionError("control %s -> %d %r" % (path, status, body[:200]))
        return body

    def stats(self):
        """Bun's own view: handled, pendingRequests, pendingWebSockets, pid."""
        return json.loads(self._control("/stats"))

    def handled(self):
        return self.stats()["handled"]

    def pending(self):
        return self.stats()["pendingRequests"]

    def release(self):
        """Release every held /hold request; returns how many."""
        return int(self._control("/release"))

    def request(self, method, path, body=None, headers=None, host="127.0.0.1", timeout=30):
        return http_request(host, self.port, method, path, body=body, headers=headers,
                            timeout=timeout)

    def get(self, path, host="127.0.0.1", timeout=30):
        return self.request("GET", path, host=host, timeout=timeout)

    def wait_idle(self, timeout=10):
        """Wait until Bun has no pending request on the main server."""
        return wait_value(self.pending, 0, timeout, "Bun pendingRequests")


# ---------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------

class Bunscope:
    """build/bunscope as a context manager.

        with Bunscope("--pid", str(app.pid), wait_pids=[app.pid]) as scope:
            samples = scope.scrape()

    --listen 127.0.0.1:<free port> is added unless `listen` is given as None.
    prefix is a command the daemon runs under (e.g. nsenter into a mount
    namespace); it must exec the daemon, so that proc.pid is the daemon's.
    On a clean exit of the with-block, stop() asserts exit code 0. `binary`
    runs another build of the daemon (e.g. the sanitized one), with `env`
    added to the environment."""

    def __init__(self, *args, wait_pids=(), listen=True, health_timeout=20.0, prefix=(),
                 binary=None, env=None):
        self.args = [str(a) for a in args]
        self.prefix = [str(a) for a in prefix]
        self.binary = Path(binary) if binary is not None else BUNSCOPE_BIN
        self.env = dict(os.environ, **env) if env else None
        self.wait_pids = [int(p) for p in wait_pids]
        self.health_timeout = health_timeout
        self.listen_port = free_port() if listen else None
        self.proc = None
        self.returncode = None
        self._tmpdir = tempfile.mkdtemp(prefix="bunscope-")
        self.log_path = os.path.join(self._tmpdir, "bunscope.log")
        self._final_log = None

    @classmethod
    def for_app(cls, app, *extra, **kw):
        return cls("--pid", str(app.pid), *extra, wait_pids=[app.pid], **kw)

    # -- lifecycle --------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self._finish(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._finish(failed=exc_type is not None)
        return False

    def command(self):
        cmd = self.prefix + [str(self.binary)] + self.args
        if self.listen_port is not None:
            cmd += ["--listen", "127.0.0.1:%d" % self.listen_port]
        return cmd

    def start(self):
        check_privileged(self.binary)
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.command(), cwd=str(REPO), env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        if self.listen_port is not None:
            self.wait_targets(self.wait_pids, self.health_timeout)

    def wait_targets(self, pids, timeout=20.0):
        """Wait until /health lists every pid in pids; returns the health JSON."""
        pids = set(pids)

        def probe():
            self.assert_running()
            h = self.health()
            listed = {t.get("pid") for t in h.get("targets", [])}
            return h if pids <= listed else ("waiting", h)

        return wait_until(probe, timeout, "bunscope /health to list pids %s" % sorted(pids),
                          check=lambda v: isinstance(v, dict))

    def assert_running(self):
        if self.proc.poll() is not None:
            raise DaemonExited("bunscope exited with code %s; log:\n%s"
                               % (self.proc.returncode, tail(self.log_path)))

    def stop(self, sig=signal.SIGTERM, timeout=10.0, expect=0):
        """Send sig and assert the daemon exits with `expect` within timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("bunscope did not exit within %.0fs of %s; log:\n%s"
                                     % (timeout, signal.Signals(sig).name, tail(self.log_path)))
        self.returncode = self.proc.returncode
        if expect is not None and self.returncode != expect:
            raise AssertionError("bunscope exited with %s after %s, expected %s; log:\n%s"
                                 % (self.returncode, signal.Signals(sig).name, expect,
                                    tail(self.log_path)))
        return self.returncode

    def _finish(self, failed):
        try:
            if self.proc is not None and self.proc.poll() is None:
                if failed:
                    stop_process(self.proc, signal.SIGTERM, 10.0)
                else:
                    self.stop()
            elif self.proc is not None and not failed and self.returncode is None:
                # it died on its own during the test
                self.returncode = self.proc.returncode
                raise AssertionError("bunscope died during the test (exit %s); log:\n%s"
                                     % (self.proc.returncode, tail(self.log_path)))
        finally:
            if self.proc is not None:
                LOG_TAILS.append(("bunscope %s (pid %d, exit %s)"
                                  % (" ".join(self.args), self.proc.pid, self.proc.returncode),
                                  tail(self.log_path)))
                self._final_log = self.log_text()
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def log_text(self):
        """The daemon's log so far; after the with-block, all of it."""
        if self._final_log is not None:
            return self._final_log
        return tail(self.log_path, lines=10 ** 6, max_bytes=4 << 20)

    @property
    def pid(self):
        return self.proc.pid

    def rss(self):
        return rss_bytes(self.proc.pid)

    # -- endpoints --------------------------------------------------------
    def get(self, path, headers=None, timeout=10):
        return http_request("127.0.0.1", self.listen_port, "GET", path, headers=headers,
                            timeout=timeout)

    def health(self):
        status, _, body = self.get("/health")
        if status != 200:
            raise AssertionError("/health -> %d %r" % (status, body[:200]))
        return json.loads(body)

    def target_pids(self):
        return sorted(t["pid"] for t in self.health().get("targets", []))

    def metrics_text(self, gzip=False):
        headers = {"Accept-Encoding": "gzip"} if gzip else {}
        status, hdrs, body = self.get("/metrics", headers=headers)
        if status != 200:
            raise AssertionError("/metrics -> %d %r" % (status, body[:200]))
        if gzip:
            enc = hdrs.get("content-encoding", "")
            if enc.lower() != "gzip":
                raise AssertionError("asked for gzip, got Content-Encoding %r" % enc)
            body = gzip_mod.decompress(body)
        return body.decode("utf-8")

    def scrape(self, gzip=False):
        self.assert_running()
        return parse_metrics(self.metrics_text(gzip=gzip))

    def server_metrics(self, pid=None):
        path = "/api/server-metrics" + ("?pid=%d" % pid if pid is not None else "")
        status, _, body = self.get(path)
        if status != 200:
            raise AssertionError("%s -> %d %r" % (path, status, body[:200]))
        return json.loads(body)

    # -- metric shortcuts (all filtered by server_port, and pid if given) ---
    def count(self, port, pid=None, **labels):
        """Completed requests: sum of the duration histogram's _count."""
        return self.scrape().count(port, pid, **labels)

    def active(self, port, pid=None):
        return self.scrape().active(port, pid)

    def rejected(self, port, reason, pid=None):
        return self.scrape().rejected(port, reason, pid)

    def wait_count(self, port, expected, pid=None, timeout=15, **labels):
        what = "bunscope request count on port %s %s" % (port, labels or "")
        return wait_value(lambda: self.count(port, pid, **labels), expected, timeout, what,
                          overshoot_fails=True)


class DaemonExited(AssertionError):
    pass


# ---------------------------------------------------------------------------
# Prometheus text format 0.0.4 parser (independent of the daemon's code)
# ---------------------------------------------------------------------------

class ParseError(AssertionError):
    pass


_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT_RE = re.compile(r"[+-]?(?:Inf|NaN|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _parse_value(s, lineno):
    if not _FLOAT_RE.match(s):
        raise ParseError("line %d: bad value %r" % (lineno, s))
    return float(s)


def _unescape_help(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "\\n":
            out.append("\n" if s[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_labels(line, i, lineno):
    """line[i] == '{'; returns (labels dict, index after '}')."""
    labels = {}
    i += 1
    n = len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == "}":
            return labels, i + 1
        m = _LABEL_RE.match(line, i)
        if not m:
            raise ParseError("line %d: bad label name at column %d: %r" % (lineno, i, line))
        name = m.group(0)
        i = m.end()
        while i < n and line[i] in " \t":
            i += 1
        if i >= n or line[i] != "=":
            raise ParseError("line %d: expected '=' after label %s" % (lineno, name))
        i += 1
        while i < n and line[i] in " \t":
            i += 1
        if i >= n or line[i] != '"':
            raise ParseError("line %d: expected '\"' to open the value of label %s"
                             % (lineno, name))
        i += 1
        val = []
        while True:
            if i >= n:
                raise ParseError("line %d: unterminated value of label %s" % (lineno, name))
            c = line[i]
            if c == "\\":
                if i + 1 >= n:
                    raise ParseError("line %d: dangling backslash" % lineno)
                e = line[i + 1]
                if e == "\\":
                    val.append("\\")
                elif e == '"':
                    val.append('"')
                elif e == "n":
                    val.append("\n")
                else:
                    raise ParseError("line %d: invalid escape \\%s in label %s"
                                     % (lineno, e, name))
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise ParseError("line %d: duplicate label %s" % (lineno, name))
        labels[name] = "".join(val)
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == ",":
            i += 1
            continue
        if i < n and line[i] == "}":
            return labels, i + 1
        raise ParseError("line %d: expected ',' or '}' after label %s" % (lineno, name))


def _family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return name[: -len(suffix)]
    return name


def parse_metrics(text):
    """Parse Prometheus text exposition 0.0.4 into Samples. Strict: raises
    ParseError on anything malformed (bad escapes, duplicate series, TYPE
    after samples, invalid values)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # strict: invalid UTF-8 raises
    samples = Samples()
    seen = set()
    families_with_samples = set()
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line[1:].lstrip(" \t").split(None, 2)
            if len(parts) >= 2 and parts[0] in ("HELP", "TYPE"):
                kind, name = parts[0], parts[1]
                if not _NAME_RE.fullmatch(name):
                    raise ParseError("line %d: bad metric name in %s: %r" % (lineno, kind, name))
                rest = parts[2] if len(parts) > 2 else ""
                if kind == "HELP":
                    if name in samples.helps:
                        raise ParseError("line %d: second HELP for %s" % (lineno, name))
                    samples.helps[name] = _unescape_help(rest)
                else:
                    if rest not in _TYPES:
                        raise ParseError("line %d: bad TYPE %r for %s" % (lineno, rest, name))
                    if name in samples.types:
                        raise ParseError("line %d: second TYPE for %s" % (lineno, name))
                    if name in families_with_samples:
                        raise ParseError("line %d: TYPE for %s after its samples"
                                         % (lineno, name))
                    samples.types[name] = rest
            continue
        m = _NAME_RE.match(line)
        if not m:
            raise ParseError("line %d: bad metric name: %r" % (lineno, line[:200]))
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i, lineno)
        rest = line[i:].split()
        if not rest or len(rest) > 2 or (i < len(line) and line[i] not in " \t"):
            raise ParseError("line %d: expected value [timestamp]: %r" % (lineno, line[:200]))
        value = _parse_value(rest[0], lineno)
        if len(rest) == 2 and not re.fullmatch(r"-?[0-9]+", rest[1]):
            raise ParseError("line %d: bad timestamp %r" % (lineno, rest[1]))
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ParseError("line %d: duplicate series %s%s" % (lineno, name, labels))
        seen.add(key)
        families_with_samples.add(_family_of(name, samples.types))
        families_with_samples.add(name)
        samples.append((name, labels, value))
    return samples


def _match(labels, want):
    for k, v in want.items():
        if v is None:
            continue
        if labels.get(k) != str(v):
            return False
    return True


class Samples(list):
    """A list of (name, labels dict, float value), with query helpers.
    Label filters are compared as strings; a filter value None is ignored."""

    def __init__(self, *a):
        super().__init__(*a)
        self.types = {}
        self.helps = {}

    def select(self, name, **labels):
        return [(n, l, v) for (n, l, v) in self if n == name and _match(l, labels)]

    def value(self, name, **labels):
        """Value of the one matching sample; None if none; error if several."""
        found = self.select(name, **labels)
        if not found:
            return None
        if len(found) > 1:
            raise AssertionError("%d samples of %s match %s: %s"
                                 % (len(found), name, labels, [l for _, l, _ in found][:5]))
        return found[0][2]

    def sum_values(self, name, **labels):
        return sum(v for _, _, v in self.select(name, **labels))

    def label_values(self, name, label, **labels):
        return {l[label] for _, l, _ in self.select(name, **labels) if label in l}

    def names(self):
        return {n for n, _, _ in self}

    # HTTP shortcuts -----------------------------------------------------
    def count(self, port, pid=None, **labels):
        return int(self.sum_values(DUR + "_count", server_port=port, pid=pid, **labels))

    def active(self, port, pid=None):
        return int(self.sum_values(ACTIVE, server_port=port, pid=pid))

    def rejected(self, port, reason, pid=None):
        return int(self.sum_values(REJECTED, server_port=port, pid=pid, reason=reason))

    def histogram(self, name, **labels):
        """Aggregate of the histogram series matching labels:
        {"buckets": {le: count}, "sum": float, "count": float}."""
        buckets = {}
        for _, l, v in self.select(name + "_bucket", **labels):
            le = float(l["le"])
            buckets[le] = buckets.get(le, 0) + v
        return {"buckets": buckets,
                "sum": self.sum_values(name + "_sum", **labels),
                "count": self.sum_values(name + "_count", **labels)}

    def check_histograms(self, name, bounds, **labels):
        """Every series of histogram `name` matching labels has exactly the
        bucket bounds given, cumulative counts, +Inf == _count, and a _sum."""
        series = {}
        for n, l, v in self.select(name + "_bucket", **labels):
            key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
            series.setdefault(key, {})[float(l["le"])] = v
        for key, b in series.items():
            lbl = dict(key)
            got = sorted(b)
            if got != sorted(bounds):
                raise AssertionError("%s%s: bucket bounds %s, expected %s"
                                     % (name, lbl, got, bounds))
            counts = [b[le] for le in got]
            if any(x > y for x, y in zip(counts, counts[1:])):
                raise AssertionError("%s%s: buckets not cumulative: %s" % (name, lbl, counts))
            cnt = self.value(name + "_count", **lbl)
            if cnt is None or cnt != b[math.inf]:
                raise AssertionError("%s%s: _count %s != +Inf bucket %s"
                                     % (name, lbl, cnt, b[math.inf]))
            if self.value(name + "_sum", **lbl) is None:
                raise AssertionError("%s%s: no _sum" % (name, lbl))
        return len(series)


def promtool_check(text):
    """Run `promtool check metrics` on an exposition; returns its complaints
    ('' when clean). Any non-zero exit or any output is a complaint."""
    with tempfile.NamedTemporaryFile("w", suffix=".prom", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        with open(path, "rb") as fin:
            p = subprocess.run(["promtool", "check", "metrics"], stdin=fin,
                               capture_output=True, timeout=60)
    finally:
        os.unlink(path)
    out = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    if p.returncode != 0 and not out:
        out = "promtool exited with %d" % p.returncode
    elif p.returncode != 0:
        out = "promtool exited with %d:\n%s" % (p.returncode, out)
    return out


# ---------------------------------------------------------------------------
# HTTP clients
# ---------------------------------------------------------------------------

def http_request(host, port, method, path, body=None, headers=None, timeout=30):
    """One request on a new connection (http.client). Returns
    (status, headers dict with lower-case names, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def curl(*args, timeout=60):
    return run(["curl", "-sS", "--max-time", str(int(timeout))] + [str(a) for a in args],
               timeout=timeout + 10)


class Response:
    def __init__(self, status, reason, headers, body, chunked):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body
        self.chunked = chunked

    def header(self, name):
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    def __repr__(self):
        return "<Response %d %s, %d body bytes%s>" % (
            self.status, self.reason, len(self.body), ", chunked" if self.chunked else "")


class ConnectionClosed(AssertionError):
    pass


class HTTPReader:
    """Reads HTTP/1.x responses from a socket, framing them by HEAD/1xx/204/
    304, chunked, Content-Length or connection close."""

    def __init__(self, sock, timeout=30.0):
        self.sock = sock
        self.buf = bytearray()
        self.timeout = timeout
        self.eof = False

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out reading a response")
        self.sock.settimeout(left)
        data = self.sock.recv(1 << 18)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if not self._fill(deadline):
                raise ConnectionClosed("connection closed inside a line (%d bytes buffered)"
                                       % len(self.buf))

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed("connection closed with %d of %d body bytes"
                                       % (len(self.buf), n))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, head=False, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            status_line = self._line(deadline)
            m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", status_line)
            if not m:
                raise AssertionError("bad status line %r" % status_line[:200])
            status = int(m.group(1))
            reason = (m.group(2) or b"").decode("latin-1")
            headers = []
            while True:
                line = self._line(deadline)
                if not line:
                    break
                k, _, v = line.partition(b":")
                headers.append((k.decode("latin-1").strip().lower(),
                                v.decode("latin-1").strip()))
            if 100 <= status < 200 and status != 101:
                continue  # interim response, the real one follows
            break
        hd = dict(headers)
        te = hd.get("transfer-encoding", "").lower()
        if head or status in (204, 304) or 100 <= status < 200:
            return Response(status, reason, headers, b"", False)
        if "chunked" in te:
            body = bytearray()
            while True:
                size_line = self._line(deadline)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line(deadline):  # trailers
                        pass
                    break
                body += self._exact(size, deadline)
                if self._exact(2, deadline) != b"\r\n":
                    raise AssertionError("chunk not followed by CRLF")
            return Response(status, reason, headers, bytes(body), True)
        if "content-length" in hd:
            return Response(status, reason, headers,
                            self._exact(int(hd["content-length"]), deadline), False)
        while self._fill(deadline):  # until close
            pass
        body = bytes(self.buf)
        self.buf.clear()
        return Response(status, reason, headers, body, False)

    def read_responses(self, n, heads=None, timeout=None):
        """Read n responses; heads[i] True when request i was a HEAD."""
        return [self.read_response(head=bool(heads and heads[i]), timeout=timeout)
                for i in range(n)]


def connect(host, port, timeout=10.0):
    """TCP connection to host (IPv4 or IPv6 literal) with TCP_NODELAY."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_recv(host, port, data, n, heads=None, timeout=30.0):
    """Connect, send data in one go, read n responses, close."""
    with contextlib.closing(connect(host, port, timeout)) as s:
        s.sendall(data)
        return HTTPReader(s, timeout).read_responses(n, heads)


def read_until_close(sock, timeout=5.0):
    """Everything the peer sends until it closes (or the deadline).
    Returns (bytes, closed: bool)."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return bytes(out), False
        except ConnectionResetError:
            return bytes(out), True
        if not data:
            return bytes(out), True
        out += data


def send_and_close(host, port, data, timeout=5.0):
    """Send raw bytes on a new connection and collect whatever comes back until
    the server closes (Bun closes after rejecting), then close."""
    with contextlib.closing(connect(host, port, timeout)) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got, closed = read_until_close(s, timeout)
        return got, closed


def get_req(path, host="x", extra=b"", method=b"GET"):
    """Bytes of a minimal HTTP/1.1 request (path may be bytes with raw bytes)."""
    if isinstance(path, str):
        path = path.encode("latin-1")
    if isinstance(method, str):
        method = method.encode()
    return method + b" " + path + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + \
        extra + b"\r\n"


# ---------------------------------------------------------------------------
# WebSocket client (RFC 6455), independent of the code under test
# ---------------------------------------------------------------------------

WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG, WS_CONT = 1, 2, 8, 9, 10, 0
WS_KIND = {WS_TEXT: "text", WS_BINARY: "binary", WS_CLOSE: "close", WS_PING: "ping",
           WS_PONG: "pong"}


def ws_frame(op, payload, fin=True, mask=True, rsv1=False):
    """Bytes of one frame, the shortest length form, masked with a random key."""
    hdr = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | op])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        hdr.append(m | n)
    elif n < 65536:
        hdr.append(m | 126)
        hdr += n.to_bytes(2, "big")
    else:
        hdr.append(m | 127)
        hdr += n.to_bytes(8, "big")
    if not mask:
        return bytes(hdr) + payload
    key = os.urandom(4)
    return bytes(hdr) + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class WSClient:
    """A WebSocket client on a raw socket that keeps its own ground truth:
    sent[kind] / received[kind] = [messages, payload bytes], a fragmented
    message counting once."""

    def __init__(self, host, port, path="/ws", timeout=10.0):
        import base64
        import hashlib
        self.sock = connect(host, port, timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.sent = {k: [0, 0] for k in WS_KIND.values()}
        self.received = {k: [0, 0] for k in WS_KIND.values()}
        self.close_code = None
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n"
               % (path, "[%s]" % host if ":" in host else host, port, key))
        self.sock.sendall(req.encode())
        head = self._read_head()
        status = head.split(b"\r\n", 1)[0]
        if not status.startswith(b"HTTP/1.1 101"):
            raise AssertionError("no upgrade: %r" % head[:200])
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if want not in head:
            raise AssertionError("bad Sec-WebSocket-Accept in %r" % head)

    def _read_head(self):
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            self._recv_some(deadline)
        i = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:i])
        del self.buf[:i]
        return head

    def _recv_some(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("WebSocket: timed out reading")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed("WebSocket: server closed the connection")
        self.buf += data

    def _count(self, table, op, n, msg_end):
        kind = WS_KIND[op]
        table[kind][1] += n
        if msg_end:
            table[kind][0] += 1

    def send_raw(self, data, pieces=None, gap=0.03):
        """Send bytes, optionally cut at the offsets in pieces with a pause
        between the parts so that the server reads them separately."""
        cuts = [0] + list(pieces or []) + [len(data)]
        for i in range(len(cuts) - 1):
            if i:
                time.sleep(gap)  # shaping the traffic, not synchronising
            self.sock.sendall(data[cuts[i]:cuts[i + 1]])

    def send(self, op, payload, pieces=None):
        """One whole message (or control frame) in one frame."""
        self.send_raw(ws_frame(op, payload), pieces)
        self._count(self.sent, op, len(payload), True)

    def send_fragmented(self, op, parts, between=None):
        """One message in len(parts) frames; `between` is a control frame
        (op, payload) sent after every fragment but the last."""
        data = bytearray()
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            data += ws_frame(op if i == 0 else WS_CONT, part, fin=last)
            self._count(self.sent, op, len(part), last)
            if between and not last:
                data += ws_frame(between[0], between[1])
                self._count(self.sent, between[0], len(between[1]), True)
        self.sock.sendall(bytes(data))

    def recv(self, timeout=None):
        """The next whole message or control frame: (op, payload)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        msg_op, msg = None, bytearray()
        while True:
            while len(self.buf) < 2:
                self._recv_some(deadline)
            b0, b1 = self.buf[0], self.buf[1]
            n, o = b1 & 0x7F, 2
            if n == 126:
                o = 4
            elif n == 127:
                o = 10
            while len(self.buf) < o:
                self._recv_some(deadline)
            if n >= 126:
                n = int.from_bytes(self.buf[2:o], "big")
            if b1 & 0x80:
                raise AssertionError("server frame is masked")
            while len(self.buf) < o + n:
                self._recv_some(deadline)
            payload = bytes(self.buf[o:o + n])
            del self.buf[:o + n]
            op, fin = b0 & 0x0F, bool(b0 & 0x80)
            if op >= 8:
                self._count(self.received, op, n, True)
                if op == WS_CLOSE:
                    self.close_code = int.from_bytes(payload[:2], "big") if n >= 2 else None
                return op, payload
            if op != WS_CONT:
                msg_op = op
            self._count(self.received, msg_op, n, fin)
            msg += payload
            if fin:
                return msg_op, bytes(msg)

    def close(self, code=1000):
        """Client-initiated close: send a close frame, read up to the server's."""
        self.send(WS_CLOSE, code.to_bytes(2, "big"))
        while True:
            op, _ = self.recv()
            if op == WS_CLOSE:
                break
        self.sock.close()

    def abort(self):
        """End the TCP connection without a close frame."""
        self.sock.close()


# ---------------------------------------------------------------------------
# Load generator and helper servers
# ---------------------------------------------------------------------------

def parse_wrk_total(output):
    m = re.search(r"^\s*(\d+) requests in ", output, re.M)
    if not m:
        raise AssertionError("no 'N requests in' line in wrk output:\n" + output)
    return int(m.group(1))


def wrk_cmd(url, threads, conns, duration_s):
    return ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration_s, "--timeout", "10s",
            url]


def run_wrk(url, threads, conns, duration_s):
    p = run(wrk_cmd(url, threads, conns, duration_s), timeout=duration_s + 60)
    if p.returncode != 0:
        raise AssertionError("wrk failed (%d): %s%s" % (p.returncode, p.stdout, p.stderr))
    return parse_wrk_total(p.stdout), p.stdout


class UpstreamServer:
    """A tiny Python HTTP/1.1 server on 127.0.0.1 (in a thread) that counts
    the requests it answers: the Bun app's own outgoing fetch goes here.

    Paths: /status/N answers N; /sleep/MS answers after MS ms; /chunked
    answers chunked; /close answers without a length and closes (the body
    ends with the connection); /drop closes without answering; anything
    else answers 200 with body.  seen holds (path, traceparent or None) of
    every request, hosts its Host header, statuses the status of every
    answer."""

    def __init__(self, body=b"upstream ok"):
        self.requests = 0
        self.seen = []
        self.hosts = []
        self.statuses = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status, payload, length=True):
                with outer._lock:
                    outer.statuses.append(status)
                self.send_response(status)
                if length:
                    self.send_header("Content-Length", str(len(payload)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                with outer._lock:
                    outer.requests += 1
                    outer.seen.append((self.path, self.headers.get("traceparent")))
                    outer.hosts.append(self.headers.get("Host"))
                parts = self.path.split("/")
                if len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
                    self._answer(int(parts[2]), b"")
                elif len(parts) == 3 and parts[1] == "sleep" and parts[2].isdigit():
                    time.sleep(int(parts[2]) / 1000.0)
                    self._answer(200, b"slept")
                elif self.path == "/chunked":
                    with outer._lock:
                        outer.statuses.append(200)
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for piece in (b"a" * 100, b"b" * 2000, b"c"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/close":
                    self._answer(200, b"until close" * 100, length=False)
                elif self.path == "/drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self._answer(200, body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
        return False


def scope_and_app_counts(scope, app, **labels):
    """(bunscope's completed count on the app's port, Bun's handled count)."""
    return scope.count(app.port, app.pid, **labels), app.handled()


def assert_equal(actual, expected, what):
    if actual != expected:
        raise AssertionError("%s: got %r, expected %r" % (what, actual, expected))


def log(*args):
    print(*args, file=sys.stderr, flush=True)
