/**
 * Anthropic: routes, credentials (`x-api-key` or, from SDK 1.x on, `Authorization: Bearer`),
 * the `{"type":"error","error":{…}}` envelope, key rotation, Messages metering and moderation
 * extraction. https://platform.claude.com/docs/en/api — wire facts in reference/vendor-wire.md §3.
 * `anthropic-version` and `anthropic-beta` are ordinary headers here: forwarded untouched.
 */
import { createAnthropicMeter } from "../metering/anthropic.ts";
import type { ModerationImage } from "../moderation.ts";
import { EXTRACT_IMAGES_MAX, EXTRACT_TEXT_MAX_CHARS } from "./openai_moderation.ts";
import type { ExtractedModerationContent, VendorError, VendorSurface } from "./types.ts";
import { isPlainObject } from "../fields.ts";

/** The exact JSON body of a moderation block: compact, no added whitespace. */
export const ANTHROPIC_MODERATION_BLOCKED_BODY =
  '{"type":"error","error":{"type":"invalid_request_error","message":"Content moderation failed: the request was blocked by the gateway\'s content policy.","details":{"error_code":"sensitive_words_detected"}}}';

/** 400, so the SDK raises `BadRequestError` and does not retry. */
export const ANTHROPIC_MODERATION_BLOCKED_STATUS = 400;

/**
 * Anthropic error `type` for an HTTP status (docs "Errors"): the SDK picks its exception class by
 * status, and clients branch on `error.type`. Other 4xx are `invalid_request_error`, as the docs
 * say; 503 (the hub has no capacity) is `overloaded_error`, which the SDK retries.
 */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 408:
    case 504:
      return "timeout_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
  }
  return status >= 500 ? "api_error" : "invalid_request_error";
}

/** Upstream answers that say "this key (or its organisation) cannot pay" — rotate. */
const KEY_EXHAUSTED =
  /credit balance is too low|"billing_error"|Plans & Billing|spend_limit_reached|organization_on_hold|linked_organization_billing_unavailable|organization has been disabled/i;

export const anthropic: VendorSurface = {
  name: "anthropic",
  upstreamOrigin: "https://api.anthropic.com",
  rootMarkerHeader: "anthropic-version",
  hosts: ["api.anthropic.com:443"],
  upstreamPathPrefixes: ["/v1/"],
  routes: [
    { method: "POST", path: "/v1/messages", model: "json" },
    { method: "POST", path: "/v1/messages/count_tokens", model: "json" },
    { method: "GET", path: "/v1/models", model: "none", serve: "models" },
  ],
  credentialHeaders: ["x-api-key", "authorization"],

  clientCredential(headers) {
    const key = headers.get("x-api-key")?.trim();
    if (key) return key;
    const auth = headers.get("authorization") ?? "";
    return auth.toLowerCase().startsWith("bearer ") ? auth.slice(7).trim() || null : null;
  },

  applyCredential(headers, key) {
    headers.delete("authorization");
    headers.set("x-api-key", key);
  },

  shouldRotateKey(status, bodyText) {
    if (status === 401 || status === 402) return true; // authentication_error, billing_error
    // A 429 is a rate limit (wait) unless it is a spend cap; 529 overloaded never is the key.
    return (status === 400 || status === 403 || status === 429) && KEY_EXHAUSTED.test(bodyText);
  },

  createMeter: (context) =>
    createAnthropicMeter({ path: context.path, contentType: context.contentType }),

  errorResponse(error: VendorError, headers?: HeadersInit) {
    const inner: Record<string, unknown> = {
      type: anthropicErrorType(error.status),
      message: error.message,
    };
    if (error.code) inner.details = { error_code: error.code };
    const res = new Response(JSON.stringify({ type: "error", error: inner }), {
      status: error.status,
      headers,
    });
    res.headers.set("content-type", "application/json");
    return res;
  },

  moderationBlockedResponse: () =>
    new Response(ANTHROPIC_MODERATION_BLOCKED_BODY, {
      status: ANTHROPIC_MODERATION_BLOCKED_STATUS,
      headers: { "content-type": "application/json" },
    }),

  moderationInput: extractAnthropicModerationInput,

  modelsResponse(models) {
    return new Response(
      JSON.stringify({
        data: models.map((id) => ({
          type: "model",
          id,
          display_name: id,
          created_at: "1970-01-01T00:00:00Z",
        })),
        has_more: false,
        first_id: models[0] ?? null,
        last_id: models.at(-1) ?? null,
      }),
      { status: 200, headers: { "content-type": "application/json" } },
    );
  },
};

/**
 * Texts and images of a Messages request: `system` (string or text blocks) and every message's
 * `content` (string or blocks: `text`, `image` with a base64 or URL source, plain-text and
 * nested-content `document`s, `tool_result` content). `count_tokens` generates nothing, so it
 * yields nothing. Defensive and bounded like the OpenAI extractor (same limits).
 */
export function extractAnthropicModerationInput(
  path: string,
  body: unknown,
): ExtractedModerationContent {
  const out = { texts: [] as string[], images: [] as ModerationImage[], truncated: false };
  let budget = EXTRACT_TEXT_MAX_CHARS;
  const endpoint = path.split("?")[0]!.replace(/\/+$/, "");
  if (!isPlainObject(body) || !endpoint.endsWith("/v1/messages")) return out;

  const text = (value: unknown) => {
    if (typeof value !== "string" || value === "") return;
    if (value.length > budget) {
      out.truncated = true;
      if (budget > 0) out.texts.push(value.slice(0, budget));
      budget = 0;
      return;
    }
    budget -= value.length;
    out.texts.push(value);
  };
  const image = (source: unknown) => {
    if (!isPlainObject(source)) return;
    let found: ModerationImage | undefined;
    if (source.type === "base64" && typeof source.data === "string" && source.data !== "") {
      const mediaType = typeof source.media_type === "string" ? source.media_type : "";
      found = {
        kind: "data",
        mediaType: mediaType || "application/octet-stream",
        base64: source.data,
      };
    } else if (source.type === "url" && typeof source.url === "string" && source.url !== "") {
      found = { kind: "url", url: source.url };
    }
    if (!found) return; // `file` sources cannot be fetched from here
    if (out.images.length >= EXTRACT_IMAGES_MAX) out.truncated = true;
    else out.images.push(found);
  };
  const content = (value: unknown, depth = 0): void => {
    if (typeof value === "string") return text(value);
    if (!Array.isArray(value) || depth > 4) return;
    for (const block of value) {
      if (!isPlainObject(block)) continue;
      switch (block.type) {
        case "text":
          text(block.text);
          break;
        case "image":
          image(block.source);
          break;
        case "document":
          if (isPlainObject(block.source) && block.source.type === "text") text(block.source.data);
          else if (isPlainObject(block.source) && block.source.type === "content") {
            content(block.source.content, depth + 1);
          }
          break;
        case "tool_result":
          content(block.content, depth + 1);
          break;
      }
    }
  };

  content(body.system);
  for (const message of Array.isArray(body.messages) ? body.messages : []) {
    if (isPlainObject(message)) content(message.content); // every role
  }
  return out;
}
