/**
 * Usage of an OpenAI Realtime session: the sum of `response.usage` over every `response.done`
 * server event (reference/vendor-wire.md §1.8). Each response is billed as it finishes, so the
 * session's usage is the sum; the prompt size kept for price tiers is the largest single
 * response's input. Only text messages whose type is `response.done` are parsed; a cheap
 * substring test skips the (many, large) audio deltas.
 */
import { emptyUsage, type Usage, USAGE_FIELDS } from "../usage.ts";
import type { MeterResult } from "../vendors/types.ts";
import { mapOpenAIUsage } from "./openai_usage.ts";

const MARKER = '"response.done"';

export class RealtimeMeter {
  readonly #usage: Usage = emptyUsage();
  #responses = 0;
  #promptTokens = 0;
  #model?: string;

  /** Number of `response.done` events seen. */
  get responses(): number {
    return this.#responses;
  }

  /** Sees one server → client text message. */
  onServerText(text: string): void {
    if (this.#model === undefined && text.includes('"session.created"')) {
      const event = parse(text);
      const model = event?.type === "session.created" ? obj(event.session)?.model : undefined;
      if (typeof model === "string" && model.length <= 200) this.#model = model;
      return;
    }
    if (!text.includes(MARKER)) return;
    const event = parse(text);
    if (event?.type !== "response.done") return;
    this.#responses++;
    const mapped = mapOpenAIUsage(obj(event.response)?.usage, "realtime");
    if (!mapped) return;
    for (const field of USAGE_FIELDS) this.#usage[field] += mapped.usage[field];
    this.#promptTokens = Math.max(this.#promptTokens, mapped.promptTokens);
  }

  /** Usage when at least one response finished (complete), else nothing to bill. */
  end(): MeterResult {
    const complete = this.#responses > 0;
    return {
      usage: complete ? { ...this.#usage } : null,
      promptTokens: this.#promptTokens,
      model: this.#model,
      complete,
    };
  }
}

type Json = Record<string, unknown>;

function obj(v: unknown): Json | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Json : undefined;
}

function parse(text: string): Json | undefined {
  try {
    return obj(JSON.parse(text));
  } catch {
    return undefined;
  }
}
