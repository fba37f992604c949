#!/usr/bin/env python3
"""Runner of the bunscope integration tests (Python 3 stdlib only).

    python3 tests/integration/run.py [options] [FILTER...]

Discovers the top-level `test_*` functions of tests/integration/test_*.py and
runs them in file (sorted) / definition order. A FILTER is a substring of
"test_file::test_name" (e.g. `pending`, `test_cli`, `test_http::test_ipv6`);
a test runs when any filter matches (all run without filters).

Each test runs in its own process group with its own TMPDIR, so a test that
times out (default 180 s, --timeout) or leaks children is cleaned up: the
runner raises a timeout inside it first (its finally blocks run), then kills
the whole group, and always removes the temp dir.

Prints one line per test (PASS/FAIL/SKIP name (seconds)), the traceback and
the bunscope log tail of each failure, and a summary. Exit status: 0 when
nothing failed, 1 otherwise. With BUNSCOPE_REQUIRE_PRIVILEGED=1 (CI), a
privileged test that would be skipped fails instead.

Options: --list (only list the tests), --timeout SECONDS, -v (show every
test's output), -x (stop at the first failure), --dir DIR (tests directory).
"""

import argparse
import ast
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REQUIRE_ENV = "BUNSCOPE_REQUIRE_PRIVILEGED"
GRACE = 20.0  # seconds between the in-test timeout and the group kill


# ---------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------

def discover(test_dir):
    """[(file Path, function name)] in file then definition order. Parsed
    with ast, so a module that does not even parse still shows up (and fails
    in its child)."""
    tests = []
    for path in sorted(Path(test_dir).glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError as e:
            tests.append((path, "<syntax error: %s>" % e))
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.name.startswith("test_"):
                tests.append((path, node.name))
    return tests


def test_id(path, name):
    return "%s::%s" % (path.stem, name)


# ---------------------------------------------------------------------------
# child: runs exactly one test and writes a JSON result
# ---------------------------------------------------------------------------

def child_main(path, name, result_path, timeout):
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(Path(path).parent))
    result = {"status": "FAIL", "detail": "", "logs": []}
    harness = None
    try:
        import harness  # noqa: F401  (the one in HERE)

        def on_timeout(signum, frame):
            raise harness.TestTimeout("test timed out after %ss (signal %d)"
                                      % (timeout, signum))

        signal.signal(signal.SIGALRM, on_timeout)
        signal.signal(signal.SIGTERM, on_timeout)
        signal.alarm(max(1, int(math.ceil(timeout))))
        import importlib.util
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fn = getattr(module, name)
        is_privileged = getattr(fn, "privileged", False)
        result["privileged"] = is_privileged
        try:
            fn()
            result["status"] = "PASS"
        except harness.Skip as e:
            if is_privileged and os.environ.get(REQUIRE_ENV) == "1":
                result["status"] = "FAIL"
                result["detail"] = ("privileged test skipped (%s), but %s=1 forbids skips"
                                    % (e, REQUIRE_ENV))
            else:
                result["status"] = "SKIP"
                result["detail"] = str(e)
        finally:
            signal.alarm(0)
    except BaseException as e:  # noqa: B902  (TestTimeout, KeyboardInterrupt, ...)
        result["status"] = "FAIL"
        if harness is not None and isinstance(e, harness.PrerequisiteError):
            result["detail"] = "%s: %s" % (type(e).__name__, e)
        else:
            result["detail"] = traceback.format_exc()
    if harness is not None:
        result["logs"] = list(getattr(harness, "LOG_TAILS", []))
    elif "harness" in sys.modules:
        result["logs"] = list(sys.modules["harness"].LOG_TAILS)
    with open(result_path, "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


# ---------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------

def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_group(pgid, timeout=5.0):
    """SIGTERM then SIGKILL whatever is left in the group; True if anything was."""
    if not group_alive(pgid):
        return False
    kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def tail_text(text, lines):
    parts = text.splitlines()
    return "\n".join(parts[-lines:])


def indent(text, prefix="    "):
    return "\n".join(prefix + line for line in text.splitlines())


def run_one(path, name, timeout, verbose):
    tmp = tempfile.mkdtemp(prefix="bunscope-it-")
    result_path = os.path.join(tmp, "result.json")
    out_path = os.path.join(tmp, "output.log")
    test_tmp = os.path.join(tmp, "tmp")
    os.mkdir(test_tmp)
    env = dict(os.environ)
    env["TMPDIR"] = test_tmp
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path), name,
           result_path, "--timeout", str(timeout)]
    start = time.monotonic()
    notes = []
    proc = None
    try:
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            proc.wait(timeout + GRACE)
        except subprocess.TimeoutExpired:
            notes.append("the test did not finish within %ss + %ss grace: killed its "
                         "process group" % (timeout, GRACE))
            kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
        if reap_group(proc.pid):
            notes.append("the test left processes behind: killed them")
        elapsed = time.monotonic() - start
        try:
            with open(result_path) as f:
                result = json.load(f)
        except (OSError, ValueError):
            result = {"status": "FAIL", "detail": "the test process died (exit %s) "
                      "without a result" % proc.returncode, "logs": []}
        with open(out_path, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        return result, elapsed, output, notes
    except KeyboardInterrupt:
        if proc is not None:
            reap_group(proc.pid, 3.0)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    ap = argparse.ArgumentParser(description="bunscope integration tests")
    ap.add_argument("filters", nargs="*", help="substrings of file::test names")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--timeout", type=float,
                    default=float(os.environ.get("BUNSCOPE_TEST_TIMEOUT", 180)),
                    help="per-test timeout in seconds (default 180)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show every test's output")
    ap.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    ap.add_argument("--dir", default=str(HERE), help="directory of the test_*.py files")
    ap.add_argument("--child", nargs=3, metavar=("FILE", "NAME", "RESULT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        return child_main(args.child[0], args.child[1], args.child[2], args.timeout)

    tests = discover(args.dir)
    if args.filters:
        tests = [(p, n) for (p, n) in tests
                 if any(f in test_id(p, n) for f in args.filters)]
    if not tests:
        print("no tests match %s in %s" % (args.filters or "", args.dir))
        return 1
    if args.list:
        for p, n in tests:
            print(test_id(p, n))
        return 0

    print("bunscope integration tests: %d test(s), timeout %ss each, uid %d%s"
          % (len(tests), args.timeout, os.geteuid(),
             ", %s=1" % REQUIRE_ENV if os.environ.get(REQUIRE_ENV) == "1" else ""),
          flush=True)
    binary = Path(os.environ.get("BUNSCOPE_BIN", REPO / "build" / "bunscope"))
    if not os.access(binary, os.X_OK):
        print("warning: %s is missing: every test that needs the daemon will fail" % binary,
              flush=True)
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    failed = []
    suite_start = time.monotonic()
    try:
        for path, name in tests:
            tid = test_id(path, name)
            result, elapsed, output, notes = run_one(path, name, args.timeout, args.verbose)
            status = result.get("status", "FAIL")
            if notes and status == "PASS":
                status = "FAIL"
                result["detail"] = "\n".join(notes)
            counts[status] = counts.get(status, 0) + 1
            line = "%s %s (%.2fs)" % (status, tid, elapsed)
            if status == "SKIP":
                line += ": " + result.get("detail", "")
            print(line, flush=True)
            if status == "FAIL":
                failed.append(tid)
                print(indent(result.get("detail", "").rstrip()))
                for note in notes:
                    if note not in result.get("detail", ""):
                        print(indent("note: " + note))
                for label, text in result.get("logs", []):
                    print(indent("--- log tail: %s ---" % label))
                    print(indent(tail_text(text, 60) or "<empty>"))
                if output.strip():
                    print(indent("--- test output (tail) ---"))
                    print(indent(tail_text(output, 40)))
                sys.stdout.flush()
                if args.exitfirst:
                    break
            elif args.verbose and output.strip():
                print(indent(output.rstrip()), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    total = time.monotonic() - suite_start
    print("\n%d passed, %d failed, %d skipped in %.1fs"
          % (counts["PASS"], counts["FAIL"], counts["SKIP"], total))
    if failed:
        print("failed:\n" + "\n".join("  " + t for t in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
