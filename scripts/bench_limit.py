#!/usr/bin/env python3
"""make bench, limiter part: what a SYN flood costs the host with bunscope's
limiter in XDP or tc, an nftables meter or iptables hashlimit in front of a
Bun server, and what legitimate clients get during the flood.

Topology (tests/integration/netns.py): client namespace 0 floods, client
namespace 1 runs wrk.  build/flood sends SYNs at its full speed (one thread,
CPU 1) from one source, or from random sources of 10.232.0.0/16, which the
host routes back into namespace 0 so no reply leaves the test's veths.  Every
filter limits new connections per source to 50/s, bursts of 100: the
single-source flood is dropped, the random one is all below the limit.

Per variant and flood: packets sent per second, the host's CPU time per packet
(all CPUs busy time from /proc/stat over the flood, the generator's own work
included, the same for every variant: compare, not absolute), and for bunscope
the in-program time per packet (kernel.bpf_stats_enabled).  On a veth the
receiver runs on the sender's CPU, so a cheaper filter also shows as a higher
rate.  Rounds interleave the variants; medians are printed.

Environment: BENCH_ROUNDS (3), BENCH_FLOOD_SECONDS (3), BENCH_SECONDS (5, the
wrk runs).  For one question at a time: BENCH_LIMIT_ONLY (the variants whose
name holds one of these comma-separated words, e.g. "xdp,tc"; the wrk part is
then left out), BENCH_LIMIT_FLOODS ("single,random"), BENCH_LIMIT_CLIENTS
(bunscope's --limit-clients), BENCH_LIMIT_BASE (another build's bunscope, run
as "base XDP" and "base tc" right after ours in every round).
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from netns import Topology, ip  # noqa: E402

BUN = os.path.join(ROOT, ".deps", "bin", "bun")
BUNSCOPE = os.path.join(ROOT, "build", "bunscope")
FLOOD = os.path.join(ROOT, "build", "flood")
HELLO = os.path.join(ROOT, "scripts", "bench", "hello.js")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FLOOD_S = int(os.environ.get("BENCH_FLOOD_SECONDS", "3"))
WRK_S = int(os.environ.get("BENCH_SECONDS", "5"))
RANDOM_NET = "10.232.0.0/16"
NFT_TABLE = "bunscope_bench"
RATE, BURST = 50, 100
ONLY = [w.strip().lower() for w in os.environ.get("BENCH_LIMIT_ONLY", "").split(",") if w.strip()]
FLOODS = [k.strip() for k in os.environ.get("BENCH_LIMIT_FLOODS", "single,random").split(",")
          if k.strip()]
CLIENTS = os.environ.get("BENCH_LIMIT_CLIENTS")
BASE = os.environ.get("BENCH_LIMIT_BASE")


def sh(argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds():
    """(softirq, busy) CPU time of all CPUs, from /proc/stat: the receive
    path runs in softirq (NET_RX), the generator's sends in system time."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    hz = os.sysconf("SC_CLK_TCK")
    return v[6] / hz, (sum(v[:8]) - idle) / hz


def prog_stats(name):
    """(run_cnt, run_time_ns) summed over the loaded programs called name."""
    out = sh(["bpftool", "-j", "prog", "show"]).stdout
    cnt = ns = 0
    for p in json.loads(out):
        if p.get("name") == name:
            cnt += p.get("run_cnt", 0)
            ns += p.get("run_time_ns", 0)
    return cnt, ns


class Variant:
    def __init__(self, name):
        self.name = name

    def start(self, topo, port, pid):
        pass

    def stop(self):
        pass


class NoFilter(Variant):
    pass


class Bunscope(Variant):
    def __init__(self, name, mode, binary=BUNSCOPE):
        super().__init__(name)
        self.mode = mode
        self.bin = binary
        self.proc = None
        self.prog = "bs_xdp_limit" if mode == "xdp" else "bs_tc_limit"

    def start(self, topo, port, pid):
        sh([self.bin, "limit", "detach"])
        args = [self.bin, "--pid", str(pid), "--listen", "127.0.0.1:%d" % free_port(),
                "--limit-mode", self.mode,
                "--limit-conn", "%d:%d" % (RATE, BURST)]
        if CLIENTS:
            args += ["--limit-clients", CLIENTS]
        for c in topo.clients:
            args += ["--limit-iface", c.host_if]
        self.log = open("/tmp/bench-limit-bunscope.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("bunscope exited: see /tmp/bench-limit-bunscope.log")
            if "limiter:" in open("/tmp/bench-limit-bunscope.log").read():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("bunscope did not attach the limiter")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None
        sh([self.bin, "limit", "detach"], check=False)


class Nft(Variant):
    """A dynamic set with a per-source limit, in prerouting before conntrack."""

    def start(self, topo, port, pid):
        rules = """
table inet %(t)s {
    set flood { type ipv4_addr; size 65535; flags dynamic,timeout; timeout 10s; }
    chain pre {
        type filter hook prerouting priority -300;
        iifname != "%(ifs)s" accept
        tcp dport %(port)d tcp flags & (syn|ack) == syn add @flood { ip saddr limit rate over %(r)d/second burst %(b)d packets } drop
    }
}
""" % {"t": NFT_TABLE, "ifs": topo.clients[0].host_if, "port": port, "r": RATE, "b": BURST}
        sh(["nft", "-f", "-"], input=rules)

    def stop(self):
        sh(["nft", "delete", "table", "inet", NFT_TABLE], check=False)


class Hashlimit(Variant):
    def rule(self, topo, port):
        return ["PREROUTING", "-i", topo.clients[0].host_if, "-p", "tcp", "--dport", str(port),
                "--syn", "-m", "hashlimit", "--hashlimit-above", "%d/sec" % RATE,
                "--hashlimit-burst", str(BURST), "--hashlimit-mode", "srcip",
                "--hashlimit-name", "bsbench", "-j", "DROP"]

    def start(self, topo, port, pid):
        self.args = self.rule(topo, port)
        sh(["iptables", "-t", "raw", "-A"] + self.args)

    def stop(self):
        sh(["iptables", "-t", "raw", "-D"] + self.args, check=False)


def flood(client, host_port, kind):
    mac = open("/sys/class/net/%s/address" % client.host_if).read().strip()
    argv = [FLOOD, "-i", client.ns_if, "-d", client.host_ip4, "-p", str(host_port),
            "-t", str(FLOOD_S), "-m", mac]
    argv += ["-r", RANDOM_NET] if kind == "random" else ["-s", client.ns_ip4]
    out = client.run(["taskset", "-c", "1"] + argv, timeout=FLOOD_S + 30)
    m = re.search(r"sent=(\d+) seconds=([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError("flood: %s %s" % (out.stdout, out.stderr))
    return int(m.group(1)), float(m.group(2))


def wrk(client, port, seconds):
    out = client.run(["wrk", "-t1", "-c20", "-d%ds" % seconds, "--latency",
                      "http://%s:%d/" % (client.host_ip4, port)], timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)] if m else float("nan")
    return rps, p99


def measure(variant, topo, port, kind):
    c0 = cpu_seconds()
    s0 = prog_stats(variant.prog) if isinstance(variant, Bunscope) else (0, 0)
    sent, secs = flood(topo.clients[0], port, kind)
    c1 = cpu_seconds()
    s1 = prog_stats(variant.prog) if isinstance(variant, Bunscope) else (0, 0)
    runs = s1[0] - s0[0]
    prog_ns = (s1[1] - s0[1]) / runs if runs else float("nan")
    return (sent / secs, (c1[0] - c0[0]) / sent * 1e9, (c1[1] - c0[1]) / sent * 1e9,
            prog_ns)


def run_goodput(bx, topo, port, pid):
    """wrk from namespace 1, alone and during a random-source flood from
    namespace 0, with bx attached."""
    res = {}
    bx.start(topo, port, pid)
    try:
        res["alone"] = wrk(topo.clients[1], port, WRK_S)
        fl = subprocess.Popen(["ip", "netns", "exec", topo.clients[0].ns, "taskset",
                               "-c", "1", FLOOD, "-i", topo.clients[0].ns_if, "-d",
                               topo.clients[0].host_ip4, "-p", str(port), "-t",
                               str(WRK_S + 2), "-r", RANDOM_NET, "-m",
                               open("/sys/class/net/%s/address" %
                                    topo.clients[0].host_if).read().strip()],
                              stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)  # the flood is at full speed before wrk starts
            res["flood"] = wrk(topo.clients[1], port, WRK_S)
        finally:
            out = fl.communicate(timeout=WRK_S + 30)[0]
        m = re.search(r"pps=(\d+)", out)
        res["pps"] = int(m.group(1)) if m else 0
    finally:
        bx.stop()
    return res


def main():
    for f in (BUN, BUNSCOPE, FLOOD) + ((BASE,) if BASE else ()):
        if not os.path.exists(f):
            sys.exit("bench_limit: %s missing (make bench builds it)" % f)
    variants = [NoFilter("no filter"), Bunscope("bunscope XDP", "xdp")]
    if BASE:
        variants.append(Bunscope("base XDP", "xdp", BASE))
    variants.append(Bunscope("bunscope tc", "tc"))
    if BASE:
        variants.append(Bunscope("base tc", "tc", BASE))
    variants += [Nft("nftables set+limit"), Hashlimit("iptables hashlimit")]
    if ONLY:
        variants = [v for v in variants if any(w in v.name.lower() for w in ONLY)]
    if not variants or any(k not in ("single", "random") for k in FLOODS):
        sys.exit("bench_limit: BENCH_LIMIT_ONLY matches no variant, or BENCH_LIMIT_FLOODS "
                 "is not single and/or random")
    kinds = FLOODS
    res = {(v.name, k): [] for v in variants for k in kinds}
    goodput = {}
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        stats_was = f.read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", BUN, HELLO],
                              env=dict(os.environ, PORT=str(port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Topology(2) as topo:
            ip("route", "add", RANDOM_NET, "via", topo.clients[0].ns_ip4, "dev",
               topo.clients[0].host_if)
            deadline = time.monotonic() + 20
            while topo.clients[1].run(["curl", "-s", "-o", "/dev/null", "http://%s:%d/" % (
                    topo.clients[1].host_ip4, port)], timeout=5).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the Bun server did not answer")
                time.sleep(0.1)
            print("limiter benchmark: build/flood (1 thread) from a veth namespace, %d s a "
                  "run, %d rounds; limit %d/s bursts of %d new connections per source"
                  % (FLOOD_S, ROUNDS, RATE, BURST))
            for r in range(ROUNDS):
                for v in variants:
                    v.start(topo, port, server.pid)
                    try:
                        for k in kinds:
                            m = measure(v, topo, port, k)
                            res[(v.name, k)].append(m)
                            print("  round %d: %-20s %-7s %8.0f pkts/s, softirq %4.0f, "
                                  "in-prog %4.0f ns/pkt" % (r + 1, v.name, k, m[0], m[1],
                                                            m[3]), flush=True)
                    finally:
                        v.stop()
            # legitimate clients, with bunscope XDP
            if not ONLY:
                goodput = run_goodput(variants[1], topo, port, server.pid)
    finally:
        server.terminate()
        server.wait(10)
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(stats_was)

    print()
    print("%-20s %-7s %9s %13s %14s %13s %11s" % (
        "filter", "flood", "pkts/s", "softirq ns/pkt", "all CPU ns/pkt", "in-prog ns/pkt",
        "nft/this"))
    for k in kinds:
        nft = res.get(("nftables set+limit", k))
        nft_sirq = statistics.median(x[1] for x in nft) if nft else float("nan")
        for v in variants:
            rows = res[(v.name, k)]
            pps = statistics.median(x[0] for x in rows)
            sirq = statistics.median(x[1] for x in rows)
            cpu = statistics.median(x[2] for x in rows)
            prog = statistics.median(x[3] for x in rows) if isinstance(v, Bunscope) else None
            print("%-20s %-7s %9.0f %13.0f %14.0f %13s %10.2fx" % (
                v.name, k, pps, sirq, cpu, "%.0f" % prog if prog is not None else "-",
                nft_sirq / sirq if sirq else float("inf")))
    print("softirq: the receive path (NET_RX) per packet sent; all CPU: everything, the "
          "generator's sends included;\nnft/this: nftables' softirq time per packet over "
          "this filter's (single: every packet past the burst is dropped)")
    if not goodput:
        return
    print()
    print("legitimate client (wrk -c20 from another namespace), bunscope XDP attached:")
    print("  alone:                  %8.0f req/s, p99 %.2f ms" % (
        goodput["alone"][0], goodput["alone"][1] * 1e3))
    print("  random-source flood at %d pkts/s: %8.0f req/s (%.0f%% of alone), p99 %.2f ms" % (
        goodput["pps"], goodput["flood"][0], 100 * goodput["flood"][0] / goodput["alone"][0],
        goodput["flood"][1] * 1e3))


if __name__ == "__main__":
    main()
