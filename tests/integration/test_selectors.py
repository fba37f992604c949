"""Target selectors: --name follows restarts of the app, --port finds the
process listening on a port."""

import time

from harness import (BunApp, Bunscope, assert_equal, privileged, read_comm, wait_until)
import harness

RESTART_DEADLINE = 1.5  # seconds from the new app's "ready" to /health listing it


def _traffic_counted(scope, app, n=3):
    for i in range(n):
        st, _, _ = app.get("/users/%d" % i)
        assert st == 200, st
    scope.wait_count(app.port, n, app.pid, http_route="/users/:id")
    assert_equal(app.handled(), n, "Bun handled")


@privileged
def test_name_follows_restart():
    first = BunApp()
    with first:
        comm = read_comm(first.pid)
        assert comm, "empty comm for pid %d" % first.pid
        with Bunscope("--name", comm, wait_pids=[first.pid]) as scope:
            _traffic_counted(scope, first)
            old_pid = first.pid
            first.stop()
            with BunApp() as second:
                assert second.pid != old_pid
                left = max(0.05, second.ready_at + RESTART_DEADLINE - time.monotonic())
                wait_until(lambda: second.pid in scope.target_pids(), left,
                           "/health to list the restarted app (pid %d, comm %r) within %.1fs "
                           "of its 'ready'" % (second.pid, comm, RESTART_DEADLINE),
                           interval=0.02)
                elapsed = time.monotonic() - second.ready_at
                assert elapsed <= RESTART_DEADLINE + 0.1, \
                    "new pid listed %.2fs after ready" % elapsed
                harness.log("restarted app listed %.3fs after its ready line" % elapsed)
                _traffic_counted(scope, second)
                wait_until(lambda: old_pid not in scope.target_pids(), 10,
                           "/health to drop the dead pid %d" % old_pid)


@privileged
def test_port_selector():
    with BunApp() as app, Bunscope("--port", app.port, wait_pids=[app.pid]) as scope:
        _traffic_counted(scope, app)
        s = scope.scrape()
        assert_equal(s.active(app.port, app.pid), 0, "active requests")
