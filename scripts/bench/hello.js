// make bench: the server under load (and, on another port, the unobserved one).
Bun.serve({
  port: Number(process.env.PORT),
  fetch() {
    return new Response("hi");
  },
});
console.log("ready");
