"""Threads, event loop and GC: on-CPU time per thread role and the JS
thread's run-queue delay against the kernel's own per-thread schedstat,
event-loop utilisation of an app busy for a known share of each second, a
blocking handler in the block histogram, and GC bursts against the
collections Bun itself logs (BUN_JSC_logGC=true)."""

import os
import re
import time

from harness import REPO, BunApp, Bunscope, assert_equal, privileged, wait_until

RUNTIME_JS = REPO / "tests" / "apps" / "runtime.js"
CPU = "bun_thread_cpu_seconds_total"
RUNS = "bun_thread_runs_total"
ELU = "bun_event_loop_utilization"
BUSY = "bun_event_loop_busy_seconds_total"
IDLE = "bun_event_loop_idle_seconds_total"
BLOCK = "bun_event_loop_block_duration_seconds"
RQ = "bun_event_loop_run_queue_delay_seconds"
BURSTS = "bun_gc_bursts_total"
ROLES = ("js", "gc_helper", "gc_collector", "allocator", "jit", "http_client", "other")


def role_of(comm, tid, pid):
    """The role a thread's name gives it (the names Bun's threads have)."""
    if tid == pid:
        return "js"
    for prefix, role in (("HeapHelper", "gc_helper"), ("ollector Thread", "gc_collector"),
                         ("JSC Heap Collec", "gc_collector"), ("mi-scavenger", "allocator"),
                         ("JITWorker", "jit"), ("HTTP Client", "http_client")):
        if comm.startswith(prefix):
            return role
    return "other"


def schedstat(pid):
    """The kernel's figures per role: {role: [on-CPU ns, run-queue ns, runs]},
    summed over the live threads of /proc/PID/task/*/schedstat."""
    out = {r: [0, 0, 0] for r in ROLES}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().rstrip("\n")
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                run, wait, slices = (int(x) for x in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread exited while we looked
        acc = out[role_of(comm, int(tid), pid)]
        acc[0] += run
        acc[1] += wait
        acc[2] += slices
    return out


def ours(scope, pid):
    """bunscope's figures in the same shape; the run-queue figure is the JS
    thread's only (the others' waits are not followed)."""
    s = scope.scrape()
    out = {}
    for r in ROLES:
        out[r] = [s.value(CPU, pid=pid, thread=r) * 1e9, 0,
                  s.value(RUNS, pid=pid, thread=r)]
    out["js"][1] = s.histogram(RQ, pid=pid)["sum"] * 1e9
    return out


def running_threads(pid):
    """Threads of pid that are running or runnable now."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                n += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (FileNotFoundError, ProcessLookupError):
            pass
    return n


def bracketed(scope, pid):
    """The kernel's figures read between two of bunscope's: (before, kernel,
    after), once no thread of pid is on a CPU: the kernel brings a running
    thread's figure up to date only at its switches and timer ticks."""
    wait_until(lambda: running_threads(pid), 10, "the app's threads off the CPU",
               check=lambda n: n == 0, interval=0.01)
    return ours(scope, pid), schedstat(pid), ours(scope, pid)


def check_between(what, kern, lo, hi, rel, abs_):
    """The kernel's growth lies within bunscope's bracket, give or take
    rel * value + abs_ (the two sides' clocks start a run at slightly
    different points)."""
    slack = max(abs_, rel * kern)
    assert lo - slack <= kern <= hi + slack, \
        "%s: schedstat %d, bunscope %d..%d" % (what, kern, lo, hi)


@privileged
def test_thread_cpu_and_run_queue_match_schedstat():
    """Work on the JS thread (blocking handlers, requests) and on the GC
    threads (forced collections): the on-CPU time per role equals the
    kernel's schedstat of the threads with those names, the switch-ins equal
    its timeslices, and the JS thread's run-queue delay equals its run_delay."""
    with BunApp(app_js=RUNTIME_JS) as app, Bunscope.for_app(app) as scope:
        pid = app.pid
        # the books of a thread open at its first switch-in after attach
        wait_until(lambda: (app.get("/"), ours(scope, pid)["js"][2])[1], 10,
                   "a JS-thread switch-in", check=lambda v: v >= 1)
        a0, k0, b0 = bracketed(scope, pid)
        for _ in range(4):
            app.get("/block?ms=50")
        app.get("/gc?n=3&gap=50")
        for _ in range(300):
            app.get("/")
        a1, k1, b1 = bracketed(scope, pid)
        assert_equal(scope.scrape().sum_values("bunscope_bpf_prog_recursion_misses_total",
                                               prog="bs_sched_switch"), 0,
                     "sched_switch runs the kernel skipped")
        for r in ROLES:
            for f, what, rel, abs_ in ((0, "on-CPU ns", 0.02, 1e6), (2, "runs", 0, 0),
                                       (1, "run-queue ns", 0.02, 1e6)):
                if f == 1 and r != "js":
                    continue
                check_between("%s %s" % (r, what), k1[r][f] - k0[r][f],
                              a1[r][f] - b0[r][f], b1[r][f] - a0[r][f], rel, abs_)
        # the work was there (the kernel's figures; the spin is by the wall
        # clock, so a busy machine gives it less than 200 ms of CPU)
        js_cpu = (k1["js"][0] - k0["js"][0]) / 1e9
        assert js_cpu >= 0.1, "4 x 50 ms of spinning is %.3f s of JS-thread CPU" % js_cpu
        gc_cpu = sum(k1[r][0] - k0[r][0] for r in ("gc_helper", "gc_collector")) / 1e9
        assert gc_cpu > 0, "3 forced collections used no GC-thread CPU"


def elu_gauge(scope, pid):
    return scope.scrape().value(ELU, pid=pid)


def busy_idle(scope, pid):
    s = scope.scrape()
    return s.value(BUSY, pid=pid), s.value(IDLE, pid=pid)


@privileged
def test_event_loop_utilization_of_a_duty_cycle():
    """Idle app: about 0.  An app whose JS thread spins for the first 500 ms
    of every second: the gauge (1 s window) reads 0.5 +- 0.05 throughout, and
    so does the busy/idle counter pair over 4 s."""
    with BunApp(app_js=RUNTIME_JS) as app, Bunscope.for_app(app) as scope:
        pid = app.pid
        app.get("/")  # a return from epoll: the loop is followed from here
        wait_until(lambda: elu_gauge(scope, pid), 10, "an idle event-loop gauge",
                   check=lambda v: v is not None and v < 0.05)
        j = scope.server_metrics(pid)["eventLoop"]
        assert j["utilization"] is not None and j["utilization"] < 0.05, j

        status, _, _ = app.get("/duty?busy=500&period=1000&cycles=7")
        assert status == 200
        t0 = time.monotonic()
        # sampling at fixed times inside the duty cycle (not synchronisation):
        # from 1.3 s on, the gauge's 1 s window lies inside it
        gauges, counters = [], {}
        for k in range(20):
            at = t0 + 1.3 + 0.25 * k
            time.sleep(max(0.0, at - time.monotonic()))
            gauges.append(elu_gauge(scope, pid))
            if k in (1, 17):  # 4.0 s apart: four whole periods
                counters[k] = (time.monotonic(), busy_idle(scope, pid))
        bad = [g for g in gauges if g is None or abs(g - 0.5) > 0.05]
        assert not bad, "gauge samples off 0.5 +- 0.05: %s (all: %s)" % (bad, gauges)
        (ta, (ba, ia)), (tb, (bb, ib)) = counters[1], counters[17]
        ratio = (bb - ba) / ((bb - ba) + (ib - ia))
        assert abs(ratio - 0.5) <= 0.05, "busy share by the counters: %.3f" % ratio
        # busy + idle is wall time: nothing is lost or counted twice
        assert abs((bb - ba) + (ib - ia) - (tb - ta)) < 0.05, \
            "busy+idle %.3f s over %.3f s" % ((bb - ba) + (ib - ia), tb - ta)


def blocking_handler_in_the_block_histogram(*args):
    with BunApp(app_js=RUNTIME_JS) as app, Bunscope.for_app(app, *args) as scope:
        pid = app.pid
        app.get("/")
        wait_until(lambda: scope.scrape().histogram(BLOCK, pid=pid)["count"], 10,
                   "a first block sample", check=lambda v: v >= 1)
        h0 = scope.scrape().histogram(BLOCK, pid=pid)
        for _ in range(20):
            app.get("/")
        status, _, body = app.get("/block?ms=200")
        assert status == 200 and body == b"blocked 200", (status, body)
        for _ in range(20):
            app.get("/")

        def above(h, le):
            return h["count"] - h["buckets"][le]

        h1 = wait_until(lambda: scope.scrape().histogram(BLOCK, pid=pid), 5,
                        "the 200 ms block", check=lambda h: above(h, 0.1) > above(h0, 0.1))
        assert_equal(above(h1, 0.1) - above(h0, 0.1), 1, "blocks above 100 ms")
        assert_equal(above(h1, 0.25) - above(h0, 0.25), 0, "blocks above 250 ms")
        assert h1["sum"] - h0["sum"] >= 0.2, (h0["sum"], h1["sum"])
        scope.scrape().check_histograms(BLOCK, [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025,
                                                0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                                float("inf")], pid=str(pid))


@privileged
def test_blocking_handler_in_the_block_histogram():
    """A handler that blocks the JS thread for 200 ms is one sample in the
    (0.1, 0.25] bucket; short requests around it add none above 0.1 s."""
    blocking_handler_in_the_block_histogram()


@privileged
def test_blocking_handler_raw_tracepoint_capture():
    """The same with --capture raw_tracepoint (epoll entries from raw sys_enter)."""
    blocking_handler_in_the_block_histogram("--capture", "raw_tracepoint")


GC_START = re.compile(rb"\[GC<[^>]*>: START ")


def logged_collections(log_path, phase):
    """Collections Bun logged inside the app's phase-th (from 0) pair of
    "gc-phase begin" / "gc-phase end" markers."""
    with open(log_path, "rb") as f:
        text = f.read()
    i = -1
    for _ in range(phase + 1):
        i = text.index(b"gc-phase begin", i + 1)
    return len(GC_START.findall(text, i, text.index(b"gc-phase end", i)))


@privileged
def test_gc_bursts_follow_bun_own_gc_log():
    """With BUN_JSC_logGC=true Bun logs every collection.  Six forced full
    collections 300 ms apart: each is one GC burst, and there are never
    more bursts than collections Bun logged, idle or not."""
    with BunApp(app_js=RUNTIME_JS, env={"BUN_JSC_logGC": "true"}) as app, \
            Bunscope.for_app(app) as scope:
        pid = app.pid

        def bursts():
            return scope.scrape().value(BURSTS, pid=pid)

        # idle: the helper threads' timed wake-ups are not bursts
        before = bursts()
        status, _, _ = app.get("/gc?n=0&gap=1500")  # 1.5 s of nothing, bracketed
        assert status == 200
        idle = bursts() - before
        idle_logged = logged_collections(app.log_path, 0)
        assert idle <= idle_logged, "%d bursts in 1.5 s with %d collections logged" \
            % (idle, idle_logged)

        before = bursts()
        status, _, body = app.get("/gc?n=6&gap=300", timeout=60)
        assert status == 200, body
        logged = logged_collections(app.log_path, 1)
        assert logged >= 6, "Bun logged %d collections for 6 forced ones" % logged
        got = wait_until(lambda: bursts() - before, 5, "six GC bursts",
                         check=lambda n: n >= 6)
        assert got <= logged, "%d bursts for %d logged collections" % (got, logged)
        cpu = scope.scrape().sum_values(CPU, pid=pid, thread="gc_helper")
        assert cpu > 0, "GC bursts without GC-helper CPU"
