/**
 * An HTTP/2-only listener (`HUB_H2_LISTEN`) for clients whose default transport is HTTP/2 and
 * that close their connection (GOAWAY) as soon as response headers arrive — the AWS SDK's
 * `NodeHttp2Handler` with `disableConcurrentStreams`, which `BedrockRuntimeClient` uses by
 * default. `Deno.serve` speaks h2c (prior knowledge) and h2 over TLS, but it ends a response
 * early, silently, when the client sends GOAWAY mid-response (measured with Deno 2.9.6: a body
 * streamed in two parts arrives cut after the first), which truncates every Bedrock stream. Node's
 * HTTP/2 server (`node:http2`, as implemented by Deno) keeps in-flight streams alive after a
 * GOAWAY as RFC 9113 §6.8 requires, so this listener bridges it to the hub's fetch handler:
 * h2c with prior knowledge, or TLS with ALPN `h2` when the hub has a certificate.
 */
import http2 from "node:http2";
import { Readable } from "node:stream";

/** Response headers HTTP/2 forbids (connection-specific, RFC 9113 §8.2.2). */
const CONNECTION_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

export interface Http2Listener {
  url: string;
  close(): Promise<void>;
}

export function serveHttp2(
  options: { hostname: string; port: number; tls?: { cert: string; key: string } },
  handler: (req: Request) => Response | Promise<Response>,
  onError: (error: unknown) => void,
): Promise<Http2Listener> {
  const scheme = options.tls ? "https" : "http";
  const server = options.tls
    ? http2.createSecureServer({
      cert: options.tls.cert,
      key: options.tls.key,
      ALPNProtocols: ["h2"],
    })
    : http2.createServer();
  const sessions = new Set<http2.Http2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  server.on("stream", (stream, headers) => {
    respond(stream as http2.ServerHttp2Stream, headers).catch((e) => {
      onError(e);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
  });

  async function respond(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ): Promise<void> {
    const method = String(headers[":method"] ?? "GET");
    const url = new URL(String(headers[":path"] ?? "/"), `${scheme}://${headers[":authority"]}`);
    const requestHeaders = new Headers();
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith(":") || value === undefined) continue;
      requestHeaders.set(name, Array.isArray(value) ? value.join(", ") : String(value));
    }
    const aborted = new AbortController();
    let done = false;
    stream.on("close", () => done || aborted.abort(new Error("client closed the stream")));
    const hasBody = method !== "GET" && method !== "HEAD";
    const res = await handler(
      new Request(url, {
        method,
        headers: requestHeaders,
        body: hasBody ? Readable.toWeb(stream) as ReadableStream<Uint8Array> : null,
        signal: aborted.signal,
      }),
    );
    const out: http2.OutgoingHttpHeaders = { ":status": res.status };
    res.headers.forEach((value, name) => {
      if (!CONNECTION_HEADERS.has(name)) out[name] = value;
    });
    if (stream.destroyed) {
      await res.body?.cancel();
      return;
    }
    stream.respond(out, { endStream: res.body === null });
    if (!res.body) return void (done = true);
    const reader = res.body.getReader();
    // A client that goes away mid-body: stop pulling (the handler sees its signal abort too).
    stream.once("close", () => done || reader.cancel().catch(() => {}));
    try {
      for (;;) {
        const { done: end, value } = await reader.read();
        if (end) break;
        if (stream.destroyed) throw new Error("client closed the stream");
        if (!stream.write(value)) await new Promise((r) => stream.once("drain", r));
      }
      done = true;
      stream.end();
    } catch (e) {
      await reader.cancel(e).catch(() => {});
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      const addr = server.address() as { address: string; port: number };
      const host = addr.address.includes(":") ? `[${addr.address}]` : addr.address;
      resolve({
        url: `${scheme}://${host}:${addr.port}`,
        close: () =>
          new Promise((r) => {
            server.close(() => r());
            for (const session of sessions) session.destroy();
          }),
      });
    });
  });
}
