"""--uprobe BINARY:SYMBOL on a small program the test builds: calls and the
latency histogram against the program's own count and timing."""

import math
import os
import subprocess

from harness import REPO, Bunscope, assert_equal, free_port, privileged, run

CALLS = "bunscope_uprobe_calls_total"
DUR = "bunscope_uprobe_duration_seconds"


def build():
    binary = os.path.join(os.environ.get("TMPDIR", "/tmp"), "uprobe_target")
    p = run(["cc", "-O2", "-g", "-o", binary, str(REPO / "tests" / "apps" / "uprobe_target.c")])
    assert p.returncode == 0, p.stderr
    return binary


@privileged
def test_uprobe_calls_and_latency():
    binary = build()
    prog = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = prog.stdout.readline().split()
        assert line[0] == "ready", line
        pid = int(line[1])
        probe = "%s:bunscope_test_work" % binary
        with Bunscope("--pid", str(pid), "--uprobe", probe, wait_pids=[pid]) as scope:
            prog.stdin.write("go 40 2000\n")   # 40 calls of about 2 ms
            prog.stdin.flush()
            first = prog.stdout.readline().split()
            assert first[0] == "done", first
            n, total_ns = int(first[1]), int(first[2])
            prog.stdin.write("go 1000 0\n")    # 1000 calls returning at once
            prog.stdin.flush()
            done = prog.stdout.readline().split()
            assert done[:2] == ["done", "1000"], done
            s = scope.scrape()
            assert_equal(int(s.value(CALLS, pid=pid, probe=probe)), n + 1000, "calls")
            h = s.histogram(DUR, pid=pid, probe=probe)
            assert_equal(int(h["count"]), n + 1000, "returns timed")
            # the 2 ms calls sleep at least 2 ms, the empty ones return at once;
            # a call the program timed at most 1 ms (10 ms) was probed at most
            # that (unless preempted, all 1000 empty calls, and every call)
            le_1ms, le_10ms = int(first[3]) + int(done[3]), int(first[4]) + int(done[4])
            assert le_1ms >= 990 and le_10ms >= n + 990, (first, done)
            assert le_1ms <= int(h["buckets"][0.001]) <= 1000, \
                ("calls <= 1 ms", h["buckets"][0.001], le_1ms)
            assert le_10ms <= int(h["buckets"][0.01]) <= n + 1000, \
                ("calls <= 10 ms", h["buckets"][0.01], le_10ms)
            # the probe's sum covers the sleeping calls as the program timed them
            assert total_ns * 0.9 / 1e9 <= h["sum"] <= total_ns * 1.1 / 1e9 + 0.05, \
                (h["sum"], total_ns)
            s.check_histograms(DUR, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, math.inf], pid=pid)
    finally:
        prog.stdin.close()
        prog.wait(10)


@privileged
def test_uprobe_bad_symbol_fails_fast():
    """A symbol that is not in the binary is an error at start-up, with the reason."""
    binary = build()
    p = run([str(REPO / "build" / "bunscope"), "--pid", str(os.getpid()),
             "--uprobe", binary + ":no_such_function", "--listen",
             "127.0.0.1:%d" % free_port()], timeout=30)
    assert p.returncode != 0, p
    assert "no_such_function" in p.stderr and "symbol table" in p.stderr, p.stderr
