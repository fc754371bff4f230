/**
 * The shape every SSE usage meter shares: parse events as chunks pass (oversized events keep their
 * tail, where usage sits), remember the latest usage object and model, and report at the end.
 * A vendor's meter supplies only how one event updates that state and how state becomes usage.
 */
import type { Meter, MeterResult } from "../vendors/types.ts";
import type { Obj } from "./json_values.ts";
import { type SseEvent, SseParser } from "./sse.ts";

/** Bytes kept from the end of an oversized event (usage is near the end). */
export const TAIL_BYTES = 64 << 10;

export abstract class SseUsageMeter implements Meter {
  protected usage: Obj | undefined = undefined;
  protected model: string | undefined = undefined;
  protected complete = false;
  protected failed = false;
  readonly #parser: SseParser;
  readonly #onEvent = (e: SseEvent) => this.event(e);

  constructor(maxEventBytes?: number) {
    this.#parser = new SseParser({ maxEventBytes, oversizedTailBytes: TAIL_BYTES });
  }

  push(chunk: Uint8Array): void {
    this.#parser.push(chunk, this.#onEvent);
  }

  end(): MeterResult {
    this.#parser.end(this.#onEvent);
    return this.result(this.usage, this.model, this.complete && !this.failed);
  }

  /** Updates the state from one event. */
  protected abstract event(e: SseEvent): void;
  /** The vendor's usage mapping. */
  protected abstract result(
    raw: unknown,
    model: string | undefined,
    complete: boolean,
  ): MeterResult;
}
