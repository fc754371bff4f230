/**
 * Incremental sniffer for top-level fields of a JSON object body (e.g. `model`, `stream`) that
 * sees the body chunk by chunk as it is forwarded and never holds it. Pure: no I/O.
 *
 * It validates the whole JSON grammar (RFC 8259, as `JSON.parse` after a UTF-8 decode that strips
 * one leading BOM, like `Response.json()`), so a body it accepts parses the same way everywhere
 * that is strict. Values of requested keys at depth 1 are captured; the same name deeper down is
 * ignored. Duplicate top-level keys: `JSON.parse` keeps the LAST one, so values are final only at
 * the end of the body — `get()` is the last value seen (final once `done`), `getEarly()` the first
 * (usable for routing as soon as `ready`), and `conflict()` flags a later duplicate that differed
 * (or any duplicate object/array value, which is not compared): the gateway rejects those bodies.
 */

import { ESCAPED, HEX_DIGIT, N_FINAL, N_START, NUM_NEXT, STR_STOP, WS } from "./json_grammar.ts";
import { SniffedFields } from "./sniffed_fields.ts";

/** A captured top-level value; objects and arrays are reported as `undefined` (see `has`). */
export type JsonScalar = string | number | boolean | null | undefined;

/** Options for {@link JsonTopLevelSniffer}. */
export interface JsonSnifferOptions {
  /** Max raw bytes of a captured value (string as written, or number); default 4096. */
  valueBytesMax?: number;
  /** Max nesting depth of the body (default 4096); deeper is an error, as at most vendors. */
  depthMax?: number;
}

// Grammar states.
const START = 0, VALUE = 1, VALUE_OR_CLOSE = 2, KEY_OR_CLOSE = 3, KEY = 4, COLON = 5, AFTER = 6;
const STR = 7, ESC = 8, HEX = 9, NUM = 10, LIT = 11, END = 12, FAIL = 13;
const CAP_NONE = 0, CAP_KEY = 1, CAP_VALUE = 2;
/** The literals, and a UTF-8 byte order mark (accepted once, at the start of a body). */
const LITERALS = ["true", "false", "null", "\ufeff"].map((s) => new TextEncoder().encode(s));
const LIT_VALUES = [true, false, null], BOM = 3;
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** Streams a JSON body through a state machine and reports requested top-level fields. */
export class JsonTopLevelSniffer extends SniffedFields<JsonScalar> {
  #st = START;
  #pos = 0; // body offset of the current chunk
  #stack: number[] = []; // per open container: 1 object, 0 array
  #depthMax: number;
  #num = 0; // number sub-state
  #lit = 0; // index into LITERALS
  #litPos = 0;
  #hex = 0; // \uXXXX digits left
  #field = -1; // field whose value comes next (after a matched depth-1 key); -2 in a key
  #capField = -1; // field whose value is being read
  #cap = CAP_NONE;
  #buf: Uint8Array; // raw bytes of the captured key or value
  #len = 0;
  #keyMax: number;
  #valueMax: number;

  /** `fields`: top-level key names to capture. */
  constructor(fields: string[], options: JsonSnifferOptions = {}) {
    super(fields, true);
    this.#depthMax = options.depthMax ?? 4096;
    // A key that decodes to a name of L UTF-16 units has at most 6·L raw bytes (`\uXXXX`).
    this.#keyMax = 6 * Math.max(0, ...this.names.map((n) => n.length));
    this.#valueMax = Math.max(0, options.valueBytesMax ?? 4096);
    this.#buf = new Uint8Array(Math.max(this.#valueMax, this.#keyMax));
  }

  /** Feeds the next chunk. Never throws; malformed input sets `error`. */
  push(chunk: Uint8Array): void {
    if (this.ended) this.#fail(0, "push() after end()");
    if (this.error !== undefined) return;
    this.#scan(chunk);
    this.#pos += chunk.length;
  }

  /** Marks the end of the body; a body that is not one complete JSON object sets `error`. */
  end(): void {
    if (this.ended) return;
    if (this.error === undefined && this.#st !== END) {
      this.#fail(0, this.#pos === 0 ? "empty body" : "unexpected end of body");
    }
    this.ended = true;
  }

  #fail(at: number, why: string): void {
    this.error ??= `invalid JSON body at byte ${this.#pos + at}: ${why}`;
    this.#st = FAIL;
  }

  /** Appends b[from, to) to the capture buffer; false (and `error`) if a value is too long. */
  #append(b: Uint8Array, from: number, to: number): boolean {
    const max = this.#cap === CAP_KEY ? this.#keyMax : this.#valueMax, n = to - from;
    if (this.#len + n > max) {
      if (this.#cap === CAP_KEY) return (this.#len = max + 1, this.#cap = CAP_NONE), true;
      this.#fail(to, `value of "${this.names[this.#capField]}" exceeds ${max} bytes`);
      return false;
    }
    if (n > 0) this.#buf.set(b.subarray(from, to), this.#len), this.#len += n;
    return true;
  }

  /** Ends a string or number capture at b[..to), records the value or matches the key. */
  #finishCapture(b: Uint8Array, from: number, to: number, isNumber: boolean): void {
    const kind = this.#cap;
    if (kind === CAP_NONE) return void (this.#len = 0);
    if (!this.#append(b, from, to)) return;
    this.#cap = CAP_NONE;
    const raw = this.#buf.subarray(0, this.#len);
    this.#len = 0;
    let text = decoder.decode(raw);
    if (isNumber) return this.record(this.#capField, Number(text), true);
    if (raw.includes(0x5c)) text = JSON.parse(`"${text}"`); // escapes were validated
    if (kind === CAP_VALUE) this.record(this.#capField, text, true);
    else this.#field = this.index.get(text) ?? -1;
  }

  #scan(b: Uint8Array): void {
    const n = b.length;
    let i = 0, from = this.#cap !== CAP_NONE ? 0 : -1; // start of the capture in this chunk
    while (i < n) {
      switch (this.#st) {
        case STR: {
          // Fast path: skip plain bytes and two-byte escapes without leaving the loop.
          while (i < n) {
            if (STR_STOP[b[i]!] === 0) i++;
            else if (b[i] === 0x5c && i + 1 < n && ESCAPED[b[i + 1]!] === 1) i += 2;
            else break;
          }
          if (i === n) break;
          const c = b[i]!;
          if (c === 0x5c) this.#st = ESC;
          else if (c !== 0x22) return this.#fail(i, "control character in string");
          else {
            const isKey = this.#field === -2;
            this.#finishCapture(b, from, i, false);
            if (this.error !== undefined) return;
            from = -1, this.#st = isKey ? COLON : AFTER;
          }
          i++;
          break;
        }
        case ESC: {
          const c = b[i++]!;
          if (c === 0x75) this.#st = HEX, this.#hex = 4;
          else if (ESCAPED[c] === 1) this.#st = STR;
          else return this.#fail(i - 1, "bad escape");
          break;
        }
        case HEX: {
          if (HEX_DIGIT[b[i++]!] !== 1) return this.#fail(i - 1, "bad \\u escape");
          if (--this.#hex === 0) this.#st = STR;
          break;
        }
        case NUM: {
          let s = this.#num, t = 0;
          while (i < n && (t = NUM_NEXT[s << 8 | b[i]!]!) >= 0) s = t, i++;
          this.#num = s;
          if (i === n) break;
          if (((N_FINAL >> s) & 1) === 0) return this.#fail(i, "bad number");
          this.#finishCapture(b, from, i, true);
          if (this.error !== undefined) return;
          from = -1, this.#st = AFTER; // `c` is handled as the byte after the value
          break;
        }
        case LIT: {
          const lit = LITERALS[this.#lit]!;
          if (b[i] !== lit[this.#litPos]) return this.#fail(i, "unexpected character");
          i++;
          if (++this.#litPos < lit.length) break;
          if (this.#lit === BOM) this.#st = START;
          else {
            if (this.#capField >= 0) this.record(this.#capField, LIT_VALUES[this.#lit]!, true);
            this.#capField = -1, this.#st = AFTER;
          }
          break;
        }
        default: {
          const c = b[i]!;
          if (WS[c] === 1) {
            i++;
            break;
          }
          if (!this.#token(c, i)) return;
          if (this.#cap !== CAP_NONE) from = this.#st === STR ? i + 1 : i;
          i++;
        }
      }
    }
    if (from >= 0 && this.#cap !== CAP_NONE) this.#append(b, from, n);
  }

  /** A structural byte `c` outside strings, numbers and literals. False after an error. */
  #token(c: number, i: number): boolean {
    const st = this.#st, top = this.#stack.at(-1);
    if (st === START) {
      if (c === 0xef && this.#pos + i === 0) {
        return (this.#st = LIT, this.#lit = BOM, this.#litPos = 1), true;
      }
      if (c !== 0x7b) return this.#fail(i, "body is not a JSON object"), false;
      return this.#open(1, i);
    }
    if (st === VALUE || st === VALUE_OR_CLOSE) {
      if (c === 0x5d && st === VALUE_OR_CLOSE) return this.#close();
      const f = this.#field;
      this.#field = -1;
      this.#capField = f;
      if (c === 0x7b || c === 0x5b) {
        if (f >= 0) this.record(f, undefined, false);
        return this.#open(c === 0x7b ? 1 : 0, i);
      }
      if (c === 0x22) this.#st = STR;
      else if (NUM_NEXT[N_START << 8 | c]! >= 0) {
        this.#st = NUM, this.#num = NUM_NEXT[N_START << 8 | c]!;
      } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
        this.#st = LIT, this.#lit = c === 0x74 ? 0 : c === 0x66 ? 1 : 2, this.#litPos = 1;
        return true;
      } else return this.#fail(i, "expected a value"), false;
      if (f >= 0) this.#cap = CAP_VALUE, this.#len = 0;
      return true;
    }
    if (st === KEY_OR_CLOSE || st === KEY) {
      if (c === 0x7d && st === KEY_OR_CLOSE) return this.#close();
      if (c !== 0x22) return this.#fail(i, "expected a key"), false;
      this.#st = STR, this.#field = -2; // -2: reading a key
      if (this.#stack.length === 1) this.#cap = CAP_KEY, this.#len = 0;
      return true;
    }
    if (st === COLON) {
      if (c !== 0x3a) return this.#fail(i, "expected ':'"), false;
      if (this.#field === -2) this.#field = -1;
      return (this.#st = VALUE), true;
    }
    if (st === AFTER) {
      if (c === 0x2c) return (this.#st = top === 1 ? KEY : VALUE), true;
      if (c === (top === 1 ? 0x7d : 0x5d)) return this.#close();
      return this.#fail(i, "expected ',' or a closing bracket"), false;
    }
    return this.#fail(i, "data after the JSON object"), false; // END
  }

  #open(kind: number, i: number): boolean {
    if (this.#stack.length >= this.#depthMax) return this.#fail(i, "nesting too deep"), false;
    this.#stack.push(kind);
    this.#capField = -1;
    return (this.#st = kind === 1 ? KEY_OR_CLOSE : VALUE_OR_CLOSE), true;
  }

  #close(): boolean {
    this.#stack.pop();
    this.#st = this.#stack.length === 0 ? END : AFTER;
    return true;
  }
}
