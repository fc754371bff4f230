import assert from "node:assert/strict";
import http2 from "node:http2";
import { waitFor } from "../tests/support/process.ts";
import { superviseBridge } from "./h2_bridge.ts";

/** A stand-in for the hub's loopback listener: echoes what it was sent, body in two parts. */
function startTarget() {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.text();
    const seen = `${req.method} ${new URL(req.url).host} ${req.url.slice(req.url.indexOf("/", 8))}`;
    const parts = [`${seen} ${body};`, "part2"];
    return new Response(
      new ReadableStream({
        async pull(c) {
          const next = parts.shift();
          if (next === undefined) return c.close();
          await new Promise((r) => setTimeout(r, 5)); // the second part comes after the GOAWAY
          c.enqueue(new TextEncoder().encode(next));
        },
      }),
      { headers: { "x-target": "yes" } },
    );
  });
}

/** What the AWS SDK's NodeHttp2Handler does: close the session as soon as headers arrive. */
function requestThenGoaway(url: string, path: string, body: string) {
  return new Promise<{ status: number; body: string; target: string }>((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      ":authority": "br.test:8443",
    });
    let status = 0, text = "", target = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      target = String(h["x-target"]);
      session.close();
    });
    stream.on("data", (c) => (text += c));
    stream.on("end", () => resolve({ status, body: text, target }));
    stream.on("error", reject);
    stream.end(body);
  });
}

Deno.test("h2 bridge: a separate process keeps path, authority and body; a killed bridge is restarted", async () => {
  const target = startTarget();
  const lines: { msg: string; pid?: number; code?: number }[] = [];
  const log = {
    info: (msg: string, f?: object) => lines.push({ msg, ...f }),
    error: (msg: string, f?: object) => lines.push({ msg, ...f }),
  };
  const bridge = await superviseBridge({
    listen: { hostname: "127.0.0.1", port: 0 },
    targetPort: target.addr.port,
    log,
  });
  try {
    const path = "/bedrock/model/a.b-v1%3A0/arn%3Ax%2Fy/converse?q=1";
    const first = await requestThenGoaway(bridge.url, path, "{}");
    assert.deepEqual(first, {
      status: 200,
      body: `POST br.test:8443 ${path} {};part2`,
      target: "yes",
    });

    // The nghttp2 abort, staged: the bridge dies; the hub side restarts it on the same port.
    const pid = lines.find((l) => l.msg === "http/2 bridge started")!.pid!;
    Deno.kill(pid, "SIGKILL");
    await waitFor(
      () => lines.filter((l) => l.msg === "http/2 bridge started").length === 2 || undefined,
      "the bridge restarted",
    );
    assert.ok(lines.some((l) => l.msg === "http/2 bridge exited; restarting" && l.code === 137));
    const again = await requestThenGoaway(bridge.url, "/x", "second");
    assert.equal(again.body, "POST br.test:8443 /x second;part2");
  } finally {
    await bridge.close();
    await target.shutdown();
  }
  assert.ok(!lines.some((l) => l.msg === "http/2 bridge exited; restarting" && l.code !== 137));
});
