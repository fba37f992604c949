// bunscope integration-test app for the event-loop, CPU and GC figures.
//
//   PORT=8090 HEAP_OBJECTS=300000 bun tests/apps/runtime.js
//
//   GET /                         -> "ok"
//   GET /block?ms=N               -> spins the JS thread for N ms, then "blocked N"
//   GET /duty?busy=B&period=P&cycles=C
//                                 -> starts a duty cycle: in each period of P ms
//                                    the JS thread spins for the first B ms and
//                                    sleeps (in the event loop) for the rest, C
//                                    times; answers at once with the start time
//   GET /duty-state               -> {"running","done"} of the duty cycle
//   GET /gc?n=N&gap=MS            -> N forced full collections (Bun.gc(true)),
//                                    MS apart; answers when done, with how long
//                                    each took.  Prints "gc-phase begin" and
//                                    "gc-phase end" on stderr around them, on the
//                                    stream where BUN_JSC_logGC=true logs.
//
// At start it builds a live heap of HEAP_OBJECTS small objects (default
// 300000) so collections have marking work for JSC's helper threads.
// Prints one line "ready <pid>" on stdout when it listens.

const PORT = Number(process.env.PORT ?? 8090);
const HEAP_OBJECTS = Number(process.env.HEAP_OBJECTS ?? 300000);

globalThis.liveHeap = [];
for (let i = 0; i < HEAP_OBJECTS; i++) globalThis.liveHeap.push({ i, s: "o" + i, a: [i] });

function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

function intParam(url, name, dflt, max) {
  const raw = url.searchParams.get(name);
  if (raw === null) return dflt;
  const v = Number(raw);
  return Number.isInteger(v) && v >= 0 && v <= max ? v : NaN;
}

const duty = { running: false, done: 0 };

function startDuty(busy, period, cycles) {
  const t0 = performance.now();
  duty.running = true;
  duty.done = 0;
  const step = () => {
    const k = duty.done;
    // spin until busy ms into period k, then sleep until period k+1 starts
    const until = t0 + k * period + busy;
    const now = performance.now();
    if (until > now) spin(until - now);
    duty.done++;
    if (duty.done >= cycles) {
      duty.running = false;
      return;
    }
    setTimeout(step, Math.max(0, t0 + (k + 1) * period - performance.now()));
  };
  setTimeout(step, 0);
  return t0;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = Bun.serve({
  port: PORT,
  hostname: "127.0.0.1",
  async fetch(req) {
    const url = new URL(req.url);
    switch (url.pathname) {
      case "/":
        return new Response("ok");
      case "/block": {
        const ms = intParam(url, "ms", 200, 10000);
        if (Number.isNaN(ms)) return new Response("bad ms\n", { status: 400 });
        spin(ms);
        return new Response(`blocked ${ms}`);
      }
      case "/duty": {
        const busy = intParam(url, "busy", 500, 60000);
        const period = intParam(url, "period", 1000, 60000);
        const cycles = intParam(url, "cycles", 10, 1000);
        if ([busy, period, cycles].some(Number.isNaN) || busy > period || duty.running)
          return new Response("bad duty\n", { status: 400 });
        return Response.json({ t0: startDuty(busy, period, cycles) });
      }
      case "/duty-state":
        return Response.json(duty);
      case "/gc": {
        const n = intParam(url, "n", 5, 100);
        const gap = intParam(url, "gap", 300, 10000);
        if (Number.isNaN(n) || Number.isNaN(gap)) return new Response("bad gc\n", { status: 400 });
        const took = [];
        console.error("gc-phase begin");
        for (let i = 0; i < n; i++) {
          await sleep(gap);
          const t = performance.now();
          Bun.gc(true);
          took.push(performance.now() - t);
        }
        await sleep(gap);
        console.error("gc-phase end");
        return Response.json({ n, took });
      }
    }
    return new Response("not found\n", { status: 404 });
  },
});

console.log(`ready ${process.pid}`);
