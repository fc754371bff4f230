/**
 * OpenAI: routes, credentials, error envelope, usage metering and the include_usage round trip.
 * https://platform.openai.com/docs/api-reference — wire facts in reference/vendor-wire.md §1.
 */
import { mapOpenAIUsage } from "../metering/openai.ts";
import {
  extractOpenAIModerationInput,
  openAIModerationBlockedResponse,
} from "./openai_moderation.ts";
import {
  applyBearer,
  bearerCredential,
  includeUsageExactness,
  openAIErrorResponse,
  openAIMeter,
  openAIModelsResponse,
} from "./openai_compat.ts";
import type { VendorSurface } from "./types.ts";

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

  clientCredential: bearerCredential,
  applyCredential: applyBearer,

  shouldRotateKey(status, bodyText) {
    if (status === 401) return true;
    // A 429 is either a rate limit (wait) or an exhausted quota (this key is done).
    return status === 429 &&
      /insufficient_quota|billing_hard_limit|exceeded your current quota/.test(bodyText);
  },

  createMeter: openAIMeter,

  usageExactness: includeUsageExactness(
    (path) => path.startsWith("/v1/chat/completions"),
    (raw) => mapOpenAIUsage(raw, "chat"),
  ),
  errorResponse: openAIErrorResponse,

  moderationBlockedResponse: openAIModerationBlockedResponse,
  moderationInput: extractOpenAIModerationInput,

  modelsResponse: (models) => openAIModelsResponse(models),
};
