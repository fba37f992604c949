"""Memory: resident memory against /proc/PID/status, the memory ceiling, and
the memory-syscall counters against a program that makes a known set of
calls."""

import os
import subprocess

from harness import (REPO, BunApp, Bunscope, assert_equal, privileged, rss_bytes, run,
                     wait_until)

RSS = "bun_process_resident_memory_bytes"
MIB = 1 << 20


def rss_pair(scope, pid):
    """(bunscope's resident memory, VmRSS), read back to back."""
    ours = scope.scrape().value(RSS, pid=pid)
    return int(ours or 0), rss_bytes(pid)


def within_2pct(v):
    ours, proc = v
    return abs(ours - proc) <= 0.02 * proc


@privileged
def test_resident_memory_and_ceiling():
    """bun_process_resident_memory_bytes agrees with VmRSS within 2% at rest
    and after the app allocates 192 MiB; the high-water mark follows; the
    ceiling (set between the two) is reported exceeded and logged once."""
    with BunApp() as app:
        ceiling = rss_bytes(app.pid) + 96 * MIB
        with Bunscope.for_app(app, "--memory-ceiling", str(ceiling)) as scope:
            ours, proc = wait_until(lambda: rss_pair(scope, app.pid), 10,
                                    "bunscope RSS within 2% of VmRSS", check=within_2pct)
            base = ours
            j = scope.server_metrics(app.pid)
            assert j["memory"]["ceilingExceeded"] is False, j
            assert_equal(j["memory"]["ceiling"], ceiling, "JSON ceiling")

            app.get("/alloc?mb=192")
            ours, proc = wait_until(
                lambda: rss_pair(scope, app.pid), 10,
                "bunscope RSS within 2% of VmRSS and up by 180 MiB",
                check=lambda v: within_2pct(v) and v[0] >= base + 180 * MIB)
            s = scope.scrape()
            assert s.value("bun_process_resident_memory_max_bytes", pid=app.pid) >= ours
            anon = s.value("bun_process_resident_memory_type_bytes", pid=app.pid, type="anon")
            assert anon >= 180 * MIB, anon
            assert s.value("bun_process_page_faults_total", pid=app.pid, type="minor") > 0
            wait_until(lambda: scope.server_metrics(app.pid)["memory"]["ceilingExceeded"], 5,
                       "JSON ceilingExceeded", check=lambda v: v is True)
            assert_equal(scope.scrape().value("bun_process_memory_ceiling_exceeded",
                                              pid=app.pid), 1, "ceiling gauge")
            wait_until(lambda: scope.log_text().count("above the memory ceiling"), 5,
                       "the crossing in the log", check=lambda n: n >= 1)
            # more memory while above, and a few of the daemon's checks: no second message
            app.get("/alloc?mb=16")
            wait_until(lambda: rss_pair(scope, app.pid), 10, "RSS up by 16 MiB more",
                       check=lambda v: within_2pct(v) and v[0] >= ours + 14 * MIB)
            ticks = scope.health()["refreshes"]
            wait_until(lambda: scope.health()["refreshes"], 5, "3 more ceiling checks",
                       check=lambda n: n >= ticks + 3)
            assert_equal(scope.log_text().count("above the memory ceiling"), 1,
                         "ceiling messages")


@privileged
def test_memory_syscalls_counted():
    """A C program makes a known set of mmap/madvise/munmap/brk calls after
    bunscope attached: every counter equals what it did."""
    binary = os.path.join(os.environ.get("TMPDIR", "/tmp"), "memcalls")
    p = run(["cc", "-O2", "-o", binary, str(REPO / "tests" / "apps" / "memcalls.c")])
    assert p.returncode == 0, p.stderr
    prog = subprocess.Popen([binary, "25"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        line = prog.stdout.readline().split()
        assert line[0] == "ready", line
        pid = int(line[1])
        with Bunscope("--pid", str(pid), wait_pids=[pid]) as scope:
            prog.stdin.write("go\n")
            prog.stdin.flush()
            done = prog.stdout.readline().split()
            assert done[0] == "done", done
            want = dict(kv.split("=") for kv in done[1:] if "=" in kv)
            s = scope.scrape()

            def v(name, **labels):
                return int(s.value(name, pid=pid, **labels) or 0)
            page = os.sysconf("SC_PAGESIZE")
            rounds = 25
            assert_equal(v("bun_process_mmap_calls_total"), rounds, "mmap calls")
            assert_equal(v("bun_process_mmap_bytes_total"), rounds * 3 * page, "mmap bytes")
            assert_equal(v("bun_process_munmap_calls_total"), rounds, "munmap calls")
            assert_equal(v("bun_process_munmap_bytes_total"), rounds * 3 * page,
                         "munmap bytes")
            assert_equal(v("bun_process_madvise_calls_total", advice="dontneed"), rounds,
                         "madvise dontneed")
            assert_equal(v("bun_process_madvise_bytes_total", advice="dontneed"),
                         rounds * 2 * page, "madvise dontneed bytes")
            assert_equal(v("bun_process_madvise_calls_total", advice="free"), rounds,
                         "madvise free")
            assert_equal(v("bun_process_brk_calls_total"), 3, "brk calls")
            assert_equal(v("bun_process_brk_bytes_total", direction="grow"), 65536, "brk grow")
            assert_equal(v("bun_process_brk_bytes_total", direction="shrink"), 65536,
                         "brk shrink")
            assert want["madvise_dontneed"] == str(rounds)
            prog.stdin.write("exit\n")
            prog.stdin.flush()
            prog.wait(10)
    finally:
        if prog.poll() is None:
            prog.kill()
        prog.wait(10)


def memory_cgroup_dir():
    """A memory cgroup directory bunscope's tests may create children in:
    the cgroup v2 unified tree when it has the memory controller, else the
    v1 memory hierarchy (our own cgroup in it)."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for m in mounts:
        fstype = m[m.index("-") + 1]
        if fstype == "cgroup2":
            with open(os.path.join(m[4], "cgroup.controllers")) as c:
                if "memory" in c.read().split():
                    own = open("/proc/self/cgroup").read().splitlines()
                    rel = next(x.split(":", 2)[2] for x in own if x.startswith("0::"))
                    return 2, os.path.join(m[4], rel.lstrip("/"))
    for m in mounts:
        fstype = m[m.index("-") + 1]
        if fstype == "cgroup" and "memory" in m[m.index("-") + 3].split(","):
            own = open("/proc/self/cgroup").read().splitlines()
            rel = next(x.split(":", 2)[2] for x in own
                       if "memory" in x.split(":", 2)[1].split(","))
            return 1, os.path.join(m[4], rel.lstrip("/"))
    raise AssertionError("no memory cgroup controller mounted (v1 or v2): "
                         "this test needs one to provoke an OOM kill")


def memcg_oom_kills(version, path):
    """The kernel's own count of OOM kills in a memory cgroup."""
    name = "memory.events" if version == 2 else "memory.oom_control"
    with open(os.path.join(path, name)) as f:
        for line in f:
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
    raise AssertionError("%s has no oom_kill line (kernel too old?)" % name)


@privileged
def test_oom_kill_of_target():
    """The Bun app is moved into a memory cgroup limited to 96 MiB and asked
    for 512 MiB: the kernel OOM-kills it.  bun_process_oom_kills_total equals
    the cgroup's own oom_kill count, and the daemon logs the victim's pid."""
    version, parent = memory_cgroup_dir()
    cg = os.path.join(parent, "bunscope-oom-%d" % os.getpid())
    os.mkdir(cg)
    try:
        limit = 96 * MIB
        with open(os.path.join(cg, "memory.max" if version == 2
                               else "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit))
        with BunApp() as app, Bunscope.for_app(app) as scope:
            before = int(scope.scrape().value("bun_process_oom_kills_total") or 0)
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write(str(app.pid))
            try:
                app.get("/alloc?mb=512", timeout=30)
            except OSError:
                pass            # the app died under the request, as it should
            wait_until(lambda: app.proc.poll(), 20, "the Bun app OOM-killed",
                       check=lambda rc: rc is not None)
            assert_equal(app.proc.returncode, -9, "the app's exit (SIGKILL)")
            kills = memcg_oom_kills(version, cg)
            assert_equal(kills, 1, "the cgroup's oom_kill count")
            got = wait_until(lambda: int(scope.scrape().value("bun_process_oom_kills_total")
                                         or 0) - before, 10,
                             "bun_process_oom_kills_total up by the cgroup's count",
                             check=lambda v: v >= kills)
            assert_equal(got, kills, "OOM kills counted")
            wait_until(lambda: scope.log_text(), 5, "the victim in the log",
                       check=lambda t: "pid %d was chosen by the OOM killer" % app.pid in t)
            assert scope.proc.poll() is None, "bunscope exited after its target was OOM-killed"
    finally:
        # the dead app's pages may take a moment to be uncharged
        wait_until(lambda: _rmdir(cg), 10, "the test cgroup removed")


def _rmdir(path):
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
