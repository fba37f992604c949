// make bench: a WebSocket echo server (GET / answers plain HTTP, for readiness).
Bun.serve({
  port: Number(process.env.PORT),
  fetch(req, server) {
    if (new URL(req.url).pathname === "/ws" && server.upgrade(req)) return undefined;
    return new Response("hi");
  },
  websocket: {
    message(ws, msg) {
      ws.send(msg);
    },
  },
});
console.log("ready");
