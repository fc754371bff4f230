/**
 * Incremental sniffer for the text fields of a `multipart/form-data` body (RFC 7578, RFC 2046),
 * e.g. `model` and `language` of an audio transcription upload. It sees the body chunk by chunk
 * as it is forwarded: the bytes of other parts (files) are skipped by searching for the next
 * `CRLF--boundary` across chunk boundaries, never buffered. Pure: no I/O.
 *
 * Reference semantics: `new Response(body, { headers }).formData()`. `get` is the first value of
 * a name (`FormData.get`); a part named like a requested field that carries a `filename` is
 * present (`has`) without a value. Stricter than Deno's parser, to leave no room for parsers to
 * disagree: a body without its close delimiter, a delimiter followed by anything but `--` or
 * padding + CRLF, two `Content-Disposition` headers or two `name` parameters in a part, and a
 * backslash in a part name (other parsers unescape it) are errors. Parameter names are matched
 * case-insensitively (Deno: case-sensitively); percent-escapes in names are not decoded (as Deno);
 * a leading BOM of a value is kept (Deno drops it); parts without a name are skipped (as Deno).
 */
import { SniffedFields } from "./sniffed_fields.ts";

/** Options for {@link MultipartFieldSniffer}. */
export interface MultipartSnifferOptions {
  /** Max bytes of a captured field value (default 4096); longer is an error. */
  valueBytesMax?: number;
  /** Max bytes of the headers of one part (default 16384); longer is an error. */
  headerBytesMax?: number;
}

/** A header value split into its type and parameters (names lowercased, every occurrence). */
export interface HeaderParams {
  type: string;
  params: Map<string, string[]>;
}

const PREAMBLE = 0, BODY = 1, TAIL = 2, TAIL_DASH = 3, TAIL_PAD = 4, TAIL_LF = 5, HEADERS = 6;
const EPILOGUE = 7, FAIL = 8;
const CR = 0x0d, LF = 0x0a;
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const PARAM = /\s*;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^\s;"]*))/y;
/** RFC 2046 §5.1.1 boundary: 1 to 70 bchars, not ending in a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** Parses `type; a=b; c="d"` (quoted strings without escapes, as HTML and RFC 7578 write them). */
export function parseHeaderParams(value: string): HeaderParams | undefined {
  const head = /^\s*([^\s;]+)/.exec(value);
  if (!head) return undefined;
  const params = new Map<string, string[]>();
  let at = head[0].length;
  while (!/^[\s;]*$/.test(value.slice(at))) {
    PARAM.lastIndex = at;
    const p = PARAM.exec(value);
    if (!p) return undefined;
    const name = p[1]!.toLowerCase();
    params.set(name, [...params.get(name) ?? [], p[2] ?? p[3]!]);
    at = PARAM.lastIndex;
  }
  return { type: head[1]!.toLowerCase(), params };
}

/** Streams a multipart/form-data body and reports the text values of requested parts. */
export class MultipartFieldSniffer extends SniffedFields<string> {
  #st = PREAMBLE;
  #pos = 0; // body offset of the current chunk
  #delim = new Uint8Array(0); // CRLF "--" boundary
  #k = 2; // delimiter bytes matched before this point; the body starts as if after a CRLF
  #virtual = 2; // leading bytes of those that are not content (the CRLF before a part's content)
  #capField = -1; // field whose value is the current part
  #buf: Uint8Array;
  #len = 0;
  #hdr: Uint8Array;
  #hdrLen = 0;
  #crlf = 0; // progress towards the CRLF CRLF that ends the part headers

  /** `contentType`: the request's Content-Type header; `fields`: the part names to capture. */
  constructor(contentType: string, fields: string[], options: MultipartSnifferOptions = {}) {
    super(fields, false);
    this.#buf = new Uint8Array(Math.max(0, options.valueBytesMax ?? 4096));
    this.#hdr = new Uint8Array(Math.max(0, options.headerBytesMax ?? 16384));
    const ct = parseHeaderParams(contentType);
    const boundary = ct?.params.get("boundary");
    if (ct === undefined) this.#fail("unparsable content type");
    else if (ct.type !== "multipart/form-data") {
      this.#fail("content type is not multipart/form-data");
    } else if (boundary?.length !== 1 || !BOUNDARY.test(boundary[0]!)) this.#fail("bad boundary");
    else this.#delim = new TextEncoder().encode(`\r\n--${boundary[0]}`);
  }

  /** Feeds the next chunk. Never throws; malformed input sets `error`. */
  push(chunk: Uint8Array): void {
    if (this.ended) this.#fail("push() after end()");
    for (let i = 0; i < chunk.length && this.error === undefined;) i = this.#step(chunk, i);
    this.#pos += chunk.length;
  }

  /** Marks the end of the body; a body without its close delimiter sets `error`. */
  end(): void {
    if (this.#st !== EPILOGUE && !this.ended) this.#fail("truncated body (no close delimiter)");
    this.ended = true;
  }

  #fail(why: string, at = 0): number {
    this.error ??= `invalid multipart body at byte ${this.#pos + at}: ${why}`;
    this.#st = FAIL;
    return at;
  }

  /** Consumes bytes of `b` from `i` in the current state; returns where it stopped. */
  #step(b: Uint8Array, i: number): number {
    const c = b[i]!;
    switch (this.#st) {
      case PREAMBLE:
      case BODY:
        return this.#scanBody(b, i);
      case TAIL: // after "--boundary": "--" closes the body, else padding and CRLF
        this.#st = c === 0x2d ? TAIL_DASH : c === 0x20 || c === 0x09 ? TAIL_PAD : TAIL_LF;
        if (this.#st === TAIL_LF && c !== CR) return this.#fail("bad delimiter line", i);
        return i + 1;
      case TAIL_DASH:
        if (c !== 0x2d) return this.#fail("bad close delimiter", i);
        return (this.#st = EPILOGUE), i + 1;
      case TAIL_PAD:
        if (c === CR) this.#st = TAIL_LF;
        else if (c !== 0x20 && c !== 0x09) return this.#fail("bad delimiter line", i);
        return i + 1;
      case TAIL_LF:
        if (c !== LF) return this.#fail("bad delimiter line", i);
        this.#st = HEADERS, this.#hdrLen = 0, this.#crlf = 2; // headers may be empty
        return i + 1;
      case HEADERS:
        return this.#scanHeaders(b, i);
      default: // EPILOGUE is ignored; FAIL is not reached
        return b.length;
    }
  }

  #scanHeaders(b: Uint8Array, i: number): number {
    for (; i < b.length; i++) {
      const c = b[i]!, s = this.#crlf;
      if (this.#hdrLen === this.#hdr.length) return this.#fail("part headers too long", i);
      this.#hdr[this.#hdrLen++] = c;
      this.#crlf = c === CR ? (s === 2 ? 3 : 1) : c === LF && (s === 1 || s === 3) ? s + 1 : 0;
      if (this.#crlf === 4) {
        this.#partStart(i);
        return i + 1;
      }
    }
    return i;
  }

  /** Reads the headers of a part: which field (if any) its content is the value of. */
  #partStart(at: number): void {
    // The CRLF that ends the headers could also be the start of a delimiter (RFC 2046 allows a
    // part without content): a content that starts with "--boundary" is ambiguous, so an error.
    this.#st = BODY, this.#k = this.#virtual = 2, this.#capField = -1, this.#len = 0;
    let disposition: string | undefined;
    for (const line of decoder.decode(this.#hdr.subarray(0, this.#hdrLen)).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== "content-disposition") {
        continue;
      }
      if (disposition !== undefined) return void this.#fail("two Content-Disposition", at);
      disposition = line.slice(colon + 1);
    }
    if (disposition === undefined) return;
    const params = parseHeaderParams(disposition)?.params;
    const names = params?.get("name");
    if (!params) return void this.#fail("bad Content-Disposition", at);
    if (names === undefined) return;
    if (names.length > 1) return void this.#fail("two name parameters", at);
    if (names[0]!.includes("\\")) return void this.#fail("backslash in a part name", at);
    const f = this.index.get(names[0]!);
    if (f === undefined) return;
    if (params.has("filename")) this.record(f, undefined, false); // a file: not captured
    else this.#capField = f;
  }

  /** Appends content bytes to the captured value, if any; false after an error. */
  #content(b: Uint8Array, from: number, to: number, at: number): boolean {
    if (this.#capField < 0 || from === to) return true;
    if (this.#len + to - from > this.#buf.length) {
      const name = this.names[this.#capField];
      return this.#fail(`value of "${name}" exceeds ${this.#buf.length} bytes`, at), false;
    }
    this.#buf.set(b.subarray(from, to), this.#len);
    this.#len += to - from;
    return true;
  }

  /** Skips or captures part content up to the next delimiter (kept partial across chunks). */
  #scanBody(b: Uint8Array, i: number): number {
    const d = this.#delim, last = d.length, n = b.length;
    while (this.#k > 0 && i < n) { // a delimiter prefix held over from the previous chunk
      if (b[i] === d[this.#k]) {
        i++;
        if (++this.#k < last) continue;
        if (this.#virtual === 0 || this.#st === PREAMBLE) return this.#found(i);
        return this.#fail("part content starts with the boundary", i);
      } else if (!this.#content(d, this.#virtual, this.#k, i)) return n;
      else this.#k = this.#virtual = 0; // the only CR is the first byte: no shorter prefix matches
    }
    for (const from = i; i < n;) {
      const j = b.indexOf(CR, i);
      if (j < 0) return this.#content(b, from, n, n), n;
      let m = 1;
      while (m < last && j + m < n && b[j + m] === d[m]) m++;
      if (m === last) return this.#content(b, from, j, j) ? this.#found(j + last) : n;
      if (j + m === n) return this.#content(b, from, j, j), this.#k = m, n;
      i = j + 1;
    }
    return n;
  }

  #found(i: number): number {
    if (this.#capField >= 0) {
      this.record(this.#capField, decoder.decode(this.#buf.subarray(0, this.#len)), true);
    }
    this.#st = TAIL, this.#k = 0, this.#capField = -1;
    return i;
  }
}
