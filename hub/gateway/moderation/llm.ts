/**
 * A moderator that asks a moderation model, in OpenAI `/v1/moderations` format, whether a
 * request is harmful. The gateway supplies `call`, which routes the body through an agent like
 * any other request, so this file knows nothing about transport or credentials.
 *
 * The body is the multi-modal form (`input: [{type:"text"}, {type:"image_url"}]`), which the
 * omni-moderation models accept; text-only models (text-moderation-*) reject it.
 *
 * @module
 */
import { isPlainObject } from "../../../protocol/fields.ts";
import {
  ALLOWED,
  type ModerationImage,
  type ModerationInput,
  type ModerationVerdict,
  type Moderator,
} from "./mod.ts";

/** The gateway's way to send one `/v1/moderations` request and read its JSON answer. */
export type ModerationCall = (
  body: unknown,
  signal: AbortSignal,
) => Promise<{ status: number; json: unknown }>;

/** Options for {@link LlmModerator}. */
export interface LlmModeratorOptions {
  /** Moderation model, e.g. "omni-moderation-latest". */
  model: string;
  call: ModerationCall;
  /** How long a check may take before it counts as a failure; the call is then aborted. */
  timeoutMs: number;
  /** On failure (timeout, error, non-2xx, unreadable answer): allow if true, else block (default). */
  failOpen?: boolean;
  /** Told about every failure, in either mode, so that fail-open is never silent in the logs. */
  onFailure?: (reason: string) => void;
  /** Moderator name in verdicts and logs; default "llm". */
  name?: string;
}

/** One multi-modal input entry of a `/v1/moderations` request. */
export type ModerationRequestPart =
  | { type: "text"; text: string }
  | { type: "image_url"; image_url: { url: string } };

/** The `/v1/moderations` request body for an input: texts first, then images. */
export function moderationRequestBody(
  model: string,
  input: Pick<ModerationInput, "texts" | "images">,
): { model: string; input: ModerationRequestPart[] } {
  const parts: ModerationRequestPart[] = [];
  for (const text of input.texts) parts.push({ type: "text", text });
  for (const image of input.images) {
    parts.push({ type: "image_url", image_url: { url: imageUrl(image) } });
  }
  return { model, input: parts };
}

function imageUrl(image: ModerationImage): string {
  return image.kind === "url" ? image.url : `data:${image.mediaType};base64,${image.base64}`;
}

/** Blocks when the moderation model flags any result (`results[].flagged === true`). */
export class LlmModerator implements Moderator {
  readonly name: string;
  readonly #options: LlmModeratorOptions;

  constructor(options: LlmModeratorOptions) {
    this.name = options.name ?? "llm";
    this.#options = options;
  }

  /**
   * Throws only when `signal` is aborted (the request is gone; the chain blocks it anyway);
   * every other failure becomes a verdict according to `failOpen`.
   */
  async check(input: ModerationInput, signal: AbortSignal): Promise<ModerationVerdict> {
    signal.throwIfAborted();
    const body = moderationRequestBody(this.#options.model, input);
    if (body.input.length === 0) return ALLOWED; // nothing to moderate: don't spend a call
    let answer: { status: number; json: unknown };
    try {
      answer = await this.#callWithTimeout(body, signal);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const timedOut = error instanceof DOMException && error.name === "TimeoutError";
      return this.#failure(
        timedOut ? `timed out after ${this.#options.timeoutMs} ms` : `call failed: ${error}`,
      );
    }
    if (answer.status < 200 || answer.status > 299) return this.#failure(`HTTP ${answer.status}`);
    const results = isPlainObject(answer.json) ? answer.json.results : undefined;
    if (!Array.isArray(results) || results.length === 0) {
      return this.#failure("no results in answer");
    }
    const flagged = results.filter((r) => isPlainObject(r) && r.flagged === true);
    if (flagged.length === 0) return ALLOWED;
    // Category names only (no scores, no user text): enough to tell in the logs why.
    const categories = new Set<string>();
    for (const result of flagged) {
      if (!isPlainObject(result.categories)) continue;
      for (const [category, on] of Object.entries(result.categories)) {
        if (on === true) categories.add(category);
      }
    }
    const reason = categories.size > 0 ? `flagged: ${[...categories].join(", ")}` : "flagged";
    return { allowed: false, moderator: this.name, reason };
  }

  /**
   * Runs `call` under a signal that aborts on timeout or when the request's own signal aborts,
   * and stops waiting at that moment even if `call` ignores its signal. The timer and the
   * listener are always removed, so a finished check leaves nothing pending.
   */
  async #callWithTimeout(body: unknown, signal: AbortSignal) {
    const controller = new AbortController();
    const forward = () => controller.abort(signal.reason);
    signal.addEventListener("abort", forward, { once: true });
    const timer = setTimeout(
      () => controller.abort(new DOMException("moderation timed out", "TimeoutError")),
      this.#options.timeoutMs,
    );
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), {
        once: true,
      });
    });
    try {
      return await Promise.race([this.#options.call(body, controller.signal), aborted]);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", forward);
    }
  }

  #failure(reason: string): ModerationVerdict {
    this.#options.onFailure?.(reason);
    return this.#options.failOpen ? ALLOWED : { allowed: false, moderator: this.name, reason };
  }
}
