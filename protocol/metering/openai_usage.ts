/**
 * OpenAI (and Azure OpenAI) usage shapes mapped into {@link Usage}, per surface
 * (reference/vendor-wire.md §1 and §9). Defensive: missing fields are 0, non-numbers and
 * negatives are ignored, nothing throws on vendor JSON.
 */
import { emptyUsage, type Usage } from "../usage.ts";
import { num, obj } from "./json_values.ts";

/** Which OpenAI endpoint a request went to (decides the usage shape and where usage travels). */
export type OpenAISurface =
  | "chat" // /chat/completions and legacy /completions
  | "responses"
  | "embeddings"
  | "images"
  | "speech"
  | "transcription" // /audio/transcriptions and /audio/translations
  | "realtime"
  | "other"; // not metered (e.g. GET /responses/{id}, /models)

/** The surface of a request path (OpenAI `/v1/...` or Azure `/openai/...`; query ignored). */
export function openAISurface(path: string): OpenAISurface {
  const q = path.indexOf("?");
  let p = q === -1 ? path : path.slice(0, q);
  if (p.endsWith("/")) p = p.slice(0, -1);
  if (p.endsWith("/completions")) return "chat";
  if (p.endsWith("/responses")) return "responses";
  if (p.endsWith("/embeddings")) return "embeddings";
  if (/\/images\/(generations|edits|variations)$/.test(p)) return "images";
  if (p.endsWith("/audio/speech")) return "speech";
  if (p.endsWith("/audio/transcriptions") || p.endsWith("/audio/translations")) {
    return "transcription";
  }
  if (p.endsWith("/realtime")) return "realtime";
  return "other";
}

/** A mapped usage plus the prompt size as OpenAI counts it (cached tokens included). */
export interface MappedUsage {
  usage: Usage;
  promptTokens: number;
}

/**
 * Maps one OpenAI `usage` object into {@link Usage}; null when `raw` is not an object.
 * - chat / completions / embeddings (`prompt_tokens`…): fresh input = prompt − cached − cache
 *   writes; output = `completion_tokens` (reasoning included); audio from the details.
 * - responses / images / transcription `tokens` / speech / realtime (`input_tokens`…): the same
 *   with `input_tokens_details` (or realtime's `input_token_details`); images put
 *   `output_tokens` (or `output_tokens_details.image_tokens`) in `imageOutputTokens`, speech in
 *   `audioOutputTokens`.
 * - transcription `{type:"duration", seconds}`: `audioSeconds` = ceil(seconds).
 */
export function mapOpenAIUsage(raw: unknown, surface: OpenAISurface = "other"): MappedUsage | null {
  const u = obj(raw);
  if (u === undefined) return null;
  const out = emptyUsage();
  if (u.type === "duration") {
    out.audioSeconds = Math.ceil(num(u, "seconds"));
    return { usage: out, promptTokens: 0 };
  }
  const chat = "prompt_tokens" in u || "completion_tokens" in u;
  const inD = obj(chat ? u.prompt_tokens_details : u.input_tokens_details ?? u.input_token_details);
  const outD = obj(
    chat ? u.completion_tokens_details : u.output_tokens_details ?? u.output_token_details,
  );
  const prompt = num(u, chat ? "prompt_tokens" : "input_tokens");
  out.cachedInputTokens = num(inD, "cached_tokens");
  out.cacheWrite5mTokens = num(inD, "cache_write_tokens");
  out.inputTokens = Math.max(0, prompt - out.cachedInputTokens - out.cacheWrite5mTokens);
  out.audioInputTokens = num(inD, "audio_tokens");
  out.imageInputTokens = num(inD, "image_tokens");
  out.outputTokens = num(u, chat ? "completion_tokens" : "output_tokens");
  out.reasoningTokens = num(outD, "reasoning_tokens");
  out.audioOutputTokens = num(outD, "audio_tokens");
  if (surface === "images") {
    out.imageOutputTokens = outD && "image_tokens" in outD
      ? num(outD, "image_tokens")
      : out.outputTokens;
  } else if (surface === "speech" && out.audioOutputTokens === 0) {
    out.audioOutputTokens = out.outputTokens;
  }
  return { usage: out, promptTokens: prompt };
}
