"""Target selectors: --name follows restarts of the app, --port finds the
process listening on a port."""

import subprocess
import time

from harness import (BUN, BunApp, Bunscope, assert_equal, free_port, privileged, read_comm,
                     wait_until)
import harness
from netns import Topology

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


@privileged
def test_port_selector_other_netns():
    """--port looks in the daemon's network namespace: a Bun listening on
    the port inside another namespace is taken neither by the kernel at its
    listen() nor by the scans; one listening on the host then is, and its
    first requests are counted."""
    port = free_port()
    with Topology(1) as topo, Bunscope("--port", port) as scope:
        c = topo.clients[0]
        serve = "Bun.serve({port: %d, fetch() { return new Response('x'); }})" % port
        other = c.exec([str(BUN), "-e", serve], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_until(lambda: c.run(["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:%d/" % port],
                                 timeout=5).returncode == 0,
                   20, "the Bun in namespace %s to answer on port %d" % (c.ns, port))
        seen = scope.health()["refreshes"]
        wait_until(lambda: scope.health()["refreshes"] >= seen + 2, 5, "two more target scans")
        assert_equal(scope.target_pids(), [], "targets with a listener in another namespace")
        assert other.poll() is None, "the Bun in the namespace exited"
        with BunApp(port=port, control_port=free_port()) as app:
            _traffic_counted(scope, app)
            assert_equal(scope.target_pids(), [app.pid], "targets")
