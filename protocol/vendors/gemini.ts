/**
 * Gemini Developer API (AI Studio): routes, credentials (`x-goog-api-key`, or `?key=` from raw
 * REST clients), Google's `{"error":{"code","message","status"}}` envelope, key rotation,
 * metering and moderation extraction. https://ai.google.dev/api — wire facts in
 * reference/vendor-wire.md §4.
 *
 * The model is in the URL path (`/v1beta/models/{model}:{method}`), so the routes match the
 * whole last segment and {@link geminiModelFromPath} splits it. A client's `?key=` is a
 * credential: it is removed from the forwarded path; the agent always sends its real key as the
 * `x-goog-api-key` header, never in the URL.
 */
import { createGeminiMeter, geminiMethodOf } from "../metering/gemini.ts";
import type { ModerationImage } from "../moderation.ts";
import { EXTRACT_IMAGES_MAX, EXTRACT_TEXT_MAX_CHARS } from "./openai_moderation.ts";
import type { ExtractedModerationContent, VendorError, VendorSurface } from "./types.ts";
import { isPlainObject } from "../fields.ts";

/** Model methods the hub forwards (AI Studio, `v1beta` and `v1`). */
export const GEMINI_METHODS: readonly string[] = [
  "generateContent",
  "streamGenerateContent",
  "countTokens",
  "embedContent",
  "batchEmbedContents",
];

/** The exact JSON body of a moderation block. */
export const GEMINI_MODERATION_BLOCKED_BODY =
  '{"error":{"code":400,"message":"Content moderation failed: the request was blocked by the gateway\'s content policy.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SENSITIVE_WORDS_DETECTED","domain":"aqueduct"}]}}';

/** The query parameter raw REST clients put the API key in. */
const KEY_PARAM = "key";

/** The model of `/v1beta/models/{model}:{method}` (or `/v1/…`), or null for anything else. */
export function geminiModelFromPath(path: string): string | null {
  const q = path.indexOf("?");
  const pathname = q === -1 ? path : path.slice(0, q);
  const m = /^\/(?:v1beta|v1)\/models\/([^/]+)$/.exec(pathname);
  if (!m) return null;
  let segment: string;
  try {
    segment = decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
  const colon = segment.lastIndexOf(":");
  if (colon <= 0) return null;
  if (!GEMINI_METHODS.includes(segment.slice(colon + 1))) return null;
  const model = segment.slice(0, colon);
  // Model ids are plain names; nothing that could steer the upstream path.
  return /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/.test(model) ? model : null;
}

/** `url`'s path and query without the `key` parameter (other parameters byte for byte). */
export function geminiUpstreamPath(url: URL): string {
  const query = url.search.slice(1).split("&").filter((part) => {
    if (part === "") return false;
    const name = part.split("=", 1)[0]!.replace(/\+/g, " ");
    try {
      return decodeURIComponent(name) !== KEY_PARAM;
    } catch {
      return true;
    }
  });
  return url.pathname + (query.length ? `?${query.join("&")}` : "");
}

/** Google's canonical status name for an HTTP status (google.rpc.Code mapping). */
export function geminiErrorStatus(status: number): string {
  switch (status) {
    case 400:
      return "INVALID_ARGUMENT";
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "PERMISSION_DENIED";
    case 404:
      return "NOT_FOUND";
    case 409:
      return "ABORTED";
    case 412:
      return "FAILED_PRECONDITION";
    case 429:
      return "RESOURCE_EXHAUSTED";
    case 499:
      return "CANCELLED";
    case 501:
      return "UNIMPLEMENTED";
    case 503:
      return "UNAVAILABLE";
    case 504:
      return "DEADLINE_EXCEEDED";
  }
  return status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT";
}

/** 400/403 bodies that say the key itself is bad (invalid, expired, leaked, blocked). */
const KEY_INVALID =
  /API_KEY_INVALID|API key not valid|API key expired|API_KEY_SERVICE_BLOCKED|API key was reported as leaked|CONSUMER_SUSPENDED|SERVICE_DISABLED/i;
/** 429 bodies that say the quota (daily, billing) is gone, not the per-minute rate. */
const QUOTA_GONE = /PerDay|billing|prepay|credits? (?:are |is )?(?:depleted|exhausted)/i;

export const gemini: VendorSurface = {
  name: "gemini",
  upstreamOrigin: "https://generativelanguage.googleapis.com",
  rootMarkerHeader: "x-goog-api-key",
  hosts: ["generativelanguage.googleapis.com:443"],
  upstreamPathPrefixes: ["/v1beta/models/", "/v1/models/"],
  routes: [
    { method: "POST", path: "/v1beta/models/:call", model: "path" },
    { method: "POST", path: "/v1/models/:call", model: "path" },
    { method: "GET", path: "/v1beta/models", model: "none", serve: "models" },
    { method: "GET", path: "/v1/models", model: "none", serve: "models" },
  ],
  credentialHeaders: ["x-goog-api-key", "authorization"],
  credentialQueryParams: [KEY_PARAM],

  clientCredential(headers, url) {
    const key = headers.get("x-goog-api-key")?.trim();
    if (key) return key;
    return url?.searchParams.get(KEY_PARAM)?.trim() || null;
  },

  modelFromPath: geminiModelFromPath,
  upstreamPathFor: geminiUpstreamPath,

  applyCredential(headers, key) {
    headers.delete("authorization");
    headers.set("x-goog-api-key", key);
  },

  shouldRotateKey(status, bodyText) {
    if (status === 401) return true; // UNAUTHENTICATED
    if (status === 400 || status === 403) return KEY_INVALID.test(bodyText);
    return status === 429 && /RESOURCE_EXHAUSTED/.test(bodyText) && QUOTA_GONE.test(bodyText);
  },

  createMeter: (context) =>
    createGeminiMeter({ path: context.path, contentType: context.contentType }),

  errorResponse(error: VendorError, headers?: HeadersInit) {
    const inner: Record<string, unknown> = {
      code: error.status,
      message: error.message,
      status: geminiErrorStatus(error.status),
    };
    if (error.code) {
      inner.details = [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: error.code.toUpperCase(),
        domain: "aqueduct",
      }];
    }
    const res = new Response(JSON.stringify({ error: inner }), { status: error.status, headers });
    res.headers.set("content-type", "application/json; charset=UTF-8");
    return res;
  },

  moderationBlockedResponse: () =>
    new Response(GEMINI_MODERATION_BLOCKED_BODY, {
      status: 400,
      headers: { "content-type": "application/json; charset=UTF-8" },
    }),

  moderationInput: extractGeminiModerationInput,

  modelsResponse(models) {
    return new Response(
      JSON.stringify({
        models: models.map((id) => ({
          name: `models/${id}`,
          displayName: id,
          supportedGenerationMethods: id.includes("embedding")
            ? ["embedContent", "batchEmbedContents", "countTokens"]
            : ["generateContent", "countTokens"],
        })),
      }),
      { status: 200, headers: { "content-type": "application/json; charset=UTF-8" } },
    );
  },
};

/**
 * Texts and inline images of a `generateContent` / `streamGenerateContent` request:
 * `systemInstruction` and every `contents[].parts[]` (`text`, `inlineData` images, `fileData`
 * image URIs). Other methods generate nothing, so they yield nothing. Bounded like the others.
 */
export function extractGeminiModerationInput(
  path: string,
  body: unknown,
): ExtractedModerationContent {
  const out = { texts: [] as string[], images: [] as ModerationImage[], truncated: false };
  let budget = EXTRACT_TEXT_MAX_CHARS;
  const method = geminiMethodOf(path);
  if (
    !isPlainObject(body) || (method !== "generateContent" && method !== "streamGenerateContent")
  ) {
    return out;
  }
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
  const image = (found: ModerationImage) => {
    if (out.images.length >= EXTRACT_IMAGES_MAX) out.truncated = true;
    else out.images.push(found);
  };
  const content = (value: unknown) => {
    if (!isPlainObject(value) || !Array.isArray(value.parts)) return;
    for (const part of value.parts) {
      if (!isPlainObject(part)) continue;
      text(part.text);
      const inline = part.inlineData ?? part.inline_data;
      if (isPlainObject(inline) && typeof inline.data === "string" && inline.data !== "") {
        const mediaType = String(inline.mimeType ?? inline.mime_type ?? "");
        if (mediaType.startsWith("image/")) {
          image({ kind: "data", mediaType, base64: inline.data });
        }
      }
      const file = part.fileData ?? part.file_data;
      if (
        isPlainObject(file) && typeof file.fileUri === "string" && /^https?:/.test(file.fileUri)
      ) {
        if (String(file.mimeType ?? "").startsWith("image/")) {
          image({ kind: "url", url: file.fileUri });
        }
      }
    }
  };
  content(body.systemInstruction ?? body.system_instruction);
  for (const c of Array.isArray(body.contents) ? body.contents : []) content(c);
  return out;
}
