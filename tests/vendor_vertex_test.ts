/**
 * The Vertex AI surface end to end with the official clients — `@google/genai` (`vertexai: true`)
 * and `@anthropic-ai/vertex-sdk` — under the hub's `/vertex` prefix: hub → tunnel → locked agent
 * → fake Vertex (AGENT_DEV_UPSTREAMS maps `us-central1-aiplatform.googleapis.com` and
 * `oauth2.googleapis.com`). The channel key is a service-account JSON made at test time; the agent
 * mints an RS256 JWT, exchanges it once for an access token (the fake verifies the signature) and
 * reuses it. The client's project is replaced by the SA's.
 */
import assert from "node:assert/strict";
import { AnthropicVertex } from "@anthropic-ai/vertex-sdk";
import { GoogleGenAI } from "@google/genai";
import {
  type FakeVertex,
  makeServiceAccount,
  startFakeVertex,
  type TestServiceAccount,
} from "./fakes/vertex.ts";
import {
  admin,
  agentCli,
  enrollAgent,
  type HubProc,
  runAgent,
  startHub,
  waitOnline,
} from "./support/cluster.ts";
import { type Proc, tempDir, waitFor } from "./support/process.ts";

const LOCATION = "us-central1";
const CLIENT_PROJECT = "client-proj";
const OWNER_PROJECT = "owner-proj";
const GEMINI = "gemini-3.5-flash";
const CLAUDE = "claude-sonnet-4-5@20250929";
const decoder = new TextDecoder();

interface VertexStack {
  hub: HubProc;
  agent: Proc;
  fake: FakeVertex;
  sa: TestServiceAccount;
  key: string;
  stop(): Promise<void>;
}

async function startVertexStack(): Promise<VertexStack> {
  const tmp = await tempDir("vertex");
  const sa = await makeServiceAccount(OWNER_PROJECT);
  const fake = await startFakeVertex({ serviceAccount: sa });
  let hub: HubProc | undefined;
  let agent: Proc | undefined;
  const stop = async () => {
    await agent?.stop();
    await hub?.proc.stop();
    await fake.close();
    await tmp.remove();
  };
  try {
    hub = await startHub({ dir: tmp.path });
    const dir = `${tmp.path}/agent`;
    const setup = await enrollAgent(hub, dir);
    const saFile = `${tmp.path}/sa.json`;
    await Deno.writeTextFile(saFile, sa.json, { mode: 0o600 });
    await agentCli([
      "channel",
      "add",
      "--vendor",
      "vertex",
      "--key",
      `@${saFile}`,
      "--endpoint",
      LOCATION,
      "--models",
      `${GEMINI},${CLAUDE}`,
      "--rpm",
      "100000",
      "--tpm",
      "1000000000",
      "--dir",
      dir,
    ]);
    agent = runAgent(dir, {
      AGENT_DEV_UPSTREAMS: JSON.stringify({
        [`${LOCATION}-aiplatform.googleapis.com`]: fake.url,
        "oauth2.googleapis.com": fake.url,
      }),
    });
    await waitOnline(hub, setup.id);
    const user = await admin(hub, "POST", "/users", { name: "vertex-client" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, { amount: "100" });
    const key = await admin(hub, "POST", "/keys", { userId: user.json.id });
    if (key.status !== 201) throw new Error(`key creation failed: ${JSON.stringify(key.json)}`);
    return { hub, agent, fake, sa, key: key.json.key, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * What both SDKs accept as a Google auth client: it hands out the virtual key as the bearer
 * token, so neither SDK looks for Application Default Credentials.
 */
const virtualKeyAuth = (key: string) => ({
  getRequestHeaders: () => Promise.resolve(new Headers({ authorization: `Bearer ${key}` })),
});

const genai = (stack: VertexStack, key = stack.key) =>
  new GoogleGenAI({
    vertexai: true,
    project: CLIENT_PROJECT,
    location: LOCATION,
    httpOptions: { baseUrl: `${stack.hub.url}/vertex` },
    googleAuthOptions: { authClient: virtualKeyAuth(key) as never },
  });

const claude = (stack: VertexStack, key = stack.key) =>
  new AnthropicVertex({
    baseURL: `${stack.hub.url}/vertex/v1`,
    region: LOCATION,
    projectId: CLIENT_PROJECT,
    authClient: virtualKeyAuth(key) as never,
    maxRetries: 0,
  });

const modelPath = (project: string, publisher: string, model: string, method: string) =>
  `/v1beta1/projects/${project}/locations/${LOCATION}/publishers/${publisher}/models/${model}:${method}`;

async function post(url: string, token: string, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    headers: res.headers,
    bytes: new Uint8Array(await res.arrayBuffer()),
  };
}

/** The hub's usage record of the request the client saw as `x-request-id` (null: not complete). */
async function usageRecord(stack: VertexStack, traceId: string | null) {
  const line = await waitFor(
    () =>
      stack.hub.proc.lines.find((l) =>
        l.msg === "request finished" && (l.requestId === traceId || l.traceId === traceId)
      ),
    `request finished ${traceId}`,
  );
  if (line.outcome !== "complete") return null;
  return await waitFor(async () => {
    const res = await admin(stack.hub, "GET", `/usage/${line.requestId}`);
    return res.status === 200 ? res.json : undefined;
  }, `usage of ${line.requestId}`);
}

Deno.test("Vertex AI through the hub: Gemini and Claude SDKs, SA token minting, usage", async (t) => {
  const stack = await startVertexStack();
  try {
    await t.step("@google/genai (vertexai): generateContent and stream", async () => {
      const ai = genai(stack);
      const done = await ai.models.generateContent({ model: GEMINI, contents: "hello vertex" });
      assert.ok(done.text?.startsWith("Echo: hello vertex "), String(done.text));
      let streamed = "";
      let last;
      for await (
        const chunk of await ai.models.generateContentStream({
          model: GEMINI,
          contents: "hello vertex",
        })
      ) {
        streamed += chunk.text ?? "";
        last = chunk;
      }
      assert.equal(streamed, done.text);
      assert.deepEqual(last?.usageMetadata, done.usageMetadata);
      const upstream = stack.fake.requests.at(-1)!;
      assert.equal(
        upstream.path,
        `${modelPath(OWNER_PROJECT, "google", GEMINI, "streamGenerateContent")}?alt=sse`,
        "the owner's project, the SDK's v1beta1 and query",
      );
      assert.match(upstream.headers.authorization ?? "", /^Bearer ya29\.fake-/);
      assert.ok(!JSON.stringify(upstream.headers).includes(stack.key), "no virtual key upstream");
    });

    await t.step("@anthropic-ai/vertex-sdk: messages, stream and countTokens", async () => {
      const client = claude(stack);
      const messages = [{ role: "user" as const, content: "hello claude" }];
      const done = await client.messages.create({ model: CLAUDE, max_tokens: 200, messages });
      const text = done.content.map((b) => b.type === "text" ? b.text : "").join("");
      assert.ok(text.startsWith("Echo: hello claude"), text);
      let streamed = "";
      const stream = client.messages.stream({ model: CLAUDE, max_tokens: 200, messages });
      for await (const event of stream) {
        if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
          streamed += event.delta.text;
        }
      }
      const final = await stream.finalMessage();
      assert.equal(streamed, text);
      assert.deepEqual(final.usage.output_tokens, done.usage.output_tokens);
      const upstream = stack.fake.requests.at(-1)!;
      assert.equal(
        upstream.path,
        `/v1/projects/${OWNER_PROJECT}/locations/${LOCATION}/publishers/anthropic/models/${CLAUDE}:streamRawPredict`,
      );
      assert.match(upstream.body ?? "", /"anthropic_version"/);
      const counted = await client.messages.countTokens({ model: CLAUDE, messages });
      assert.equal(typeof counted.input_tokens, "number");
      assert.ok(counted.input_tokens > 0);
      assert.equal(
        stack.fake.requests.at(-1)!.path,
        `/v1/projects/${OWNER_PROJECT}/locations/${LOCATION}/publishers/anthropic/models/count-tokens:rawPredict`,
      );
    });

    await t.step("byte-identical to Vertex, streamed and not, both publishers", async () => {
      const token = stack.fake.issueToken();
      const cases = [
        {
          publisher: "google",
          model: GEMINI,
          methods: ["generateContent", "streamGenerateContent?alt=sse"],
          body: { contents: [{ role: "user", parts: [{ text: "bytes please" }] }] },
        },
        {
          publisher: "anthropic",
          model: CLAUDE,
          methods: ["rawPredict", "streamRawPredict"],
          body: {
            anthropic_version: "vertex-2023-10-16",
            max_tokens: 100,
            messages: [{ role: "user", content: "bytes please" }],
          },
        },
      ];
      for (const c of cases) {
        for (const method of c.methods) {
          const body = method.startsWith("stream") && c.publisher === "anthropic"
            ? { ...c.body, stream: true }
            : c.body;
          const direct = await post(
            `${stack.fake.url}${modelPath(OWNER_PROJECT, c.publisher, c.model, method)}`,
            token,
            body,
          );
          const viaHub = await post(
            `${stack.hub.url}/vertex${modelPath(CLIENT_PROJECT, c.publisher, c.model, method)}`,
            stack.key,
            body,
          );
          assert.equal(direct.status, 200, decoder.decode(direct.bytes));
          assert.equal(viaHub.status, 200, decoder.decode(viaHub.bytes));
          assert.equal(decoder.decode(viaHub.bytes), decoder.decode(direct.bytes), method);
        }
      }
    });

    await t.step("usage: stream and non-stream record the same tokens", async () => {
      const cases = [
        {
          publisher: "google",
          model: GEMINI,
          methods: ["generateContent", "streamGenerateContent?alt=sse"],
          body: { contents: [{ role: "user", parts: [{ text: "meter [[words:30]]" }] }] },
        },
        {
          publisher: "anthropic",
          model: CLAUDE,
          methods: ["rawPredict", "streamRawPredict"],
          body: {
            anthropic_version: "vertex-2023-10-16",
            max_tokens: 500,
            messages: [{ role: "user", content: "meter [[words:30]]" }],
          },
        },
      ];
      for (const c of cases) {
        // deno-lint-ignore no-explicit-any -- usage records are JSON
        const records: any[] = [];
        for (const method of c.methods) {
          const body = method.startsWith("stream") && c.publisher === "anthropic"
            ? { ...c.body, stream: true }
            : c.body;
          // deno-lint-ignore no-explicit-any -- a usage record is JSON
          let record: any;
          for (let attempt = 0; attempt < 20 && !record; attempt++) {
            const res = await post(
              `${stack.hub.url}/vertex${modelPath(CLIENT_PROJECT, c.publisher, c.model, method)}`,
              stack.key,
              body,
            );
            assert.equal(res.status, 200);
            record = await usageRecord(stack, res.headers.get("x-request-id"));
          }
          assert.ok(record, "the hub recorded the request");
          records.push(record);
        }
        const [a, b] = records;
        assert.equal(a.vendor, "vertex");
        assert.equal(a.model, c.model);
        assert.ok(a.usage.outputTokens > 0, JSON.stringify(a.usage));
        for (const field of ["vendor", "model", "promptTokens", "usage"]) {
          assert.deepEqual(b[field], a[field], `${c.publisher} ${field}: stream = non-stream`);
        }
      }
    });

    await t.step("one token exchange for every request, with a verified assertion", () => {
      assert.equal(stack.fake.tokenRequests.length, 1, JSON.stringify(stack.fake.tokenRequests));
      const [exchange] = stack.fake.tokenRequests;
      assert.equal(exchange!.ok, true, exchange!.why ?? "");
      assert.deepEqual(exchange!.header, { alg: "RS256", typ: "JWT" });
      assert.equal(exchange!.claims!.iss, stack.sa.clientEmail);
      assert.equal(
        (exchange!.claims!.exp as number) - (exchange!.claims!.iat as number),
        3600,
      );
      assert.ok(stack.fake.requests.length >= 10);
      assert.ok(stack.fake.requests.every((r) => r.status === 200));
    });

    await t.step("a bad virtual key is refused before anything is dispatched", async () => {
      const before = stack.fake.requests.length;
      await assert.rejects(
        genai(stack, "aq-bogus").models.generateContent({ model: GEMINI, contents: "x" }),
        (e: unknown) => (e as { status?: number }).status === 401,
      );
      await assert.rejects(
        claude(stack, "aq-bogus").messages.create({
          model: CLAUDE,
          max_tokens: 10,
          messages: [{ role: "user", content: "x" }],
        }),
        (e: unknown) => (e as { status?: number }).status === 401,
      );
      assert.equal(stack.fake.requests.length, before);
    });

    await t.step("a location the channel does not serve never reaches Vertex", async () => {
      const before = stack.fake.requests.length;
      const res = await post(
        `${stack.hub.url}/vertex${
          modelPath(CLIENT_PROJECT, "google", GEMINI, "generateContent").replace(
            LOCATION,
            "europe-west4",
          )
        }`,
        stack.key,
        { contents: [{ role: "user", parts: [{ text: "x" }] }] },
      );
      assert.ok(res.status >= 400, String(res.status));
      assert.equal(typeof JSON.parse(decoder.decode(res.bytes)).error.message, "string");
      assert.equal(stack.fake.requests.length, before);
    });

    await t.step("the service-account JSON never shows in the agent's or hub's logs", () => {
      const logs = JSON.stringify(stack.agent.lines) + JSON.stringify(stack.hub.proc.lines);
      assert.ok(!logs.includes("PRIVATE KEY"));
      assert.ok(!logs.includes("ya29.fake-"));
    });
  } finally {
    await stack.stop();
  }
});
