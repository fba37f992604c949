"""The limiter (issue 4): per-client connection limits, allow and deny lists,
and enforcement that outlives the daemon, on veth pairs to client network
namespaces the tests create (netns.Topology).  Ground truth is what the
clients in the namespaces managed to do (tests/integration/conn_rate.py).

The limiter's state is pinned machine-wide under /sys/fs/bpf/bunscope: every
test removes it before and after with `bunscope limit detach`."""

import contextlib
import os

from harness import (BUNSCOPE_BIN, BunApp, Bunscope, assert_equal, privileged, run,
                     wait_until)
from netns import Topology, conn_rate_result

PIN_DIR = "/sys/fs/bpf/bunscope"
PKTS = "bunscope_limit_packets_total"


def detach():
    p = run([str(BUNSCOPE_BIN), "limit", "detach"], timeout=30)
    assert p.returncode == 0, "bunscope limit detach: %s%s" % (p.stdout, p.stderr)
    return p.stdout


@contextlib.contextmanager
def clean_limiter():
    detach()
    try:
        yield
    finally:
        detach()


def limit_args(topo, *extra):
    args = []
    for c in topo.clients:
        args += ["--limit-iface", c.host_if]
    return args + list(extra)


def within(value, want, tol):
    return abs(value - want) <= tol * want


def check_conn_rate(mode):
    """Client 0 tries 200 new connections a second for 4 s against a limit of
    50/s with bursts of 10: it gets 10 + 50 * 4 of them (within 10%), and the
    limiter's drops equal its failures.  Client 1, at 30/s, loses none."""
    rate, burst, seconds = 50, 10, 4
    with clean_limiter(), Topology(2) as topo, BunApp() as app, \
            Bunscope.for_app(app, *limit_args(topo, "--limit-mode", mode, "--limit-conn",
                                              "%d:%d" % (rate, burst))) as scope:
        attached = wait_until(lambda: scope.scrape().select("bunscope_limit_attached"),
                              10, "bunscope_limit_attached for both interfaces",
                              check=lambda v: len(v) == 2)
        for _, labels, _ in attached:
            assert (labels["mode"] == "tc") == (mode == "tc"), attached
        a, b = topo.clients
        pa = a.start_conn_rate(app.port, 200, seconds, timeout=0.5, http=True)
        pb = b.start_conn_rate(app.port, 30, seconds, timeout=0.5, http=True)
        ra = conn_rate_result(pa, seconds)
        rb = conn_rate_result(pb, seconds)
        assert_equal(rb["ok"], rb["attempted"], "the client under its limit: %r" % rb)
        want = burst + rate * seconds
        assert within(ra["ok"], want, 0.10), "over its limit: %d ok, want %d +-10%%: %r" % (
            ra["ok"], want, ra)
        # after the burst, each second holds about `rate`
        per_sec = [0] * seconds
        for t in ra["ok_times"]:
            per_sec[min(int(t), seconds - 1)] += 1
        for i in range(1, seconds):
            assert within(per_sec[i], rate, 0.2), ("second %d: %d ok" % (i, per_sec[i]),
                                                   per_sec)
        s = scope.scrape()
        assert_equal(int(s.value(PKTS, action="drop", reason="conn_rate")), ra["failed"],
                     "SYNs dropped == the client's failed attempts")


@privileged
def test_limit_conn_rate_xdp():
    check_conn_rate("auto")


@privileged
def test_limit_conn_rate_tc():
    check_conn_rate("tc")


@privileged
def test_limit_allow_deny():
    """IPv4 and IPv6: client 0 is in a denied CIDR and gets nothing; client 1
    is in a denied CIDR too but also in an allowed one (allow wins) and gets
    everything, with no rate limit either."""
    with clean_limiter(), Topology(2) as topo, BunApp() as app, \
            Bunscope.for_app(app, *limit_args(
                topo, "--limit-conn", "5:5", "--deny", "10.231.0.0/16",
                "--deny", "fd00:231::/32", "--allow", "10.231.2.2/32",
                "--allow", "fd00:231:2::/64")) as scope:
        a, b = topo.clients
        denied = 0
        for family in (4, 6):
            pa = a.start_conn_rate(app.port, 20, 1, timeout=0.3, http=True, family=family)
            pb = b.start_conn_rate(app.port, 50, 1, timeout=0.5, http=True, family=family)
            ra, rb = conn_rate_result(pa, 1, 0.3), conn_rate_result(pb, 1)
            assert_equal(ra["ok"], 0, "denied IPv%d client: %r" % (family, ra))
            assert_equal(rb["ok"], rb["attempted"], "allowed IPv%d client: %r" % (family, rb))
            denied += ra["attempted"]
        s = scope.scrape()
        assert_equal(int(s.value(PKTS, action="drop", reason="deny")), denied,
                     "SYNs dropped by the deny list == the denied client's attempts")
        assert int(s.value(PKTS, action="pass", reason="allow")) >= 2 * 50 * 3
        assert_equal(int(s.value(PKTS, action="drop", reason="conn_rate")), 0,
                     "allow-listed client rate-limited")


@privileged
def test_limit_survives_sigkill_and_detach():
    """SIGKILL the daemon: the limit still holds; a new daemon reuses the
    pinned counters; `bunscope limit detach` removes the program and the
    state, after which the client is not limited any more."""
    with clean_limiter(), Topology(1) as topo, BunApp() as app:
        a = topo.clients[0]
        args = limit_args(topo, "--limit-conn", "20:5")

        def burst(rate=100, seconds=1):
            return conn_rate_result(a.start_conn_rate(app.port, rate, seconds, timeout=0.4),
                                    seconds, 0.4)

        scope = Bunscope.for_app(app, *args)
        with scope:
            first = burst()
            assert first["failed"] > 0, first
            drops = int(scope.scrape().value(PKTS, action="drop", reason="conn_rate"))
            assert_equal(drops, first["failed"], "drops before the kill")
            scope.stop(sig=9, expect=-9)
        after_kill = burst()
        assert within(after_kill["ok"], 5 + 20, 0.2), \
            "limit not held with the daemon dead: %r" % after_kill
        p = run([str(BUNSCOPE_BIN), "limit", "status"], timeout=30)
        assert p.returncode == 0 and a.host_if in p.stdout, p.stdout + p.stderr
        with Bunscope.for_app(app, *args) as scope2:
            drops2 = int(scope2.scrape().value(PKTS, action="drop", reason="conn_rate"))
            assert_equal(drops2, first["failed"] + after_kill["failed"],
                         "counters carried over the restart")
        out = detach()
        assert a.host_if in out, out
        assert not os.path.exists(PIN_DIR), os.listdir(PIN_DIR)
        free = burst()
        assert_equal(free["ok"], free["attempted"], "after detach: %r" % free)
        links = run(["ip", "link", "show", a.host_if], timeout=10).stdout
        assert " xdp" not in links, links
