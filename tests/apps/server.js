// bunscope integration-test app.
//
//   PORT=8080 CONTROL_PORT=8081 bun tests/apps/server.js
//
// Main server (hostname "::", dual stack) on PORT:
//   GET  /                       -> "hi"
//   GET  /users/:id              -> small JSON
//   GET  /status/:code           -> empty body with that status
//   GET  /slow?ms=N              -> "slow" after N ms
//   GET  /hold                   -> waits until the control server's /release
//   GET  /big?bytes=N            -> body of exactly N bytes
//   POST /echo                   -> byte length of the request body, as text
//   GET  /stream?chunks=N&delay=MS -> N chunks of 1 KiB, MS apart (chunked)
//   GET  /proxy?url=U[&traceparent=T][&host=H] -> upstream status + text of
//                                   fetch(U), sending T as its traceparent and H
//                                   as its Host header when given
//   GET  /alloc?mb=N             -> allocates and touches N MiB, kept until /free
//   GET  /free                   -> drops what /alloc kept, runs the GC
//   GET  /ws, /ws/rooms/:id      -> WebSocket upgrade (anything else on /ws: 400)
//   anything else                -> 404
// WebSocket: open sends "welcome" when the query has greet=1; every message
// is echoed with its own type, except the text "close-me" (the server closes
// with 4002 "bye") and "terminate" (the server drops the TCP connection).
// Pings are answered with pongs by Bun itself.
// HEAD is routed like GET (Bun sends the head only).
//
// Control server (127.0.0.1) on CONTROL_PORT, the ground truth for tests:
//   GET /stats   -> {"handled","pendingRequests","pendingWebSockets","pid"}
//   GET /release -> releases every held /hold request, returns how many
//   GET /ws-stats -> {"opened","closed","messages","closeCodes":{code:n}} as the
//                    websocket handlers saw them
//
// Prints one line "ready <pid>" on stdout when both servers listen.

const PORT = Number(process.env.PORT ?? 8080);
const CONTROL_PORT = Number(process.env.CONTROL_PORT ?? 8081);
// seconds a WebSocket may be idle (tests of idle-timeout closes set it low)
const WS_IDLE_TIMEOUT = Number(process.env.WS_IDLE_TIMEOUT ?? 120);

let handled = 0; // requests that reached the main server's fetch handler
let held = []; // resolvers of pending /hold requests
let kept = []; // what /alloc allocated
const ws = { opened: 0, closed: 0, messages: 0, closeCodes: {} };

const KIB = new Uint8Array(1024).fill(0x78); // "x" * 1024
const MAX_BIG = 256 * 1024 * 1024;

function intParam(url, name, dflt, min, max) {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return dflt;
  if (!/^\d+$/.test(raw)) return NaN;
  const v = Number(raw);
  return v < min || v > max ? NaN : v;
}

const bad = (msg) => new Response(msg + "\n", { status: 400 });
const notFound = () => new Response("not found\n", { status: 404 });

async function route(req) {
  const url = new URL(req.url);
  const path = url.pathname;
  const method = req.method === "HEAD" ? "GET" : req.method;

  if (method === "POST") {
    if (path === "/echo") {
      const body = await req.arrayBuffer();
      return new Response(String(body.byteLength));
    }
    return notFound();
  }
  if (method !== "GET") return notFound();

  if (path === "/") return new Response("hi");

  let m = /^\/users\/([^/]+)$/.exec(path);
  if (m) {
    return Response.json({ id: decodeURIComponentSafe(m[1]), name: "user" });
  }

  m = /^\/status\/(\d{3})$/.exec(path);
  if (m) {
    const code = Number(m[1]);
    if (code < 200 || code > 599) return bad("status must be 200..599");
    return new Response(null, { status: code });
  }

  switch (path) {
    case "/slow": {
      const ms = intParam(url, "ms", 0, 0, 600000);
      if (Number.isNaN(ms)) return bad("bad ms");
      await Bun.sleep(ms);
      return new Response("slow");
    }
    case "/alloc": {
      const mb = intParam(url, "mb", 1, 1, 4096);
      if (Number.isNaN(mb)) return bad("bad mb");
      for (let i = 0; i < mb; i++) kept.push(Buffer.alloc(1 << 20, 1));
      return new Response(String(kept.length));
    }
    case "/free":
      kept = [];
      Bun.gc(true);
      return new Response("0");
    case "/hold":
      return new Promise((resolve) => {
        held.push(() => resolve(new Response("released")));
      });
    case "/big": {
      const n = intParam(url, "bytes", 0, 0, MAX_BIG);
      if (Number.isNaN(n)) return bad("bad bytes");
      return new Response(new Uint8Array(n).fill(0x62), {
        headers: { "content-type": "application/octet-stream" },
      });
    }
    case "/stream": {
      const chunks = intParam(url, "chunks", 1, 0, 100000);
      const delay = intParam(url, "delay", 0, 0, 600000);
      if (Number.isNaN(chunks) || Number.isNaN(delay)) return bad("bad chunks/delay");
      const body = new ReadableStream({
        async start(controller) {
          for (let i = 0; i < chunks; i++) {
            if (i > 0 && delay > 0) await Bun.sleep(delay);
            controller.enqueue(KIB.slice());
          }
          controller.close();
        },
      });
      return new Response(body, {
        headers: { "content-type": "application/octet-stream" },
      });
    }
    case "/proxy": {
      const target = url.searchParams.get("url");
      if (!target) return bad("missing url");
      try {
        const headers = {};
        const tp = url.searchParams.get("traceparent");
        const host = url.searchParams.get("host");
        if (tp) headers.traceparent = tp;
        if (host) headers.host = host;
        const up = await fetch(target, { headers });
        const text = await up.text();
        return new Response(text, { status: up.status });
      } catch (e) {
        return new Response("upstream error: " + e + "\n", { status: 502 });
      }
    }
  }
  return notFound();
}

function decodeURIComponentSafe(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const main = Bun.serve({
  hostname: "::",
  port: PORT,
  development: false,
  idleTimeout: 120,
  fetch(req, server) {
    handled++;
    const path = new URL(req.url).pathname;
    if (path === "/ws" || /^\/ws\/rooms\/\d+$/.test(path)) {
      const greet = new URL(req.url).searchParams.get("greet") === "1";
      if (server.upgrade(req, { data: { greet } })) return undefined;
      return bad("upgrade failed");
    }
    return route(req);
  },
  websocket: {
    idleTimeout: WS_IDLE_TIMEOUT,
    open(sock) {
      ws.opened++;
      if (sock.data.greet) sock.send("welcome");
    },
    message(sock, msg) {
      ws.messages++;
      if (msg === "close-me") sock.close(4002, "bye");
      else if (msg === "terminate") sock.terminate();
      else sock.send(msg);
    },
    close(sock, code) {
      ws.closed++;
      ws.closeCodes[code] = (ws.closeCodes[code] ?? 0) + 1;
    },
  },
  error(err) {
    return new Response("error: " + err + "\n", { status: 500 });
  },
});

const control = Bun.serve({
  hostname: "127.0.0.1",
  port: CONTROL_PORT,
  development: false,
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/stats") {
      return Response.json({
        handled,
        pendingRequests: main.pendingRequests,
        pendingWebSockets: main.pendingWebSockets,
        pid: process.pid,
      });
    }
    if (path === "/ws-stats") return Response.json(ws);
    if (path === "/release") {
      const waiting = held;
      held = [];
      for (const release of waiting) release();
      return new Response(String(waiting.length));
    }
    return notFound();
  },
});

console.log(`ready ${process.pid}`);
void control;
