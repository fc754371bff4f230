/**
 * Baseline for the tunnel echo benchmark: the least a WebSocket round trip between two Deno
 * processes can cost. `Deno.serve` + `Deno.upgradeWebSocket` (the same server stack as the hub's
 * tunnel endpoint), echoing every message as is — no JSON, no validation, no bookkeeping.
 * Prints its port on stdout once listening; runs until killed.
 *
 *   deno run --allow-net=127.0.0.1 scripts/bench/ws_echo_server.ts
 */
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(port),
}, (req) => {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});
