/**
 * Seeded fuzz of `decodeMessage`. Property: every input either decodes to a frame that
 * re-encodes and re-decodes to an equal frame, or is rejected with `FrameDecodeError` (with a
 * known code). Anything else — TypeError, RangeError, a round-trip mismatch — is a failure that
 * prints the seed and the input.
 *
 * Replay a run: `FUZZ_SEED=<seed> deno test -A protocol/frames_fuzz_test.ts`
 * Longer run:   `FUZZ_ITERATIONS=2000000 deno test -A protocol/frames_fuzz_test.ts`
 */
import { type Usage, USAGE_FIELDS } from "./usage.ts";
import assert from "node:assert/strict";
import { seedFromEnv } from "../tests/support/seed.ts";
import {
  type BodyFrame,
  BodyKind,
  CONTROL_TYPES,
  type ControlFrame,
  type ControlType,
  decodeMessage,
  encodeBody,
  encodeControl,
  type Frame,
  FrameDecodeError,
  type FrameErrorCode,
  isBodyFrame,
  PROTOCOL_VERSION,
} from "./frames.ts";
import { LIMITS } from "./limits.ts";
import { seededRandom } from "./prng.ts";

type Rng = () => number;
type Decoder = (data: unknown) => ControlFrame | BodyFrame;

const ITERATIONS_MIN = 100_000;

// ---------------------------------------------------------------------------------------------
// Random helpers
// ---------------------------------------------------------------------------------------------

const int = (r: Rng, n: number): number => Math.floor(r() * n);
const chance = (r: Rng, p: number): boolean => r() < p;
function choose<T>(r: Rng, items: readonly T[]): T {
  return items[int(r, items.length)]!;
}

const ID_CHARS = "ABCXYZabcxyz0123456789._:-";
const B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** Characters that stress JSON escaping and the field patterns. No U+0001: the raw-token sentinel. */
const TEXT_CHARS = [
  ..."aZ09-_.:/ =+{}[],",
  '"',
  "\\",
  "\n",
  "\r",
  "\t",
  "\u0000",
  "\u001f",
  "\u007f",
  "é",
  "\u2028",
  "\ufeff",
  "🚰",
  "\ud800", // lone surrogates survive JSON.stringify as escapes
  "\udfff",
];

function fromAlphabet(r: Rng, alphabet: string, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[int(r, alphabet.length)];
  return out;
}

function randText(r: Rng, max: number): string {
  const length = chance(r, 0.02) ? max : Math.min(max, int(r, 20));
  let out = "";
  for (let i = 0; i < length; i++) out += choose(r, TEXT_CHARS);
  // Lone surrogates and emoji can push the UTF-16 length over `max`.
  return out.length <= max ? out : out.slice(0, max).replace(/[\ud800-\udbff]$/, "");
}

function randId(r: Rng): string {
  return fromAlphabet(r, ID_CHARS, chance(r, 0.05) ? 80 : 1 + int(r, 20));
}

function randB64(r: Rng, typical: number, max: number): string {
  return fromAlphabet(r, B64_CHARS, chance(r, 0.9) ? typical : 1 + int(r, max));
}

function randUint(r: Rng, max = Number.MAX_SAFE_INTEGER): number {
  switch (int(r, 6)) {
    case 0:
      return 0;
    case 1:
      return max;
    case 2:
      return Math.max(0, max - 1);
    case 3:
      return Math.min(max, int(r, 1000));
    default:
      return Math.min(max, Math.floor(r() * 2 ** (1 + int(r, 53))));
  }
}

function randMap(r: Rng, maxValue: number): Record<string, string> {
  const out: Record<string, string> = {};
  const n = int(r, 6);
  for (let i = 0; i < n; i++) {
    const key = chance(r, 0.1)
      ? choose(r, ["__proto__", "constructor", "", "toString"])
      : randText(r, 20);
    // defineProperty: a key named __proto__ must become an own property, not a prototype.
    Object.defineProperty(out, key, {
      value: randText(r, maxValue),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function randCapabilities(r: Rng): Frame<"capabilities">["capabilities"] {
  return {
    agentVersion: randText(r, 64),
    channels: Array.from({ length: int(r, 4) }, () => ({
      id: randId(r),
      vendor: fromAlphabet(r, ID_CHARS, 1 + int(r, 39)),
      models: Array.from({ length: int(r, 4) }, () => randText(r, 200)),
      rpm: randUint(r),
      tpm: randUint(r),
    })),
    ...(chance(r, 0.5) ? { features: randFeatures(r) } : {}),
  };
}

const randFeatures = (r: Rng) =>
  Array.from({ length: int(r, 33) }, () => fromAlphabet(r, ID_CHARS, 1 + int(r, 39)));

/** A random valid frame of each type; the mapped type keeps this complete as types are added. */
const GENERATORS: { [T in ControlType]: (r: Rng) => Frame<T> } = {
  hello: (r) => ({
    type: "hello",
    v: chance(r, 0.9) ? PROTOCOL_VERSION : randUint(r, 0xffff_ffff),
    agentId: randId(r),
    keyId: randId(r),
    agentNonce: randB64(r, 43, 64),
    timestampMs: randUint(r),
    capabilities: randCapabilities(r),
  }),
  challenge: (r) => ({
    type: "challenge",
    hubNonce: randB64(r, 43, 64),
    hubKeyId: randId(r),
    timestampMs: randUint(r),
    signature: randB64(r, 86, 128),
  }),
  auth: (r) => ({ type: "auth", hubNonce: randB64(r, 43, 64), signature: randB64(r, 86, 128) }),
  welcome: (r) => ({
    type: "welcome",
    sessionId: randId(r),
    generation: randUint(r),
    pingIntervalMs: randUint(r),
    peerDeadAfterMs: randUint(r),
    ...(chance(r, 0.5) ? { features: randFeatures(r) } : {}),
  }),
  ping: (r) => ({ type: "ping", seq: randUint(r), sentAtMs: randUint(r) }),
  pong: (r) => ({
    type: "pong",
    seq: randUint(r),
    ...(chance(r, 0.5) ? { streamsOpen: randUint(r) } : {}),
  }),
  capabilities: (r) => ({ type: "capabilities", capabilities: randCapabilities(r) }),
  echo: (r) => ({
    type: "echo",
    seq: randUint(r),
    payload: randText(r, LIMITS.echoPayloadBytesMax),
  }),
  echo_reply: (r) => ({
    type: "echo_reply",
    seq: randUint(r),
    payload: randText(r, LIMITS.echoPayloadBytesMax),
  }),
  request: (r) => ({
    type: "request",
    stream: randUint(r, 0xffff_ffff),
    vendor: fromAlphabet(r, ID_CHARS, 1 + int(r, 39)),
    ...(chance(r, 0.5) ? { channelId: randId(r) } : {}),
    method: choose(r, ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"] as const),
    path: "/" + randText(r, 100),
    headers: randMap(r, 100),
    requestId: randText(r, 128),
    ...(chance(r, 0.5) ? { priceVersion: randUint(r) } : {}),
    ...(chance(r, 0.5) ? { deadlineMs: randUint(r) } : {}),
  }),
  response_head: (r) => ({
    type: "response_head",
    stream: randUint(r, 0xffff_ffff),
    status: randUint(r, 999),
    headers: randMap(r, 100),
  }),
  response_end: (r) => ({
    type: "response_end",
    stream: randUint(r, 0xffff_ffff),
    ...(chance(r, 0.5) ? { upstreamRequestId: randText(r, 256) } : {}),
    complete: chance(r, 0.5),
    ...(chance(r, 0.5)
      ? {
        usage: Object.fromEntries(
          USAGE_FIELDS.map((f) => [f, randUint(r, Number.MAX_SAFE_INTEGER)]),
        ) as unknown as Usage,
      }
      : {}),
    ...(chance(r, 0.5) ? { promptTokens: randUint(r, 1e9), keyRotations: randUint(r, 64) } : {}),
  }),
  abort: (r) => ({ type: "abort", stream: randUint(r, 0xffff_ffff), reason: randText(r, 500) }),
  credit: (r) => ({
    type: "credit",
    stream: randUint(r, 0xffff_ffff),
    bytes: randUint(r, 0xffff_ffff),
    ...(chance(r, 0.3) ? { window: randUint(r, 0xffff_ffff) } : {}),
  }),
  sync: (r) => ({
    type: "sync",
    streams: Array.from({ length: int(r, 8) }, () => randUint(r, 0xffff_ffff)),
  }),
  probe: (r) => ({ type: "probe", token: randB64(r, 43, 64) }),
  channel_status: (r) => ({
    type: "channel_status",
    refused: Array.from({ length: int(r, 4) }, () => ({ id: randId(r), reason: randText(r, 300) })),
  }),
  settled: (r) => ({
    type: "settled",
    agentId: randId(r),
    seq: randUint(r),
    requestId: randText(r, 128),
    vendor: fromAlphabet(r, ID_CHARS, 1 + int(r, 39)),
    model: randText(r, 200),
    usage: Object.fromEntries(
      USAGE_FIELDS.map((f) => [f, randUint(r, Number.MAX_SAFE_INTEGER)]),
    ) as unknown as Usage,
    priceVersion: randUint(r),
    official: randDecimal(r),
    userCharge: randDecimal(r),
    agentPayout: randDecimal(r),
    completedAtMs: randUint(r),
    settledAtMs: randUint(r),
    prevHash: randHex64(r),
    hash: randHex64(r),
    zoneMultiplier: randDecimal(r),
    payoutRatio: randDecimal(r),
  }),
  settle_ack: (r) => ({
    type: "settle_ack",
    requestId: randText(r, 128),
    seq: randUint(r),
    hash: randHex64(r),
  }),
  dispute: (r) => ({
    type: "dispute",
    requestId: randText(r, 128),
    seq: randUint(r),
    reason: randText(r, 500),
  }),
  prices: (r) => ({
    type: "prices",
    version: randUint(r),
    publishedAtMs: randUint(r),
    sha256: randHex64(r),
    latest: chance(r, 0.5),
    table: randText(r, 2000),
  }),
  prices_get: (r) => ({ type: "prices_get", version: randUint(r) }),
  prices_missing: (r) => ({
    type: "prices_missing",
    version: randUint(r),
    reason: randText(r, 300),
  }),
  reconcile: (r) => ({
    type: "reconcile",
    seq: randUint(r),
    hash: randHex64(r),
    official: randDecimal(r),
    userCharge: randDecimal(r),
    agentPayout: randDecimal(r),
  }),
  reconcile_request: () => ({ type: "reconcile_request" }),
  reconcile_reply: (r) => ({
    type: "reconcile_reply",
    status: choose(r, ["equal", "catching_up", "diverged", "agent_ahead"] as const),
    seq: randUint(r),
    hash: randHex64(r),
    sent: randUint(r),
    more: chance(r, 0.5),
    ...(chance(r, 0.5) ? { divergentSeq: randUint(r) } : {}),
  }),
  ledger_hashes_request: (r) => ({
    type: "ledger_hashes_request",
    reqId: randUint(r),
    seqs: Array.from({ length: int(r, 65) }, () => randUint(r)),
  }),
  ledger_hashes: (r) => ({
    type: "ledger_hashes",
    reqId: randUint(r),
    hashes: Array.from({ length: int(r, 65) }, () => chance(r, 0.2) ? "" : randHex64(r)),
  }),
  claim: (r) => ({
    type: "claim",
    requestId: randText(r, 128),
    vendor: fromAlphabet(r, ID_CHARS, 1 + int(r, 39)),
    ...(chance(r, 0.5) ? { model: randText(r, 200) } : {}),
    usage: Object.fromEntries(
      USAGE_FIELDS.map((f) => [f, randUint(r, Number.MAX_SAFE_INTEGER)]),
    ) as unknown as Usage,
    promptTokens: randUint(r),
    ...(chance(r, 0.5) ? { serviceTier: randText(r, 64) } : {}),
    completedAtMs: randUint(r),
  }),
  claim_result: (r) => ({
    type: "claim_result",
    requestId: randText(r, 128),
    outcome: choose(r, ["settled", "rejected"] as const),
    reason: randText(r, 500),
    ...(chance(r, 0.5) ? { seq: randUint(r) } : {}),
  }),
  checkpoint: (r) => ({ type: "checkpoint", note: randText(r, 4096) }),
  checkpoint_reply: (r) => ({
    type: "checkpoint_reply",
    seq: randUint(r),
    ...(chance(r, 0.5) ? { note: randText(r, 4096) } : {}),
    ...(chance(r, 0.5) ? { reason: randText(r, 500) } : {}),
  }),
  goodbye: (r) => ({ type: "goodbye", reason: randText(r, 500), reconnect: chance(r, 0.5) }),
};

function randHex64(r: Rng): string {
  return fromAlphabet(r, "0123456789abcdef", 64);
}

/** A canonical non-negative decimal string: "0", "12", "0.000001", "25.50". */
function randDecimal(r: Rng): string {
  const whole = chance(r, 0.5) ? "0" : String(1 + int(r, 1_000_000));
  return chance(r, 0.3) ? whole : `${whole}.${fromAlphabet(r, "0123456789", 1 + int(r, 12))}`;
}

function randControl(r: Rng): ControlFrame {
  return GENERATORS[choose(r, CONTROL_TYPES)](r) as ControlFrame;
}

function randBytes(r: Rng, length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  const random = Math.min(length, 256); // big payloads tile 256 random bytes: cheap, still seeded
  for (let i = 0; i < random; i++) out[i] = int(r, 256);
  for (let i = random; i < length; i += random) out.copyWithin(i, 0, Math.min(random, length - i));
  return out;
}

function randBody(r: Rng): BodyFrame {
  const size = chance(r, 0.002)
    ? LIMITS.bodyFrameBytesMax - int(r, 2)
    : chance(r, 0.2)
    ? 0
    : int(r, 48);
  return {
    kind: choose(r, [BodyKind.request, BodyKind.response]),
    stream: Math.max(1, randUint(r, 0xffff_ffff)),
    fin: chance(r, 0.5),
    payload: randBytes(r, size),
  };
}

// ---------------------------------------------------------------------------------------------
// Binary mutations
// ---------------------------------------------------------------------------------------------

const INTERESTING_BYTES = [0, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U32 = [
  0,
  1,
  11,
  12,
  13,
  0xffff,
  0x1_0000,
  0x1_0001,
  0x7fff_ffff,
  0x8000_0000,
  0xffff_ffff,
];

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function mutateBytes(r: Rng, input: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  let b = input;
  const rounds = 1 + int(r, 3);
  for (let round = 0; round < rounds; round++) {
    switch (int(r, 10)) {
      case 0: { // bit flips
        b = b.slice();
        for (let i = 0, n = 1 + int(r, 8); i < n && b.length > 0; i++) {
          b[int(r, b.length)]! ^= 1 << int(r, 8);
        }
        break;
      }
      case 1: { // a header byte to an interesting value
        b = b.slice();
        if (b.length > 0) {
          b[int(r, Math.min(b.length, LIMITS.bodyFrameHeaderBytes))] = choose(r, INTERESTING_BYTES);
        }
        break;
      }
      case 2: { // insert bytes
        const at = int(r, b.length + 1);
        b = concat(concat(b.subarray(0, at), randBytes(r, 1 + int(r, 4))), b.subarray(at));
        break;
      }
      case 3: { // delete bytes
        const at = int(r, b.length + 1);
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(r, 4))));
        break;
      }
      case 4: // truncate, mostly into the header
        b = b.slice(
          0,
          chance(r, 0.5) ? int(r, LIMITS.bodyFrameHeaderBytes + 1) : int(r, b.length + 1),
        );
        break;
      case 5: { // splice with another frame
        const other = encodeBody(randBody(r));
        b = concat(b.subarray(0, int(r, b.length + 1)), other.subarray(int(r, other.length + 1)));
        break;
      }
      case 6: // two frames back to back
        b = concat(b, encodeBody(randBody(r)));
        break;
      case 7:
      case 8: { // length field corruption (or repair after another mutation)
        if (b.length < LIMITS.bodyFrameHeaderBytes) break;
        b = b.slice();
        const actual = b.length - LIMITS.bodyFrameHeaderBytes;
        const length = choose(r, [
          actual,
          actual,
          actual + 1,
          actual - 1,
          choose(r, INTERESTING_U32),
          int(r, 2 ** 32),
        ]);
        new DataView(b.buffer).setUint32(8, length >>> 0);
        break;
      }
      default: { // stream id to an interesting value
        if (b.length < LIMITS.bodyFrameHeaderBytes) break;
        b = b.slice();
        new DataView(b.buffer).setUint32(4, choose(r, INTERESTING_U32));
      }
    }
  }
  return b;
}

/** Delivers bytes the ways a socket or a caller might: Uint8Array, ArrayBuffer, or an offset view. */
function deliverBytes(r: Rng, bytes: Uint8Array<ArrayBuffer>): unknown {
  switch (int(r, 3)) {
    case 0:
      return bytes;
    case 1:
      return bytes.buffer.byteLength === bytes.length ? bytes.buffer : bytes.slice().buffer;
    default: {
      const offset = 1 + int(r, 7);
      const big = randBytes(r, offset + bytes.length + int(r, 4));
      big.set(bytes, offset);
      return big.subarray(offset, offset + bytes.length);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Text mutations
// ---------------------------------------------------------------------------------------------

/** Raw JSON (or not-quite-JSON) tokens spliced in where a value goes. */
const RAW_TOKENS = [
  "-0",
  "-0.0",
  "0.0",
  "1.0",
  "1e3",
  "1E+3",
  "4.294967295e9",
  "1e15",
  "9e15",
  "1e400",
  "-1e400",
  "1e-400",
  "5e-324",
  "12345678901234567890",
  "9007199254740991",
  "9007199254740992",
  "9007199254740993",
  "4294967295",
  "4294967296",
  "999",
  "1000",
  "-1",
  "0.5",
  "NaN",
  "Infinity",
  "-Infinity",
  "undefined",
  "0x10",
  "01",
  "+1",
  ".5",
  "true",
  "null",
  '"NaN"',
  '"Infinity"',
  '"-0"',
  '"1"',
  '""',
  '"\\u0000"',
  '"a\\nb"',
  '"abc\\n"',
  '"\\ud800"',
  '"__proto__"',
  '"constructor"',
  "[]",
  "[null]",
  "{}",
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"type":"ping","seq":1,"sentAtMs":1}',
  "[".repeat(2000) + "]".repeat(2000),
  '{"a":'.repeat(500) + "1" + "}".repeat(500),
  '"' + "x".repeat(20_000) + '"',
  '"' + "x".repeat(501) + '"',
  '"' + "a".repeat(81) + '"',
];
const SENTINEL = "\u0001RAW";
const SENTINEL_RE = /"\\u0001RAW(\d+)\\u0001"/g;
const rawToken = (i: number): string => `${SENTINEL}${i}\u0001`;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Slot = { parent: Json[] | { [key: string]: Json }; key: string | number };

function slotsOf(value: Json, out: Slot[] = []): Slot[] {
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      out.push({ parent: value, key: i });
      slotsOf(item, out);
    });
  } else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      out.push({ parent: value, key });
      slotsOf(item, out);
    }
  }
  return out;
}

function containersOf(value: Json): { [key: string]: Json }[] {
  const objects = [value, ...slotsOf(value).map((s) => (s.parent as Record<string, Json>)[s.key]!)];
  return objects.filter((v): v is { [key: string]: Json } =>
    v !== null && typeof v === "object" && !Array.isArray(v)
  );
}

function setOwn(target: Json[] | { [key: string]: Json }, key: string | number, value: Json): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function randValue(r: Rng): Json {
  switch (int(r, 6)) {
    case 0:
      return rawToken(int(r, RAW_TOKENS.length));
    case 1:
      return choose(r, [null, true, false, 0, -1, 1.5, 2 ** 32, 2 ** 53, 1e308, -1e308]);
    case 2:
      return randText(r, 30);
    case 3:
      return randId(r);
    case 4: // a value lifted from another, random, frame
      return choose(r, Object.values(randControl(r) as unknown as Record<string, Json>));
    default:
      return chance(r, 0.5) ? [randValue(r)] : { [randText(r, 8)]: randValue(r) };
  }
}

const PROTO_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "type"];

function mutateJson(r: Rng, frame: ControlFrame): string {
  const root = JSON.parse(encodeControl(frame)) as Json;
  let top: Json = root;
  const rounds = 1 + int(r, 3);
  for (let round = 0; round < rounds; round++) {
    const slots = slotsOf(top);
    const op = int(r, 8);
    if (slots.length === 0 && op <= 4) continue;
    switch (op) {
      case 0:
      case 1: { // replace a value
        const slot = choose(r, slots);
        setOwn(slot.parent, slot.key, randValue(r));
        break;
      }
      case 2: { // delete a field
        const slot = choose(r, slots);
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
        else delete slot.parent[slot.key as string];
        break;
      }
      case 3: { // add a field, often one with a special name
        const target = choose(r, containersOf(top));
        if (target) {
          setOwn(target, chance(r, 0.6) ? choose(r, PROTO_KEYS) : randText(r, 10), randValue(r));
        }
        break;
      }
      case 4: { // swap two values (moves values across fields of different types)
        const a = choose(r, slots), b = choose(r, slots);
        const va = (a.parent as Record<string, Json>)[a.key]!;
        const vb = (b.parent as Record<string, Json>)[b.key]!;
        if (va === b.parent || vb === a.parent) break; // would make a cycle
        setOwn(a.parent, a.key, vb);
        setOwn(b.parent, b.key, va);
        break;
      }
      case 5: // confuse the type, keeping the other type's fields
        if (top !== null && typeof top === "object" && !Array.isArray(top)) {
          top.type = chance(r, 0.8) ? choose(r, CONTROL_TYPES) : randValue(r);
        }
        break;
      case 6: { // merge another frame's fields in
        const other = JSON.parse(encodeControl(randControl(r))) as Record<string, Json>;
        if (top !== null && typeof top === "object" && !Array.isArray(top)) {
          for (const [k, v] of Object.entries(other)) {
            if (k !== "type" && chance(r, 0.5)) setOwn(top, k, v);
          }
        }
        break;
      }
      default: // wrap the frame
        top = choose(r, [[top], { frame: top }, JSON.stringify(top), null]) as Json;
    }
  }
  let text = JSON.stringify(top).replace(SENTINEL_RE, (_, i) => RAW_TOKENS[Number(i)]!);
  if (chance(r, 0.1) && text.endsWith("}")) {
    // Duplicate keys: JSON.parse keeps the last one.
    const key = choose(r, ["type", "seq", "stream", "__proto__", "headers", "capabilities"]);
    const value = JSON.stringify(randValue(r)).replace(
      SENTINEL_RE,
      (_, i) => RAW_TOKENS[Number(i)]!,
    );
    text = chance(r, 0.5)
      ? `${text.slice(0, -1)},"${key}":${value}}`
      : `{"${key}":${value},${text.slice(1)}`;
  }
  return text;
}

const SOUP = [
  "{",
  "}",
  "[",
  "]",
  ":",
  ",",
  '"',
  '"type"',
  '"ping"',
  '"seq"',
  "1",
  "-0",
  "1e9",
  "null",
  " ",
  "\\",
  "\n",
];

function mutateChars(r: Rng, input: string): string {
  let s = input;
  const rounds = 1 + int(r, 4);
  for (let round = 0; round < rounds; round++) {
    const at = int(r, s.length + 1);
    switch (int(r, 7)) {
      case 0: // insert
        s = s.slice(0, at) + (chance(r, 0.5) ? choose(r, TEXT_CHARS) : choose(r, SOUP)) +
          s.slice(at);
        break;
      case 1: // delete
        s = s.slice(0, at) + s.slice(at + 1 + int(r, 3));
        break;
      case 2: // replace
        s = s.slice(0, at) + choose(r, TEXT_CHARS) + s.slice(at + 1);
        break;
      case 3: // duplicate a slice
        s = s.slice(0, at) + s.slice(at, at + int(r, 16)) + s.slice(at);
        break;
      case 4: // truncate
        s = s.slice(0, at);
        break;
      case 5: { // splice with another frame
        const other = encodeControl(randControl(r));
        s = s.slice(0, at) + other.slice(int(r, other.length + 1));
        break;
      }
      default: { // digit tweak: numbers are where range checks live
        const m = /\d/.exec(s.slice(at));
        if (m) {
          const i = at + m.index;
          s = s.slice(0, i) + choose(r, ["0", "9", "-", ".", "e", "99999999999"]) + s.slice(i + 1);
        }
      }
    }
  }
  return s;
}

function randSoup(r: Rng): string {
  let s = chance(r, 0.5) ? "{" : "";
  for (let i = 0, n = int(r, 24); i < n; i++) {
    s += chance(r, 0.7) ? choose(r, SOUP) : choose(r, TEXT_CHARS);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Input generation
// ---------------------------------------------------------------------------------------------

type Category =
  | "valid-text"
  | "valid-binary"
  | "binary-mutation"
  | "text-chars"
  | "text-json"
  | "random-bytes"
  | "random-text"
  | "oversized"
  | "not-a-message";

function nextInput(r: Rng): { category: Category; input: unknown } {
  const x = r();
  if (x < 0.05) return { category: "valid-text", input: encodeControl(randControl(r)) };
  if (x < 0.08) {
    return { category: "valid-binary", input: deliverBytes(r, encodeBody(randBody(r))) };
  }
  if (x < 0.33) {
    return {
      category: "binary-mutation",
      input: deliverBytes(r, mutateBytes(r, encodeBody(randBody(r)))),
    };
  }
  if (x < 0.50) {
    return { category: "text-chars", input: mutateChars(r, encodeControl(randControl(r))) };
  }
  if (x < 0.84) return { category: "text-json", input: mutateJson(r, randControl(r)) };
  if (x < 0.91) {
    const bytes = randBytes(r, int(r, 40));
    if (bytes.length > 1 && chance(r, 0.5)) {
      bytes[0] = PROTOCOL_VERSION; // get past the version check more often
      bytes[1] = 1 + int(r, 2);
    }
    return { category: "random-bytes", input: deliverBytes(r, bytes) };
  }
  if (x < 0.985) return { category: "random-text", input: randSoup(r) };
  if (x < 0.997) {
    // Just over the limits, with otherwise valid content.
    if (chance(r, 0.5)) {
      const text = encodeControl(randControl(r));
      return {
        category: "oversized",
        input: text + " ".repeat(LIMITS.controlFrameBytesMax - text.length + 1 + int(r, 3)),
      };
    }
    const payload = randBytes(r, LIMITS.bodyFrameBytesMax + 1 + int(r, 3));
    const bytes = concat(encodeBody({ ...randBody(r), payload: new Uint8Array(0) }), payload);
    new DataView(bytes.buffer).setUint32(8, payload.length);
    return { category: "oversized", input: deliverBytes(r, bytes) };
  }
  const others: unknown[] = [
    undefined,
    null,
    int(r, 100),
    { type: "ping", seq: 1, sentAtMs: 1 },
    [1, 2, 3],
    new DataView(new ArrayBuffer(16)),
    new Uint16Array(8),
    new Int8Array(16),
    new Blob(["x"]),
    new String("{}"),
  ];
  return { category: "not-a-message", input: choose(r, others) };
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

const ERROR_CODES = new Set<FrameErrorCode>([
  "too_large",
  "bad_json",
  "bad_header",
  "bad_length",
  "bad_version",
  "unknown_type",
  "bad_field",
]);

interface FuzzFailure {
  iteration: number;
  category: Category;
  input: unknown;
  error: unknown;
}

interface FuzzReport {
  seed: number;
  iterations: number;
  accepted: { control: number; body: number };
  rejected: number;
  codes: Partial<Record<FrameErrorCode, number>>;
  categories: Partial<Record<Category, { accepted: number; rejected: number }>>;
  failure?: FuzzFailure;
  elapsedMs: number;
}

function bytesOf(input: unknown): Uint8Array | undefined {
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (input instanceof Uint8Array) return input;
  return undefined;
}

/** Checks one decoded frame: it must re-encode and re-decode (with `decode`) to an equal frame. */
function checkRoundTrip(decode: Decoder, input: unknown, frame: ControlFrame | BodyFrame): void {
  if (isBodyFrame(frame)) {
    const bytes = encodeBody(frame);
    // The binary format is canonical: an accepted frame re-encodes to exactly the input bytes.
    assert.deepEqual(
      Array.from(bytes),
      Array.from(bytesOf(input) ?? []),
      "body re-encoding differs",
    );
    const again = decode(bytes);
    assert.deepEqual(again, frame, "body frame changed across a round trip");
  } else {
    assert.equal(typeof input, "string", "a control frame came from a non-string");
    assert.ok(
      CONTROL_TYPES.includes(frame.type),
      `decoded type ${frame.type} is not a control type`,
    );
    const text = encodeControl(frame);
    const again = decode(text);
    assert.deepEqual(again, frame, "control frame changed across a round trip");
    assert.equal(encodeControl(again as ControlFrame), text, "control re-encoding is not stable");
  }
  assert.equal(Object.hasOwn(Object.prototype, "polluted"), false, "Object.prototype was polluted");
}

/** Runs `iterations` seeded inputs through `decode`; stops at the first property violation. */
function runFuzz(decode: Decoder, seed: number, iterations: number): FuzzReport {
  const r = seededRandom(seed);
  const report: FuzzReport = {
    seed,
    iterations: 0,
    accepted: { control: 0, body: 0 },
    rejected: 0,
    codes: {},
    categories: {},
    elapsedMs: 0,
  };
  const started = performance.now();
  for (let iteration = 0; iteration < iterations; iteration++) {
    const { category, input } = nextInput(r);
    const tally = report.categories[category] ??= { accepted: 0, rejected: 0 };
    report.iterations++;
    let frame: ControlFrame | BodyFrame;
    try {
      frame = decode(input);
    } catch (error) {
      if (error instanceof FrameDecodeError && ERROR_CODES.has(error.code)) {
        report.rejected++;
        tally.rejected++;
        report.codes[error.code] = (report.codes[error.code] ?? 0) + 1;
        continue;
      }
      report.failure = { iteration, category, input, error };
      break;
    }
    try {
      checkRoundTrip(decode, input, frame);
    } catch (error) {
      report.failure = { iteration, category, input, error };
      break;
    }
    tally.accepted++;
    if (isBodyFrame(frame)) report.accepted.body++;
    else report.accepted.control++;
  }
  report.elapsedMs = performance.now() - started;
  return report;
}

const SHOWN_MAX = 20_000;

function describeInput(input: unknown): string {
  const clip = (s: string) =>
    s.length <= SHOWN_MAX
      ? s
      : `${s.slice(0, SHOWN_MAX)}… (${s.length} chars in all; replay the seed)`;
  if (typeof input === "string") {
    return `text (${input.length} chars) JSON: ${clip(JSON.stringify(input))}`;
  }
  const bytes = bytesOf(input);
  if (bytes) {
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    const kind = input instanceof ArrayBuffer
      ? "ArrayBuffer"
      : `Uint8Array (byteOffset ${bytes.byteOffset})`;
    return `${kind} of ${bytes.length} bytes, hex: ${clip(hex)}`;
  }
  return `${Object.prototype.toString.call(input)} ${String(input)}`;
}

function describeFailure(report: FuzzReport, envName = "FUZZ_SEED"): string {
  const f = report.failure!;
  const error = f.error instanceof Error ? `${f.error.name}: ${f.error.message}` : String(f.error);
  return [
    `frames fuzz failed at input #${f.iteration} (${f.category}), seed ${report.seed}`,
    `  replay: ${envName}=${report.seed} deno test -A protocol/frames_fuzz_test.ts`,
    `  error: ${error}`,
    `  input: ${describeInput(f.input)}`,
  ].join("\n");
}

function iterationsFromEnv(): number {
  const given = Deno.env.get("FUZZ_ITERATIONS");
  if (given === undefined || given === "") return ITERATIONS_MIN;
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`FUZZ_ITERATIONS=${given} is not a positive integer`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

Deno.test("fuzz generators cover every control type and produce valid frames", () => {
  assert.deepEqual(Object.keys(GENERATORS).sort(), [...CONTROL_TYPES].sort());
  const r = seededRandom(1);
  for (const type of CONTROL_TYPES) {
    for (let i = 0; i < 50; i++) {
      const frame = GENERATORS[type](r) as ControlFrame;
      assert.deepEqual(decodeMessage(encodeControl(frame)), frame);
    }
  }
});

Deno.test("frames fuzz: decodeMessage accepts-and-round-trips or throws FrameDecodeError", () => {
  const seed = seedFromEnv("FUZZ_SEED");
  const iterations = iterationsFromEnv();
  console.log("frames fuzz seed", seed, `(replay: FUZZ_SEED=${seed})`);
  const report = runFuzz(decodeMessage, seed, iterations);
  if (report.failure) assert.fail(describeFailure(report));

  const accepted = report.accepted.control + report.accepted.body;
  const rate = Math.round(report.iterations / (report.elapsedMs / 1000));
  console.log(
    `frames fuzz: ${report.iterations} inputs in ${report.elapsedMs.toFixed(0)} ms (${rate}/s);`,
    `accepted ${accepted} (control ${report.accepted.control}, body ${report.accepted.body}),`,
    `rejected ${report.rejected}`,
  );
  console.log("  rejection codes:", JSON.stringify(report.codes));
  console.log("  by category:", JSON.stringify(report.categories));

  assert.equal(report.iterations, iterations);
  assert.ok(report.iterations >= Math.min(iterations, ITERATIONS_MIN));
  assert.ok(report.accepted.control > 0, "no control frame was accepted: the run is vacuous");
  assert.ok(report.accepted.body > 0, "no body frame was accepted: the run is vacuous");
  assert.ok(report.rejected > 0, "nothing was rejected: the run is vacuous");
  if (iterations >= ITERATIONS_MIN) {
    // Each rejection class must be reached, or the mutators have stopped hitting it.
    assert.deepEqual(Object.keys(report.codes).sort(), [...ERROR_CODES].sort());
  }
});

// Canaries: the same harness against deliberately broken decoders must report a failure.

Deno.test("frames fuzz canary: a decoder throwing TypeError on a reachable input is caught", () => {
  const broken: Decoder = (data) => {
    const frame = decodeMessage(data);
    if (isBodyFrame(frame) && frame.fin && frame.payload.length % 7 === 3) {
      throw new TypeError("canary: cannot read properties of undefined");
    }
    return frame;
  };
  const report = runFuzz(broken, 12345, ITERATIONS_MIN);
  assert.ok(report.failure, "the harness missed a TypeError");
  assert.ok(report.failure.error instanceof TypeError);
  assert.match(
    describeFailure(report),
    /seed 12345[\s\S]*FUZZ_SEED=12345[\s\S]*TypeError: canary[\s\S]*hex: /,
  );
});

Deno.test("frames fuzz canary: a decoder leaking a raw JSON SyntaxError is caught", () => {
  const broken: Decoder = (data) => {
    if (typeof data === "string" && data.length < LIMITS.controlFrameBytesMax) JSON.parse(data);
    return decodeMessage(data);
  };
  const report = runFuzz(broken, 777, ITERATIONS_MIN);
  assert.ok(report.failure, "the harness missed a SyntaxError that is not a FrameDecodeError");
  assert.ok(report.failure.error instanceof SyntaxError);
  assert.ok(!(report.failure.error instanceof FrameDecodeError));
  assert.match(describeFailure(report), /input: text \(\d+ chars\) JSON: "/);
});

Deno.test("frames fuzz canary: a decoder that does not round-trip is caught", () => {
  const broken: Decoder = (data) => {
    const frame = decodeMessage(data);
    return !isBodyFrame(frame) && frame.type === "ping" ? { ...frame, seq: frame.seq + 1 } : frame;
  };
  const report = runFuzz(broken, 4242, ITERATIONS_MIN);
  assert.ok(report.failure, "the harness missed a frame that changes across a round trip");
  assert.ok(report.failure.error instanceof assert.AssertionError);
});

Deno.test("frames fuzz canary: a decoder throwing FrameDecodeError with an unknown code is caught", () => {
  const broken: Decoder = (data) => {
    if (
      typeof data !== "string" && typeof data === "object" && data !== null &&
      !(data instanceof ArrayBuffer) && !(data instanceof Uint8Array)
    ) {
      throw new FrameDecodeError("bogus" as FrameErrorCode, "canary");
    }
    return decodeMessage(data);
  };
  const report = runFuzz(broken, 99, ITERATIONS_MIN);
  assert.ok(report.failure, "the harness accepted an unknown rejection code");
  assert.equal((report.failure.error as FrameDecodeError).code, "bogus");
});
