/**
 * Incremental Server-Sent Events parser over raw bytes, after the WHATWG "event stream
 * interpretation" (HTML §9.2.6), built for metering every chunk of every response:
 * chunk boundaries may fall anywhere (inside a UTF-8 sequence, between `\r` and `\n`); lines end
 * in `\n`, `\r\n` or `\r`; memory is bounded by `maxEventBytes` per event.
 *
 * Lines are split on bytes (`\r` and `\n` never occur inside a UTF-8 sequence), and only field
 * values are decoded, one `TextDecoder.decode` per line, so no chunk is ever decoded whole.
 */
import { ByteRing } from "./ring.ts";

const LF = 0x0a, CR = 0x0d, COLON = 0x3a, SPACE = 0x20;
const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder(); // not fatal: malformed UTF-8 becomes U+FFFD, as the spec says

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, when the event had a non-empty one. */
  event?: string;
  /** The `data:` lines, joined with `\n`. */
  data: string;
  /**
   * Only with `oversizedTailBytes` > 0, on an event that exceeded `maxEventBytes`: `data` is then
   * just the last bytes of the event's last line (its `data:` prefix removed when still visible).
   */
  truncated?: true;
}

/** Options for {@link SseParser}. */
export interface SseParserOptions {
  /** An event whose lines total more bytes than this is skipped and counted (default 1 MiB). */
  maxEventBytes?: number;
  /** When > 0, oversized events are dispatched truncated to this many trailing bytes (default 0). */
  oversizedTailBytes?: number;
}

/**
 * Feed chunks with `push`, then call `end` once. Events are dispatched at each blank line; `end`
 * also dispatches a final event whose blank line never came (lenient, unlike browsers: for
 * metering, what the vendor did send counts). `id:` updates `lastEventId`; `retry:` and unknown
 * fields are ignored; a leading UTF-8 BOM is skipped.
 */
export class SseParser {
  /** Events that exceeded `maxEventBytes` (skipped, or dispatched truncated). */
  oversizedEvents = 0;
  /** The last `id:` value seen (it persists across events, as in the spec). */
  lastEventId = "";

  readonly #max: number;
  readonly #tail: ByteRing | null;
  #line = new Uint8Array(256); // the current line's bytes from earlier chunks (not when skipping)
  #lineLen = 0;
  #carry = 0; // length of the current line seen in earlier chunks (also counted when skipping)
  #afterCR = false; // the last chunk ended in `\r`: a leading `\n` in the next one belongs to it
  #bom = true;
  #eventBytes = 0;
  #data: string | null = null;
  #type: string | undefined = undefined;
  #lastType = EMPTY; // bytes and text of the last `event:` value, to skip re-decoding it
  #lastTypeText = "";
  #skip = false; // inside an oversized event: nothing is kept but the tail ring
  #tailLineDone = false;

  constructor(options: SseParserOptions = {}) {
    this.#max = options.maxEventBytes ?? 1 << 20;
    const tail = options.oversizedTailBytes ?? 0;
    this.#tail = tail > 0 ? new ByteRing(tail) : null;
  }

  /** Parses `chunk`, calling `onEvent` for each event it completes. Does not keep `chunk`. */
  push(chunk: Uint8Array, onEvent: (e: SseEvent) => void): void {
    const n = chunk.length;
    let pos = 0;
    if (n === 0) return;
    if (this.#afterCR) {
      this.#afterCR = false;
      if (chunk[0] === LF) pos = 1;
    }
    let lf = -2, cr = -2; // next positions of each terminator; -2 unknown, -1 none in this chunk
    while (pos < n) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf(LF, pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf(CR, pos);
      const eol = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (eol === -1) break;
      this.#endLine(chunk, pos, eol, onEvent);
      pos = eol + 1;
      if (chunk[eol] === CR) {
        if (pos === n) this.#afterCR = true;
        else if (chunk[pos] === LF) pos++;
      }
    }
    if (pos < n) this.#partial(chunk, pos, n);
  }

  /** Ends the stream: completes an unterminated last line and dispatches a pending event. */
  end(onEvent: (e: SseEvent) => void): void {
    this.#afterCR = false;
    if (this.#carry > 0) this.#endLine(EMPTY, 0, 0, onEvent);
    if (this.#skip) this.#finishOversized(onEvent);
    else this.#dispatch(onEvent);
  }

  #partial(chunk: Uint8Array, s: number, e: number): void {
    const len = e - s;
    if (!this.#skip && this.#eventBytes + this.#carry + len > this.#max) this.#overflow();
    this.#carry += len;
    if (this.#skip) this.#tailWrite(chunk, s, e);
    else this.#append(chunk, s, e);
  }

  #append(chunk: Uint8Array, s: number, e: number): void {
    const need = this.#lineLen + e - s;
    if (need > this.#line.length) {
      const grown = new Uint8Array(Math.max(need, this.#line.length * 2));
      grown.set(this.#line.subarray(0, this.#lineLen));
      this.#line = grown;
    }
    this.#line.set(chunk.subarray(s, e), this.#lineLen);
    this.#lineLen = need;
  }

  #endLine(chunk: Uint8Array, s: number, e: number, onEvent: (e: SseEvent) => void): void {
    const total = this.#carry + (e - s);
    const bom = this.#bom;
    this.#bom = false;
    this.#carry = 0;
    if (this.#skip) {
      if (total === 0) return this.#finishOversized(onEvent);
      this.#tailWrite(chunk, s, e);
      this.#tailLineDone = true;
      return;
    }
    if (total === 0) return this.#dispatch(onEvent);
    let buf = chunk;
    if (this.#lineLen > 0) {
      this.#append(chunk, s, e);
      buf = this.#line;
      s = 0;
      e = this.#lineLen;
      this.#lineLen = 0;
    }
    this.#eventBytes += total;
    if (this.#eventBytes > this.#max) {
      this.#overflow();
      this.#tailWrite(buf, s, e);
      this.#tailLineDone = true;
      return;
    }
    if (bom && e - s >= 3 && buf[s] === 0xef && buf[s + 1] === 0xbb && buf[s + 2] === 0xbf) s += 3;
    if (s < e) this.#field(buf, s, e);
  }

  #field(b: Uint8Array, s: number, e: number): void {
    if (b[s] === COLON) return; // comment
    let c = s;
    while (c < e && b[c] !== COLON) c++;
    let v = c < e ? c + 1 : e;
    if (v < e && b[v] === SPACE) v++;
    if (isName(b, s, c, "data")) {
      const value = v < e ? decoder.decode(b.subarray(v, e)) : "";
      this.#data = this.#data === null ? value : this.#data + "\n" + value;
    } else if (isName(b, s, c, "event")) {
      this.#type = this.#eventType(b, v, e);
    } else if (isName(b, s, c, "id")) {
      const id = decoder.decode(b.subarray(v, e));
      if (!id.includes("\0")) this.lastEventId = id;
    }
  }

  /** Decodes an `event:` value, reusing the previous string when the bytes repeat (they do). */
  #eventType(b: Uint8Array, s: number, e: number): string {
    const last = this.#lastType;
    if (last.length === e - s) {
      let i = 0;
      while (i < last.length && last[i] === b[s + i]) i++;
      if (i === last.length) return this.#lastTypeText;
    }
    this.#lastType = b.slice(s, e);
    return this.#lastTypeText = decoder.decode(this.#lastType);
  }

  #dispatch(onEvent: (e: SseEvent) => void): void {
    const data = this.#data, type = this.#type;
    this.#eventBytes = 0;
    this.#data = null;
    this.#type = undefined;
    if (data === null) return;
    onEvent(type ? { event: type, data } : { data });
  }

  /** The current event became too large: drop what it holds and only track its tail. */
  #overflow(): void {
    this.#skip = true;
    this.#data = null;
    this.#tail?.reset();
    this.#tailLineDone = false;
    this.#tailWrite(this.#line, 0, this.#lineLen);
    this.#lineLen = 0;
  }

  #tailWrite(b: Uint8Array, s: number, e: number): void {
    if (this.#tail === null || s >= e) return;
    if (this.#tailLineDone) {
      this.#tailLineDone = false;
      this.#tail.reset();
    }
    this.#tail.write(b, s, e);
  }

  #finishOversized(onEvent: (e: SseEvent) => void): void {
    const type = this.#type, tail = this.#tail;
    this.oversizedEvents++;
    this.#skip = false;
    this.#eventBytes = 0;
    this.#type = undefined;
    this.#tailLineDone = false;
    if (tail === null || tail.total === 0) return;
    const total = tail.total;
    let bytes = tail.bytes();
    tail.reset();
    if (bytes.length === total) { // the whole line is visible: drop its field name
      let v = bytes.indexOf(COLON);
      if (v !== -1 && bytes[v + 1] === SPACE) v++;
      bytes = bytes.subarray(v + 1);
    }
    const data = decoder.decode(bytes);
    onEvent(type ? { event: type, data, truncated: true } : { data, truncated: true });
  }
}

/** Whether the field name `b[s, e)` is the ASCII `name`. */
function isName(b: Uint8Array, s: number, e: number, name: string): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (b[s + i] !== name.charCodeAt(i)) return false;
  return true;
}
