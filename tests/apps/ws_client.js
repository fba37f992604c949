// Load client for the WebSocket tests: Bun's own WebSocket client.
//
//   bun tests/apps/ws_client.js URL CONNS MESSAGES SIZE
//
// Opens CONNS connections and prints "open"; then every connection sends
// MESSAGES text messages of SIZE bytes (all in flight at once) and waits for
// their echoes; prints "done <sent> <received> <bytes received>".  Then it
// waits for a line "close" on stdin, closes every connection with 1000 and
// prints "closed <close events>" once all close events have arrived.

const [url, conns, messages, size] = [
  process.argv[2],
  Number(process.argv[3]),
  Number(process.argv[4]),
  Number(process.argv[5]),
];
const payload = "m".repeat(size);
const sockets = [];
let sent = 0, received = 0, receivedBytes = 0, closed = 0;

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve(ws);
    ws.onerror = (e) => reject(new Error("websocket error: " + e.message));
  });
}

for (let i = 0; i < conns; i++) sockets.push(await open());
console.log("open");

await Promise.all(
  sockets.map(
    (ws) =>
      new Promise((resolve) => {
        let got = 0;
        ws.onmessage = (ev) => {
          received++;
          receivedBytes += ev.data.length;
          if (++got === messages) resolve();
        };
        for (let i = 0; i < messages; i++) {
          ws.send(payload);
          sent++;
        }
        if (messages === 0) resolve();
      }),
  ),
);
console.log(`done ${sent} ${received} ${receivedBytes}`);

for await (const line of console) {
  if (line.trim() !== "close") continue;
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise((resolve) => {
          ws.onclose = () => {
            closed++;
            resolve();
          };
          ws.close(1000);
        }),
    ),
  );
  console.log(`closed ${closed}`);
  process.exit(0);
}
