// make bench: the same server instrumented in-process with prom-client, the
// usual alternative: a duration histogram and a counter per request.
const client = await import(process.env.PROM_CLIENT);
const register = new client.Registry();
const duration = new client.Histogram({
  name: "http_server_request_duration_seconds",
  help: "request duration",
  labelNames: ["method", "route", "status"],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
  registers: [register],
});
const total = new client.Counter({
  name: "http_requests_total",
  help: "requests",
  labelNames: ["method", "route", "status"],
  registers: [register],
});

Bun.serve({
  port: Number(process.env.PORT),
  async fetch(req) {
    const end = duration.startTimer();
    const route = new URL(req.url).pathname;
    if (route === "/metrics") return new Response(await register.metrics());
    const res = new Response("hi");
    const labels = { method: req.method, route, status: 200 };
    end(labels);
    total.inc(labels);
    return res;
  },
});
console.log("ready");
