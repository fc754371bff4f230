/**
 * `application/vnd.amazon.eventstream` codec (big-endian):
 * `total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | message_crc u32`,
 * each header `name_len u8 | name | type u8 | value` (0 true, 1 false, 2 byte, 3 short, 4 int,
 * 5 long, 6 bytes u16-len, 7 string u16-len, 8 timestamp ms i64, 9 uuid 16 bytes).
 *
 * The decoder is incremental (chunk boundaries anywhere), bounded (`messageBytesMax`), and every
 * malformed input throws `EventStreamError`, never anything else.
 */
import { crc32 } from "./crc32.ts";

/** AWS's limits: a message ≤ 16 MiB of payload, headers ≤ 128 KiB. */
export const eventStreamMessageBytesMax = 16 * 1024 * 1024 + 128 * 1024 + 16;
export const eventStreamHeadersBytesMax = 128 * 1024;
const PRELUDE_BYTES = 12;
const OVERHEAD_BYTES = 16;

export type HeaderValue =
  | { type: "bool"; value: boolean }
  | { type: "byte" | "short" | "int"; value: number }
  | { type: "long" | "timestamp"; value: bigint }
  | { type: "bytes" | "uuid"; value: Uint8Array }
  | { type: "string"; value: string };

export interface EventStreamMessage {
  headers: Record<string, HeaderValue>;
  payload: Uint8Array;
}

export type EventStreamErrorReason =
  | "prelude_crc"
  | "message_crc"
  | "truncated"
  | "too_large"
  | "bad_length"
  | "bad_header";

export class EventStreamError extends SyntaxError {
  override name = "EventStreamError";
  constructor(readonly reason: EventStreamErrorReason, message: string) {
    super(`Cannot decode event stream: ${message}`);
  }
}

const TYPE_CODES = {
  byte: 2,
  short: 3,
  int: 4,
  long: 5,
  bytes: 6,
  string: 7,
  timestamp: 8,
  uuid: 9,
} as const;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** Encodes one message; a plain string header value is a type-7 string. */
export function encodeMessage(
  msg: { headers?: Record<string, string | HeaderValue>; payload?: Uint8Array | string },
): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, raw] of Object.entries(msg.headers ?? {})) {
    const v: HeaderValue = typeof raw === "string" ? { type: "string", value: raw } : raw;
    const n = enc.encode(name);
    if (n.length < 1 || n.length > 255) throw new RangeError(`Header name "${name}" length`);
    let body = new Uint8Array(0);
    const dv = (len: number) => new DataView((body = new Uint8Array(len)).buffer);
    switch (v.type) {
      case "bool":
        body = new Uint8Array([v.value ? 0 : 1]);
        break;
      case "byte":
        dv(2).setInt8(1, v.value);
        break;
      case "short":
        dv(3).setInt16(1, v.value);
        break;
      case "int":
        dv(5).setInt32(1, v.value);
        break;
      case "long":
      case "timestamp":
        dv(9).setBigInt64(1, v.value);
        break;
      case "uuid":
        if (v.value.length !== 16) throw new RangeError("A uuid header value is 16 bytes");
        body = new Uint8Array(17);
        body.set(v.value, 1);
        break;
      case "bytes":
      case "string": {
        const b = typeof v.value === "string" ? enc.encode(v.value) : v.value;
        if (b.length > 0xffff) throw new RangeError(`Header "${name}" value exceeds 65535 bytes`);
        dv(3 + b.length).setUint16(1, b.length);
        body.set(b, 3);
      }
    }
    if (v.type !== "bool") body[0] = TYPE_CODES[v.type];
    parts.push(new Uint8Array([n.length]), n, body);
  }
  const headersLen = parts.reduce((s, p) => s + p.length, 0);
  const payload = typeof msg.payload === "string" ? enc.encode(msg.payload) : msg.payload ??
    new Uint8Array(0);
  const total = OVERHEAD_BYTES + headersLen + payload.length;
  if (headersLen > eventStreamHeadersBytesMax || total > eventStreamMessageBytesMax) {
    throw new RangeError(`Event stream message of ${total} bytes is too large`);
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, total);
  view.setUint32(4, headersLen);
  view.setUint32(8, crc32(out, 0, 8));
  let at = PRELUDE_BYTES;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  out.set(payload, at);
  view.setUint32(total - 4, crc32(out, 0, total - 4));
  return out;
}

/** Validates a prelude (12 bytes available at `at`); returns the total length. */
function checkPrelude(buf: Uint8Array, at: number, max: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset + at, PRELUDE_BYTES);
  const total = view.getUint32(0), headersLen = view.getUint32(4);
  if (crc32(buf, at, at + 8) !== view.getUint32(8)) {
    throw new EventStreamError("prelude_crc", "prelude CRC mismatch");
  }
  if (total < OVERHEAD_BYTES) throw new EventStreamError("bad_length", `total ${total} < 16`);
  if (total > max) throw new EventStreamError("too_large", `message of ${total} bytes > ${max}`);
  if (headersLen > total - OVERHEAD_BYTES || headersLen > eventStreamHeadersBytesMax) {
    throw new EventStreamError("bad_length", `headers length ${headersLen} exceeds the message`);
  }
  return total;
}

function decodeHeaders(b: Uint8Array): Record<string, HeaderValue> {
  const view = new DataView(b.buffer, b.byteOffset, b.length);
  const out: Record<string, HeaderValue> = Object.create(null);
  let at = 0;
  const need = (n: number) => {
    if (at + n > b.length) throw new EventStreamError("bad_header", "header runs past its block");
  };
  while (at < b.length) {
    const nameLen = b[at++]!;
    if (nameLen === 0) throw new EventStreamError("bad_header", "empty header name");
    need(nameLen + 1);
    let name: string;
    try {
      name = dec.decode(b.subarray(at, at + nameLen));
    } catch {
      throw new EventStreamError("bad_header", "header name is not UTF-8");
    }
    at += nameLen;
    if (name in out) throw new EventStreamError("bad_header", `duplicate header ${name}`);
    const type = b[at++]!;
    let v: HeaderValue;
    if (type === 0 || type === 1) v = { type: "bool", value: type === 0 };
    else if (type === 2) need(1), v = { type: "byte", value: view.getInt8(at) }, at += 1;
    else if (type === 3) need(2), v = { type: "short", value: view.getInt16(at) }, at += 2;
    else if (type === 4) need(4), v = { type: "int", value: view.getInt32(at) }, at += 4;
    else if (type === 5 || type === 8) {
      need(8);
      v = { type: type === 5 ? "long" : "timestamp", value: view.getBigInt64(at) };
      at += 8;
    } else if (type === 9) need(16), v = { type: "uuid", value: b.slice(at, at + 16) }, at += 16;
    else if (type === 6 || type === 7) {
      need(2);
      const len = view.getUint16(at);
      at += 2;
      need(len);
      const raw = b.slice(at, at + len);
      at += len;
      try {
        v = type === 6 ? { type: "bytes", value: raw } : { type: "string", value: dec.decode(raw) };
      } catch {
        throw new EventStreamError("bad_header", `header ${name} is not UTF-8`);
      }
    } else throw new EventStreamError("bad_header", `header ${name} has unknown type ${type}`);
    out[name] = v;
  }
  return out;
}

/** Decodes exactly one complete message. */
export function decodeMessage(
  bytes: Uint8Array,
  messageBytesMax = eventStreamMessageBytesMax,
): EventStreamMessage {
  if (bytes.length < PRELUDE_BYTES) throw new EventStreamError("truncated", "short prelude");
  const total = checkPrelude(bytes, 0, messageBytesMax);
  if (bytes.length !== total) {
    const reason = bytes.length < total ? "truncated" : "bad_length";
    throw new EventStreamError(reason, `${bytes.length} bytes for a ${total}-byte message`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (crc32(bytes, 0, total - 4) !== view.getUint32(total - 4)) {
    throw new EventStreamError("message_crc", "message CRC mismatch");
  }
  const headersLen = view.getUint32(4);
  const headers = decodeHeaders(bytes.subarray(PRELUDE_BYTES, PRELUDE_BYTES + headersLen));
  return { headers, payload: bytes.slice(PRELUDE_BYTES + headersLen, total - 4) };
}

/** Incremental decoder: `push` chunks, collect messages; `end()` rejects a partial message. */
export class EventStreamDecoder {
  #buf = new Uint8Array(0);
  #len = 0;
  #failed: EventStreamError | null = null;
  constructor(readonly messageBytesMax = eventStreamMessageBytesMax) {}

  push(chunk: Uint8Array): EventStreamMessage[] {
    if (this.#failed) throw this.#failed;
    try {
      return this.#push(chunk);
    } catch (e) {
      if (e instanceof EventStreamError) this.#failed = e;
      throw e;
    }
  }

  #push(chunk: Uint8Array): EventStreamMessage[] {
    if (this.#len + chunk.length > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#len + chunk.length, this.#buf.length * 2, 1024));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
    const out: EventStreamMessage[] = [];
    let at = 0;
    while (this.#len - at >= PRELUDE_BYTES) {
      const total = checkPrelude(this.#buf, at, this.messageBytesMax);
      if (this.#len - at < total) break;
      out.push(decodeMessage(this.#buf.subarray(at, at + total), this.messageBytesMax));
      at += total;
    }
    this.#buf.copyWithin(0, at, this.#len);
    this.#len -= at;
    return out;
  }

  /** Bytes buffered toward the next message. */
  get pendingBytes(): number {
    return this.#len;
  }

  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#len > 0) {
      throw (this.#failed = new EventStreamError("truncated", `${this.#len} bytes left at end`));
    }
  }
}

/** A TransformStream from raw bytes to messages (errors the stream with `EventStreamError`). */
export function eventStreamDecoderStream(
  messageBytesMax = eventStreamMessageBytesMax,
): TransformStream<Uint8Array, EventStreamMessage> {
  const d = new EventStreamDecoder(messageBytesMax);
  return new TransformStream({
    transform: (chunk, ctl) => d.push(chunk).forEach((m) => ctl.enqueue(m)),
    flush: () => d.end(),
  });
}
