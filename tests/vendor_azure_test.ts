/**
 * The Azure OpenAI surface end to end with the official `openai` package's `AzureOpenAI` client:
 * hub (`/azure` prefix) → tunnel → locked agent → the channel's own resource host (a fake Azure
 * resource via AGENT_DEV_UPSTREAMS), which checks the real `api-key` and the `api-version`.
 * The deployment in the URL is the routing model; the channel names its resource with
 * `--endpoint`.
 */
import assert from "node:assert/strict";
import { AuthenticationError, AzureOpenAI } from "openai";
import { type FakeAzure, startFakeAzure } from "./fakes/azure.ts";
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

const AZ_KEY = "azure-real-key-0123456789abcdef";
const RESOURCE = "contoso-east";
const CHAT = "my-gpt4o-deploy";
const EMBED = "my-embed-deploy";
const API_VERSION = "2024-10-21";
const decoder = new TextDecoder();

interface AzureStack {
  hub: HubProc;
  agent: Proc;
  fake: FakeAzure;
  key: string;
  stop(): Promise<void>;
}

async function startAzureStack(): Promise<AzureStack> {
  const tmp = await tempDir("azure");
  const fake = await startFakeAzure({
    keys: [AZ_KEY],
    deployments: { [CHAT]: "gpt-4o-2024-11-20", [EMBED]: "text-embedding-3-small" },
  });
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
    // prettier-ignore
    await agentCli([
      "channel",
      "add",
      "--vendor",
      "azure",
      "--key",
      AZ_KEY,
      "--endpoint",
      RESOURCE,
      "--models",
      `${CHAT},${EMBED}`,
      "--rpm",
      "100000",
      "--tpm",
      "1000000000",
      "--dir",
      dir,
    ]);
    agent = runAgent(dir, {
      AGENT_DEV_UPSTREAMS: JSON.stringify({ [`${RESOURCE}.openai.azure.com`]: fake.url }),
    });
    await waitOnline(hub, setup.id);
    const user = await admin(hub, "POST", "/users", { name: "azure-client" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, { amount: "100" });
    const key = await admin(hub, "POST", "/keys", { userId: user.json.id });
    if (key.status !== 201) throw new Error(`key creation failed: ${JSON.stringify(key.json)}`);
    return { hub, agent, fake, key: key.json.key, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

const client = (stack: AzureStack, apiKey: string, deployment = CHAT) =>
  new AzureOpenAI({
    endpoint: `${stack.hub.url}/azure`,
    apiKey,
    apiVersion: API_VERSION,
    deployment,
    maxRetries: 0,
  });

async function post(url: string, headers: Record<string, string>, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    headers: res.headers,
    bytes: new Uint8Array(await res.arrayBuffer()),
  };
}

/** The hub's usage record of the request the client saw as `x-request-id` (null: not complete). */
async function usageRecord(stack: AzureStack, traceId: string | null) {
  const line = await waitFor(
    () =>
      stack.hub.proc.lines.find((l) =>
        l.msg === "request finished" && (l.requestId === traceId || l.traceId === traceId)
      ),
    `request finished ${traceId}`,
  );
  if (line.outcome !== "complete") return null;
  const record = await waitFor(async () => {
    const res = await admin(stack.hub, "GET", `/usage/${line.requestId}`);
    return res.status === 200 ? res.json : undefined;
  }, `usage of ${line.requestId}`);
  const listed = await admin(stack.hub, "GET", `/usage?keyId=${record.keyId}&limit=1000`);
  assert.equal(listed.status, 200);
  const rows: { requestId: string }[] = Array.isArray(listed.json)
    ? listed.json
    : listed.json.records ?? listed.json.usage ?? listed.json.data;
  assert.deepEqual(rows.find((r) => r.requestId === line.requestId), record, "listed by key");
  return record;
}

Deno.test("AzureOpenAI SDK through the hub: chat, stream, embeddings, usage, errors", async (t) => {
  const stack = await startAzureStack();
  const chatPath = `/openai/deployments/${CHAT}/chat/completions?api-version=${API_VERSION}`;
  const messages = [{ role: "user" as const, content: "hello azure" }];
  try {
    await t.step(
      "chat, non-stream and stream; the agent calls the resource with api-key",
      async () => {
        const az = client(stack, stack.key);
        const done = await az.chat.completions.create({ model: "gpt-4o", messages });
        assert.ok(done.choices[0]?.message.content?.startsWith("Echo: hello azure "));
        assert.equal(done.model, "gpt-4o-2024-11-20");
        let streamed = "";
        const chunks = [];
        for await (
          const chunk of await az.chat.completions.create({
            model: "gpt-4o",
            messages,
            stream: true,
          })
        ) {
          chunks.push(chunk);
          streamed += chunk.choices[0]?.delta?.content ?? "";
        }
        assert.equal(streamed, done.choices[0]?.message.content);
        // Azure's leading prompt-filter chunk reaches the client as sent.
        assert.deepEqual(chunks[0]?.choices, []);
        assert.equal(chunks[0]?.model, "");
        // The client did not ask for usage: none reaches it (the agent asked, then stripped it).
        assert.ok(chunks.every((c) => c.usage === undefined));
        const upstream = stack.fake.requests.at(-1)!;
        assert.equal(upstream.path, chatPath);
        assert.equal(upstream.headers["api-key"], AZ_KEY);
        assert.equal(upstream.headers["authorization"], undefined);
        assert.match(upstream.body, /"include_usage":true/);
      },
    );

    await t.step("byte-identical to the resource, streamed and not; Bearer works too", async () => {
      for (const stream of [false, true]) {
        const body = { model: "gpt-4o", messages, stream };
        const direct = await post(`${stack.fake.url}${chatPath}`, { "api-key": AZ_KEY }, body);
        const viaHub = await post(
          `${stack.hub.url}/azure${chatPath}`,
          { "api-key": stack.key },
          body,
        );
        const bearer = await post(
          `${stack.hub.url}/azure${chatPath}`,
          { authorization: `Bearer ${stack.key}` },
          body,
        );
        assert.equal(viaHub.status, 200);
        assert.equal(
          decoder.decode(viaHub.bytes),
          decoder.decode(direct.bytes),
          `stream=${stream}`,
        );
        assert.equal(decoder.decode(bearer.bytes), decoder.decode(direct.bytes));
      }
    });

    await t.step("usage: stream and non-stream record the same tokens", async () => {
      const body = { model: "gpt-4o", messages: [{ role: "user", content: "meter [[words:30]]" }] };
      const recorded = async (stream: boolean) => {
        for (let attempt = 0; attempt < 20; attempt++) {
          const res = await post(
            `${stack.hub.url}/azure${chatPath}`,
            { "api-key": stack.key },
            { ...body, stream },
          );
          assert.equal(res.status, 200);
          const record = await usageRecord(stack, res.headers.get("x-request-id"));
          if (record) return { res, record };
        }
        throw new Error("the hub never recorded the request");
      };
      const { res, record: a } = await recorded(false);
      const { record: b } = await recorded(true);
      assert.notEqual(a.requestId, b.requestId);
      for (const field of ["vendor", "model", "promptTokens", "usage"]) {
        assert.deepEqual(b[field], a[field], `${field} equal for stream and non-stream`);
      }
      const usage = JSON.parse(decoder.decode(res.bytes)).usage;
      assert.equal(a.vendor, "azure");
      assert.equal(a.promptTokens, usage.prompt_tokens);
      assert.equal(a.usage.outputTokens, usage.completion_tokens);
    });

    await t.step("embeddings (base64, as the SDK asks) match the resource", async () => {
      const az = client(stack, stack.key, EMBED);
      const res = await az.embeddings.create({ model: "text-embedding-3-small", input: "hello" });
      assert.equal(res.data[0]?.embedding.length, 1536);
      assert.equal(res.model, "text-embedding-3-small");
      const path = `/openai/deployments/${EMBED}/embeddings?api-version=${API_VERSION}`;
      const body = { model: EMBED, input: ["a", "b"], encoding_format: "base64" };
      const direct = await post(`${stack.fake.url}${path}`, { "api-key": AZ_KEY }, body);
      const viaHub = await post(`${stack.hub.url}/azure${path}`, { "api-key": stack.key }, body);
      assert.equal(viaHub.status, 200);
      assert.deepEqual(viaHub.bytes, direct.bytes);
    });

    await t.step("v1 shape: the deployment in the body", async () => {
      const body = { model: CHAT, messages };
      const direct = await post(
        `${stack.fake.url}/openai/v1/chat/completions`,
        { "api-key": AZ_KEY },
        body,
      );
      const viaHub = await post(
        `${stack.hub.url}/azure/openai/v1/chat/completions`,
        { authorization: `Bearer ${stack.key}` },
        body,
      );
      assert.equal(viaHub.status, 200);
      assert.deepEqual(viaHub.bytes, direct.bytes);
    });

    await t.step("a missing api-version is refused by the hub in Azure's envelope", async () => {
      const before = stack.fake.requests.length;
      const res = await post(
        `${stack.hub.url}/azure/openai/deployments/${CHAT}/chat/completions`,
        { "api-key": stack.key },
        { model: "gpt-4o", messages },
      );
      assert.equal(res.status, 400);
      assert.equal(JSON.parse(decoder.decode(res.bytes)).error.code, "MissingApiVersionParameter");
      assert.equal(stack.fake.requests.length, before, "nothing dispatched");
    });

    await t.step(
      "a bad key raises AuthenticationError and never reaches the resource",
      async () => {
        const before = stack.fake.requests.length;
        await assert.rejects(
          client(stack, "aq-bogus").chat.completions.create({ model: "gpt-4o", messages }),
          (e: unknown) => e instanceof AuthenticationError && e.status === 401,
        );
        assert.equal(stack.fake.requests.length, before);
      },
    );

    await t.step("a deployment no channel serves: an error in Azure's envelope", async () => {
      const res = await post(
        `${stack.hub.url}/azure/openai/deployments/other-deploy/chat/completions?api-version=${API_VERSION}`,
        { "api-key": stack.key },
        { model: "gpt-4o", messages },
      );
      assert.ok(res.status >= 400);
      const error = JSON.parse(decoder.decode(res.bytes)).error;
      assert.equal(typeof error.code, "string");
      assert.equal(typeof error.message, "string");
    });
  } finally {
    await stack.stop();
  }
});
