/**
 * WebSocket messages inside a tunnel stream (OpenAI Realtime and any other upgrade relay).
 *
 * A realtime session is an ordinary tunnel stream: REQUEST (GET, with the header
 * `upgrade: websocket` — hop-by-hop, so no HTTP request ever carries it through the tunnel) →
 * RESPONSE_HEAD (101 once the agent's upstream socket is open, else the vendor's HTTP answer) →
 * body frames in both directions → RESPONSE_END (summed usage). The body bytes of each direction
 * are a sequence of records, so the existing per-stream credit flow control bounds every buffer:
 *
 * ```
 * | kind u8 (1 text, 2 binary, 3 close) | length u32 BE | payload (≤ realtimeMessageBytesMax) |
 * ```
 *
 * A close record's payload is `code u16 BE ‖ UTF-8 reason`; it is the last record of its direction
 * (the FIN body frame follows). Records may span body frames; a decoder keeps at most one
 * incomplete record.
 */
import { concatBytes } from "./http.ts";

export const REALTIME_UPGRADE_HEADER = "upgrade";
export const REALTIME_UPGRADE_VALUE = "websocket";

/** Largest relayed message; OpenAI documents 15 MiB for one `input_audio_buffer.append`. */
export const REALTIME_MESSAGE_BYTES_MAX = 16 * 1024 * 1024;
/** Record header: kind u8 + length u32. */
const HEADER_BYTES = 5;

export const RecordKind = { text: 1, binary: 2, close: 3 } as const;

export type RealtimeRecord =
  | { kind: "text"; data: string }
  | { kind: "binary"; data: Uint8Array }
  | { kind: "close"; code: number; reason: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** True for a REQUEST frame's headers that open a WebSocket relay rather than an HTTP call. */
export function isUpgradeRequest(headers: Record<string, string>): boolean {
  return headers[REALTIME_UPGRADE_HEADER]?.toLowerCase() === REALTIME_UPGRADE_VALUE;
}

/** Encodes one record; throws RangeError above the message bound. */
export function encodeRecord(record: RealtimeRecord): Uint8Array {
  let kind: number;
  let payload: Uint8Array;
  if (record.kind === "close") {
    const reason = encoder.encode(record.reason).subarray(0, 123); // a close frame's reason bound
    payload = new Uint8Array(2 + reason.length);
    new DataView(payload.buffer).setUint16(0, record.code);
    payload.set(reason, 2);
    kind = RecordKind.close;
  } else {
    payload = record.kind === "text" ? encoder.encode(record.data) : record.data;
    kind = record.kind === "text" ? RecordKind.text : RecordKind.binary;
  }
  if (payload.length > REALTIME_MESSAGE_BYTES_MAX) {
    throw new RangeError(
      `realtime message of ${payload.length} bytes is above ${REALTIME_MESSAGE_BYTES_MAX}`,
    );
  }
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, HEADER_BYTES);
  return out;
}

export class RecordDecodeError extends Error {
  override name = "RecordDecodeError";
}

/** Splits arriving body chunks into records; throws `RecordDecodeError` on anything malformed. */
export class RecordDecoder {
  #chunks: Uint8Array[] = [];
  #size = 0;

  constructor(readonly maxBytes: number = REALTIME_MESSAGE_BYTES_MAX) {}

  /** Bytes held for a record not yet complete. */
  get pendingBytes(): number {
    return this.#size;
  }

  push(chunk: Uint8Array): RealtimeRecord[] {
    if (chunk.length) {
      this.#chunks.push(chunk);
      this.#size += chunk.length;
    }
    const out: RealtimeRecord[] = [];
    for (;;) {
      if (this.#size < HEADER_BYTES) break;
      if (this.#chunks[0]!.length < HEADER_BYTES) this.#flatten();
      const head = this.#chunks[0]!;
      const view = new DataView(head.buffer, head.byteOffset, HEADER_BYTES);
      const kind = view.getUint8(0);
      const length = view.getUint32(1);
      if (kind < RecordKind.text || kind > RecordKind.close) {
        throw new RecordDecodeError(`record kind ${kind} is unknown`);
      }
      if (length > this.maxBytes) {
        throw new RecordDecodeError(`record of ${length} bytes is above ${this.maxBytes}`);
      }
      // Copy the pieces together only once the whole record is here (no quadratic re-copying).
      if (this.#size < HEADER_BYTES + length) break;
      const buf = this.#flatten();
      const payload = buf.subarray(HEADER_BYTES, HEADER_BYTES + length);
      const rest = buf.subarray(HEADER_BYTES + length);
      this.#chunks = rest.length ? [rest] : [];
      this.#size = rest.length;
      out.push(decodePayload(kind, payload));
    }
    return out;
  }

  #flatten(): Uint8Array {
    if (this.#chunks.length > 1) this.#chunks = [concatBytes(this.#chunks, this.#size)];
    return this.#chunks[0]!;
  }
}

function decodePayload(kind: number, payload: Uint8Array): RealtimeRecord {
  if (kind === RecordKind.binary) return { kind: "binary", data: payload.slice() };
  try {
    if (kind === RecordKind.text) return { kind: "text", data: decoder.decode(payload) };
    if (payload.length < 2) throw new RecordDecodeError("close record without a code");
    const code = new DataView(payload.buffer, payload.byteOffset, 2).getUint16(0);
    return { kind: "close", code, reason: decoder.decode(payload.subarray(2)) };
  } catch (e) {
    if (e instanceof RecordDecodeError) throw e;
    throw new RecordDecodeError("record text is not valid UTF-8");
  }
}

/**
 * A close code the WebSocket API can send on: 1000 or 3000–4999 pass through; the codes a peer
 * may receive but an endpoint may not send (1005 none, 1006 abnormal, 1015 TLS) become 1000
 * (nothing went wrong on our side) and other protocol codes pass where Deno and ws accept them.
 */
export function sendableCloseCode(code: number): number {
  if (code === 1005 || code === 1006 || code === 1015) return 1000;
  if (code === 1000 || (code >= 3000 && code <= 4999)) return code;
  if (code >= 1001 && code <= 1014 && code !== 1004) return code;
  return 1000;
}
