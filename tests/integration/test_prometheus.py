"""A real Prometheus (the Debian binary) scrapes bunscope and sees the
exact request count; promtool accepts the exposition."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request

from harness import (BunApp, Bunscope, assert_equal, free_port, parse_metrics, privileged,
                     promtool_check, stop_process, tail, wait_until)


class Prometheus:
    """prometheus scraping one target every second, storage in a temp dir."""

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="prometheus-")
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def __enter__(self):
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed (scripts/deps.sh installs it)"
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: bunscope\n"
                    "    scrape_interval: 1s\n"
                    "    static_configs:\n"
                    "      - targets: ['%s']\n" % self.target)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, "--config.file=" + config,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port,
                 "--storage.tsdb.retention.time=1h"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir)
        try:
            wait_until(self._ready, 60, "prometheus /-/ready")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            stop_process(self.proc, timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("prometheus exited (%s):\n%s"
                               % (self.proc.returncode, tail(self.log_path)))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (self.port,
                                                            urllib.parse.quote(promql))
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.loads(r.read())
        assert doc.get("status") == "success", doc
        return doc["data"]["result"]

    def targets_health(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" % self.port,
                                        timeout=5) as r:
                doc = json.loads(r.read())
            return [(t.get("scrapeUrl"), t.get("health"), t.get("lastError"))
                    for t in doc["data"]["activeTargets"]]
        except (OSError, ValueError, KeyError) as e:
            return "<unavailable: %s>" % e

    def scalar(self, promql):
        """The single result's value as float, None when empty."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])


@privileged
def test_prometheus_scrape():
    k = 37
    with BunApp() as app, Bunscope.for_app(app) as scope:
        for i in range(k):
            st, _, _ = app.get("/users/%d" % i if i % 2 else "/")
            assert st == 200, st
        assert_equal(app.handled(), k, "Bun handled")
        text = scope.metrics_text()
        complaints = promtool_check(text)
        assert not complaints, "promtool check metrics:\n" + complaints[:4000]
        parse_metrics(text)
        with Prometheus("127.0.0.1:%d" % scope.listen_port) as prom:
            q = 'sum(http_server_request_duration_seconds_count{server_port="%d"})' % app.port
            try:
                wait_until(lambda: prom.scalar(q), 60, "prometheus: %s == %d" % (q, k),
                           check=lambda v: v == k)
                assert_equal(prom.scalar('up{job="bunscope"}'), 1.0, "up")
                routes = prom.query('sum by (http_route) (http_server_request_duration_seconds'
                                    '_count{server_port="%d"})' % app.port)
                got = {r["metric"].get("http_route"): float(r["value"][1]) for r in routes}
                assert_equal(got, {"/": 19.0, "/users/:id": 18.0}, "per-route counts in Prometheus")
            except AssertionError as e:
                raise AssertionError("%s\nscrape targets: %s\nprometheus log:\n%s"
                                     % (e, prom.targets_health(), tail(prom.log_path, 30)))
