"""Client network namespaces for the rate-limiter tests (Python 3 stdlib only).

Topology(n) creates n client namespaces, each joined to the ROOT namespace by
a veth pair, so that traffic from a client enters the root namespace on its
own host-side interface (where XDP can be attached) from its own addresses:

    with Topology(2) as topo:
        c = topo.clients[0]
        r = c.conn_rate(app.port, rate=50, seconds=2, http=True)  # dict
        assert r["ok"] == r["attempted"]

Naming (TAG defaults to the pid of the creating process, i <- 0..n-1):
    namespace  bs<TAG>c<i>     host-side veth  bs<TAG>h<i>   (ifindex: .ifindex)
                               namespace side  bs<TAG>n<i>
Addresses (k = i + 1):
    host side       10.231.<k>.1/24   fd00:231:<k>::1/64
    namespace side  10.231.<k>.2/24   fd00:231:<k>::2/64
with default routes in the namespace via the host side, and IPv6 addresses
added `nodad` so they are usable at once. Since the addresses are fixed, only
one Topology can exist at a time on a machine; a second one fails at once.

Before creating anything, a Topology records its pid, the pid's start time,
TAG and n in /run/bunscope-netns/bs<TAG>.json (created exclusively: a tag has
one owner); the record is removed once everything is gone. cleanup_stale()
deletes what the records of dead creators name (pid gone, or reused: the
start time differs), so a crashed run (SIGKILL, ...) does not break the next
one; a Topology calls it before setting up. Nothing that is not named in such
a record, and that does not match the naming pattern exactly, is ever
deleted.

Everything uses iproute2 (`ip`) and needs root; a failing `ip` raises
AssertionError with its stderr.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness import log, pid_alive, run, stop_process, wait_until

PREFIX = "bs"
REGISTRY = Path("/run/bunscope-netns")
NETNS_DIR = Path("/var/run/netns")  # where `ip netns` keeps its names
CONN_RATE = Path(__file__).resolve().with_name("conn_rate.py")
IFNAMSIZ = 15  # longest interface name the kernel accepts
IP_TIMEOUT = 20


# ---------------------------------------------------------------------------
# Running things
# ---------------------------------------------------------------------------

def ip(*args, timeout=IP_TIMEOUT):
    """Run `ip ARGS...`; AssertionError with its stderr if it fails."""
    cmd = ["ip"] + [str(a) for a in args]
    r = run(cmd, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("`%s` failed (exit %d): %s"
                             % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r.stdout


def ns_exec(ns, argv, **popen_kwargs):
    """subprocess.Popen of argv inside namespace ns (`ip netns exec`)."""
    return subprocess.Popen(["ip", "netns", "exec", ns] + [str(a) for a in argv],
                            **popen_kwargs)


def ns_run(ns, argv, timeout):
    """Run argv inside namespace ns to completion: CompletedProcess with text
    stdout/stderr (not checked: look at returncode)."""
    return run(["ip", "netns", "exec", ns] + [str(a) for a in argv], timeout=timeout)


def ns_exists(ns):
    return (NETNS_DIR / ns).exists()


def link_exists(name):
    """Does interface `name` exist in the ROOT namespace?"""
    return Path("/sys/class/net", name).exists()


# ---------------------------------------------------------------------------
# The paced clients (conn_rate.py)
# ---------------------------------------------------------------------------

def conn_rate_argv(host, port, rate, seconds, timeout=0.5, http=False, hold=False):
    """argv running conn_rate.py (see its docstring) with this interpreter."""
    argv = [sys.executable, str(CONN_RATE), host, str(port), "--rate", str(rate),
            "--seconds", str(seconds), "--timeout", str(timeout)]
    if http:
        argv.append("--http")
    if hold:
        argv.append("--hold")
    return argv


def conn_rate_result(proc, seconds, timeout=0.5):
    """Wait for a conn_rate.py Popen (stdout=PIPE, text) and parse its JSON."""
    try:
        out, err = proc.communicate(timeout=seconds + 2 * timeout + 15)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise AssertionError("conn_rate.py did not finish in time")
    if proc.returncode != 0:
        raise AssertionError("conn_rate.py exited %d: %s" % (proc.returncode, err.strip()))
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError("conn_rate.py printed no JSON: %r %r" % (out, err))


# ---------------------------------------------------------------------------
# Topology
# ---------------------------------------------------------------------------

def _names(prefix, tag, i):
    """(namespace, host-side interface, namespace-side interface) of client i."""
    return ("%s%sc%d" % (prefix, tag, i), "%s%sh%d" % (prefix, tag, i),
            "%s%sn%d" % (prefix, tag, i))


def _start_time(pid):
    """Start time (clock ticks after boot) of a live, non-zombie pid, else None.
    With the pid it identifies a process even if the pid is reused."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of stat(5); fields[] starts at field 3


def _record_path(prefix, tag):
    return REGISTRY / ("%s%s.json" % (prefix, tag))


def _delete(namespaces, links):
    """Delete host-side links, then namespaces, that exist; return the errors.

    Deleting one end of a veth pair deletes both at once, whereas a deleted
    namespace (and the veth end in it) lingers while any process still runs
    in it: so the links go first, explicitly."""
    errors = []
    for name in links:
        if link_exists(name):
            r = run(["ip", "link", "del", "dev", name], timeout=IP_TIMEOUT)
            if r.returncode != 0 and link_exists(name):
                errors.append("ip link del %s: %s" % (name, r.stderr.strip()))
    for ns in namespaces:
        if ns_exists(ns):
            r = run(["ip", "netns", "del", ns], timeout=IP_TIMEOUT)
            if r.returncode != 0 and ns_exists(ns):
                errors.append("ip netns del %s: %s" % (ns, r.stderr.strip()))
    return errors


def cleanup_stale(prefix=PREFIX):
    """Delete the namespaces and links left by Topologies whose creating
    process is gone (records in REGISTRY). Only names that are exactly what
    such a Topology creates (prefix, tag, c/h/n, index) are touched. Returns
    the names deleted."""
    deleted = []
    if not REGISTRY.is_dir():
        return deleted
    pattern = re.compile(r"^%s([0-9a-z]+)\.json$" % re.escape(prefix))
    for path in sorted(REGISTRY.iterdir()):
        m = pattern.match(path.name)
        if not m:
            continue
        try:
            rec = json.loads(path.read_text())
            pid, started, n = int(rec["pid"]), rec["start_time"], int(rec["n_clients"])
            tag = rec["tag"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable, or being written right now: leave it alone
        if tag != m.group(1) or rec.get("prefix") != prefix:
            continue
        alive = _start_time(pid) == started if started is not None else pid_alive(pid)
        if alive:
            continue  # its creator is still running: not stale
        names = [_names(prefix, tag, i) for i in range(n)]
        namespaces = [ns for ns, _, _ in names]
        links = [h for _, h, _ in names]
        present = [x for x in namespaces if ns_exists(x)] + [x for x in links if link_exists(x)]
        errors = _delete(namespaces, links)
        if errors:
            log("netns.cleanup_stale: could not clean %s: %s" % (path.name, "; ".join(errors)))
            continue
        deleted += present
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if deleted:
        log("netns.cleanup_stale: deleted leftovers %s" % " ".join(deleted))
    return deleted


class Client:
    """One client namespace and its veth pair (see the module docstring)."""

    def __init__(self, topo, i, tag):
        self.topo = topo
        self.index = i
        self.ns, self.host_if, self.ns_if = _names(PREFIX, tag, i)
        k = i + 1
        self.host_ip4, self.ns_ip4 = "10.231.%d.1" % k, "10.231.%d.2" % k
        self.host_ip6, self.ns_ip6 = "fd00:231:%d::1" % k, "fd00:231:%d::2" % k
        self.ifindex = None  # host side, set once the link exists

    def __repr__(self):
        return "Client(%s: %s/%s <-> %s %s/%s, ifindex %s)" % (
            self.ns, self.ns_ip4, self.ns_ip6, self.host_if, self.host_ip4,
            self.host_ip6, self.ifindex)

    def host_ip(self, family=4):
        """The host-side address (the only destination of client traffic)."""
        return self.host_ip4 if family == 4 else self.host_ip6

    def exec(self, argv, **popen_kwargs):
        """ns_exec in this namespace; the process is killed on Topology exit."""
        proc = ns_exec(self.ns, argv, **popen_kwargs)
        self.topo.procs.append(proc)
        return proc

    def run(self, argv, timeout):
        return ns_run(self.ns, argv, timeout)

    def start_conn_rate(self, port, rate, seconds, timeout=0.5, http=False, hold=False,
                        family=4):
        """conn_rate.py from this namespace to the host-side address, in the
        background: pass the Popen to conn_rate_result()."""
        argv = conn_rate_argv(self.host_ip(family), port, rate, seconds, timeout, http, hold)
        return self.exec(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def conn_rate(self, port, rate, seconds, timeout=0.5, http=False, hold=False, family=4):
        """conn_rate.py to completion: its JSON as a dict."""
        proc = self.start_conn_rate(port, rate, seconds, timeout, http, hold, family)
        return conn_rate_result(proc, seconds, timeout)


class Topology:
    """n_clients namespaces joined to the root namespace by veth pairs; a
    context manager that always cleans up (see the module docstring)."""

    def __init__(self, n_clients=2, tag=None):
        if tag is None:
            tag = str(os.getpid())
        tag = str(tag)
        if not re.fullmatch(r"[0-9a-z]+", tag):
            raise ValueError("tag must be lowercase letters and digits: %r" % tag)
        if not 1 <= n_clients <= 254:
            raise ValueError("n_clients must be in 1..254: %r" % n_clients)
        longest = _names(PREFIX, tag, n_clients - 1)[1]
        if len(longest) > IFNAMSIZ:
            raise ValueError("interface name %r is longer than %d characters: shorter tag"
                             % (longest, IFNAMSIZ))
        self.tag = tag
        self.n_clients = n_clients
        self.clients = [Client(self, i, tag) for i in range(n_clients)]
        self.procs = []  # started by Client.exec, killed on exit
        self._record = None

    def __enter__(self):
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        errors = self.close()
        if errors:
            msg = "netns.Topology cleanup failed: " + "; ".join(errors)
            if exc_type is None:
                raise AssertionError(msg)
            log(msg)  # do not hide the exception already under way
        return False

    # -- setup ---------------------------------------------------------------

    def setup(self):
        if os.geteuid() != 0:
            raise AssertionError("network namespaces need root")
        if shutil.which("ip") is None:
            raise AssertionError("iproute2 (`ip`) not found")
        cleanup_stale()
        self._write_record()
        used = ip("-o", "addr", "show", "to", "10.231.0.0/16").strip()
        used6 = ip("-o", "-6", "addr", "show", "to", "fd00:231::/32").strip()
        if used or used6:
            raise AssertionError("10.231.0.0/16 or fd00:231::/32 is already in use in the "
                                 "root namespace (another Topology?):\n%s\n%s" % (used, used6))
        for c in self.clients:
            self._setup_client(c)
        for c in self.clients:
            wait_until(lambda: self._ready(c), 10, "%s and its veth pair up" % c.ns)

    def _write_record(self):
        """Claim the tag before creating anything: a live owner of the same
        tag makes this fail, a dead one was removed by cleanup_stale."""
        REGISTRY.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = _record_path(PREFIX, self.tag)
        rec = {"pid": os.getpid(), "start_time": _start_time(os.getpid()),
               "prefix": PREFIX, "tag": self.tag, "n_clients": self.n_clients}
        try:
            fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                owner = path.read_text().strip()
            except OSError as e:
                owner = str(e)
            raise AssertionError("netns tag %r is in use (%s): pass another tag"
                                 % (self.tag, owner))
        self._record = path
        with os.fdopen(fd, "w") as f:
            json.dump(rec, f)

    def _setup_client(self, c):
        ip("netns", "add", c.ns)
        ip("link", "add", c.host_if, "type", "veth", "peer", "name", c.ns_if, "netns", c.ns)
        c.ifindex = int(Path("/sys/class/net", c.host_if, "ifindex").read_text())
        ip("addr", "add", c.host_ip4 + "/24", "dev", c.host_if)
        ip("-6", "addr", "add", c.host_ip6 + "/64", "dev", c.host_if, "nodad")
        ip("link", "set", c.host_if, "up")
        ip("-n", c.ns, "link", "set", "lo", "up")
        ip("-n", c.ns, "addr", "add", c.ns_ip4 + "/24", "dev", c.ns_if)
        ip("-n", c.ns, "-6", "addr", "add", c.ns_ip6 + "/64", "dev", c.ns_if, "nodad")
        ip("-n", c.ns, "link", "set", c.ns_if, "up")
        ip("-n", c.ns, "route", "add", "default", "via", c.host_ip4)
        ip("-n", c.ns, "-6", "route", "add", "default", "via", c.host_ip6)

    def _ready(self, c):
        """Both veth ends have carrier and our addresses are there and not
        tentative (the kernel's own link-local ones may still be: unused)."""
        links = (ip("-o", "link", "show", "dev", c.host_if),
                 ip("-n", c.ns, "-o", "link", "show", "dev", c.ns_if))
        addrs = (ip("-o", "addr", "show", "dev", c.host_if),
                 ip("-n", c.ns, "-o", "addr", "show", "dev", c.ns_if))
        wanted = ((c.host_ip4, c.host_ip6), (c.ns_ip4, c.ns_ip6))
        for link, out, ours in zip(links, addrs, wanted):
            if "LOWER_UP" not in link:
                return False
            for a in ours:
                lines = [l for l in out.splitlines() if " %s/" % a in l]
                if not lines or "tentative" in lines[0]:
                    return False
        return True

    # -- cleanup -------------------------------------------------------------

    def close(self):
        """Kill our processes, delete every link and namespace of ours that
        exists, drop the record; returns the errors (idempotent)."""
        for proc in self.procs:
            stop_process(proc)
        self.procs = []
        if self._record is None:
            return []  # we never claimed the tag: nothing here is ours
        errors = _delete([c.ns for c in self.clients], [c.host_if for c in self.clients])
        if not errors:
            for c in self.clients:
                try:
                    wait_until(lambda: not link_exists(c.host_if) and not ns_exists(c.ns),
                               5, "%s and %s gone" % (c.host_if, c.ns))
                except AssertionError as e:
                    errors.append(str(e))
        if not errors:  # else keep the record: cleanup_stale retries later
            with contextlib.suppress(FileNotFoundError):
                self._record.unlink()
            self._record = None
        return errors
