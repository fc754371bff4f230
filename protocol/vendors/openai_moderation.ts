/**
 * Pulls the moderatable text and images out of OpenAI-format request bodies.
 *
 * Defensive by design: bodies come straight from clients, so any shape is tolerated (a field of
 * the wrong type is skipped, never thrown on), and the output is bounded: at most
 * {@link EXTRACT_TEXT_MAX_CHARS} of text and {@link EXTRACT_IMAGES_MAX} images, with `truncated`
 * telling the caller that something was left out.
 *
 * Only called when the moderation chain is enabled (see the zero-cost contract in `mod.ts`).
 *
 * @module
 */
import type { ModerationImage } from "../moderation.ts";
import type { ExtractedModerationContent } from "./types.ts";
import { isPlainObject } from "../fields.ts";

/** Bound on the total extracted text per request, in UTF-16 code units. */
export const EXTRACT_TEXT_MAX_CHARS = 1 << 20;
/** Bound on the images extracted per request. */
export const EXTRACT_IMAGES_MAX = 16;

/**
 * Texts and images of an OpenAI request, by endpoint `path` (with or without "/v1" or a query
 * string). Unknown endpoints and `/moderations` (the moderator's own traffic) yield nothing.
 * Images given only by `file_id` are not extracted: they cannot be fetched from here.
 */
export function extractOpenAIModerationInput(
  path: string,
  body: unknown,
): ExtractedModerationContent {
  const out = new Collector();
  if (!isPlainObject(body)) return out.result();
  const endpoint = path.split("?")[0]!.replace(/\/+$/, "");
  if (endpoint.endsWith("/chat/completions")) {
    for (const message of arrayOf(body.messages)) {
      if (isPlainObject(message)) out.content(message.content); // every role: system, developer…
    }
  } else if (endpoint.endsWith("/completions")) {
    out.stringOrStrings(body.prompt);
    out.text(body.suffix);
  } else if (endpoint.endsWith("/responses")) {
    out.text(body.instructions);
    if (typeof body.input === "string") out.text(body.input);
    for (const item of arrayOf(body.input)) out.responsesItem(item);
  } else if (endpoint.endsWith("/embeddings")) {
    out.stringOrStrings(body.input); // token arrays (numbers) are skipped
  } else if (endpoint.endsWith("/images/generations")) {
    out.text(body.prompt);
  } else if (endpoint.endsWith("/audio/speech")) {
    out.text(body.input);
    out.text(body.instructions); // steers the voice, so it is user-controlled text as well
  }
  return out.result();
}

class Collector {
  readonly #texts: string[] = [];
  readonly #images: ModerationImage[] = [];
  #truncated = false;
  #budget = EXTRACT_TEXT_MAX_CHARS;

  result(): ExtractedModerationContent {
    return { texts: this.#texts, images: this.#images, truncated: this.#truncated };
  }

  text(value: unknown): void {
    if (typeof value !== "string" || value === "") return;
    if (value.length > this.#budget) {
      this.#truncated = true;
      if (this.#budget > 0) this.#texts.push(value.slice(0, this.#budget));
      this.#budget = 0;
      return;
    }
    this.#budget -= value.length;
    this.#texts.push(value);
  }

  stringOrStrings(value: unknown): void {
    if (typeof value === "string") this.text(value);
    else for (const item of arrayOf(value)) this.text(item);
  }

  image(url: unknown): void {
    if (typeof url !== "string" || url === "") return;
    if (this.#images.length >= EXTRACT_IMAGES_MAX) {
      this.#truncated = true;
      return;
    }
    this.#images.push(parseImageUrl(url));
  }

  /** A message's `content`: a string, or an array of parts (Chat and Responses part types). */
  content(content: unknown): void {
    if (typeof content === "string") this.text(content);
    else for (const part of arrayOf(content)) this.part(part);
  }

  part(part: unknown): void {
    if (!isPlainObject(part)) return;
    switch (part.type) {
      case "text": // Chat
      case "input_text": // Responses, user side
      case "output_text": // Responses, earlier assistant turns replayed as input
        return this.text(part.text);
      case "image_url": // Chat: { image_url: { url } }; some clients send the URL bare
        return this.image(isPlainObject(part.image_url) ? part.image_url.url : part.image_url);
      case "input_image": // Responses: { image_url: string } or { file_id } (not fetchable)
        return this.image(part.image_url);
    }
  }

  /** One item of a Responses `input` array: a message, a tool output, or a bare content part. */
  responsesItem(item: unknown): void {
    if (!isPlainObject(item)) return;
    if ("content" in item) this.content(item.content);
    else if (item.type === "function_call_output") this.content(item.output);
    else this.part(item);
  }
}

/** `data:<type>;base64,<payload>` becomes inline data; any other URL is passed on as a URL. */
function parseImageUrl(url: string): ModerationImage {
  if (url.slice(0, 5).toLowerCase() === "data:") {
    const comma = url.indexOf(",");
    const params = url.slice(5, comma < 0 ? 5 : comma).split(";");
    if (comma > 0 && params.length > 1 && params[params.length - 1]!.toLowerCase() === "base64") {
      return {
        kind: "data",
        mediaType: params[0] || "application/octet-stream",
        base64: url.slice(comma + 1),
      };
    }
  }
  // Includes non-base64 data: URLs (rare for images), which moderators can pass on verbatim.
  return { kind: "url", url };
}

function arrayOf(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}
/** The exact JSON body of a moderation block: compact, no added whitespace. */
export const OPENAI_MODERATION_BLOCKED_BODY =
  '{"error":{"code":"sensitive_words_detected","message":"Content moderation failed with status 401","param":"","type":"hub_error"}}';

/** HTTP status of a moderation block: 400, so SDKs raise their bad-request error and do not retry. */
export const OPENAI_MODERATION_BLOCKED_STATUS = 400;

/** A fresh Response per call (a Response body can be read only once). */
export function openAIModerationBlockedResponse(): Response {
  return new Response(OPENAI_MODERATION_BLOCKED_BODY, {
    status: OPENAI_MODERATION_BLOCKED_STATUS,
    headers: { "content-type": "application/json" },
  });
}
