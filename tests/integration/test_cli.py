"""Command line: --help, --version, bad options, a missing pid, doctor,
check, and clean detaching on SIGTERM/SIGINT."""

import json
import os
import re
import signal
import subprocess

from harness import (BUNSCOPE_BIN, BunApp, Bunscope, assert_equal, free_port, pid_alive,
                     privileged, run, wait_until)

PROG_PREFIX = "bs_"  # names of the daemon's BPF programs


def _bunscope(*args, timeout=60):
    cmd = [str(BUNSCOPE_BIN)] + [str(a) for a in args]
    try:
        return run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("`%s` did not exit within %ss" % (" ".join(cmd), timeout))


def _bs_programs():
    """{id: prog} of loaded BPF programs whose name starts with bs_."""
    p = run(["bpftool", "-j", "prog", "show"], timeout=60)
    assert p.returncode == 0, "bpftool prog show failed: %s" % p.stderr
    progs = json.loads(p.stdout or "[]")
    return {prog["id"]: prog for prog in progs
            if str(prog.get("name", "")).startswith(PROG_PREFIX)}


def _owned_by_others(prog, pid):
    """A program some other live process holds (a concurrent bunscope)."""
    return any(o.get("pid") != pid and pid_alive(o.get("pid", -1))
               for o in prog.get("pids", []))


def _describe(progs):
    return ["%s %s (held by %s)" % (i, p.get("name"), p.get("pids", "?"))
            for i, p in sorted(progs.items())]


def _wait_gone(before, pid, when, timeout=10):
    """Wait until no bs_ program exists that was not there before (except
    ones another live process holds)."""
    def leftovers():
        return _describe({i: p for i, p in _bs_programs().items()
                          if i not in before and not _owned_by_others(p, pid)})
    wait_until(leftovers, timeout, "no BPF programs named %s* left %s" % (PROG_PREFIX, when),
               check=lambda left: not left)


def _assert_detaches(sig):
    before = _bs_programs()
    with BunApp() as app:
        with Bunscope.for_app(app) as scope:
            during = _bs_programs()
            ours = {i: p for i, p in during.items() if i not in before}
            assert ours, ("no new BPF programs named %s* while bunscope runs "
                          "(bpftool prog show): %s" % (PROG_PREFIX, _describe(during)))
            st, _, _ = app.get("/")
            assert st == 200
            scope.stop(sig)  # asserts exit code 0 within 10 s
        assert app.alive(), "the app died when bunscope detached"
        st, _, body = app.get("/")
        assert st == 200 and body == b"hi", (st, body)
    # the kernel frees programs asynchronously (RCU) after the last reference
    # goes: poll for them to disappear
    _wait_gone(before, scope.pid, "after %s" % signal.Signals(sig).name)


@privileged
def test_help():
    p = _bunscope("--help", timeout=30)
    assert_equal(p.returncode, 0, "--help exit code")
    assert "--pid" in p.stdout + p.stderr, "--help does not mention --pid:\n" + p.stdout


@privileged
def test_version():
    p = _bunscope("--version", timeout=30)
    assert_equal(p.returncode, 0, "--version exit code")
    assert re.search(r"\d+\.\d+", p.stdout + p.stderr), \
        "--version prints no version: %r" % (p.stdout + p.stderr)


@privileged
def test_unknown_option():
    p = _bunscope("--no-such-option", "--listen", "127.0.0.1:%d" % free_port(), timeout=30)
    assert p.returncode > 0, "unknown option: exit code %d" % p.returncode
    assert p.stderr.strip(), "unknown option: nothing on stderr"


@privileged
def test_missing_pid():
    pid = 999999
    while os.path.exists("/proc/%d" % pid):
        pid += 1
    p = _bunscope("--pid", pid, "--listen", "127.0.0.1:%d" % free_port(), timeout=30)
    assert p.returncode > 0, "--pid %d (no such process): exit code %d; stderr: %s" \
        % (pid, p.returncode, p.stderr)
    assert str(pid) in p.stderr, "--pid %d: the message does not name the pid: %r" \
        % (pid, p.stderr)


@privileged
def test_doctor():
    p = _bunscope("doctor", timeout=60)
    out = p.stdout + p.stderr
    assert_equal(p.returncode, 0, "doctor exit code (output:\n%s)" % out)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) >= 3, "doctor printed no checklist:\n" + out


@privileged
def test_check():
    before = _bs_programs()
    with BunApp() as app:
        p = _bunscope("check", "--pid", app.pid, timeout=120)
        assert_equal(p.returncode, 0, "check --pid exit code (stderr:\n%s)" % p.stderr[-3000:])
        assert app.alive(), "the app died during check"
        st, _, _ = app.get("/")
        assert st == 200
    _wait_gone(before, -1, "after check")


@privileged
def test_sigterm_detaches():
    _assert_detaches(signal.SIGTERM)


@privileged
def test_sigint_detaches():
    _assert_detaches(signal.SIGINT)
