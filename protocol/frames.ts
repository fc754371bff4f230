/**
 * The tunnel's wire: every frame type, the protocol version and the codec, in one module.
 *
 * Control frames are JSON text messages `{type, ...}`. Body bytes travel as binary messages
 * with a 12-byte header, so bodies are never base64-encoded or JSON-parsed:
 *
 * ```
 * 0        1      2       3          4             8              12
 * | version | kind | flags | reserved | stream id u32 | length u32 | payload (≤ 64 KiB) |
 * ```
 */
import {
  array,
  B64URL_PATTERN,
  bool,
  type Field,
  FrameDecodeError,
  ID_PATTERN,
  type Infer,
  isPlainObject,
  object,
  oneOf,
  optional,
  pick,
  type Schema,
  str,
  stringMap,
  uint,
} from "./fields.ts";
import { LIMITS } from "./limits.ts";
import { USAGE_FIELDS } from "./usage.ts";

export { FrameDecodeError } from "./fields.ts";
export type { FrameErrorCode } from "./fields.ts";

/** Bumped on any incompatible change to frames or the handshake transcript. */
export const PROTOCOL_VERSION = 1;

const id = str(80, ID_PATTERN);
const nonce = str(64, B64URL_PATTERN);
const signature = str(128, B64URL_PATTERN);
const streamId = uint(0xffff_ffff);
const timeMs = uint();
const u32 = uint(0xffff_ffff);
/** A non-negative decimal string (USD amounts, multipliers, ratios): no sign, exponent or spaces. */
const decimal = str(40, /^(0|[1-9][0-9]{0,19})(\.[0-9]{1,12})?$/);
/** A SHA-256 hash as 64 lowercase hex digits. */
const hash = str(64, /^[0-9a-f]{64}$/);
const seq = uint();

const channel = object({
  id,
  vendor: str(40, ID_PATTERN),
  models: array(str(200), 2000),
  rpm: uint(),
  tpm: uint(),
  deployments: optional(stringMap(2000, 200)),
  locations: optional(array(str(40, /^[a-z0-9-]{2,40}$/), 64)),
});
const capabilities = object({
  agentVersion: str(64),
  channels: array(channel, 256),
  features: optional(array(str(40, ID_PATTERN), 32)),
});
const usage = object(
  Object.fromEntries(USAGE_FIELDS.map((f) => [f, uint()])) as Record<
    typeof USAGE_FIELDS[number],
    Field<number>
  >,
);

/** One schema per control frame type; the frame types below are derived from these. */
const CONTROL_SCHEMAS = {
  /** agent → hub, first frame: who I am, my fresh nonce, what I offer. */
  hello: { v: u32, agentId: id, keyId: id, agentNonce: nonce, timestampMs: timeMs, capabilities },
  /** hub → agent: the hub's nonce and its signature over the transcript (agent checks its pin). */
  challenge: { hubNonce: nonce, hubKeyId: id, timestampMs: timeMs, signature },
  /** agent → hub: the agent's signature over the same transcript, bound to the hub nonce. */
  auth: { hubNonce: nonce, signature },
  /** hub → agent: session open; heartbeat timing the agent must follow. */
  welcome: {
    sessionId: id,
    generation: uint(),
    pingIntervalMs: uint(),
    peerDeadAfterMs: uint(),
    /** Frame families the hub understands (protocol/capabilities.ts `FEATURES`). */
    features: optional(array(str(40, ID_PATTERN), 32)),
  },
  ping: { seq: uint(), sentAtMs: timeMs },
  pong: {
    seq: uint(),
    streamsOpen: optional(uint()),
    /** Live capacity per channel from the agent's limiter (routing prefers channels with room). */
    channels: optional(array(object({ id, remainingRpm: uint(), remainingTpm: uint() }), 256)),
  },
  /** agent → hub: channels changed. */
  capabilities: { capabilities },
  /** Round-trip probe through the tunnel (admin echo, benchmarks). */
  echo: { seq: uint(), payload: str(LIMITS.echoPayloadBytesMax) },
  echo_reply: { seq: uint(), payload: str(LIMITS.echoPayloadBytesMax) },
  /** hub → agent: open a request stream; body follows as REQUEST_BODY frames ending with FIN. */
  request: {
    stream: streamId,
    vendor: str(40, ID_PATTERN),
    channelId: optional(id),
    method: oneOf(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"] as const),
    path: str(8192),
    headers: stringMap(200, 16384),
    requestId: str(128),
    priceVersion: optional(uint()),
    deadlineMs: optional(timeMs),
    /** The hub's worst-case token estimate (the agent's channel limiter reserves it). */
    estimatedTokens: optional(uint()),
  },
  /** agent → hub: upstream status and headers; body follows as RESPONSE_BODY frames. */
  response_head: { stream: streamId, status: uint(999), headers: stringMap(200, 16384) },
  /** agent → hub: the upstream finished; what the agent measured (see protocol/usage.ts). */
  response_end: {
    stream: streamId,
    upstreamRequestId: optional(str(256)),
    /** True when the vendor signalled a complete response (e.g. `[DONE]`, `response.completed`). */
    complete: bool(),
    usage: optional(usage),
    promptTokens: optional(uint()),
    model: optional(str(200)),
    serviceTier: optional(str(64)),
    /** Key rotations the agent made before the first byte (401 / quota 429 on earlier keys). */
    keyRotations: optional(uint(64)),
  },
  /** Either side: stop this stream now (idempotent). */
  abort: { stream: streamId, reason: str(500) },
  /**
   * Receiver → sender: `bytes` more were consumed (acknowledged); `window`, when present, is the
   * stream's new window size (it only grows). Sender may have `window − (sent − acked)` in flight.
   */
  credit: { stream: streamId, bytes: u32, window: optional(u32) },
  /** agent → hub: the streams it still has open, so leaked ones can be reaped. */
  sync: { streams: array(streamId, LIMITS.streamsPerSessionMax) },
  /**
   * hub → agent: open a WebSocket to `/tunnel/probe/<token>` on the hub through the same egress as
   * vendor calls, so the hub sees the agent's public egress IP.
   */
  probe: { token: str(64, B64URL_PATTERN) },
  /** hub → agent: channels the hub will not route to, and why (e.g. too many accounts per IP). */
  channel_status: { refused: array(object({ id, reason: str(300) }), 256) },
  /**
   * hub → agent: the ledger entry the hub stored for one request (every `LedgerEntry` field, see
   * protocol/chain.ts), plus the pricing inputs the agent cannot know: the key's zone multiplier
   * and the agent's payout ratio at settlement. The agent re-prices its own usage and answers
   * SETTLE_ACK or DISPUTE.
   */
  settled: {
    agentId: id,
    seq,
    requestId: str(128),
    vendor: str(40, ID_PATTERN),
    model: str(200),
    usage,
    priceVersion: uint(),
    official: decimal,
    userCharge: decimal,
    agentPayout: decimal,
    completedAtMs: timeMs,
    settledAtMs: timeMs,
    prevHash: hash,
    hash,
    zoneMultiplier: decimal,
    payoutRatio: decimal,
  },
  /** agent → hub: the entry matches the agent's own count and is appended to its ledger. */
  settle_ack: { requestId: str(128), seq, hash },
  /** agent → hub: the entry does not match (kept by the agent as a pending dispute). */
  dispute: { requestId: str(128), seq, reason: str(500) },
  /**
   * hub → agent: one published price table (protocol/price_versions.ts): `table` is its canonical
   * JSON text, `sha256` that text's hash. Sent after WELCOME and whenever a version is published
   * (`latest: true`), and in answer to PRICES_GET (`latest: false`). A table must fit in one
   * frame: the hub refuses to publish a larger one.
   */
  prices: {
    version: uint(),
    publishedAtMs: timeMs,
    sha256: hash,
    latest: bool(),
    table: str(LIMITS.controlFrameBytesMax),
  },
  /** agent → hub: send me price version `version` (named by a SETTLED I cannot check). */
  prices_get: { version: uint() },
  /** hub → agent: the hub has no price version `version` (answer to PRICES_GET). */
  prices_missing: { version: uint(), reason: str(300) },
  // ledger sync (issue #5; hub/billing/ledger_sync.ts, agent/ledger/sync.ts). Order on a new
  // session: agent RECONCILE → hub SETTLED* + RECONCILE_REPLY (repeat while `more`) → agent
  // CLAIM* → hub SETTLED + CLAIM_RESULT each; CHECKPOINT / CHECKPOINT_REPLY any time.
  /** agent → hub (at connect, after a catch-up batch, or asked by RECONCILE_REQUEST): my head. */
  reconcile: { seq, hash, official: decimal, userCharge: decimal, agentPayout: decimal },
  /** hub → agent: compare heads now (periodic reconciliation). */
  reconcile_request: {},
  /**
   * hub → agent, after the SETTLED frames it sent for seqs above the agent's head (≤ one batch):
   * the hub's head and the verdict. `more`: another RECONCILE gets the next batch.
   */
  reconcile_reply: {
    status: oneOf(["equal", "catching_up", "diverged", "agent_ahead"] as const),
    seq,
    hash,
    sent: uint(),
    more: bool(),
    divergentSeq: optional(seq),
  },
  /** hub → agent: the agent's entry hashes at these seqs (a hash at k commits to 1..k). */
  ledger_hashes_request: { reqId: uint(), seqs: array(seq, 64) },
  /** agent → hub: one hash per asked seq, "" where the agent has no entry. */
  ledger_hashes: { reqId: uint(), hashes: array(str(64, /^([0-9a-f]{64})?$/), 64) },
  /** agent → hub: a completion the agent measured but never saw settled (after catch-up). */
  claim: {
    requestId: str(128),
    vendor: str(40, ID_PATTERN),
    model: optional(str(200)),
    usage,
    promptTokens: uint(),
    serviceTier: optional(str(64)),
    completedAtMs: timeMs,
  },
  /** hub → agent: the claim's fate; `settled` follows the SETTLED frame of its entry. */
  claim_result: {
    requestId: str(128),
    outcome: oneOf(["settled", "rejected"] as const),
    reason: str(500),
    seq: optional(seq),
  },
  /** agent → hub: a checkpoint note (protocol/chain.ts) signed by the agent. */
  checkpoint: { note: str(4096) },
  /** hub → agent: the note countersigned by the hub, or why it was refused. */
  checkpoint_reply: { seq, note: optional(str(4096)), reason: optional(str(500)) },
  // Realtime (WebSocket relays) adds no frame: REQUEST with `upgrade: websocket`, then message
  // records inside the body frames of both directions (protocol/realtime_wire.ts).
  /** Either side, before closing on purpose, so the peer can log why. */
  goodbye: { reason: str(500), reconnect: bool() },
} as const satisfies Record<string, Schema>;

type Schemas = typeof CONTROL_SCHEMAS;
export type ControlType = keyof Schemas;
/** A control frame of one type, e.g. `Frame<"hello">`. */
export type Frame<T extends ControlType> = { type: T } & Infer<Schemas[T]>;
export type ControlFrame = { [T in ControlType]: Frame<T> }[ControlType];

export const CONTROL_TYPES = Object.keys(CONTROL_SCHEMAS) as ControlType[];

const encoder = new TextEncoder();

/** Encodes a control frame, checking it against its schema first (a bug never reaches the wire). */
export function encodeControl(frame: ControlFrame): string {
  const text = JSON.stringify(validateControl(frame));
  if (text.length > LIMITS.controlFrameBytesMax) {
    throw new RangeError(
      `Cannot encode frame: ${frame.type} is ${text.length} bytes, above ${LIMITS.controlFrameBytesMax}`,
    );
  }
  return text;
}

/** Decodes and validates a JSON control frame; throws `FrameDecodeError` for anything wrong. */
export function decodeControl(text: string): ControlFrame {
  // Bound the work before parsing: JSON.parse on a huge string is the expensive part.
  if (text.length > LIMITS.controlFrameBytesMax) {
    throw new FrameDecodeError(
      "too_large",
      `control frame of ${text.length} chars is above ${LIMITS.controlFrameBytesMax}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FrameDecodeError("bad_json", "control frame is not valid JSON");
  }
  return validateControl(value);
}

function validateControl(value: unknown): ControlFrame {
  if (!isPlainObject(value)) {
    throw new FrameDecodeError("bad_json", "control frame is not an object");
  }
  const type = value.type;
  if (typeof type !== "string" || !Object.hasOwn(CONTROL_SCHEMAS, type)) {
    const shown = typeof type === "string" ? JSON.stringify(type.slice(0, 40)) : typeof type;
    throw new FrameDecodeError("unknown_type", `unknown control frame type ${shown}`);
  }
  const schema: Schema = CONTROL_SCHEMAS[type as ControlType];
  return { type, ...pick(schema, value) } as ControlFrame;
}

/** Binary frame kinds. */
export const BodyKind = { request: 1, response: 2 } as const;
export type BodyKind = typeof BodyKind[keyof typeof BodyKind];
const BODY_KINDS = new Set<number>(Object.values(BodyKind));

/** Flag bit: last body frame of this direction of the stream. */
export const FLAG_FIN = 0x01;
const KNOWN_FLAGS = FLAG_FIN;

export interface BodyFrame {
  kind: BodyKind;
  stream: number;
  fin: boolean;
  /** A view into the received message; copy it to keep it past the handler. */
  payload: Uint8Array;
}

/** Encodes one body frame; payloads above `bodyFrameBytesMax` must be split by the caller. */
export function encodeBody(frame: BodyFrame): Uint8Array<ArrayBuffer> {
  const { kind, stream, fin, payload } = frame;
  if (!BODY_KINDS.has(kind)) {
    throw new RangeError(`Cannot encode frame: body kind ${kind} is unknown`);
  }
  if (!Number.isInteger(stream) || stream < 1 || stream > 0xffff_ffff) {
    throw new RangeError(`Cannot encode frame: stream id ${stream} is outside 1..2^32-1`);
  }
  if (payload.length > LIMITS.bodyFrameBytesMax) {
    throw new RangeError(
      `Cannot encode frame: payload ${payload.length} bytes is above ${LIMITS.bodyFrameBytesMax}`,
    );
  }
  const out = new Uint8Array(LIMITS.bodyFrameHeaderBytes + payload.length);
  const view = new DataView(out.buffer);
  out[0] = PROTOCOL_VERSION;
  out[1] = kind;
  out[2] = fin ? FLAG_FIN : 0;
  view.setUint32(4, stream);
  view.setUint32(8, payload.length);
  out.set(payload, LIMITS.bodyFrameHeaderBytes);
  return out;
}

/** Decodes a binary body frame, checking every header field and the exact length. */
export function decodeBody(bytes: Uint8Array): BodyFrame {
  const headerBytes = LIMITS.bodyFrameHeaderBytes;
  if (bytes.length < headerBytes) {
    throw new FrameDecodeError(
      "bad_header",
      `header length ${bytes.length} is below ${headerBytes}`,
    );
  }
  if (bytes.length > headerBytes + LIMITS.bodyFrameBytesMax) {
    throw new FrameDecodeError(
      "too_large",
      `body frame of ${bytes.length} bytes is above ${headerBytes + LIMITS.bodyFrameBytesMax}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0);
  if (version !== PROTOCOL_VERSION) {
    throw new FrameDecodeError(
      "bad_version",
      `protocol version ${version} is not ${PROTOCOL_VERSION}`,
    );
  }
  const kind = view.getUint8(1);
  if (!BODY_KINDS.has(kind)) {
    throw new FrameDecodeError("bad_header", `body kind ${kind} is unknown`);
  }
  const flags = view.getUint8(2);
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new FrameDecodeError("bad_header", `flags 0x${flags.toString(16)} has unknown bits`);
  }
  if (view.getUint8(3) !== 0) throw new FrameDecodeError("bad_header", "reserved byte is not 0");
  const stream = view.getUint32(4);
  if (stream === 0) throw new FrameDecodeError("bad_header", "stream id 0 is reserved");
  const length = view.getUint32(8);
  if (length !== bytes.length - headerBytes) {
    throw new FrameDecodeError(
      "bad_length",
      `declared length ${length} differs from payload length ${bytes.length - headerBytes}`,
    );
  }
  return {
    kind: kind as BodyKind,
    stream,
    fin: (flags & FLAG_FIN) !== 0,
    payload: bytes.subarray(headerBytes),
  };
}

/** Decodes whatever a WebSocket delivered: text → control frame, binary → body frame. */
export function decodeMessage(data: unknown): ControlFrame | BodyFrame {
  if (typeof data === "string") return decodeControl(data);
  if (data instanceof ArrayBuffer) return decodeBody(new Uint8Array(data));
  if (data instanceof Uint8Array) return decodeBody(data);
  throw new FrameDecodeError(
    "bad_header",
    `message of type ${typeof data} is neither text nor binary`,
  );
}

export function isBodyFrame(frame: ControlFrame | BodyFrame): frame is BodyFrame {
  return !("type" in frame);
}

/** UTF-8 length of a string, for logs and size checks. */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}
