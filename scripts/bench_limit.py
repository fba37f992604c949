#!/usr/bin/env python3
"""make bench, limiter part: what a SYN flood costs the host with bunscope's
limiter in XDP or tc, an nftables meter or iptables hashlimit in front of a
Bun server, and what legitimate clients get during the flood.

Topology (tests/integration/netns.py): client namespace 0 floods, client
namespace 1 runs wrk.  build/flood -X sends SYNs at its full speed (one
thread, CPU 1) from one source, or from random sources of 10.232.0.0/16,
which the host routes back into namespace 0 so no reply leaves the test's
veths.  Every filter limits new connections per source to 50/s, bursts of
100: the single-source flood is dropped, the random one is all below the
limit.

How the frames arrive: -X makes them with BPF_PROG_TEST_RUN's live XDP
frames and redirects them into the veth, so the host side receives
xdp_frames, as from a NIC's driver, and no skb exists before the filter (an
AF_PACKET sender, BENCH_LIMIT_SENDER=packet, builds the skb on the sender's
side instead).  The host side's NAPI runs threaded, pinned to CPU 0 with
Bun: "the receiving core".  Everything the host does with a packet (XDP, or
the skb, GRO, IP, netfilter, TCP) runs in that thread, so its CPU time over
the packets it took from the veth's ring is the receive cost per packet.
Frames the ring had no room for are dropped by the sender's side and not
counted.

Per variant and flood: frames offered and received per second, the
receiving core's CPU time per packet, and for bunscope the in-program time
per packet (kernel.bpf_stats_enabled; an empty XDP program's figure, the
statistics' own cost, is printed beside it).  Rounds interleave the
variants; medians are printed.

Environment: BENCH_ROUNDS (3), BENCH_FLOOD_SECONDS (3), BENCH_SECONDS (5, the
wrk runs).  For one question at a time: BENCH_LIMIT_ONLY (the variants whose
name holds one of these comma-separated words, e.g. "xdp,tc"; the wrk part is
then left out), BENCH_LIMIT_FLOODS ("single,random"), BENCH_LIMIT_CLIENTS
(bunscope's --limit-clients), BENCH_LIMIT_BASE (other builds' bunscope, comma-separated, run as
"base XDP" and "base tc", "base2 XDP" ..., right after ours in every round),
BENCH_LIMIT_SENDER (xdp, or packet for build/flood's AF_PACKET sockets).
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
XDPFLOOD_OBJ = os.path.join(ROOT, "build", "xdpflood.bpf.o")
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
SENDER = os.environ.get("BENCH_LIMIT_SENDER", "xdp")
BASES = [b for b in os.environ.get("BENCH_LIMIT_BASE", "").split(",") if b]


def base_name(i):
    return "base" if i == 0 else "base%d" % (i + 1)


def sh(argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_receiver(ifname):
    """NAPI on ifname without an XDP program (GRO on), in its own thread."""
    sh(["ethtool", "-K", ifname, "gro", "on"])
    with open("/sys/class/net/%s/threaded" % ifname, "w") as f:
        f.write("1")


def napi_thread(ifname):
    """The pid of ifname's NAPI thread, pinned to CPU 0 (attaching XDP may
    have made a new one)."""
    comm = ("napi/%s-" % ifname)[:15]  # the kernel cuts names at 15 bytes
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                if not f.read().strip().startswith(comm):
                    continue
        except OSError:
            continue
        os.sched_setaffinity(int(d), {0})
        return int(d)
    raise RuntimeError("no NAPI thread for %s" % ifname)


def run_ns(pid):
    """CPU time of a thread so far, ns (schedstat)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def rx_frames(ifname):
    """Packets the veth took from its ring, all queues (ethtool -S)."""
    out = sh(["ethtool", "-S", ifname]).stdout
    return sum(int(m.group(1)) for m in re.finditer(r"rx_queue_\d+_xdp_packets: (\d+)", out))


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
    prog = None  # the BPF program whose bpf_stats are the in-program time

    def __init__(self, name):
        self.name = name

    def start(self, topo, port, pid):
        pass

    def stop(self):
        pass


class NoFilter(Variant):
    pass


class EmptyXdp(Variant):
    """A program that passes everything: the in-program figure it gets is
    bpf_stats' own cost, part of every XDP figure."""
    PIN = "/sys/fs/bpf/bunscope_bench"
    prog = "bench_xdp_pass"

    def start(self, topo, port, pid):
        self.ifname = topo.clients[0].host_if
        if not os.path.ismount("/sys/fs/bpf"):
            sh(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"])
        sh(["rm", "-rf", self.PIN])
        sh(["bpftool", "prog", "loadall", XDPFLOOD_OBJ, self.PIN, "type", "xdp"])
        sh(["bpftool", "net", "attach", "xdpdrv", "pinned", self.PIN + "/" + self.prog,
            "dev", self.ifname])

    def stop(self):
        sh(["bpftool", "net", "detach", "xdpdrv", "dev", self.ifname], check=False)
        sh(["rm", "-rf", self.PIN], check=False)


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
            "-t", str(FLOOD_S), "-m", mac] + (["-X"] if SENDER == "xdp" else [])
    argv += ["-r", RANDOM_NET] if kind == "random" else ["-s", client.ns_ip4]
    out = client.run(["taskset", "-c", "1"] + argv, timeout=FLOOD_S + 30)
    m = re.search(r"sent=(\d+) seconds=([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError("flood: %s %s" % (out.stdout, out.stderr))
    return int(m.group(1)), float(m.group(2))


def wrk(client, port, seconds):
    out = client.run(["taskset", "-c", "1", "wrk", "-t1", "-c20", "-d%ds" % seconds, "--latency",
                      "http://%s:%d/" % (client.host_ip4, port)], timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)] if m else float("nan")
    return rps, p99


def bpf_stats(on):
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1" if on else "0")


def measure(variant, topo, port, kind):
    """(offered pkts/s, received pkts/s, receiving core's ns per received
    packet, in-program ns per packet).  The receive cost is measured with
    bpf_stats off (they cost an XDP program about 50 ns a packet), the
    in-program time in a second flood with them on."""
    host_if = topo.clients[0].host_if
    napi = napi_thread(host_if)
    bpf_stats(False)
    c0, x0 = run_ns(napi), rx_frames(host_if)
    sent, secs = flood(topo.clients[0], port, kind)
    c1, x1 = run_ns(napi), rx_frames(host_if)
    got = x1 - x0
    prog_ns = float("nan")
    if variant.prog:
        bpf_stats(True)
        try:
            s0 = prog_stats(variant.prog)
            flood(topo.clients[0], port, kind)
            s1 = prog_stats(variant.prog)
        finally:
            bpf_stats(False)
        if s1[0] > s0[0]:
            prog_ns = (s1[1] - s0[1]) / (s1[0] - s0[0])
    return (sent / secs, got / secs, (c1 - c0) / got if got else float("nan"), prog_ns)


def goodput_flood(topo, port, kind):
    """Start a flood from namespace 0 at the generator's full speed, on CPU 1
    at SCHED_IDLE: the attacker's own CPU, a test artefact on a host this
    small, does not come out of the legitimate client's."""
    host_if = topo.clients[0].host_if
    argv = ["ip", "netns", "exec", topo.clients[0].ns, "taskset", "-c", "1", "chrt", "-i", "0",
            FLOOD, "-i", topo.clients[0].ns_if, "-d", topo.clients[0].host_ip4, "-p", str(port),
            "-t", str(WRK_S + 2), "-m",
            open("/sys/class/net/%s/address" % host_if).read().strip()]
    argv += ["-X"] if SENDER == "xdp" else []
    argv += ["-r", RANDOM_NET] if kind == "random" else ["-s", topo.clients[0].ns_ip4]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def run_goodput(bx, topo, port, pid):
    """wrk from namespace 1 (CPU 1), alone and during each flood, with bx
    attached, interleaved over the rounds: {kind: [(req/s, p99, offered
    pkts/s, received pkts/s), ...]}, kind "alone" too."""
    res = {k: [] for k in ["alone"] + FLOODS}
    host_if = topo.clients[0].host_if
    bx.start(topo, port, pid)
    try:
        for r in range(ROUNDS):
            for kind in ["alone"] + FLOODS:
                fl = goodput_flood(topo, port, kind) if kind != "alone" else None
                try:
                    if fl:
                        time.sleep(0.5)  # the flood is at full speed before wrk starts
                    napi_thread(host_if)
                    x0, t0 = rx_frames(host_if), time.monotonic()
                    w = wrk(topo.clients[1], port, WRK_S)
                    rx = (rx_frames(host_if) - x0) / (time.monotonic() - t0)
                finally:
                    out = fl.communicate(timeout=WRK_S + 30)[0] if fl else ""
                m = re.search(r"pps=(\d+)", out)
                res[kind].append((w[0], w[1], int(m.group(1)) if m else 0, rx))
                print("  goodput round %d: %-6s %8.0f req/s, p99 %.2f ms" % (
                    r + 1, kind, w[0], w[1] * 1e3), flush=True)
    finally:
        bx.stop()
    return res


def main():
    for f in [BUN, BUNSCOPE, FLOOD, XDPFLOOD_OBJ] + BASES:
        if not os.path.exists(f):
            sys.exit("bench_limit: %s missing (make bench builds it)" % f)
    variants = [NoFilter("no filter"), EmptyXdp("empty XDP (pass)"),
                Bunscope("bunscope XDP", "xdp")]
    variants += [Bunscope(base_name(i) + " XDP", "xdp", b) for i, b in enumerate(BASES)]
    variants.append(Bunscope("bunscope tc", "tc"))
    variants += [Bunscope(base_name(i) + " tc", "tc", b) for i, b in enumerate(BASES)]
    variants += [Nft("nftables set+limit"), Hashlimit("iptables hashlimit")]
    goodput_only = ONLY == ["goodput"]
    if ONLY and not goodput_only:
        variants = [v for v in variants if any(w in v.name.lower() for w in ONLY)]
    if not variants or any(k not in ("single", "random") for k in FLOODS):
        sys.exit("bench_limit: BENCH_LIMIT_ONLY matches no variant, or BENCH_LIMIT_FLOODS "
                 "is not single and/or random")
    kinds = FLOODS
    res = {(v.name, k): [] for v in variants for k in kinds}
    goodput = {}
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        stats_was = f.read().strip()
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
            setup_receiver(topo.clients[0].host_if)
            print("limiter benchmark: build/flood%s (1 thread, CPU 1) from a veth namespace, "
                  "%d s a run, %d rounds; limit %d/s bursts of %d new connections per source;"
                  "\nthe receiving veth's NAPI thread on CPU 0 with Bun"
                  % (" -X (live XDP frames)" if SENDER == "xdp" else " (AF_PACKET)",
                     FLOOD_S, ROUNDS, RATE, BURST))
            for r in range(0 if goodput_only else ROUNDS):
                for v in variants:
                    v.start(topo, port, server.pid)
                    try:
                        for k in kinds:
                            m = measure(v, topo, port, k)
                            res[(v.name, k)].append(m)
                            print("  round %d: %-20s %-7s offered %8.0f, received %8.0f "
                                  "pkts/s, receiving core %5.0f, in-prog %4.0f ns/pkt"
                                  % (r + 1, v.name, k, m[0], m[1], m[2], m[3]), flush=True)
                    finally:
                        v.stop()
            # legitimate clients, with bunscope XDP
            if not ONLY or goodput_only:
                bx = next(v for v in variants if v.name == "bunscope XDP")
                goodput = run_goodput(bx, topo, port, server.pid)
    finally:
        server.terminate()
        server.wait(10)
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(stats_was)

    if not goodput_only:
        print()
        print("%-20s %-7s %10s %10s %16s %14s %9s" % (
            "filter", "flood", "offered/s", "received/s", "receive ns/pkt", "in-prog ns/pkt",
            "nft/this"))
        for k in kinds:
            nft = res.get(("nftables set+limit", k))
            nft_rx = statistics.median(x[2] for x in nft) if nft else float("nan")
            for v in variants:
                rows = res[(v.name, k)]
                offered = statistics.median(x[0] for x in rows)
                got = statistics.median(x[1] for x in rows)
                rx = statistics.median(x[2] for x in rows)
                prog = statistics.median(x[3] for x in rows) if v.prog else None
                print("%-20s %-7s %10.0f %10.0f %16.0f %14s %8.2fx" % (
                    v.name, k, offered, got, rx, "%.0f" % prog if prog is not None else "-",
                    nft_rx / rx if rx else float("inf")))
        print("receive ns/pkt: the receiving core's CPU time (the veth's NAPI thread: the filter "
              "and all the\nstack does with the packet) per packet it took; in-prog: bpf_stats, "
              "whose own cost is the empty\nprogram's figure; nft/this: nftables' receive time per "
              "packet over this filter's (single: every\npacket past the burst is dropped; random: "
              "every packet is below its source's limit and passes)")
    if not goodput:
        return
    print()
    print("legitimate client (wrk -t1 -c20 from another namespace, CPU 1), bunscope XDP "
          "attached, medians of %d rounds:" % ROUNDS)

    def med(kind, i):
        return statistics.median(x[i] for x in goodput[kind])

    alone = med("alone", 0)
    print("  alone:  %8.0f req/s, p99 %.2f ms" % (alone, med("alone", 1) * 1e3))
    for k in kinds:
        print("  %-6s flood, %8.0f pkts/s offered, %8.0f received: %8.0f req/s (%.0f%% of "
              "alone), p99 %.2f ms" % (k, med(k, 2), med(k, 3), med(k, 0),
                                       100 * med(k, 0) / alone, med(k, 1) * 1e3))


if __name__ == "__main__":
    main()
