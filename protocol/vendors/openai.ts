/**
 * OpenAI: routes, credentials, error envelope, usage metering and the include_usage round trip.
 * https://platform.openai.com/docs/api-reference — wire facts in reference/vendor-wire.md §1.
 */
import { createOpenAIMeter } from "../metering/openai.ts";
import { ensureIncludeUsage, UsageChunkStripper } from "../metering/include_usage.ts";
import {
  extractOpenAIModerationInput,
  openAIModerationBlockedResponse,
} from "./openai_moderation.ts";
import type { MeterResult, VendorError, VendorSurface } from "./types.ts";

const json = (body: unknown, status: number, headers?: HeadersInit) => {
  const res = new Response(JSON.stringify(body), { status, headers });
  res.headers.set("content-type", "application/json");
  return res;
};

export const openai: VendorSurface = {
  name: "openai",
  upstreamOrigin: "https://api.openai.com",
  hosts: ["api.openai.com:443"],
  upstreamPathPrefixes: ["/v1/"],
  routes: [
    { method: "POST", path: "/v1/chat/completions", model: "json" },
    { method: "POST", path: "/v1/completions", model: "json" },
    { method: "POST", path: "/v1/responses", model: "json" },
    { method: "POST", path: "/v1/embeddings", model: "json" },
    { method: "POST", path: "/v1/images/generations", model: "json" },
    { method: "POST", path: "/v1/images/edits", model: "multipart" },
    { method: "POST", path: "/v1/images/variations", model: "multipart" },
    { method: "POST", path: "/v1/audio/speech", model: "json" },
    { method: "POST", path: "/v1/audio/transcriptions", model: "multipart" },
    { method: "POST", path: "/v1/audio/translations", model: "multipart" },
    { method: "POST", path: "/v1/moderations", model: "json" },
    { method: "GET", path: "/v1/models", model: "none", serve: "models" },
  ],
  credentialHeaders: ["authorization", "openai-organization", "openai-project"],

  clientCredential(headers) {
    const auth = headers.get("authorization") ?? "";
    return auth.toLowerCase().startsWith("bearer ") ? auth.slice(7).trim() || null : null;
  },

  applyCredential(headers, key) {
    headers.set("authorization", `Bearer ${key}`);
  },

  shouldRotateKey(status, bodyText) {
    if (status === 401) return true;
    // A 429 is either a rate limit (wait) or an exhausted quota (this key is done).
    return status === 429 &&
      /insufficient_quota|billing_hard_limit|exceeded your current quota/.test(bodyText);
  },

  createMeter: (context) =>
    createOpenAIMeter({
      path: context.path,
      stream: (context.contentType ?? "").includes("text/event-stream"),
      contentType: context.contentType,
    }),

  usageExactness: {
    prepareRequest(path, body) {
      if (!path.startsWith("/v1/chat/completions")) return { body, restore: false };
      const prepared = ensureIncludeUsage(body);
      return { body: prepared.body, restore: prepared.added };
    },
    restoreResponse() {
      const stripper = new UsageChunkStripper();
      const transform = new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          const out = stripper.push(chunk);
          if (out.length) controller.enqueue(out);
        },
        flush: (controller) => {
          const out = stripper.end();
          if (out.length) controller.enqueue(out);
        },
      });
      const result = (): MeterResult => {
        const mapped = stripper.usage;
        return {
          usage: mapped?.usage ?? null,
          promptTokens: mapped?.promptTokens ?? 0,
          model: stripper.model,
          serviceTier: stripper.serviceTier,
          complete: stripper.sawDone,
        };
      };
      return { transform, result };
    },
  },

  errorResponse(error: VendorError, headers?: HeadersInit) {
    return json(
      {
        error: {
          message: error.message,
          type: error.type,
          param: error.param ?? null,
          code: error.code,
        },
      },
      error.status,
      headers,
    );
  },

  moderationBlockedResponse: openAIModerationBlockedResponse,
  moderationInput: extractOpenAIModerationInput,

  modelsResponse(models) {
    return json({
      object: "list",
      data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "aqueduct" })),
    }, 200);
  },
};
