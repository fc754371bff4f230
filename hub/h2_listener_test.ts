import assert from "node:assert/strict";
import http2 from "node:http2";
import { serveHttp2 } from "./h2_listener.ts";

const enc = new TextEncoder();

/** A handler whose body arrives in two parts, the second after the client has sent GOAWAY. */
function twoPartHandler(seen: { signals: AbortSignal[]; bodies: string[]; urls: string[] }) {
  return async (req: Request) => {
    seen.signals.push(req.signal);
    seen.urls.push(req.url);
    seen.bodies.push(await req.text());
    const { promise: gate, resolve } = Promise.withResolvers<void>();
    setTimeout(resolve, 50);
    return new Response(
      new ReadableStream({
        async start(ctl) {
          ctl.enqueue(enc.encode("part1;"));
          await gate;
          ctl.enqueue(enc.encode("part2"));
          ctl.close();
        },
      }),
      { headers: { "content-type": "text/plain", connection: "keep-alive" } },
    );
  };
}

/** What the AWS SDK's NodeHttp2Handler does: close the session as soon as headers arrive. */
function requestThenGoaway(url: string, path: string, body: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "x/y" });
    let status = 0, text = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      session.close();
    });
    stream.on("data", (c) => (text += c));
    stream.on("end", () => resolve({ status, body: text }));
    stream.on("error", reject);
    stream.end(body);
  });
}

Deno.test("h2 listener: a response survives the client's GOAWAY; raw path and authority kept", async () => {
  const seen = { signals: [] as AbortSignal[], bodies: [] as string[], urls: [] as string[] };
  const listener = await serveHttp2(
    { hostname: "127.0.0.1", port: 0 },
    twoPartHandler(seen),
    (e) => {
      throw e;
    },
  );
  try {
    const path = "/bedrock/model/a.b-v1%3A0/arn%3Ax%2Fy/converse?q=1";
    const res = await requestThenGoaway(listener.url, path, "{}");
    assert.equal(res.status, 200);
    assert.equal(res.body, "part1;part2");
    assert.equal(seen.bodies[0], "{}");
    assert.equal(seen.urls[0], `${listener.url}${path}`);
  } finally {
    await listener.close();
  }
});

Deno.test("h2 listener: a client that resets its stream aborts the request's signal", async () => {
  const aborted = Promise.withResolvers<void>();
  const listener = await serveHttp2(
    { hostname: "127.0.0.1", port: 0 },
    (req) => {
      req.signal.addEventListener("abort", () => aborted.resolve());
      return new Response(
        new ReadableStream({ start: (ctl) => ctl.enqueue(enc.encode("never ends")) }),
      );
    },
    () => {},
  );
  const session = http2.connect(listener.url);
  try {
    const stream = session.request({ ":method": "GET", ":path": "/" });
    await new Promise((resolve) => stream.once("data", resolve));
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await aborted.promise;
  } finally {
    session.destroy();
    await listener.close();
  }
});
