// The example Bun app `make demo` observes.  Nothing in it knows about
// bunscope.  A second server on ADMIN_PORT reports Bun's own counters, so the
// demo can put them next to bunscope's.
const port = Number(process.env.PORT ?? 3000);
const adminPort = Number(process.env.ADMIN_PORT ?? port + 1);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = Bun.serve({
  port,
  async fetch(req) {
    const url = new URL(req.url);
    const p = url.pathname;
    if (p === "/") return new Response("hello from Bun\n");
    let m;
    if ((m = p.match(/^\/users\/(\d+)$/))) return Response.json({ id: Number(m[1]), name: "user" + m[1] });
    if ((m = p.match(/^\/orders\/([0-9a-f-]{36})$/))) return Response.json({ order: m[1], total: 42 });
    if (p === "/slow") {
      await sleep(Number(url.searchParams.get("ms") ?? 1500));
      return new Response("slow\n");
    }
    if (p === "/upload" && req.method === "POST") {
      const body = await req.arrayBuffer();
      return new Response(`received ${body.byteLength} bytes\n`);
    }
    if (p === "/error") return new Response("boom\n", { status: 500 });
    if (p === "/upstream") {
      // the app's own outgoing request (here to its admin server)
      const up = await fetch(`http://127.0.0.1:${adminPort}/`);
      return new Response(`upstream said ${up.status}\n`);
    }
    return new Response("not found\n", { status: 404 });
  },
});

Bun.serve({
  port: adminPort,
  hostname: "127.0.0.1",
  fetch() {
    return Response.json({ pendingRequests: server.pendingRequests, pid: process.pid });
  },
});

console.log(`demo app pid ${process.pid} on :${port} (Bun's own counters on 127.0.0.1:${adminPort})`);
