/**
 * Exact usage for chat/completions streams whose client did not ask for it: the agent adds
 * `stream_options.include_usage: true` to the request ({@link ensureIncludeUsage}), then gives
 * the client exactly the bytes OpenAI would have sent without it ({@link UsageChunkStripper}).
 *
 * With `include_usage`, OpenAI (1) adds `"usage":null` to every chunk and (2) sends one extra
 * chunk with `"choices":[]` and the totals just before `data: [DONE]`. The stripper undoes both.
 */
import { findTopLevelMember, isJsonWs, memberCut, parseJsonSlice } from "./json_scan.ts";
import { ChunkWriter } from "./chunk_writer.ts";
import { mapOpenAIUsage, type MappedUsage } from "./openai_usage.ts";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const LF = 0x0a, CR = 0x0d, COLON = 0x3a, SPACE = 0x20, LBRACE = 0x7b;
const EMPTY = new Uint8Array(0);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function splice(b: Uint8Array, start: number, end: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length - (end - start) + insert.length);
  out.set(b.subarray(0, start));
  out.set(insert, start);
  out.set(b.subarray(end), start + insert.length);
  return out;
}

/**
 * If the JSON request `body` has `"stream": true` and not `stream_options.include_usage: true`,
 * returns it with `stream_options: {...existing, include_usage: true}` and `added: true`.
 * Otherwise (including non-JSON, invalid UTF-8) returns the very same bytes and `added: false`.
 * Only `stream_options` is re-serialized (or appended as the last member): every other byte of
 * the body is kept, so big integers, key order and escapes elsewhere survive untouched.
 */
export function ensureIncludeUsage(body: Uint8Array): { body: Uint8Array; added: boolean } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(strictDecoder.decode(body));
  } catch {
    return { body, added: false };
  }
  if (!isObject(parsed) || parsed.stream !== true) return { body, added: false };
  const so = parsed.stream_options;
  if (isObject(so) && so.include_usage === true) return { body, added: false };
  const value = JSON.stringify({ ...(isObject(so) ? so : {}), include_usage: true });
  // The last `stream_options` member is the one JSON.parse kept, and the one found first here.
  const span = findTopLevelMember(body, 0, body.length, "stream_options");
  if (span !== null) {
    return {
      body: splice(body, span.valueStart, span.valueEnd, encoder.encode(value)),
      added: true,
    };
  }
  let close = body.length - 1;
  while (isJsonWs(body[close])) close--; // the object's `}`; it has members (`stream` at least)
  const member = encoder.encode(`,"stream_options":${value}`);
  return { body: splice(body, close, close, member), added: true };
}

/**
 * Incremental transform of an OpenAI chat/completions SSE stream produced with `include_usage`
 * into the stream OpenAI sends without it (use it only when {@link ensureIncludeUsage} added it). `push` returns the output for each input chunk (as
 * soon as each event is complete; only the current incomplete event is held back, passed
 * through untouched if it outgrows `maxEventBytes`); `end` flushes. Returned arrays may be views
 * of the input chunk. Per `data:` event holding a JSON object:
 * - the usage chunk (top-level `usage` non-null, `choices` empty) is dropped whole, its usage
 *   kept in `rawUsage`/`usage`;
 * - otherwise a top-level `"usage":null` member is cut out textually, with its comma (either
 *   `,"usage":null` or `"usage":null,`, whitespace tolerated), every other byte kept.
 * `data: [DONE]`, comments, non-JSON and multi-line-data events pass through; line endings
 * (`\n`, `\r\n`, `\r`) are preserved.
 *
 * Why textual removal is safe: inside a JSON string every `"` is escaped, so the raw bytes
 * `"usage"` followed by `:` can only be a key. The member is also located by a string-aware
 * scan of the object from its closing brace, so only the top-level member is ever cut.
 */
export class UsageChunkStripper {
  /** The `usage` object of the usage chunk, as sent (null until seen). */
  rawUsage: unknown = null;
  /** `model` and `service_tier` of the usage chunk. */
  model?: string;
  serviceTier?: string;
  /** Saw `data: [DONE]`. */
  sawDone = false;
  /** Usage chunks dropped and `"usage":null` members cut (diagnostics). */
  droppedEvents = 0;
  strippedMembers = 0;

  readonly #max: number;
  #held = new Uint8Array(4096); // bytes of the current incomplete event
  #heldLen = 0;
  #carry = 0; // length of the current line so far in earlier chunks
  #afterCR = false;
  #dropLF = false; // a dropped event ended in `\r` at a chunk end: drop a following `\n` too
  #passthrough = false; // inside an oversized event: streamed through untouched
  readonly #w = new ChunkWriter();

  constructor(options: { maxEventBytes?: number } = {}) {
    this.#max = options.maxEventBytes ?? 1 << 20;
  }

  /** The stripped usage mapped into `Usage` (null until the usage chunk is seen). */
  get usage(): MappedUsage | null {
    return mapOpenAIUsage(this.rawUsage, "chat");
  }

  /** Transforms the next chunk; returns what the client gets now (possibly empty). */
  push(chunk: Uint8Array): Uint8Array {
    const n = chunk.length;
    this.#w.begin(chunk);
    let pos = 0, ev = 0; // ev: where the current event's bytes start in `chunk`
    if (n > 0 && this.#afterCR) {
      this.#afterCR = false;
      if (chunk[0] === LF) {
        pos = 1; // the `\n` of a `\r\n` split across chunks
        if (this.#heldLen === 0) { // it ends an event already emitted or dropped
          if (!this.#dropLF) this.#w.emit(chunk, 0, 1);
          ev = 1;
        }
      }
      this.#dropLF = false;
    }
    let lf = -2, cr = -2;
    while (pos < n) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf(LF, pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf(CR, pos);
      const eol = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (eol === -1) break;
      const lineLen = this.#carry + eol - pos;
      this.#carry = 0;
      let next = eol + 1;
      if (chunk[eol] === CR) {
        if (next === n) this.#afterCR = true;
        else if (chunk[next] === LF) next++;
      }
      if (lineLen === 0) { // blank line: the event (if any) is complete
        if (this.#passthrough || (this.#heldLen === 0 && pos === ev)) this.#w.emit(chunk, ev, next);
        else if (this.#event(chunk, ev, next) && this.#afterCR) this.#dropLF = true;
        this.#passthrough = false;
        this.#heldLen = 0;
        ev = next;
      } else if (this.#passthrough || this.#heldLen + next - ev > this.#max) {
        this.#startPassthrough(chunk, ev, next);
        ev = next;
      }
      pos = next;
    }
    this.#carry += n - pos;
    if (this.#passthrough || this.#heldLen + n - ev > this.#max) {
      this.#startPassthrough(chunk, ev, n);
    } else this.#hold(chunk, ev, n);
    return this.#w.collect();
  }

  /** Ends the stream: an unterminated last event is processed as if terminated. */
  end(): Uint8Array {
    this.#w.begin(null);
    if (this.#heldLen > 0) this.#event(EMPTY, 0, 0);
    this.#heldLen = 0;
    return this.#w.collect();
  }

  #startPassthrough(chunk: Uint8Array, s: number, e: number): void {
    if (this.#heldLen > 0) this.#w.emit(this.#held, 0, this.#heldLen);
    this.#heldLen = 0;
    this.#w.emit(chunk, s, e);
    this.#passthrough = true;
  }

  #hold(chunk: Uint8Array, s: number, e: number): void {
    const need = this.#heldLen + e - s;
    if (need > this.#held.length) {
      const grown = new Uint8Array(Math.max(need, this.#held.length * 2));
      grown.set(this.#held.subarray(0, this.#heldLen));
      this.#held = grown;
    }
    this.#held.set(chunk.subarray(s, e), this.#heldLen);
    this.#heldLen = need;
  }

  /** Emits the complete event `held + chunk[s, e)`, edited; returns true if it was dropped. */
  #event(chunk: Uint8Array, s: number, e: number): boolean {
    let b = chunk;
    if (this.#heldLen > 0) {
      this.#hold(chunk, s, e);
      b = this.#held;
      s = 0;
      e = this.#heldLen;
    }
    const v = b.subarray(s, e); // bounded view: indexOf never runs past the event
    let vs = -1, ve = -1, dataLines = 0, lf = -2, cr = -2;
    for (let p = 0; p < v.length;) {
      if (lf !== -1 && lf < p) lf = v.indexOf(LF, p);
      if (cr !== -1 && cr < p) cr = v.indexOf(CR, p);
      const q = lf === -1 ? (cr === -1 ? v.length : cr) : cr === -1 ? lf : Math.min(lf, cr);
      if (startsWith(v, p, q, "data") && (q - p === 4 || v[p + 4] === COLON)) {
        dataLines++;
        vs = Math.min(q, p + 5 + (v[p + 5] === SPACE ? 1 : 0));
        ve = q;
      }
      p = v[q] === CR && v[q + 1] === LF ? q + 2 : q + 1;
    }
    if (dataLines === 1 && v[vs] === LBRACE) {
      const span = findTopLevelMember(v, vs, ve, "usage");
      if (span !== null && isNull(v, span.valueStart, span.valueEnd)) {
        const [cutStart, cutEnd] = memberCut(v, vs, span.keyStart, span.valueEnd, ve);
        this.strippedMembers++;
        this.#w.emit(b, s, s + cutStart);
        this.#w.emit(b, s + cutEnd, e);
        return false;
      }
      if (span !== null) {
        const o = parseJsonSlice(v, vs, ve);
        if (isObject(o) && isObject(o.usage)) {
          this.rawUsage = o.usage;
          if (typeof o.model === "string") this.model = o.model;
          if (typeof o.service_tier === "string") this.serviceTier = o.service_tier;
          if (Array.isArray(o.choices) && o.choices.length === 0) {
            this.droppedEvents++;
            return true;
          }
        }
      }
    } else if (dataLines === 1 && ve - vs === 6 && startsWith(v, vs, ve, "[DONE]")) {
      this.sawDone = true;
    }
    this.#w.emit(b, s, e);
    return false;
  }
}

/** Whether `b[s, e)` starts with the ASCII `text`. */
function startsWith(b: Uint8Array, s: number, e: number, text: string): boolean {
  if (e - s < text.length) return false;
  for (let i = 0; i < text.length; i++) if (b[s + i] !== text.charCodeAt(i)) return false;
  return true;
}

function isNull(b: Uint8Array, s: number, e: number): boolean {
  return e - s === 4 && startsWith(b, s, e, "null");
}
