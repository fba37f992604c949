"""Counting under load (wrk): exact totals at full speed, and the active
requests gauge while requests are in flight."""

import subprocess
import time

from harness import (BunApp, Bunscope, assert_equal, parse_wrk_total, privileged, run_wrk,
                     stop_process, wait_until, wait_value, wrk_cmd)
import harness


@privileged
def test_wrk_full_speed():
    """wrk -t1 -c50 -d10s on /: bunscope's count == Bun's handled, and
    wrk's total <= count <= wrk's total + connections."""
    conns = 50
    with BunApp() as app, Bunscope.for_app(app) as scope:
        wrk_total, out = run_wrk(app.url("/"), 1, conns, 10)
        assert wrk_total > 0, out
        app.wait_idle(15)
        count, handled = wait_until(lambda: harness.scope_and_app_counts(scope, app, http_route="/"),
                                    30, "bunscope count for / == Bun handled (bunscope, Bun)",
                                    check=lambda v: v[0] == v[1])
        assert wrk_total <= count <= wrk_total + conns, \
            "bunscope counted %d, wrk completed %d (+%d connections)" % (count, wrk_total, conns)
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid), handled, "total on the app port")
        assert_equal(s.count(app.port, app.pid, http_response_status_code="200"), handled,
                     "status 200 count")
        wait_value(lambda: scope.active(app.port, app.pid), 0, 5, "active requests after wrk")
        harness.log("wrk %d, bunscope %d, Bun %d" % (wrk_total, count, handled))


@privileged
def test_active_gauge_under_wrk():
    """While wrk -c20 hits /slow?ms=20, the gauge and Bun's pendingRequests
    stay within [0, 20]; both are 0 after wrk ends."""
    conns = 20
    with BunApp() as app, Bunscope.for_app(app) as scope:
        proc = subprocess.Popen(wrk_cmd(app.url("/slow?ms=20"), 1, conns, 3),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        samples = []
        try:
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                gauge = scope.active(app.port, app.pid)
                bun = app.pending()
                samples.append((gauge, bun))
                time.sleep(0.05)  # sampling rate, not synchronisation
            out, _ = proc.communicate(timeout=30)
        finally:
            stop_process(proc, timeout=5)
        assert proc.returncode == 0, out
        wrk_total = parse_wrk_total(out)
        assert len(samples) >= 10, "only %d samples while wrk ran" % len(samples)
        bad = [s for s in samples if not (0 <= s[0] <= conns and 0 <= s[1] <= conns)]
        assert not bad, "samples (bunscope, Bun) outside [0, %d]: %s" % (conns, bad[:10])
        assert any(g > 0 for g, _ in samples), \
            "the gauge never moved while wrk ran: %s" % samples[:20]
        assert any(b > 0 for _, b in samples), "Bun never had pending requests: %s" % samples[:20]
        wait_value(app.pending, 0, 10, "Bun pendingRequests after wrk")
        wait_value(lambda: scope.active(app.port, app.pid), 0, 5, "active requests after wrk")
        # wrk abandons the requests in flight when it stops: Bun ran their
        # handlers, but their connections closed before the responses went
        # out, so they are aborted rather than completed.
        def counts():
            s = scope.scrape()
            return (s.count(app.port, app.pid, http_route="/slow"),
                    int(s.sum_values(harness.ABORTED, server_port=app.port, pid=app.pid)),
                    app.handled())

        count, aborted, handled = wait_until(
            counts, 15, "bunscope completed + aborted == Bun handled (completed, aborted, Bun)",
            check=lambda v: v[0] + v[1] == v[2])
        assert wrk_total <= count <= wrk_total + conns, (wrk_total, count)
        assert aborted <= conns, "%d aborted requests, only %d connections" % (aborted, conns)
        harness.log("samples %d, max gauge %d, max Bun %d; wrk %d, completed %d, aborted %d"
                    % (len(samples), max(g for g, _ in samples), max(b for _, b in samples),
                       wrk_total, count, aborted))
