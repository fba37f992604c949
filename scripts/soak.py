#!/usr/bin/env python3
"""make soak: bunscope attached to a real Bun server for a long time at a
fixed high rate; its memory and map occupancy sampled every 10 s, written to
a CSV and plotted to a PNG.  Flat lines are what is expected.  Not in CI.

Traffic, all on loopback: a paced wrk (keep-alive, SOAK_RATE requests/s over
fixed routes, templated ids, 503s and POST bodies), a second paced wrk whose
requests each come on a new connection (connection churn), and a WebSocket
opened, used and closed every second.  Traces are on (sampled 0.1, to a
JSONL file on /dev/null) so the span path is soaked too.

Environment: SOAK_SECONDS (3600), SOAK_RATE (20000), SOAK_CHURN (200 new
connections/s), SOAK_OUT (build/soak).
"""

import csv
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import WS_TEXT, BunApp, Bunscope, WSClient, rss_bytes  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "3600"))
RATE = int(os.environ.get("SOAK_RATE", "20000"))
CHURN = int(os.environ.get("SOAK_CHURN", "200"))
OUT = os.environ.get("SOAK_OUT", os.path.join(ROOT, "build", "soak"))
PERIOD = 10
LUA = os.path.join(ROOT, "scripts", "soak", "paced.lua")

COLUMNS = ["t", "bunscope_rss_mib", "bunscope_cpu_pct", "bun_rss_mib", "conns", "series",
           "routes", "spans_pending", "client_series", "requests", "bun_handled"]


def paced_wrk(url, conns, rate, seconds, extra=()):
    """wrk at about `rate` requests/s: conns connections, each pausing
    conns*1000/rate ms between requests."""
    env = dict(os.environ, SOAK_DELAY_MS=str(max(1, round(conns * 1000 / rate))))
    return subprocess.Popen(["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--timeout",
                             "10s", "-s", LUA] + list(extra) + [url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ws_churn(app, stop):
    """A WebSocket opened, echoed once and closed every second."""
    while not stop.wait(1.0):
        try:
            ws = WSClient("127.0.0.1", app.port, "/ws")
            ws.send(WS_TEXT, b"soak")
            ws.recv(5)
            ws.close(1000)
        except (OSError, AssertionError) as e:
            print("soak: websocket: %s" % e, file=sys.stderr)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def sample(scope, app, t0, last_cpu):
    s = scope.scrape()
    cpu = cpu_seconds(scope.pid)
    row = {
        "t": round(time.monotonic() - t0),
        "bunscope_rss_mib": rss_bytes(scope.pid) / 2**20,
        "bunscope_cpu_pct": 100.0 * (cpu - last_cpu[0]) / PERIOD if last_cpu[0] else 0.0,
        "bun_rss_mib": rss_bytes(app.pid) / 2**20,
        "conns": s.value("bunscope_map_entries", map="connections"),
        "series": s.value("bunscope_map_entries", map="series"),
        "routes": s.value("bunscope_routes"),
        "spans_pending": s.value("bunscope_spans_pending"),
        "client_series": len(s.select("http_client_request_duration_seconds_count")),
        "requests": s.count(app.port, app.pid),
        "bun_handled": app.handled(),
    }
    last_cpu[0] = cpu
    return row


def plot(csv_path, png_path):
    gp = shutil.which("gnuplot")
    if not gp:
        print("soak: gnuplot not found (apt-get install gnuplot-nox): no PNG", file=sys.stderr)
        return False
    script = """
set terminal png size 1200,900 noenhanced
set output '{png}'
set datafile separator ','
set key autotitle columnhead left top
set xlabel 'seconds'
set multiplot layout 3,1 title 'bunscope soak: {rate} req/s for {secs} s'
set ylabel 'MiB'
set yrange [0:*]
plot '{csv}' using 1:2 with lines lw 2, '' using 1:4 with lines
set ylabel 'map entries'
plot '{csv}' using 1:5 with lines lw 2, '' using 1:6 with lines, '' using 1:9 with lines
set ylabel 'count'
plot '{csv}' using 1:7 with lines lw 2, '' using 1:8 with lines
unset multiplot
""".format(png=png_path, csv=csv_path, rate=RATE, secs=SECONDS)
    p = subprocess.run([gp], input=script, text=True, capture_output=True)
    if p.returncode:
        print("soak: gnuplot failed: %s" % p.stderr, file=sys.stderr)
    return p.returncode == 0


def verdict(rows):
    """Growth of the daemon's RSS and the connection map between the first
    and the last fifth of the run (after a one-minute warm-up)."""
    rows = [r for r in rows if r["t"] >= 60] or rows
    k = max(1, len(rows) // 5)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    head, tail = rows[:k], rows[-k:]
    rss = med([r["bunscope_rss_mib"] for r in tail]) - med([r["bunscope_rss_mib"] for r in head])
    conns = med([r["conns"] for r in tail]) - med([r["conns"] for r in head])
    return rss, conns


def main():
    if os.geteuid() != 0:
        sys.exit("soak: run as root (bunscope loads BPF programs): sudo make soak")
    os.makedirs(OUT, exist_ok=True)
    csv_path = os.path.join(OUT, "soak.csv")
    png_path = os.path.join(OUT, "soak.png")
    rows = []
    with BunApp() as app, Bunscope.for_app(app, "--traces-file", "/dev/null",
                                            "--traces-sample", "0.1",
                                            "--traces-max-rate", "0") as scope:
        url = app.url("/")
        print("soak: %d s at %d req/s (+%d new connections/s) against pid %d; sampling every "
              "%d s into %s" % (SECONDS, RATE, CHURN, app.pid, PERIOD, csv_path), flush=True)
        stop = threading.Event()
        # the load outlasts the last sample a little
        loaders = [paced_wrk(url, 40, RATE, SECONDS + 5),
                   paced_wrk(url, 10, CHURN, SECONDS + 5, ["-H", "Connection: close"])]
        ws = threading.Thread(target=ws_churn, args=(app, stop), daemon=True)
        ws.start()
        t0 = time.monotonic()
        last_cpu = [0.0]
        try:
            with open(csv_path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS)
                w.writeheader()
                while time.monotonic() - t0 < SECONDS:
                    time.sleep(PERIOD)  # the sampling period itself, not a synchronization
                    row = sample(scope, app, t0, last_cpu)
                    rows.append(row)
                    w.writerow(row)
                    f.flush()
                    print("soak: t=%5ds bunscope %.1f MiB %.1f%% cpu, conns %s, series %s, "
                          "routes %s, spans pending %s" %
                          (row["t"], row["bunscope_rss_mib"], row["bunscope_cpu_pct"],
                           row["conns"], row["series"], row["routes"], row["spans_pending"]),
                          flush=True)
        finally:
            stop.set()
            for p in loaders:
                try:
                    out, _ = p.communicate(timeout=20)  # wrk ends on its own (-d)
                except subprocess.TimeoutExpired:
                    p.terminate()
                    out, _ = p.communicate(timeout=30)
                print("soak: wrk: " + " | ".join(
                    line.strip() for line in out.splitlines() if "Requests/sec" in line
                    or "requests in" in line))
    plotted = plot(csv_path, png_path)
    rss, conns = verdict(rows)
    print("soak: daemon RSS %+.1f MiB and connection map %+d entries from the first to the "
          "last fifth%s" % (rss, conns, "; plot: " + png_path if plotted else ""))
    if rss > 8 or conns > 1000:
        sys.exit("soak: not flat")


if __name__ == "__main__":
    main()
