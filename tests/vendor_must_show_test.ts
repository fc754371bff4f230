/**
 * The must-shows of every vendor surface, table-driven over one hub and one agent with a channel
 * per vendor (OpenAI, Anthropic, Azure, Gemini, Vertex, DeepSeek, DashScope), each against its
 * own fake:
 * - a streamed and the same plain request leave identical usage records (admin usage API);
 * - each official SDK raises its own typed error for a bad virtual key, a moderation block, the
 *   key's rate limit and no available agent — and nothing reaches a vendor;
 * - bad input: a `?key=` outside Gemini is refused (never a credential, never logged), Azure
 *   without `api-version`, and path tricks (`..`, `%2e%2e`, `//`, `%2F`) sent raw on the wire get
 *   the vendor's own error envelope with nothing dispatched upstream (every fake's request log).
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { AnthropicVertex } from "@anthropic-ai/vertex-sdk";
import { ApiError, GoogleGenAI } from "@google/genai";
import OpenAI, { AzureOpenAI } from "openai";
import { startFakeAnthropic } from "./fakes/anthropic.ts";
import { startFakeAzure } from "./fakes/azure.ts";
import { startFakeDashScope } from "./fakes/dashscope.ts";
import { startFakeDeepSeek } from "./fakes/deepseek.ts";
import { startFakeGemini } from "./fakes/gemini.ts";
import { makeServiceAccount, startFakeVertex } from "./fakes/vertex.ts";
import { USAGE_FIELDS } from "../protocol/usage.ts";
import { admin } from "./support/cluster.ts";
import { tempDir } from "./support/process.ts";
import { rawHttp } from "./support/raw_http.ts";
import { type Stack, startStack, type VendorFake } from "./support/stack.ts";
import { assertSameUsage, recordedUsage } from "./support/usage.ts";

const KEYS = {
  anthropic: "sk-ant-real-must-show",
  gemini: "AIza-real-must-show-0123456789",
  deepseek: "sk-deepseek-real-must-show",
  dashscope: "sk-dashscope-real-must-show",
  azure: "azure-real-key-must-show-0123",
};
const API_VERSION = "2024-10-21";
const VERTEX_BASE = "/v1/projects/client-proj/locations/us-central1/publishers/google/models";
const BLOCKED_TEXT = "the forbidden-plan is";
const CLAUDE_ON_VERTEX = "claude-sonnet-4-5@20250929";

/** How one surface is called: with its SDK, and raw (for usage records and bad input). */
interface Surface {
  vendor: string;
  /** The SDK call of a short chat for `key` and `model` (undefined: the served model). */
  call(stack: Stack, key: string, text: string, model?: string): Promise<unknown>;
  /** The SDK's own error class for `status` (checks `instanceof` and the status). */
  typed(e: unknown, status: number): boolean;
  /** A model (or deployment) no channel serves. */
  unserved: string;
  /** A raw request: hub path, headers for `key`, JSON body. */
  raw(key: string, stream: boolean, text: string): {
    path: string;
    headers: Record<string, string>;
    body: unknown;
  };
  /** Does this body carry the surface's error envelope? */
  envelope(body: string): boolean;
}

const openAIFamily = (status: number, e: unknown) =>
  e instanceof OpenAI.APIError && e.status === status &&
  e instanceof ({
      400: OpenAI.BadRequestError,
      401: OpenAI.AuthenticationError,
      429: OpenAI.RateLimitError,
      503: OpenAI.InternalServerError,
    } as Record<number, typeof OpenAI.APIError>)[status]!;

/** The class names along an error's prototype chain (e.g. a subclass of InternalServerError). */
function classNames(e: unknown): string[] {
  const names: string[] = [];
  for (
    let p = Object.getPrototypeOf(e);
    p && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    names.push(p.constructor.name);
  }
  return names;
}

const openAIEnvelope = (body: string) => {
  const error = JSON.parse(body).error;
  return typeof error?.message === "string" && "type" in error && "code" in error;
};
const googleEnvelope = (body: string) => {
  const error = JSON.parse(body).error;
  return typeof error?.code === "number" && typeof error.status === "string";
};
const chat = (model: string, text: string, stream: boolean) => ({
  model,
  messages: [{ role: "user", content: text }],
  ...(stream ? { stream: true } : {}),
});
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const genaiAuth = (key: string) => ({
  getRequestHeaders: () => Promise.resolve(new Headers(bearer(key))),
});

function openAICompatible(vendor: string, base: string, model: string, unserved: string): Surface {
  return {
    vendor,
    unserved,
    call: (stack, key, text, m = model) =>
      new OpenAI({ apiKey: key, baseURL: `${stack.hub.url}${base}`, maxRetries: 0 }).chat
        .completions.create({ model: m, messages: [{ role: "user", content: text }] }),
    typed: (e, status) => openAIFamily(status, e),
    raw: (key, stream, text) => ({
      path: `${base}/chat/completions`,
      headers: bearer(key),
      body: chat(model, text, stream),
    }),
    envelope: openAIEnvelope,
  };
}

const SURFACES: Surface[] = [
  openAICompatible("openai", "/openai/v1", "gpt-4o-mini", "gpt-4.1"),
  openAICompatible("deepseek", "/deepseek", "deepseek-chat", "deepseek-reasoner"),
  openAICompatible("dashscope", "/dashscope/compatible-mode/v1", "qwen-plus", "qwen-max"),
  {
    vendor: "anthropic",
    unserved: "claude-haiku-5-5",
    call: (stack, key, text, model = "claude-sonnet-5-5") =>
      new Anthropic({ apiKey: key, baseURL: `${stack.hub.url}/anthropic`, maxRetries: 0 })
        .messages.create({ model, max_tokens: 64, messages: [{ role: "user", content: text }] }),
    typed: (e, status) =>
      e instanceof Anthropic.APIError && e.status === status &&
      e instanceof ({
          400: Anthropic.BadRequestError,
          401: Anthropic.AuthenticationError,
          429: Anthropic.RateLimitError,
          503: Anthropic.InternalServerError,
        } as Record<number, typeof Anthropic.APIError>)[status]!,
    raw: (key, stream, text) => ({
      path: "/anthropic/v1/messages",
      headers: { "x-api-key": key, "anthropic-version": "2023-06-01" },
      body: {
        model: "claude-sonnet-5-5",
        max_tokens: 64,
        messages: [{ role: "user", content: text }],
        ...(stream ? { stream: true } : {}),
      },
    }),
    envelope: (body) => {
      const parsed = JSON.parse(body);
      return parsed.type === "error" && typeof parsed.error?.type === "string";
    },
  },
  {
    vendor: "azure",
    unserved: "other-deploy",
    call: (stack, key, text, deployment = "my-gpt") =>
      new AzureOpenAI({
        endpoint: `${stack.hub.url}/azure`,
        apiKey: key,
        apiVersion: API_VERSION,
        deployment,
        maxRetries: 0,
      }).chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: text }] }),
    typed: (e, status) => openAIFamily(status, e),
    raw: (key, stream, text) => ({
      path: `/azure/openai/deployments/my-gpt/chat/completions?api-version=${API_VERSION}`,
      headers: { "api-key": key },
      body: chat("gpt-4o", text, stream),
    }),
    envelope: (body) => {
      const error = JSON.parse(body).error;
      return typeof error?.code === "string" && typeof error.message === "string";
    },
  },
  {
    vendor: "gemini",
    unserved: "gemini-3.1-pro-preview",
    call: (stack, key, text, model = "gemini-3.5-flash") =>
      new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: `${stack.hub.url}/gemini` } })
        .models.generateContent({ model, contents: text }),
    typed: (e, status) => e instanceof ApiError && e.status === status,
    raw: (key, stream, text) => ({
      path: `/gemini/v1beta/models/gemini-3.5-flash:${
        stream ? "streamGenerateContent?alt=sse" : "generateContent"
      }`,
      headers: { "x-goog-api-key": key },
      body: { contents: [{ role: "user", parts: [{ text }] }] },
    }),
    envelope: googleEnvelope,
  },
  {
    vendor: "vertex",
    unserved: "gemini-3.1-pro-preview",
    call: (stack, key, text, model = "gemini-3.5-flash") =>
      new GoogleGenAI({
        vertexai: true,
        project: "client-proj",
        location: "us-central1",
        httpOptions: { baseUrl: `${stack.hub.url}/vertex` },
        googleAuthOptions: { authClient: genaiAuth(key) as never },
      }).models.generateContent({ model, contents: text }),
    typed: (e, status) => e instanceof ApiError && e.status === status,
    raw: (key, stream, text) => ({
      path: `/vertex${VERTEX_BASE}/gemini-3.5-flash:${
        stream ? "streamGenerateContent?alt=sse" : "generateContent"
      }`,
      headers: bearer(key),
      body: { contents: [{ role: "user", parts: [{ text }] }] },
    }),
    envelope: googleEnvelope,
  },
  {
    vendor: "vertex",
    unserved: "claude-opus-4-1@20250805",
    call: (stack, key, text, model = CLAUDE_ON_VERTEX) =>
      new AnthropicVertex({
        baseURL: `${stack.hub.url}/vertex/v1`,
        region: "us-central1",
        projectId: "client-proj",
        authClient: genaiAuth(key) as never,
        maxRetries: 0,
      }).messages.create({ model, max_tokens: 64, messages: [{ role: "user", content: text }] }),
    // The Vertex SDK bundles its own copy of @anthropic-ai/sdk: its classes, by name.
    typed: (e, status) =>
      (e as { status?: number }).status === status &&
      classNames(e).includes(
        {
          400: "BadRequestError",
          401: "AuthenticationError",
          429: "RateLimitError",
          503: "InternalServerError",
        }[status]!,
      ),
    raw: (key, stream, text) => ({
      path: `/vertex${VERTEX_BASE.replace("/google/", "/anthropic/")}/${CLAUDE_ON_VERTEX}:${
        stream ? "streamRawPredict" : "rawPredict"
      }`,
      headers: bearer(key),
      body: {
        anthropic_version: "vertex-2023-10-16",
        max_tokens: 64,
        messages: [{ role: "user", content: text }],
        ...(stream ? { stream: true } : {}),
      },
    }),
    envelope: googleEnvelope,
  },
];

async function mustShowStack() {
  const tmp = await tempDir("must-show");
  const sa = await makeServiceAccount("owner-proj");
  const saFile = `${tmp.path}/sa.json`;
  await Deno.writeTextFile(saFile, sa.json, { mode: 0o600 });
  const stack = await startStack({
    models: "gpt-4o-mini",
    // Seven vendor accounts behind one loopback egress IP: raise the per-IP cap (default 5).
    hubEnv: { HUB_MODERATION_KEYWORDS: "forbidden-plan", HUB_EGRESS_ACCOUNTS_MAX: "10" },
    vendors: [
      {
        vendor: "anthropic",
        host: "api.anthropic.com",
        keys: [KEYS.anthropic],
        models: "claude-sonnet-5-5",
        start: () => startFakeAnthropic({ keys: [KEYS.anthropic] }),
      },
      {
        vendor: "gemini",
        host: "generativelanguage.googleapis.com",
        keys: [KEYS.gemini],
        models: "gemini-3.5-flash",
        start: () => startFakeGemini({ keys: [KEYS.gemini] }),
      },
      {
        vendor: "deepseek",
        host: "api.deepseek.com",
        keys: [KEYS.deepseek],
        models: "deepseek-chat",
        start: () => startFakeDeepSeek({ keys: [KEYS.deepseek] }),
      },
      {
        vendor: "dashscope",
        host: "dashscope-intl.aliyuncs.com",
        keys: [KEYS.dashscope],
        models: "qwen-plus",
        start: () => startFakeDashScope({ keys: [KEYS.dashscope] }),
      },
      {
        vendor: "azure",
        host: "contoso-east.openai.azure.com",
        keys: [KEYS.azure],
        args: ["--endpoint", "contoso-east", "--deployment", "my-gpt=gpt-4o"],
        start: () =>
          startFakeAzure({ keys: [KEYS.azure], deployments: { "my-gpt": "gpt-4o-2024-11-20" } }),
      },
      {
        vendor: "vertex",
        host: "us-central1-aiplatform.googleapis.com",
        extraHosts: ["oauth2.googleapis.com"],
        keys: [`@${saFile}`],
        models: `gemini-3.5-flash,${CLAUDE_ON_VERTEX}`,
        args: ["--endpoint", "us-central1"],
        start: () => startFakeVertex({ serviceAccount: sa }),
      },
    ],
  }).catch(async (e) => {
    await tmp.remove();
    throw e;
  });
  const fakes: Record<string, VendorFake & { requests: unknown[] }> = {
    openai: stack.fake,
    ...stack.vendorFakes as Record<string, VendorFake & { requests: unknown[] }>,
  };
  /** Requests each fake has seen so far (every vendor's, so a stray dispatch shows anywhere). */
  const seen = () =>
    Object.fromEntries(Object.entries(fakes).map(([k, f]) => [k, f.requests.length]));
  return {
    stack,
    seen,
    stop: async () => {
      await stack.stop();
      await tmp.remove();
    },
  };
}

Deno.test("every surface: usage parity, typed SDK errors, bad input refused", async (t) => {
  const { stack, seen, stop } = await mustShowStack();
  const hub = stack.hub.url;
  try {
    await t.step("each surface serves its SDK (the table is wired right)", async () => {
      for (const s of SURFACES) {
        const before = seen();
        await s.call(stack, stack.key, `hello ${s.vendor}`);
        assert.equal(seen()[s.vendor], before[s.vendor]! + 1, `${s.vendor} reached its fake`);
      }
    });

    await t.step("streamed and plain requests leave identical usage records", async () => {
      const shapes = new Map<string, { record: string[]; usage: string[] }>();
      for (const s of SURFACES) {
        const send = (stream: boolean) => () => {
          const r = s.raw(stack.key, stream, `meter ${s.vendor} parity [[words:20]]`);
          return fetch(`${hub}${r.path}`, {
            method: "POST",
            headers: { "content-type": "application/json", ...r.headers },
            body: JSON.stringify(r.body),
          }).then(async (res) => {
            assert.equal(res.status, 200, `${s.vendor}: ${await res.clone().text()}`);
            await res.arrayBuffer();
            return res;
          });
        };
        const plain = await recordedUsage(stack.hub, send(false));
        const streamed = await recordedUsage(stack.hub, send(true));
        assert.equal(plain.record.vendor, s.vendor);
        assertSameUsage(plain.record, streamed.record, s.vendor);
        shapes.set(`${s.vendor} ${plain.record.model}`, {
          record: Object.keys(plain.record).filter((k) => k !== "serviceTier").sort(),
          usage: Object.keys(plain.record.usage).sort(),
        });
      }
      // One record shape for every vendor (protocol/usage.ts): same fields, every usage dimension.
      for (const [vendor, shape] of shapes) {
        assert.deepEqual(shape, shapes.values().next().value, `${vendor}: the same record shape`);
        assert.deepEqual(shape.usage, [...USAGE_FIELDS].sort(), `${vendor}: every usage field`);
      }
    });

    await t.step(
      "typed errors: bad key, moderation, no agent, rate limit; nothing dispatched",
      async () => {
        const before = seen();
        for (const s of SURFACES) {
          const expect = async (what: string, status: number, call: Promise<unknown>) =>
            await assert.rejects(call, (e: unknown) => {
              assert.ok(s.typed(e, status), `${s.vendor} ${what}: ${e}`);
              return true;
            });
          await expect("bad key", 401, s.call(stack, "aq-bogus-key-0000", "hi"));
          await expect("moderation", 400, s.call(stack, stack.key, BLOCKED_TEXT));
          await expect("no agent", 503, s.call(stack, stack.key, "hi", s.unserved));
        }
        assert.deepEqual(seen(), before, "no vendor was called");
      },
    );

    await t.step("the key's rate limit: the SDK's own 429, the vendor called once", async () => {
      for (const s of SURFACES) {
        const limited = await admin(stack.hub, "POST", "/keys", {
          userId: stack.userId,
          limits: { rpm: 1 },
        });
        assert.equal(limited.status, 201, JSON.stringify(limited.json));
        const before = seen();
        await s.call(stack, limited.json.key, "hi");
        await assert.rejects(s.call(stack, limited.json.key, "hi"), (e: unknown) => {
          assert.ok(s.typed(e, 429), `${s.vendor} rate limit: ${e}`);
          return true;
        });
        assert.equal(seen()[s.vendor], before[s.vendor]! + 1, s.vendor);
      }
    });

    await t.step("?key= outside Gemini is refused, never a credential, never logged", async () => {
      const before = seen();
      for (const s of SURFACES.filter((x) => x.vendor !== "gemini")) {
        const r = s.raw("", false, "hi");
        const sep = r.path.includes("?") ? "&" : "?";
        for (const headers of [{}, r.headers]) {
          const res = await fetch(`${hub}${r.path}${sep}key=${stack.key}`, {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body: JSON.stringify(r.body),
          });
          const body = await res.text();
          assert.equal(res.status, 401, `${s.vendor}: ${body}`);
          assert.ok(s.envelope(body), `${s.vendor} envelope: ${body}`);
        }
      }
      assert.deepEqual(seen(), before, "nothing dispatched");
      assert.ok(!stack.hub.proc.dump().includes(stack.key), "the key is never logged");
      assert.ok(!stack.agent.dump().includes(stack.key), "nor does it reach the agent");
    });

    await t.step("Azure without api-version: Azure's error, nothing dispatched", async () => {
      const before = seen();
      for (const path of ["/openai/deployments/my-gpt/chat/completions", "/openai/responses"]) {
        const res = await fetch(`${hub}/azure${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "api-key": stack.key },
          body: JSON.stringify(chat("my-gpt", "hi", false)),
        });
        const body = await res.json();
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(body.error.code, "MissingApiVersionParameter");
      }
      assert.deepEqual(seen(), before);
    });

    await t.step("path tricks on the wire: the vendor's error, nothing dispatched", async () => {
      const before = seen();
      for (const s of SURFACES) {
        const r = s.raw(stack.key, false, "hi");
        const [path, query] = r.path.split("?") as [string, string | undefined];
        const segments = path.split("/"); // ["", prefix, …, last]
        const last = segments.length - 1;
        const tricks = [
          // a dot segment that would land back on the same route after normalization
          [...segments.slice(0, last), "..", ...segments.slice(last - 1)].join("/"),
          [...segments.slice(0, last), "%2e%2e", ...segments.slice(last - 1)].join("/"),
          [...segments.slice(0, last), "%2E%2E", ...segments.slice(last - 1)].join("/"),
          [...segments.slice(0, last), ".", segments[last]].join("/"),
          // a doubled slash, and an encoded one where a separator should be
          [...segments.slice(0, 2), "", ...segments.slice(2)].join("/"),
          [...segments.slice(0, last - 1), `${segments[last - 1]}%2F${segments[last]}`].join("/"),
          [...segments.slice(0, last - 1), `${segments[last - 1]}%2f${segments[last]}`].join("/"),
        ];
        for (const trick of tricks) {
          const target = query ? `${trick}?${query}` : trick;
          const res = await rawHttp(hub, "POST", target, {
            "content-type": "application/json",
            ...r.headers,
          }, JSON.stringify(r.body));
          assert.ok(
            res.status === 400 || res.status === 404,
            `${s.vendor} ${target} → ${res.status} ${res.body}`,
          );
          assert.ok(s.envelope(res.body), `${s.vendor} ${target} envelope: ${res.body}`);
        }
      }
      assert.deepEqual(seen(), before, "nothing dispatched upstream");
    });
  } finally {
    await stop();
  }
});
