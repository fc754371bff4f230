/**
 * DeepSeek's OpenAI-format API (reference/vendor-wire.md §7): `/chat/completions` (also under the
 * `/v1` alias) and `/models`, Bearer auth, OpenAI's error envelope, usage from DeepSeek's own
 * cache fields and the same `include_usage` round trip as OpenAI for streams.
 * Served under the hub's `/deepseek` prefix (`baseURL: https://hub/deepseek`); at the root only
 * where no earlier vendor claims the path (OpenAI keeps `/v1/chat/completions`).
 * Not yet: DeepSeek's Anthropic-format surface (`/anthropic/v1/messages`), the beta FIM
 * `/beta/completions` and the Responses API.
 */
import { createDeepSeekMeter, mapDeepSeekUsage } from "../metering/deepseek.ts";
import {
  applyBearer,
  bearerCredential,
  includeUsageExactness,
  openAIErrorResponse,
  openAIModelsResponse,
} from "./openai_compat.ts";
import {
  extractOpenAIModerationInput,
  openAIModerationBlockedResponse,
} from "./openai_moderation.ts";
import type { VendorSurface } from "./types.ts";

const CHAT_PATHS = ["/chat/completions", "/v1/chat/completions"];

export const deepseek: VendorSurface = {
  name: "deepseek",
  upstreamOrigin: "https://api.deepseek.com",
  hosts: ["api.deepseek.com:443"],
  upstreamPathPrefixes: CHAT_PATHS,
  routes: [
    { method: "POST", path: "/chat/completions", model: "json" },
    { method: "POST", path: "/v1/chat/completions", model: "json" },
    { method: "GET", path: "/models", model: "none", serve: "models" },
  ],
  credentialHeaders: ["authorization"],
  clientCredential: bearerCredential,
  applyCredential: applyBearer,

  shouldRotateKey(status) {
    // 401 "Authentication Fails"; 402 "Insufficient Balance" (the key's account is out of money).
    return status === 401 || status === 402;
  },

  createMeter: (context) => createDeepSeekMeter({ contentType: context.contentType }),

  usageExactness: includeUsageExactness(
    (path) => CHAT_PATHS.some((p) => path === p || path.startsWith(p + "?")),
    mapDeepSeekUsage,
  ),

  errorResponse: openAIErrorResponse,
  moderationBlockedResponse: openAIModerationBlockedResponse,
  moderationInput: extractOpenAIModerationInput,
  modelsResponse: (models) => openAIModelsResponse(models, "deepseek"),
};
