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
