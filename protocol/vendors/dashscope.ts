/**
 * Alibaba Cloud Model Studio (DashScope, Qwen) — reference/vendor-wire.md §8.
 * - Compatible mode: `/compatible-mode/v1/{chat/completions,embeddings,models}`, OpenAI's wire
 *   format (usage in streams only with `include_usage`, so the agent adds it and strips it again).
 * - Native: `POST /api/v1/services/aigc/text-generation/generation`, model in the JSON body,
 *   streamed as `id:/event:result/:HTTP_STATUS/200/data:` frames when the client sends
 *   `X-DashScope-SSE: enable` (forwarded untouched); cumulative usage in every frame.
 * API keys are region-bound. The agent calls the Singapore (international) host
 * `dashscope-intl.aliyuncs.com`; the Beijing host is allow-listed too but unused until channels
 * can pick a region.
 *
 * Errors: `errorResponse` is given no path, so one body serves both modes: OpenAI's `error`
 * object (what the openai SDK reads) plus native top-level `code`/`message`/`request_id` (what
 * the DashScope SDKs read); each ignores the other's keys.
 */
import { createDashScopeMeter, isCompatibleMode } from "../metering/dashscope.ts";
import { mapOpenAIUsage } from "../metering/openai_usage.ts";
import {
  applyBearer,
  bearerCredential,
  includeUsageExactness,
  jsonResponse,
  openAIErrorObject,
  openAIModelsResponse,
} from "./openai_compat.ts";
import { extractOpenAIModerationInput } from "./openai_moderation.ts";
import type { VendorError, VendorSurface } from "./types.ts";

export const DASHSCOPE_NATIVE_GENERATION = "/api/v1/services/aigc/text-generation/generation";
const COMPAT_CHAT = "/compatible-mode/v1/chat/completions";

/** DashScope's native error `code` for an HTTP status. */
export function dashScopeErrorCode(status: number): string {
  switch (status) {
    case 401:
      return "InvalidApiKey";
    case 403:
      return "AccessDenied";
    case 404:
      return "NotFound";
    case 413:
      return "InvalidParameter.DataTooLarge";
    case 429:
      return "Throttling";
    case 503:
      return "ServiceUnavailable";
  }
  return status >= 500 ? "InternalError" : "InvalidParameter";
}

/** Either envelope in one body (see the module comment). */
function errorBody(error: VendorError, nativeCode = dashScopeErrorCode(error.status)) {
  return {
    error: openAIErrorObject(error),
    code: nativeCode,
    message: error.message,
    request_id: crypto.randomUUID(),
  };
}

export const DASHSCOPE_MODERATION_MESSAGE = "Input data may contain inappropriate content.";

/** Key problems that mean "this key's account cannot be used": invalid, overdue, no access. */
const KEY_UNUSABLE = /InvalidApiKey|invalid_api_key|Arrearage|AllocationQuota\.FreeTierOnly/;

export const dashscope: VendorSurface = {
  name: "dashscope",
  upstreamOrigin: "https://dashscope-intl.aliyuncs.com",
  hosts: ["dashscope-intl.aliyuncs.com:443", "dashscope.aliyuncs.com:443"],
  upstreamPathPrefixes: ["/compatible-mode/v1/", "/api/v1/services/aigc/text-generation/"],
  routes: [
    { method: "POST", path: COMPAT_CHAT, model: "json" },
    { method: "POST", path: "/compatible-mode/v1/embeddings", model: "json" },
    { method: "GET", path: "/compatible-mode/v1/models", model: "none", serve: "models" },
    { method: "POST", path: DASHSCOPE_NATIVE_GENERATION, model: "json" },
  ],
  credentialHeaders: ["authorization"],
  clientCredential: bearerCredential,
  applyCredential: applyBearer,

  shouldRotateKey(status, bodyText) {
    if (status === 401) return true;
    return (status === 400 || status === 403) && KEY_UNUSABLE.test(bodyText);
  },

  createMeter: (context) =>
    createDashScopeMeter({ path: context.path, contentType: context.contentType }),

  // Native responses always carry usage; only compatible-mode chat streams need include_usage.
  usageExactness: includeUsageExactness(
    (path) => path === COMPAT_CHAT || path.startsWith(COMPAT_CHAT + "?"),
    (raw) => mapOpenAIUsage(raw, "chat"),
  ),

  errorResponse: (error, headers) => jsonResponse(errorBody(error), error.status, headers),

  moderationBlockedResponse: () =>
    jsonResponse(
      errorBody({
        status: 400,
        type: "data_inspection_failed",
        code: "data_inspection_failed",
        message: DASHSCOPE_MODERATION_MESSAGE,
      }, "DataInspectionFailed"),
      400,
    ),

  moderationInput(path, body) {
    if (isCompatibleMode(path)) return extractOpenAIModerationInput(path, body);
    // Native: `input.messages` (OpenAI's message shape) or a bare `input.prompt`.
    const input = typeof body === "object" && body !== null
      ? (body as { input?: { messages?: unknown; prompt?: unknown } }).input
      : undefined;
    const messages = Array.isArray(input?.messages)
      ? input.messages
      : typeof input?.prompt === "string"
      ? [{ role: "user", content: input.prompt }]
      : [];
    return extractOpenAIModerationInput("/chat/completions", { messages });
  },

  modelsResponse: (models) => openAIModelsResponse(models, "system"),
};
