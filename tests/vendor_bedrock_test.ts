/**
 * The Bedrock Runtime surface end to end with the official clients — `@aws-sdk/client-bedrock-runtime`
 * (its default HTTP/2 handler over h2c, and `NodeHttpHandler` over HTTP/1.1) and
 * `@anthropic-ai/bedrock-sdk` — under the hub's `/bedrock` prefix: the client signs with the
 * hub-issued AWS key (SigV4, verified by the hub), the locked agent re-signs with the channel's
 * real key, and the fake Bedrock (AGENT_DEV_UPSTREAMS maps `bedrock-runtime.us-east-1.amazonaws.com`)
 * verifies that signature with the real secret.
 */
import assert from "node:assert/strict";
import AnthropicBedrock from "@anthropic-ai/bedrock-sdk";
import {
  BedrockRuntimeClient,
  type BedrockRuntimeClientConfig,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { signSigV4 } from "../protocol/aws/sigv4.ts";
import { sha256Hex } from "../protocol/aws/payload.ts";
import { amzDate } from "../agent/upstream/aws_sign.ts";
import { type FakeBedrock, startFakeBedrock } from "./fakes/bedrock.ts";
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

const REGION = "us-east-1";
// Priced by the built-in table v2 (`bedrock/anthropic.claude-sonnet-5-5`, and the `us.` profile
// alias of `bedrock/anthropic.claude-opus-5-5`), after the snapshot suffixes are stripped.
const CONVERSE_MODEL = "anthropic.claude-sonnet-5-5-20260101-v1:0";
const CLAUDE = "us.anthropic.claude-opus-5-5-20260101-v1:0";
const UNSERVED = "meta.llama3-70b-instruct-v1:0";
const OWNER = {
  accessKeyId: "AKIAOWNERFAKE0000001",
  secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};
const BLOCKED_WORD = "forbiddenfruit";
const decoder = new TextDecoder();

interface HubKey {
  key: string;
  aws: { accessKeyId: string; secretAccessKey: string };
}

interface BedrockStack {
  hub: HubProc;
  /** The hub's HTTP/2-only listener (HUB_H2_LISTEN), for the AWS SDK's default transport. */
  h2Url: string;
  /** The hub's self-signed certificate (TLS stacks). */
  caPath?: string;
  agent: Proc;
  fake: FakeBedrock;
  userId: string;
  key: HubKey;
  stop(): Promise<void>;
}

async function newKey(hub: HubProc, userId: string, limits?: unknown): Promise<HubKey> {
  const res = await admin(hub, "POST", "/keys", { userId, ...(limits ? { limits } : {}) });
  if (res.status !== 201) throw new Error(`key creation failed: ${JSON.stringify(res.json)}`);
  return { key: res.json.key, aws: res.json.aws };
}

/** A self-signed leaf for 127.0.0.1 (PEM paths and the agent's pin). */
async function makeCert(dir: string) {
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!out.success) throw new Error(`openssl: ${decoder.decode(out.stderr)}`);
    return decoder.decode(out.stdout);
  };
  // deno-fmt-ignore
  await run([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "hub.key.pem", "-out", "hub.pem", "-days", "2", "-subj", "/CN=hub",
    "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
    "-addext", "extendedKeyUsage=serverAuth",
  ]);
  const fp = await run(["x509", "-in", "hub.pem", "-noout", "-fingerprint", "-sha256"]);
  return {
    certPath: `${dir}/hub.pem`,
    keyPath: `${dir}/hub.key.pem`,
    pem: await Deno.readTextFile(`${dir}/hub.pem`),
    pin: "sha256:" + fp.trim().split("=")[1],
  };
}

async function startBedrockStack(options: { tls?: boolean } = {}): Promise<BedrockStack> {
  const tmp = await tempDir("bedrock");
  const fake = await startFakeBedrock({
    region: REGION,
    accessKeyId: OWNER.accessKeyId,
    secretAccessKey: OWNER.secret,
    models: [CONVERSE_MODEL, CLAUDE],
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
    const cert = options.tls ? await makeCert(tmp.path) : undefined;
    hub = await startHub({
      dir: tmp.path,
      env: {
        HUB_MODERATION_KEYWORDS: BLOCKED_WORD,
        HUB_H2_LISTEN: "127.0.0.1:0",
        ...(cert ? { HUB_TLS_CERT: cert.certPath, HUB_TLS_KEY: cert.keyPath } : {}),
      },
      caPem: cert?.pem,
    });
    const h2 = await hub.proc.waitForLine((l) => l.msg === "hub http/2 listening", "h2 listener");
    const dir = `${tmp.path}/agent`;
    const setup = await enrollAgent(hub, dir, cert ? { fingerprints: [cert.pin] } : {});
    await agentCli([
      "channel",
      "add",
      "--vendor",
      "bedrock",
      "--key",
      `${OWNER.accessKeyId}:${OWNER.secret}`,
      "--endpoint",
      REGION,
      "--models",
      `${CONVERSE_MODEL},${CLAUDE}`,
      "--rpm",
      "100000",
      "--tpm",
      "1000000000",
      "--dir",
      dir,
    ]);
    agent = runAgent(dir, {
      AGENT_DEV_UPSTREAMS: JSON.stringify({ [fake.host]: fake.url }),
    });
    await waitOnline(hub, setup.id);
    const user = await admin(hub, "POST", "/users", { name: "bedrock-client" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, { amount: "100" });
    const key = await newKey(hub, user.json.id);
    return {
      hub,
      h2Url: String(h2.url),
      caPath: cert?.certPath,
      agent,
      fake,
      userId: user.json.id,
      key,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

const awsClient = (
  stack: BedrockStack,
  key: HubKey = stack.key,
  extra: Partial<BedrockRuntimeClientConfig> = {},
) =>
  new BedrockRuntimeClient({
    region: REGION,
    endpoint: `${stack.hub.url}/bedrock`,
    credentials: key.aws,
    maxAttempts: 1,
    // HTTP/1.1 to the main listener; the default HTTP/2 handler goes to HUB_H2_LISTEN (h2Url).
    requestHandler: new NodeHttpHandler(),
    ...extra,
  });

const claude = (stack: BedrockStack, key: HubKey = stack.key) =>
  new AnthropicBedrock({
    baseURL: `${stack.hub.url}/bedrock`,
    awsRegion: REGION,
    awsAccessKey: key.aws.accessKeyId,
    awsSecretKey: key.aws.secretAccessKey,
    maxRetries: 0,
    ...(stack.hub.client
      ? {
        fetch: (url: string | URL | Request, init?: RequestInit) =>
          fetch(url, { ...init, client: stack.hub.client }),
      }
      : {}),
  });

const converseInput = (text: string) => ({
  modelId: CONVERSE_MODEL,
  messages: [{ role: "user" as const, content: [{ text }] }],
  inferenceConfig: { maxTokens: 200 },
});

const invokeBody = (text: string) =>
  JSON.stringify({
    anthropic_version: "bedrock-2023-05-31",
    max_tokens: 200,
    messages: [{ role: "user", content: text }],
  });

/** The text and final usage of a ConverseStream, or the error the SDK raised while reading. */
async function readConverseStream(client: BedrockRuntimeClient, text: string) {
  const out = await client.send(new ConverseStreamCommand(converseInput(text)));
  let streamed = "";
  // deno-lint-ignore no-explicit-any -- the SDK's usage shape
  let usage: any;
  for await (const event of out.stream!) {
    streamed += event.contentBlockDelta?.delta?.text ?? "";
    if (event.metadata) usage = event.metadata.usage;
  }
  return { streamed, usage, requestId: out.$metadata.requestId };
}

async function readInvokeStream(client: BedrockRuntimeClient, text: string) {
  const out = await client.send(
    new InvokeModelWithResponseStreamCommand({
      modelId: CLAUDE,
      contentType: "application/json",
      body: invokeBody(text),
    }),
  );
  let streamed = "";
  // deno-lint-ignore no-explicit-any -- decoded Anthropic events
  let metrics: any;
  for await (const event of out.body!) {
    const chunk = JSON.parse(decoder.decode(event.chunk!.bytes));
    if (chunk.type === "content_block_delta") streamed += chunk.delta.text;
    if (chunk["amazon-bedrock-invocationMetrics"]) {
      metrics = chunk["amazon-bedrock-invocationMetrics"];
    }
  }
  return { streamed, metrics };
}

/** The hub's usage record of a request (by the id the hub returned), null when incomplete. */
async function usageRecord(stack: BedrockStack, traceId: string | null) {
  const line = await waitFor(
    () =>
      stack.hub.proc.lines.find((l) =>
        l.msg === "request finished" && (l.requestId === traceId || l.traceId === traceId)
      ),
    `request finished ${traceId}`,
  );
  if (line.outcome !== "complete") return { outcome: line.outcome, record: null };
  const record = await waitFor(async () => {
    const res = await admin(stack.hub, "GET", `/usage/${line.requestId}`);
    return res.status === 200 ? res.json : undefined;
  }, `usage of ${line.requestId}`);
  return { outcome: line.outcome, record };
}

/** A raw SigV4-signed request (HTTP/1.1), for tampering. */
async function signedFetch(
  stack: BedrockStack,
  opts: { body: string; sendBody?: string; dateMs?: number; tamperSignature?: boolean },
) {
  const url = new URL(
    `${stack.hub.url}/bedrock/model/${encodeURIComponent(CONVERSE_MODEL)}/converse`,
  );
  const date = amzDate(opts.dateMs ?? Date.now());
  const payloadHash = await sha256Hex(opts.body);
  const headers: Record<string, string> = {
    host: url.host,
    "content-type": "application/json",
    "x-amz-date": date,
    "x-amz-content-sha256": payloadHash,
  };
  const signed = await signSigV4({
    method: "POST",
    rawPath: url.pathname,
    headers,
    payloadHash,
    accessKeyId: stack.key.aws.accessKeyId,
    secretAccessKey: stack.key.aws.secretAccessKey,
    region: REGION,
    service: "bedrock",
    amzDate: date,
  });
  let authorization = signed.authorization;
  if (opts.tamperSignature) {
    const last = authorization.at(-1) === "0" ? "1" : "0";
    authorization = authorization.slice(0, -1) + last;
  }
  const { host: _, ...sent } = headers;
  const res = await fetch(url, {
    method: "POST",
    headers: { ...sent, authorization },
    body: opts.sendBody ?? opts.body,
  });
  return {
    status: res.status,
    errorType: res.headers.get("x-amzn-errortype"),
    body: await res.json(),
  };
}

/**
 * Runs the AWS SDK with its default configuration on Node (tests/support/bedrock_node_client.mjs)
 * against the hub's `/bedrock`; returns what it printed.
 */
/**
 * Runs `fn` against the HTTP/2 bridge. Deno 2.9.6's node:http2 can abort on a client's GOAWAY
 * (denoland/deno#36788); the hub then logs the bridge's exit and restarts it, and the streams in
 * flight on it are lost. Only then — the abort logged — is `fn` run once more; any other
 * failure fails the test as is.
 */
async function acrossBridgeAborts<T>(stack: BedrockStack, fn: () => Promise<T>): Promise<T> {
  const count = (msg: string) => stack.hub.proc.lines.filter((l) => l.msg === msg).length;
  const aborts = count("http/2 bridge exited; restarting");
  try {
    return await fn();
  } catch (e) {
    const aborted = await waitFor(
      () => count("http/2 bridge exited; restarting") > aborts || undefined,
      "an http/2 bridge abort",
      2_000,
    ).catch(() => false);
    if (!aborted) throw e;
    console.log(`the http/2 bridge aborted (denoland/deno#36788); once more after: ${e}`);
    await waitFor(
      () => count("http/2 bridge started") > count("http/2 bridge exited; restarting") || undefined,
      "the http/2 bridge restarted",
    );
    return await fn();
  }
}

async function nodeDefaultClient(
  hubUrl: string,
  key: HubKey,
  env: Record<string, string> = {},
  // deno-lint-ignore no-explicit-any -- the script's JSON answer
): Promise<any> {
  const out = await new Deno.Command("node", {
    args: [new URL("./support/bedrock_node_client.mjs", import.meta.url).pathname],
    env: {
      BEDROCK_REGION: REGION,
      BEDROCK_ENDPOINT: `${hubUrl}/bedrock`,
      BEDROCK_AKID: key.aws.accessKeyId,
      BEDROCK_SECRET: key.aws.secretAccessKey,
      BEDROCK_CONVERSE_MODEL: CONVERSE_MODEL,
      BEDROCK_INVOKE_MODEL: CLAUDE,
      NODE_NO_WARNINGS: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  return JSON.parse(decoder.decode(out.stdout).trim().split("\n").at(-1)!);
}

/** The SDK's error for `run` (name and HTTP status), or a failure when it succeeded. */
async function errorOf(run: () => Promise<unknown>) {
  try {
    await run();
  } catch (e) {
    const err = e as { name?: string; status?: number; $metadata?: { httpStatusCode?: number } };
    return {
      name: err.name ?? "",
      status: err.status ?? err.$metadata?.httpStatusCode,
      error: e,
    };
  }
  throw new assert.AssertionError({ message: "expected the call to fail" });
}

Deno.test("Bedrock through the hub: AWS SDK (h2c, HTTP/1.1) and Anthropic Bedrock SDK, SigV4 both ways", async (t) => {
  const stack = await startBedrockStack();
  const clients: BedrockRuntimeClient[] = [];
  const aws = (...args: Parameters<typeof awsClient>) => {
    const c = awsClient(...args);
    clients.push(c);
    return c;
  };
  try {
    await t.step("admin: a new key carries an AWS access key id and secret", () => {
      assert.match(stack.key.aws.accessKeyId, /^AQIA[A-Z2-7]{16}$/);
      assert.equal(stack.key.aws.secretAccessKey.length, 40);
    });

    await t.step(
      "@aws-sdk/client-bedrock-runtime on Node, default config (HTTP/2 h2c, HUB_H2_LISTEN)",
      () =>
        acrossBridgeAborts(stack, async () => {
          const out = await nodeDefaultClient(stack.h2Url, stack.key);
          assert.deepEqual(out.converse, {
            text: "Echo: hello node",
            usage: { inputTokens: 5, outputTokens: 3, totalTokens: 8 },
          });
          assert.deepEqual(out.converseStream, out.converse);
          assert.equal(out.invoke.content[0].text, "Echo: hello node");
          assert.equal(out.invokeStream.text, "Echo: hello node");
          assert.equal(out.invokeStream.metrics.outputTokenCount, out.invoke.usage.output_tokens);
          const upstream = stack.fake.requests.at(-1)!;
          assert.equal(upstream.auth, "ok");
          assert.equal(
            upstream.path,
            `/model/${encodeURIComponent(CLAUDE)}/invoke-with-response-stream`,
          );
          // Typed errors over HTTP/2 too: an unknown access key, a model no agent serves.
          const before = stack.fake.requests.length;
          const bogus = await nodeDefaultClient(stack.h2Url, {
            key: "aq-bogus",
            aws: { accessKeyId: "AQIABOGUSBOGUSBOGUS0", secretAccessKey: "x".repeat(40) },
          });
          for (const op of ["converse", "converseStream", "invoke", "invokeStream"]) {
            assert.equal(bogus[op].error, "UnrecognizedClientException", JSON.stringify(bogus[op]));
            assert.equal(bogus[op].status, 403);
          }
          const unserved = await nodeDefaultClient(stack.h2Url, stack.key, {
            BEDROCK_CONVERSE_MODEL: UNSERVED,
            BEDROCK_INVOKE_MODEL: UNSERVED,
          });
          assert.equal(unserved.converseStream.error, "ServiceUnavailableException");
          assert.equal(unserved.invoke.error, "ServiceUnavailableException");
          assert.equal(stack.fake.requests.length, before, "none of these reached Bedrock");
        }),
    );

    {
      await t.step(
        "@aws-sdk/client-bedrock-runtime in Deno, NodeHttpHandler (HTTP/1.1): all four operations",
        async () => {
          const client = aws(stack);
          const done = await client.send(new ConverseCommand(converseInput("hello bedrock")));
          const text = done.output?.message?.content?.[0]?.text;
          assert.equal(text, "Echo: hello bedrock");
          const streamed = await readConverseStream(client, "hello bedrock");
          assert.equal(streamed.streamed, text);
          assert.deepEqual(streamed.usage, done.usage);

          const invoked = await client.send(
            new InvokeModelCommand({
              modelId: CLAUDE,
              contentType: "application/json",
              accept: "application/json",
              body: invokeBody("hello invoke"),
            }),
          );
          const message = JSON.parse(decoder.decode(invoked.body));
          assert.equal(message.content[0].text, "Echo: hello invoke");
          const invokeStream = await readInvokeStream(client, "hello invoke");
          assert.equal(invokeStream.streamed, message.content[0].text);
          assert.equal(invokeStream.metrics.outputTokenCount, message.usage.output_tokens);

          const upstream = stack.fake.requests.at(-1)!;
          assert.equal(upstream.auth, "ok", "the fake verified the agent's signature");
          assert.equal(
            upstream.path,
            `/model/${encodeURIComponent(CLAUDE)}/invoke-with-response-stream`,
          );
          assert.match(
            upstream.headers.authorization!,
            new RegExp(`Credential=${OWNER.accessKeyId}/`),
          );
          const signed = /SignedHeaders=([^,]+)/.exec(upstream.headers.authorization!)![1]!;
          for (const h of ["host", "x-amz-content-sha256", "x-amz-date"]) {
            assert.ok(signed.split(";").includes(h), signed);
          }
        },
      );
    }

    await t.step(
      "@aws-sdk/client-bedrock-runtime in Deno, default config (HTTP/2 h2c, HUB_H2_LISTEN)",
      () =>
        acrossBridgeAborts(stack, async () => {
          for (let i = 0; i < 5; i++) {
            const client = aws(stack, stack.key, {
              endpoint: `${stack.h2Url}/bedrock`,
              requestHandler: undefined,
            });
            const done = await client.send(new ConverseCommand(converseInput(`deno h2 ${i}`)));
            assert.equal(done.output?.message?.content?.[0]?.text, `Echo: deno h2 ${i}`);
            const streamed = await readConverseStream(client, `deno h2 ${i}`);
            assert.equal(streamed.streamed, `Echo: deno h2 ${i}`);
            assert.deepEqual(streamed.usage, done.usage);
          }
        }),
    );

    await t.step("a Bedrock API key (Bearer) works too, and so does the root path", async () => {
      const client = aws(stack, stack.key, {
        token: { token: stack.key.key },
        authSchemePreference: ["httpBearerAuth"],
      });
      const done = await client.send(new ConverseCommand(converseInput("bearer please")));
      assert.equal(done.output?.message?.content?.[0]?.text, "Echo: bearer please");
      // The root (no `/bedrock` prefix) serves the same paths, SigV4 over the root path included.
      const root = await aws(stack, stack.key, { endpoint: stack.hub.url }).send(
        new ConverseCommand(converseInput("root please")),
      );
      assert.equal(root.output?.message?.content?.[0]?.text, "Echo: root please");
    });

    await t.step("an ARN model id (%2F in the path) routes on its profile id", async () => {
      const arn = `arn:aws:bedrock:${REGION}:123456789012:inference-profile/${CLAUDE}`;
      const out = await aws(stack).send(
        new ConverseCommand({ ...converseInput("arn please"), modelId: arn }),
      );
      assert.equal(out.output?.message?.content?.[0]?.text, "Echo: arn please");
      assert.equal(
        stack.fake.requests.at(-1)!.path,
        `/model/${encodeURIComponent(CLAUDE)}/converse`,
      );
    });

    await t.step(
      "@anthropic-ai/bedrock-sdk: messages and stream (raw colon in the path)",
      async () => {
        const client = claude(stack);
        const messages = [{ role: "user" as const, content: "hello claude" }];
        const done = await client.messages.create({ model: CLAUDE, max_tokens: 200, messages });
        const text = done.content.map((b) => b.type === "text" ? b.text : "").join("");
        assert.equal(text, "Echo: hello claude");
        let streamed = "";
        const stream = client.messages.stream({ model: CLAUDE, max_tokens: 200, messages });
        for await (const event of stream) {
          if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
            streamed += event.delta.text;
          }
        }
        const final = await stream.finalMessage();
        assert.equal(streamed, text);
        assert.equal(final.usage.output_tokens, done.usage.output_tokens);
        assert.equal(stack.fake.requests.at(-1)!.auth, "ok");
      },
    );

    await t.step(
      "usage: a streamed and the same non-streamed request record the same",
      async () => {
        const pairs: [string, () => Promise<string | undefined>][] = [];
        const client = aws(stack);
        const text = "meter these seven words for me please";
        const viaRaw = async (op: string, model: string, body: string) => {
          // The hub's own request id comes back as x-request-id; raw fetch with Bearer reads it.
          const res = await fetch(
            `${stack.hub.url}/bedrock/model/${encodeURIComponent(model)}/${op}`,
            {
              method: "POST",
              headers: {
                authorization: `Bearer ${stack.key.key}`,
                "content-type": "application/json",
              },
              body,
            },
          );
          await res.arrayBuffer();
          assert.equal(res.status, 200);
          return res.headers.get("x-request-id") ?? undefined;
        };
        const converseBody = JSON.stringify({ messages: converseInput(text).messages });
        pairs.push(["converse", () => viaRaw("converse", CONVERSE_MODEL, converseBody)]);
        pairs.push([
          "converse-stream",
          () => viaRaw("converse-stream", CONVERSE_MODEL, converseBody),
        ]);
        pairs.push(["invoke", () => viaRaw("invoke", CLAUDE, invokeBody(text))]);
        pairs.push([
          "invoke-with-response-stream",
          () => viaRaw("invoke-with-response-stream", CLAUDE, invokeBody(text)),
        ]);
        // deno-lint-ignore no-explicit-any -- usage records are JSON
        const records: Record<string, any> = {};
        for (const [op, run] of pairs) {
          const { record } = await usageRecord(stack, (await run()) ?? null);
          assert.ok(record, `${op} was recorded as complete`);
          records[op] = record;
        }
        assert.equal(records.converse.vendor, "bedrock");
        assert.equal(records.converse.model, CONVERSE_MODEL);
        assert.equal(records.converse.usage.inputTokens, 10);
        assert.equal(records.converse.usage.outputTokens, 8);
        for (
          const [a, b] of [["converse", "converse-stream"], [
            "invoke",
            "invoke-with-response-stream",
          ]]
        ) {
          for (const field of ["vendor", "model", "promptTokens", "usage"]) {
            assert.deepEqual(records[b!][field], records[a!][field], `${a} vs ${b}: ${field}`);
          }
        }
        assert.deepEqual(records.invoke.usage, records.converse.usage, "same counts, both APIs");
        // Both models are priced (table v2): the user was charged.
        const balance = await waitFor(async () => {
          const user = await admin(stack.hub, "GET", `/users/${stack.userId}`);
          return user.json.balance !== "100.00" ? String(user.json.balance) : undefined;
        }, "a settled charge");
        assert.match(balance, /^99\.\d+$/);
        // The agent recomputed each settlement from its own metering and agreed.
        assert.ok(!stack.agent.lines.some((l) => l.msg === "disputing a settlement"));
        client.destroy();
      },
    );

    await t.step("typed errors: bad key, moderation, rate limit, no agent", async () => {
      const before = stack.fake.requests.length;
      const bogus: HubKey = {
        key: "aq-bogus",
        aws: { accessKeyId: "AQIABOGUSBOGUSBOGUS0", secretAccessKey: "x".repeat(40) },
      };
      let e = await errorOf(() => aws(stack, bogus).send(new ConverseCommand(converseInput("x"))));
      assert.equal(e.name, "UnrecognizedClientException");
      assert.equal(e.status, 403);
      e = await errorOf(() =>
        claude(stack, bogus).messages.create({
          model: CLAUDE,
          max_tokens: 10,
          messages: [{ role: "user", content: "x" }],
        })
      );
      assert.equal(e.name, "PermissionDeniedError");
      assert.equal(e.status, 403);

      e = await errorOf(() =>
        aws(stack).send(new ConverseCommand(converseInput(`tell me about ${BLOCKED_WORD}`)))
      );
      assert.equal(e.name, "ValidationException");
      e = await errorOf(() =>
        claude(stack).messages.create({
          model: CLAUDE,
          max_tokens: 10,
          messages: [{ role: "user", content: `tell me about ${BLOCKED_WORD}` }],
        })
      );
      assert.equal(e.name, "BadRequestError");
      assert.equal(e.status, 400);

      e = await errorOf(() =>
        aws(stack).send(new ConverseCommand({ ...converseInput("x"), modelId: UNSERVED }))
      );
      assert.equal(e.name, "ServiceUnavailableException", String(e.error));
      e = await errorOf(() =>
        claude(stack).messages.create({
          model: UNSERVED,
          max_tokens: 10,
          messages: [{ role: "user", content: "x" }],
        })
      );
      assert.equal(e.status, 503);
      assert.equal(e.name, "ServiceUnavailableError");
      assert.equal(stack.fake.requests.length, before, "none of these reached Bedrock");

      const limited = await newKey(stack.hub, stack.userId, { rpm: 1 });
      await aws(stack, limited).send(new ConverseCommand(converseInput("first")));
      e = await errorOf(() =>
        aws(stack, limited).send(new ConverseCommand(converseInput("second")))
      );
      assert.equal(e.name, "ThrottlingException");
      assert.equal(e.status, 429);
      e = await errorOf(() =>
        claude(stack, limited).messages.create({
          model: CLAUDE,
          max_tokens: 10,
          messages: [{ role: "user", content: "third" }],
        })
      );
      assert.equal(e.name, "RateLimitError");
      assert.equal(stack.fake.requests.length, before + 1, "only the first limited call went out");
    });

    await t.step(
      "tampered SigV4: signature, body, date → Bedrock errors, nothing dispatched",
      async () => {
        const body = JSON.stringify({ messages: converseInput("sign me").messages });
        const good = await signedFetch(stack, { body });
        assert.equal(good.status, 200, JSON.stringify(good.body));
        const before = stack.fake.requests.length;

        const cases = [
          {
            opts: { body, tamperSignature: true },
            type: "InvalidSignatureException",
            re: /signature/,
          },
          {
            opts: { body, sendBody: body.replace("sign me", "sign it") },
            type: "InvalidSignatureException",
            re: /x-amz-content-sha256/,
          },
          {
            opts: { body, dateMs: Date.now() - 20 * 60_000 },
            type: "InvalidSignatureException",
            re: /expired/,
          },
        ];
        for (const c of cases) {
          const res = await signedFetch(stack, c.opts);
          assert.equal(res.status, 403, JSON.stringify(res.body));
          assert.equal(res.errorType?.split(":")[0], c.type);
          assert.match(res.body.message, c.re);
        }
        const unsigned = await fetch(
          `${stack.hub.url}/bedrock/model/${encodeURIComponent(CONVERSE_MODEL)}/converse`,
          { method: "POST", body },
        );
        assert.equal(unsigned.status, 403);
        assert.equal(
          unsigned.headers.get("x-amzn-errortype")?.split(":")[0],
          "MissingAuthenticationTokenException",
        );
        await unsigned.body?.cancel();
        assert.equal(stack.fake.requests.length, before, "no tampered request reached Bedrock");
      },
    );

    await t.step(
      "a malformed upstream event stream ends in ModelStreamErrorException",
      async () => {
        const client = aws(stack);
        let e = await errorOf(() => readConverseStream(client, "break [[corrupt]] this"));
        assert.equal(e.name, "ModelStreamErrorException", String(e.error));
        assert.match(String((e.error as Error).message), /malformed/);
        e = await errorOf(() => readInvokeStream(client, "break [[corrupt]] this"));
        assert.equal(e.name, "ModelStreamErrorException", String(e.error));
      },
    );

    await t.step("agent channel add refuses a bedrock channel it could never call", async () => {
      const tmp = await tempDir("bedrock-cli");
      const attempts = [
        ["--key", `${OWNER.accessKeyId}:${OWNER.secret}`], // no --endpoint (region)
        ["--key", `${OWNER.accessKeyId}:${OWNER.secret}`, "--endpoint", "not_a_region"],
        ["--key", "sk-NOT-AN-AWS-KEY-super-secret-value", "--endpoint", REGION],
      ];
      for (const extra of attempts) {
        const err = await agentCli([
          "channel",
          "add",
          "--vendor",
          "bedrock",
          "--models",
          CONVERSE_MODEL,
          ...extra,
          "--dir",
          tmp.path,
        ]).then(() => null, (e: Error) => e.message);
        assert.ok(err, `refused: ${extra.join(" ")}`);
        // What the agent printed (agentCli's message starts with the command line itself).
        const printed = err.slice(err.indexOf("\n"));
        assert.match(printed, /bedrock|endpoint/);
        assert.ok(!printed.includes(OWNER.secret) && !printed.includes("super-secret"), printed);
      }
      await tmp.remove();
    });

    await t.step("secrets never reach Bedrock or the logs", () => {
      const upstream = JSON.stringify(stack.fake.requests);
      assert.ok(!upstream.includes(stack.key.key), "no virtual key upstream");
      assert.ok(!upstream.includes(stack.key.aws.accessKeyId), "no hub access key upstream");
      assert.ok(stack.fake.requests.every((r) => r.auth === "ok"));
      const logs = JSON.stringify(stack.agent.lines) + JSON.stringify(stack.hub.proc.lines);
      assert.ok(!logs.includes(OWNER.secret));
      assert.ok(!logs.includes(stack.key.aws.secretAccessKey));
    });
  } finally {
    for (const c of clients) c.destroy();
    await stack.stop();
  }
});

Deno.test("Bedrock over TLS: AWS SDK default config with ALPN h2, Anthropic Bedrock SDK over HTTPS", async () => {
  const stack = await startBedrockStack({ tls: true });
  try {
    assert.match(stack.h2Url, /^https:/);
    const h2Requests = await acrossBridgeAborts(stack, async () => {
      const before = stack.fake.requests.length;
      const out = await nodeDefaultClient(stack.h2Url, stack.key, {
        NODE_EXTRA_CA_CERTS: stack.caPath!,
      });
      assert.deepEqual(out.converse, {
        text: "Echo: hello node",
        usage: { inputTokens: 5, outputTokens: 3, totalTokens: 8 },
      });
      assert.deepEqual(out.converseStream, out.converse);
      assert.equal(out.invokeStream.text, out.invoke.content[0].text);
      return stack.fake.requests.length - before;
    });
    assert.equal(h2Requests, 4, "the four operations reached Bedrock once each");
    const afterH2 = stack.fake.requests.length;
    const client = claude(stack);
    const messages = [{ role: "user" as const, content: "hello tls" }];
    const done = await client.messages.create({ model: CLAUDE, max_tokens: 50, messages });
    assert.equal(done.content[0]?.type === "text" && done.content[0].text, "Echo: hello tls");
    assert.ok(stack.fake.requests.every((r) => r.auth === "ok"));
    assert.equal(stack.fake.requests.length - afterH2, 1);
  } finally {
    await stack.stop();
  }
});
