/**
 * OpenAI Realtime through the hub, end to end with real processes: the official SDK's
 * `OpenAIRealtimeWS` and a plain `ws` client (Bearer or subprotocol auth) over `wss://` with a
 * test CA and over `ws://`; messages relayed both ways in order (text and binary); usage summed
 * from `response.done` and settled through billing (hold released when nothing finished); clean
 * closes from either side; the agent killed mid-session; refusals as OpenAI realtime `error`
 * events; and the relay's added latency per message.
 */
import assert from "node:assert/strict";
import OpenAI, { AzureOpenAI } from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";
import WebSocket from "ws";
import { formatUsd, parseUsd } from "../protocol/money.ts";
import { type FakeRealtime, startFakeRealtime } from "./fakes/openai_realtime.ts";
import {
  admin,
  agentCli,
  enrollAgent,
  type HubProc,
  lockedAgentPid,
  runAgent,
  startHub,
  waitOnline,
} from "./support/cluster.ts";
import { type Proc, tempDir, waitFor } from "./support/process.ts";

const VENDOR_KEY = "sk-realtime-vendor-key-1";
/** Served only by the channel whose first key the vendor rejects. */
const ROTATE_MODEL = "gpt-realtime-rotate";
const AZURE_KEY = "azure-realtime-resource-key-1";
const AZURE_RESOURCE = "aq-realtime-res";
const AZURE_DEPLOYMENT = "my-realtime-deploy";
/** Priced in the default table, so sessions are billed (the fake accepts any model name). */
const MODEL = "gpt-5.5";
/** Offered by no channel (the channel lists its models). */
const UNOFFERED = "gpt-unoffered-1";

async function openssl(args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A test CA and a hub certificate for 127.0.0.1 signed by it, plus the hub certificate's pin. */
async function makeCa(dir: string) {
  // deno-fmt-ignore
  await openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=aqueduct-test-ca",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
  ], dir);
  // deno-fmt-ignore
  await openssl([
    "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "tls-hub.key", "-out", "tls-hub.csr", "-subj", "/CN=127.0.0.1",
  ], dir);
  await Deno.writeTextFile(
    `${dir}/tls-hub.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  // deno-fmt-ignore
  await openssl([
    "x509", "-req", "-in", "tls-hub.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "tls-hub.pem", "-days", "2", "-extfile", "tls-hub.ext",
  ], dir);
  const fp = await openssl(
    ["x509", "-in", "tls-hub.pem", "-noout", "-fingerprint", "-sha256"],
    dir,
  );
  return {
    caPem: await Deno.readTextFile(`${dir}/ca.pem`),
    certPath: `${dir}/tls-hub.pem`,
    keyPath: `${dir}/tls-hub.key`,
    pin: "sha256:" + fp.trim().split("=")[1],
  };
}

interface RtStack {
  hub: HubProc;
  agent: Proc;
  agentId: string;
  fake: FakeRealtime;
  userId: string;
  /** `wss://…` or `ws://…` origin of the hub. */
  wsOrigin: string;
  caPem?: string;
  newKey(body?: Record<string, unknown>): Promise<{ id: string; key: string }>;
  stop(): Promise<void>;
}

async function startRtStack(tls: boolean): Promise<RtStack> {
  const tmp = await tempDir("realtime");
  const fake = await startFakeRealtime({ keys: [VENDOR_KEY, AZURE_KEY] });
  let hub: HubProc | undefined;
  let agent: Proc | undefined;
  const stop = async () => {
    await agent?.stop();
    await hub?.proc.stop();
    await fake.close();
    await tmp.remove();
  };
  try {
    const cert = tls ? await makeCa(tmp.path) : undefined;
    hub = await startHub({
      dir: tmp.path,
      env: {
        HUB_UNPRICED_MODELS: "allow",
        ...(cert ? { HUB_TLS_CERT: cert.certPath, HUB_TLS_KEY: cert.keyPath } : {}),
      },
      caPem: cert?.caPem,
    });
    const dir = `${tmp.path}/agent`;
    const setup = await enrollAgent(hub, dir, { fingerprints: cert ? [cert.pin] : [] });
    // deno-fmt-ignore
    await agentCli([
      "channel", "add", "--vendor", "openai", "--key", VENDOR_KEY, "--models", `${MODEL},gpt-realtime,fake-status-503`,
      "--rpm", "100000", "--tpm", "1000000000", "--dir", dir,
    ]);
    // deno-fmt-ignore
    await agentCli([
      "channel", "add", "--vendor", "azure", "--key", AZURE_KEY, "--endpoint", AZURE_RESOURCE,
      "--models", AZURE_DEPLOYMENT, "--rpm", "100000", "--tpm", "1000000000", "--dir", dir,
    ]);
    // A second OpenAI account whose first key was revoked (key rotation on the realtime path).
    // deno-fmt-ignore
    await agentCli([
      "channel", "add", "--vendor", "openai", "--key", "sk-revoked-key-0", "--key", VENDOR_KEY,
      "--models", ROTATE_MODEL, "--rpm", "100000", "--tpm", "1000000000", "--dir", dir,
    ]);
    agent = runAgent(dir, {
      AGENT_DEV_UPSTREAMS: JSON.stringify({
        "api.openai.com": fake.url,
        [`${AZURE_RESOURCE}.openai.azure.com`]: fake.url,
      }),
    });
    await waitOnline(hub, setup.id);
    const user = await admin(hub, "POST", "/users", { name: "realtime-co" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, { amount: "10.00" });
    const h = hub;
    return {
      hub,
      agent,
      agentId: setup.id,
      fake,
      userId: user.json.id,
      wsOrigin: hub.url.replace(/^http/, "ws"),
      caPem: cert?.caPem,
      async newKey(body = {}) {
        const res = await admin(h, "POST", "/keys", { userId: user.json.id, ...body });
        assert.equal(res.status, 201, JSON.stringify(res.json));
        return { id: res.json.id, key: res.json.key };
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

type Msg = string | Uint8Array;

/** A plain `ws` client that records everything it receives, in order. */
async function rawClient(
  s: RtStack,
  key: string,
  auth: "bearer" | "subprotocol" | "api-key",
  model = MODEL,
  path = "/v1/realtime",
  query = `model=${encodeURIComponent(model)}`,
) {
  const url = `${s.wsOrigin}${path}?${query}`;
  const protocols = auth === "subprotocol" ? ["realtime", `openai-insecure-api-key.${key}`] : [];
  const headers: Record<string, string> = auth === "bearer"
    ? { authorization: `Bearer ${key}` }
    : auth === "api-key"
    ? { "api-key": key }
    : {};
  const ws = new WebSocket(url, protocols, {
    headers,
    ca: s.caPem,
    perMessageDeflate: false,
  });
  const got: Msg[] = [];
  const events: Record<string, unknown>[] = [];
  let closed: { code: number; reason: string } | undefined;
  ws.on("message", (data: Uint8Array, isBinary: boolean) => {
    if (isBinary) return void got.push(new Uint8Array(data));
    const text = data.toString();
    got.push(text);
    events.push(JSON.parse(text));
  });
  ws.on(
    "close",
    (code: number, reason: Uint8Array) => closed = { code, reason: reason.toString() },
  );
  ws.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("close", () => reject(new Error(`closed before open: ${JSON.stringify(closed)}`)));
    ws.once("unexpected-response", (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return {
    ws,
    got,
    events,
    closedWith: () => waitFor(() => closed, "client socket closed"),
    event: (type: string, n = 1) =>
      waitFor(
        () =>
          events.filter((e) => e.type === type).length >= n &&
          events.filter((e) => e.type === type)[n - 1],
        `${n}× ${type}`,
      ),
  };
}

const balanceOf = async (s: RtStack) =>
  (await admin(s.hub, "GET", `/users/${s.userId}`)).json.balance as string;

/** The hub's "request finished" line for a key (one session per key in these tests). */
const finishedLine = (s: RtStack, keyId: string) =>
  waitFor(
    () => s.hub.proc.lines.find((l) => l.msg === "request finished" && l.keyId === keyId),
    `request finished for ${keyId}`,
  );

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

Deno.test("realtime over wss:// with a test CA: SDK and ws clients, usage, billing, closes, errors", async (t) => {
  const s = await startRtStack(true);
  try {
    await t.step(
      "the SDK's OpenAIRealtimeWS: text and audio responses, usage summed and settled",
      async () => {
        const before = await balanceOf(s);
        const { id: keyId, key } = await s.newKey();
        const client = new OpenAI({ apiKey: key, baseURL: `${s.hub.url}/v1` });
        const rt = new OpenAIRealtimeWS({ model: MODEL, options: { ca: s.caPem } }, client);
        const events: { type: string; [k: string]: unknown }[] = [];
        const errors: unknown[] = [];
        rt.on("event", (e) => events.push(e as never));
        rt.on("error", (e) => errors.push(e));
        const seen = (type: string, n = 1) =>
          waitFor(() => events.filter((e) => e.type === type).length >= n, `${n}× ${type}`);
        await seen("session.created");
        const created = events.find((e) => e.type === "session.created") as never as {
          session: { model: string };
        };
        assert.equal(created.session.model, MODEL);

        rt.send({
          type: "conversation.item.create",
          item: {
            type: "message",
            role: "user",
            content: [{ type: "input_text", text: "hello [[words:4]]" }],
          },
        });
        rt.send({ type: "response.create", response: { output_modalities: ["text"] } });
        await seen("response.done");
        const text = events.filter((e) => e.type === "response.output_text.delta")
          .map((e) => e.delta).join("");
        assert.equal(text, "w1 w2 w3 w4");

        rt.send({ type: "input_audio_buffer.append", audio: btoa("a".repeat(5000)) });
        rt.send({ type: "response.create", response: { output_modalities: ["audio"] } });
        await seen("response.done", 2);
        const audio = events.filter((e) => e.type === "response.output_audio.delta");
        assert.equal(audio.length, 4);
        assert.equal(atob(audio[1]!.delta as string).length, 240);
        // Every server event arrived, in the fake's order.
        const order = events.map((e) => e.type);
        assert.ok(order.indexOf("response.created") < order.indexOf("response.output_text.delta"));
        assert.ok(
          order.lastIndexOf("response.output_audio.delta") < order.lastIndexOf("response.done"),
        );

        const closed = new Promise<number>((resolve) =>
          rt.socket.on("close", (code) => resolve(code))
        );
        rt.close();
        assert.equal(await closed, 1000);
        assert.deepEqual(errors, []);
        const session = s.fake.sessions.at(-1)!;
        await waitFor(() => session.close, "upstream closed");
        assert.equal(session.close!.code, 1000, "the client's close reached the vendor");
        assert.equal(session.key, VENDOR_KEY, "the agent's real key, not the client's");
        assert.equal(session.headers.authorization, `Bearer ${VENDOR_KEY}`);
        assert.ok(
          !JSON.stringify(session.headers).includes(key),
          "the virtual key never left the hub",
        );
        assert.ok(!s.agent.dump().includes(key), "nor reached the agent's logs");
        assert.ok(!s.hub.proc.dump().includes(VENDOR_KEY), "the vendor key never reached the hub");
        assert.ok(!s.hub.proc.dump().includes(key), "the hub never logs the virtual key");

        const line = await finishedLine(s, keyId);
        assert.equal(line.outcome, "complete");
        const usage = await waitFor(async () => {
          const r = await admin(s.hub, "GET", `/usage/${line.requestId}`);
          return r.status === 200 ? r.json : undefined;
        }, "usage record");
        // response 1: 12 text in, 4 text out; response 2: 112 in (100 audio, 8 cached), 44 out (40 audio)
        const u = usage.usage ?? usage;
        assert.equal(u.inputTokens, 116);
        assert.equal(u.cachedInputTokens, 8);
        assert.equal(u.audioInputTokens, 100);
        assert.equal(u.outputTokens, 48);
        assert.equal(u.audioOutputTokens, 40);
        assert.ok(
          !s.hub.proc.lines.some((l) =>
            l.msg === "hub and agent usage differ" && l.requestId === line.requestId
          ),
          "the hub's own count of the relayed events agrees with the agent's",
        );

        const entry = await waitFor(async () => {
          const r = await admin(s.hub, "GET", `/ledger?agentId=${s.agentId}&limit=1000`);
          return r.json.entries.find((e: { requestId: string }) => e.requestId === line.requestId);
        }, "ledger entry");
        assert.ok(parseUsd(entry.userCharge) > 0n);
        assert.equal(await balanceOf(s), formatUsd(parseUsd(before) - parseUsd(entry.userCharge)));
        await waitFor(
          () =>
            s.hub.proc.lines.find((l) =>
              l.msg === "agent acknowledged a settlement" && l.requestId === line.requestId
            ),
          "the agent's own count agrees (SETTLE_ACK)",
        );
      },
    );

    await t.step(
      "ws with subprotocol auth: text and binary relayed both ways in order",
      async () => {
        const { key } = await s.newKey();
        const c = await rawClient(s, key, "subprotocol", MODEL, "/openai/v1/realtime");
        assert.equal(c.ws.protocol, "realtime");
        await c.event("session.created");
        const sent: Msg[] = [];
        for (let i = 0; i < 50; i++) {
          const bin = new Uint8Array(1 + (i * 37) % 3000).fill(i);
          const text = JSON.stringify({ type: "fake.ping", n: i });
          c.ws.send(bin, { binary: true });
          c.ws.send(text);
          sent.push(bin, text);
        }
        const big = new Uint8Array(300_000).map((_, i) => i * 7);
        c.ws.send(big, { binary: true });
        sent.push(big);
        await waitFor(() => c.got.length >= 1 + 101, "all answers");
        const session = s.fake.sessions.at(-1)!;
        assert.deepEqual(session.received, sent, "the vendor got every message, in order");
        assert.deepEqual(
          session.protocols,
          [],
          "no client subprotocol (and key) reached the vendor",
        );
        const answers = c.got.slice(1);
        assert.equal(answers.length, 101);
        for (let i = 0; i < 50; i++) {
          assert.deepEqual(answers[2 * i], sent[2 * i], `binary echo ${i}`);
          assert.deepEqual(JSON.parse(answers[2 * i + 1] as string), { type: "fake.pong", n: i });
        }
        assert.deepEqual(answers[100], big);

        c.ws.send(JSON.stringify({ type: "fake.close", code: 4000, reason: "vendor says bye" }));
        assert.deepEqual(await c.closedWith(), { code: 4000, reason: "vendor says bye" });
        assert.ok(!s.hub.proc.dump().includes(key), "the subprotocol key is never logged");
      },
    );

    await t.step(
      "a session without response.done is not billed: the hold is released",
      async () => {
        const before = await balanceOf(s);
        const { id: keyId, key } = await s.newKey();
        const c = await rawClient(s, key, "bearer");
        await c.event("session.created");
        c.ws.close(4001, "client done");
        assert.deepEqual(await c.closedWith(), { code: 4001, reason: "client done" });
        const session = s.fake.sessions.at(-1)!;
        assert.deepEqual(await waitFor(() => session.close, "upstream closed"), {
          code: 4001,
          reason: "client done",
        });
        const line = await finishedLine(s, keyId);
        assert.equal(line.inputTokens, undefined);
        await waitFor(async () => (await balanceOf(s)) === before, "hold released");
      },
    );

    await t.step(
      "refusals: bad key, no agent for the model, rate limit → OpenAI error events",
      async () => {
        const sdkError = async (key: string, model: string) => {
          const client = new OpenAI({ apiKey: key, baseURL: `${s.hub.url}/v1` });
          const rt = new OpenAIRealtimeWS({ model, options: { ca: s.caPem } }, client);
          const errors: { error?: { code?: string; type?: string } }[] = [];
          rt.on("error", (e) => errors.push(e as never));
          const code = await new Promise<number>((resolve) => rt.socket.on("close", resolve));
          assert.equal(errors.length, 1);
          return { code, error: errors[0]!.error!, name: (errors[0] as Error).name };
        };
        // The fake checks a vendor key as OpenAI does: accepted socket, error event, close 3000.
        const wrong = new WebSocket(`${s.fake.url.replace("http", "ws")}/v1/realtime?model=x`, {
          headers: { authorization: "Bearer sk-wrong-key-0000" },
        });
        const wrongMessages: string[] = [];
        wrong.on("message", (d: Uint8Array) => wrongMessages.push(d.toString()));
        const wrongClose = await new Promise<number>((resolve) => wrong.on("close", resolve));
        assert.equal(wrongClose, 3000);
        assert.equal(JSON.parse(wrongMessages[0]!).error.code, "invalid_api_key");
        const sessionsBefore = s.fake.sessions.length;
        const bad = await sdkError("aq-not-a-real-key-000000000000", MODEL);
        assert.equal(bad.name, "OpenAIRealtimeError");
        assert.equal(bad.error.code, "invalid_api_key");
        assert.equal(bad.code, 3000);

        const { key } = await s.newKey();
        const none = await sdkError(key, UNOFFERED);
        assert.equal(none.error.code, "no_capacity");

        const { key: limited } = await s.newKey({ limits: { rpm: 1 } });
        const first = await rawClient(s, limited, "bearer");
        await first.event("session.created");
        const second = await sdkError(limited, MODEL);
        assert.equal(second.error.code, "rate_limit_exceeded");
        first.ws.close();
        await first.closedWith();
        assert.equal(
          s.fake.sessions.length,
          sessionsBefore + 1,
          "only the admitted one reached the vendor",
        );

        // The vendor refusing the upgrade over HTTP reaches the client as that HTTP answer.
        const refused = await rawClient(s, key, "bearer", "fake-status-503").then(
          () => assert.fail("the upgrade should have been refused"),
          (e: Error) => e.message,
        );
        assert.equal(refused, "HTTP 503");

        const res = await fetch(`${s.hub.url}/v1/realtime?model=${MODEL}`, {
          headers: { authorization: `Bearer ${key}` },
          client: s.hub.client,
        });
        assert.equal(res.status, 400);
        assert.equal((await res.json()).error.code, "websocket_required");
      },
    );

    await t.step("Azure: OpenAIRealtimeWS.azure through /azure/openai/v1/realtime", async () => {
      const { id: keyId, key } = await s.newKey();
      const client = new AzureOpenAI({
        endpoint: `${s.hub.url}/azure`,
        apiKey: key,
        apiVersion: "2025-04-01-preview",
        deployment: AZURE_DEPLOYMENT,
      });
      const rt = await OpenAIRealtimeWS.azure(client, { options: { ca: s.caPem } });
      const types: string[] = [];
      rt.on("event", (e) => types.push(e.type));
      rt.on("error", (e) => types.push(`error: ${e.message}`));
      await waitFor(() => types.includes("session.created"), "session.created", 10_000);
      rt.send({ type: "response.create", response: { output_modalities: ["text"] } });
      await waitFor(() => types.includes("response.done"), "response.done");
      const closed = new Promise((resolve) => rt.socket.on("close", resolve));
      rt.close();
      await closed;
      const session = s.fake.sessions.at(-1)!;
      assert.equal(session.path, "/openai/v1/realtime");
      assert.equal(session.model, AZURE_DEPLOYMENT);
      assert.equal(session.key, AZURE_KEY, "the resource's real key");
      assert.ok(!JSON.stringify(session.headers).includes(key));
      const line = await finishedLine(s, keyId);
      assert.equal(line.outcome, "complete");
      assert.equal(line.outputTokens, 5);
    });

    await t.step(
      "Azure preview path (openai 6.x AzureOpenAI): /openai/realtime?api-version&deployment",
      async () => {
        const { id: keyId, key } = await s.newKey();
        const dispatched = s.fake.sessions.length;
        // Without api-version: Azure's error code on the socket, nothing dispatched.
        const bare = await rawClient(
          s,
          key,
          "api-key",
          MODEL,
          "/azure/openai/realtime",
          `deployment=${AZURE_DEPLOYMENT}`,
        );
        const refusal = await bare.event("error");
        assert.equal(
          (refusal as { error: { code: string } }).error.code,
          "MissingApiVersionParameter",
        );
        assert.equal((await bare.closedWith()).code, 3000);
        assert.equal(s.fake.sessions.length, dispatched, "nothing reached the vendor");

        const c = await rawClient(
          s,
          key,
          "api-key",
          MODEL,
          "/azure/openai/realtime",
          `api-version=2025-04-01-preview&deployment=${AZURE_DEPLOYMENT}`,
        );
        await c.event("session.created");
        c.ws.send(JSON.stringify({ type: "response.create" }));
        await c.event("response.done");
        c.ws.close(1000, "bye");
        await c.closedWith();
        const session = s.fake.sessions.at(-1)!;
        assert.equal(session.path, "/openai/realtime");
        assert.equal(session.model, AZURE_DEPLOYMENT);
        assert.equal(session.key, AZURE_KEY, "the resource's real key");
        assert.ok(!JSON.stringify(session.headers).includes(key));
        const line = await finishedLine(s, keyId);
        assert.equal(line.outcome, "complete");
      },
    );

    await t.step("relay latency: ping/pong through hub + tunnel + agent vs direct", async () => {
      const { key } = await s.newKey();
      const c = await rawClient(s, key, "bearer");
      await c.event("session.created");
      const direct = new WebSocket(`${s.fake.url.replace("http", "ws")}/v1/realtime?model=x`, {
        headers: { authorization: `Bearer ${VENDOR_KEY}` },
      });
      await new Promise((resolve) => direct.once("message", resolve)); // session.created
      const rtt = async (ws: WebSocket, n: number) => {
        const times: number[] = [];
        for (let i = 0; i < n; i++) {
          const start = performance.now();
          const pong = new Promise((resolve) => ws.once("message", resolve));
          ws.send(JSON.stringify({ type: "fake.ping", n: i }));
          await pong;
          times.push(performance.now() - start);
        }
        return times;
      };
      const N = 200;
      await rtt(c.ws, 20); // warm-up
      const viaHub = await rtt(c.ws, N);
      const straight = await rtt(direct, N);
      const p50 = (percentile(viaHub, 0.5) - percentile(straight, 0.5)) / 2;
      console.log(
        `realtime relay: RTT p50 ${percentile(viaHub, 0.5).toFixed(2)} ms via hub vs ` +
          `${percentile(straight, 0.5).toFixed(2)} ms direct (p99 ${
            percentile(viaHub, 0.99).toFixed(2)
          } ms); ` +
          `≈ ${p50.toFixed(2)} ms added per message per direction (wss, ${N} pings)`,
      );
      // Throughput: 8 MiB of 64 KiB binary messages echoed by the vendor, through the relay.
      const chunk = new Uint8Array(64 * 1024).fill(7);
      const want = c.got.length + 128;
      const start = performance.now();
      for (let i = 0; i < 128; i++) c.ws.send(chunk, { binary: true });
      await waitFor(() => c.got.length >= want, "8 MiB echoed");
      const seconds = (performance.now() - start) / 1000;
      console.log(`realtime relay: 8 MiB each way in ${seconds.toFixed(2)} s`);
      direct.close();
      c.ws.close();
      await c.closedWith();
    });
  } finally {
    await s.stop();
  }
});

Deno.test("realtime over ws://: relay, and the agent killed mid-session", async (t) => {
  const s = await startRtStack(false);
  try {
    await t.step("Bearer ws client: messages both ways", async () => {
      const { key } = await s.newKey();
      const c = await rawClient(s, key, "bearer");
      await c.event("session.created");
      c.ws.send(
        JSON.stringify({ type: "session.update", session: { output_modalities: ["text"] } }),
      );
      c.ws.send(new Uint8Array([1, 2, 3]), { binary: true });
      await c.event("session.updated");
      await waitFor(() => c.got.some((m) => m instanceof Uint8Array), "binary echo");
      assert.deepEqual(c.got.find((m) => m instanceof Uint8Array), new Uint8Array([1, 2, 3]));
      c.ws.close(1000);
      assert.equal((await c.closedWith()).code, 1000);
    });

    await t.step("a rejected channel key is rotated before the client sees anything", async () => {
      const { id: keyId, key } = await s.newKey();
      const before = s.fake.sessions.length;
      const c = await rawClient(s, key, "bearer", ROTATE_MODEL);
      await c.event("session.created");
      assert.deepEqual(c.events.map((e) => e.type), ["session.created"], "no error event leaked");
      const tried = s.fake.sessions.slice(before);
      assert.deepEqual(tried.map((x) => x.key), ["sk-revoked-key-0", VENDOR_KEY]);
      assert.equal(tried[0]!.close?.code, 3000, "the vendor refused the first key");
      c.ws.close();
      await c.closedWith();
      const line = await finishedLine(s, keyId);
      assert.equal(line.keyRotations, 1);
    });

    await t.step(
      "a client that stops reading: backpressure reaches the vendor, nothing lost",
      async () => {
        const { key } = await s.newKey();
        const c = await rawClient(s, key, "bearer");
        await c.event("session.created");
        c.ws.pause(); // stop reading from the hub
        const count = 1024, bytes = 64 * 1024; // 64 MiB
        c.ws.send(JSON.stringify({ type: "fake.flood", count, bytes }));
        const session = s.fake.sessions.at(-1)!;
        // Once the vendor's send buffer stops draining, hub + agent + sockets hold the rest.
        let last = -1, since = performance.now();
        const settled = await waitFor(
          () => {
            const now = session.bufferedAmount();
            if (now !== last) [last, since] = [now, performance.now()];
            return now > 0 && performance.now() - since > 500 && now;
          },
          "vendor send buffer stable",
          20_000,
        );
        const heldDownstream = count * bytes - settled;
        console.log(
          `realtime backpressure: ${(heldDownstream / 2 ** 20).toFixed(1)} MiB of a 64 MiB flood ` +
            `left the vendor while the client read nothing (kernel buffers + hub + agent)`,
        );
        // Hub ≤ 1 MiB + window ≤ 4 MiB, agent ≤ 4 MiB queued; the rest is kernel socket buffers
        // (loopback autotuning here: ≈ 15 MiB in all). At least 16 MiB must stay at the vendor.
        assert.ok(heldDownstream < 48 * 2 ** 20, `bounded: ${heldDownstream} bytes`);
        c.ws.resume();
        await waitFor(() => c.got.length >= 1 + count, "the whole flood", 30_000);
        const got = c.got.slice(1) as Uint8Array[];
        for (let i = 0; i < count; i++) {
          assert.equal(got[i]!.length, bytes);
          assert.equal(got[i]![0], i & 0xff, `message ${i} in order`);
        }
        c.ws.close();
        await c.closedWith();
      },
    );

    await t.step(
      "agent killed mid-session → error event and close 1011; the hold is released",
      async () => {
        const before = await balanceOf(s);
        const { id: keyId, key } = await s.newKey();
        const c = await rawClient(s, key, "bearer");
        await c.event("session.created");
        const pid = await lockedAgentPid(s.agent);
        Deno.kill(pid, "SIGKILL");
        const closed = await c.closedWith();
        assert.equal(closed.code, 1011);
        const err = await c.event("error") as { error: { type: string; code: string } };
        assert.equal(err.error.type, "server_error");
        assert.equal(err.error.code, "upstream_disconnected");
        const line = await finishedLine(s, keyId);
        assert.match(String(line.outcome), /aborted/);
        await waitFor(async () => (await balanceOf(s)) === before, "hold released");
      },
    );
  } finally {
    await s.stop();
  }
});
