/**
 * Usage extraction from a non-stream JSON response body without holding it whole.
 *
 * Up to `maxFullBytes` (1 MiB) the body is kept and `JSON.parse`d at the end. Beyond that only a
 * head window (first `headBytes`) and a tail ring (last `tailBytes`) are kept; at the end the
 * tail is scanned backwards, string-aware, for the top-level `"usage"` object (OpenAI puts it at
 * or near the end, after `data`/`choices`/`output`), which alone is parsed. `model` and
 * `service_tier` are looked for in the tail, then in the head. So a 50 MB embeddings or image
 * response costs 1 MiB + 80 KiB at most.
 */
import { ByteRing } from "./ring.ts";
import {
  isJsonWs,
  keyEquals,
  type MemberVisitor,
  parseJsonSlice,
  scanMembersBackward,
  scanMembersForward,
} from "./json_scan.ts";

/** Options for {@link JsonUsageTail}. */
export interface JsonTailOptions {
  /** Bodies up to this size are parsed whole (default 1 MiB). */
  maxFullBytes?: number;
  /** Bytes kept from the end of larger bodies (default 64 KiB). */
  tailBytes?: number;
  /** Bytes kept from the start of larger bodies, for `model` (default 16 KiB). */
  headBytes?: number;
}

/** What {@link JsonUsageTail.end} found. */
export interface JsonTailResult {
  /** The vendor's top-level `usage` value as parsed (undefined when absent or unreadable). */
  usage: unknown;
  /** Top-level `model`, when a string. */
  model?: string;
  /** Top-level `service_tier`, when a string. */
  serviceTier?: string;
  /** The body parsed as JSON (small bodies) or ends with a closing brace (large ones). */
  complete: boolean;
  /** True when the body exceeded `maxFullBytes` and only its windows were scanned. */
  windowed: boolean;
}

const decoder = new TextDecoder();
const RBRACE = 0x7d;

/** Feed body chunks with `push`; call `end` once for the result. Never throws on vendor bytes. */
export class JsonUsageTail {
  readonly #maxFull: number;
  readonly #tailBytes: number;
  readonly #headBytes: number;
  #full: Uint8Array | null = new Uint8Array(0);
  #fullLen = 0;
  #ring: ByteRing | null = null;
  #head: Uint8Array | null = null;

  constructor(options: JsonTailOptions = {}) {
    this.#maxFull = options.maxFullBytes ?? 1 << 20;
    this.#tailBytes = options.tailBytes ?? 64 << 10;
    this.#headBytes = options.headBytes ?? 16 << 10;
  }

  /** Total bytes pushed so far. */
  get bytes(): number {
    return this.#ring ? this.#ring.total : this.#fullLen;
  }

  /** Takes the next body chunk (copied as needed; the caller may reuse it). */
  push(chunk: Uint8Array): void {
    if (this.#ring !== null) return this.#ring.write(chunk);
    const full = this.#full!, need = this.#fullLen + chunk.length;
    if (need <= this.#maxFull) {
      if (need > full.length) {
        const grown = new Uint8Array(
          Math.min(this.#maxFull, Math.max(need, 16384, full.length * 2)),
        );
        grown.set(full.subarray(0, this.#fullLen));
        this.#full = grown;
      }
      this.#full!.set(chunk, this.#fullLen);
      this.#fullLen = need;
      return;
    }
    // Too big to keep whole: switch to head + tail windows.
    const head = new Uint8Array(Math.min(this.#headBytes, need));
    const fromFull = Math.min(head.length, this.#fullLen);
    head.set(full.subarray(0, fromFull));
    head.set(chunk.subarray(0, head.length - fromFull), fromFull);
    this.#head = head;
    this.#ring = new ByteRing(this.#tailBytes);
    this.#ring.write(full, 0, this.#fullLen);
    this.#ring.write(chunk);
    this.#full = null;
  }

  /** Finishes the body and extracts usage, model and service tier. */
  end(): JsonTailResult {
    if (this.#ring === null) return this.#endFull();
    const tail = this.#ring.bytes(), head = this.#head!;
    let usage: unknown, model: string | undefined, serviceTier: string | undefined;
    const visitor = (b: Uint8Array): MemberVisitor => (_d, ks, ke, vs, ve) => {
      if (usage === undefined && b === tail && keyEquals(b, ks, ke, "usage")) {
        usage = parseJsonSlice(b, vs, ve);
      } else if (model === undefined && keyEquals(b, ks, ke, "model")) {
        model = asString(parseJsonSlice(b, vs, ve));
      } else if (serviceTier === undefined && keyEquals(b, ks, ke, "service_tier")) {
        serviceTier = asString(parseJsonSlice(b, vs, ve));
      }
      return usage !== undefined && model !== undefined && serviceTier !== undefined;
    };
    scanMembersBackward(tail, 0, tail.length, 1, visitor(tail));
    if (model === undefined || serviceTier === undefined) {
      scanMembersForward(head, 0, head.length, visitor(head));
    }
    let last = tail.length - 1;
    while (last >= 0 && isJsonWs(tail[last])) last--;
    return {
      usage,
      ...strings(model, serviceTier),
      complete: tail[last] === RBRACE,
      windowed: true,
    };
  }

  #endFull(): JsonTailResult {
    let body: unknown;
    try {
      body = JSON.parse(decoder.decode(this.#full!.subarray(0, this.#fullLen)));
    } catch {
      return { usage: undefined, complete: false, windowed: false };
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return { usage: undefined, complete: true, windowed: false };
    }
    const o = body as Record<string, unknown>;
    const found = strings(asString(o.model), asString(o.service_tier));
    return { usage: o.usage, ...found, complete: true, windowed: false };
  }
}

function asString(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** `{model?, serviceTier?}` with only the keys that have values (keeps results deep-equal-friendly). */
export function strings(
  model: string | undefined,
  serviceTier: string | undefined,
): { model?: string; serviceTier?: string } {
  const out: { model?: string; serviceTier?: string } = {};
  if (model !== undefined) out.model = model;
  if (serviceTier !== undefined) out.serviceTier = serviceTier;
  return out;
}
