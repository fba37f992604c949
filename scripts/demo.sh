#!/bin/sh
# make demo: start an example Bun app, attach bunscope to it, drive traffic,
# show the metrics.  Needs root (BPF); `make demo` installs what is missing.
set -eu
cd "$(dirname "$0")/.."

BUN=.deps/bin/bun
PORT=${DEMO_PORT:-3000}
ADMIN=$((PORT + 1))
LISTEN=${DEMO_LISTEN:-127.0.0.1:9464}
LOG=$(mktemp -d /tmp/bunscope-demo.XXXXXX)
APP= SCOPE=

cleanup() {
	[ -n "$SCOPE" ] && kill "$SCOPE" 2>/dev/null && wait "$SCOPE" 2>/dev/null || true
	[ -n "$APP" ] && kill "$APP" 2>/dev/null && wait "$APP" 2>/dev/null || true
	rm -rf "$LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# wait_for CMD...: retry for up to 20 s
wait_for() {
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 200 ] && { echo "demo: timed out waiting for: $*" >&2; exit 1; }
		sleep 0.1
	done
}
metric() { curl -s "http://$LISTEN/metrics" | grep -v '^#' | grep -E "$1" || true; }

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root (bunscope loads BPF programs): sudo make demo" >&2
	exit 1
fi

say "starting the example Bun app (scripts/demo/app.js) on :$PORT"
PORT=$PORT ADMIN_PORT=$ADMIN "$BUN" scripts/demo/app.js >"$LOG/app.log" 2>&1 &
APP=$!
wait_for curl -sf "http://127.0.0.1:$PORT/"
cat "$LOG/app.log"

say "attaching: build/bunscope --pid $APP --listen $LISTEN --traces-file $LOG/spans.jsonl --traces-max-rate 200"
build/bunscope --pid "$APP" --listen "$LISTEN" --traces-file "$LOG/spans.jsonl" \
	--traces-max-rate 200 2>"$LOG/bunscope.log" &
SCOPE=$!
wait_for sh -c "curl -sf http://$LISTEN/health | grep -q '\"pid\":$APP'"
cat "$LOG/bunscope.log"

say "traffic: templated routes, errors, a 2 MB body, a TLS hello on the plain port"
for i in 1 2 3 4 5 6 7 8; do curl -s -o /dev/null "http://127.0.0.1:$PORT/users/$i"; done
for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$PORT/orders/$(cat /proc/sys/kernel/random/uuid)"; done
curl -s -o /dev/null "http://127.0.0.1:$PORT/error"
curl -s -o /dev/null "http://127.0.0.1:$PORT/nope?secret=dropped"
head -c 2000000 /dev/zero | curl -s -o /dev/null --data-binary @- "http://127.0.0.1:$PORT/upload"
printf '\026\003\001\000\245\001\000\000\241\003\003' |
	curl -s -o /dev/null --max-time 2 telnet://127.0.0.1:$PORT || true

say "5 slow requests in flight: bunscope's gauge next to Bun's own server.pendingRequests"
SLOW=
for i in 1 2 3 4 5; do
	curl -s -o /dev/null "http://127.0.0.1:$PORT/slow?ms=2500" &
	SLOW="$SLOW $!"
done
wait_for sh -c "curl -s http://127.0.0.1:$ADMIN/ | grep -q '\"pendingRequests\":5'"
echo "Bun:      $(curl -s "http://127.0.0.1:$ADMIN/")"
echo "bunscope: $(metric "^http_server_active_requests\{.*server_port=\"$PORT\"")"
wait $SLOW
echo "after:    $(metric "^http_server_active_requests\{.*server_port=\"$PORT\"")"

say "load: wrk -t1 -c20 -d3s http://127.0.0.1:$PORT/"
wrk -t1 -c20 -d3s "http://127.0.0.1:$PORT/" | sed -n '1,4p;/Requests\/sec/p;/requests in/p'

say "http_server_request_duration_seconds_count by route (curl localhost:${LISTEN#*:}/metrics)"
metric "^http_server_request_duration_seconds_count\{.*server_port=\"$PORT\""
say "request/response body sizes (sums)"
metric "^http_server_(request|response)_body_size_bytes_sum\{.*http_route=\"/upload\""
say "not requests: what Bun's parser refuses and bytes that are not HTTP"
metric "^bunscope_http_requests_rejected_total\{.*server_port=\"$PORT\".*\} [1-9]"
say "traces: a request carrying a W3C traceparent gets a span in that trace"
TP=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
echo "curl -H 'traceparent: $TP' http://127.0.0.1:$PORT/users/42"
curl -s -o /dev/null -H "traceparent: $TP" "http://127.0.0.1:$PORT/users/42"
wait_for grep -q 4bf92f3577b34da6a3ce929d0e0e4736 "$LOG/spans.jsonl"
grep 4bf92f3577b34da6a3ce929d0e0e4736 "$LOG/spans.jsonl" | head -1
echo "(every request gets a span, at most 200 a second here; --otlp-endpoint and"
echo " --zipkin-endpoint send them to a collector)"
say "the app's own fetch: /upstream calls an upstream (client requests and CLIENT spans)"
for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$PORT/upstream"; done
wait_for sh -c "curl -s http://$LISTEN/metrics | grep -q '^http_client_request_duration_seconds_count.* 3\$'"
metric "^http_client_request_duration_seconds_count"
wait_for grep -q '"kind":"client"' "$LOG/spans.jsonl"
grep '"kind":"client"' "$LOG/spans.jsonl" | head -1
say "Bun-style JSON: curl localhost:${LISTEN#*:}/api/server-metrics"
curl -s "http://$LISTEN/api/server-metrics"
say "done; the full exposition: curl -s localhost:${LISTEN#*:}/metrics"
