import { emptyUsage } from "./usage.ts";
import assert from "node:assert/strict";
import {
  type BodyFrame,
  BodyKind,
  CONTROL_TYPES,
  type ControlFrame,
  type ControlType,
  decodeBody,
  decodeControl,
  decodeMessage,
  encodeBody,
  encodeControl,
  FLAG_FIN,
  type Frame,
  FrameDecodeError,
  type FrameErrorCode,
  isBodyFrame,
  PROTOCOL_VERSION,
} from "./frames.ts";
import { LIMITS } from "./limits.ts";

// ---------------------------------------------------------------------------------------------
// Control frames
// ---------------------------------------------------------------------------------------------

const NONCE_A = "A".repeat(43);
const NONCE_B = "b_-9".repeat(10) + "xyz";
const SIG = "s".repeat(86);

const capabilities = {
  agentVersion: "1.2.3",
  channels: [
    { id: "chan-1", vendor: "openai", models: ["gpt-x", "gpt-y"], rpm: 60, tpm: 100_000 },
    { id: "chan.2:b", vendor: "anthropic", models: [], rpm: 0, tpm: 0 },
  ],
};

/**
 * At least one valid sample per control type. The mapped type makes a missing type a compile
 * error; the "table is complete" test below makes it a test failure as well.
 */
const SAMPLES: { [T in ControlType]: Frame<T>[] } = {
  hello: [{
    type: "hello",
    v: PROTOCOL_VERSION,
    agentId: "agent-1",
    keyId: "0123456789abcdef",
    agentNonce: NONCE_A,
    timestampMs: 1_700_000_000_000,
    capabilities,
  }],
  challenge: [{
    type: "challenge",
    hubNonce: NONCE_B,
    hubKeyId: "fedcba9876543210",
    timestampMs: 1_700_000_000_001,
    signature: SIG,
  }],
  auth: [{ type: "auth", hubNonce: NONCE_B, signature: SIG }],
  welcome: [{
    type: "welcome",
    sessionId: "sess_01:abc",
    generation: 7,
    pingIntervalMs: LIMITS.pingIntervalMs,
    peerDeadAfterMs: LIMITS.peerDeadAfterMs,
  }],
  ping: [{ type: "ping", seq: 0, sentAtMs: 0 }, {
    type: "ping",
    seq: Number.MAX_SAFE_INTEGER,
    sentAtMs: 1,
  }],
  pong: [{ type: "pong", seq: 1 }, { type: "pong", seq: 2, streamsOpen: 3 }],
  capabilities: [{ type: "capabilities", capabilities: { agentVersion: "", channels: [] } }, {
    type: "capabilities",
    capabilities,
  }],
  echo: [{ type: "echo", seq: 5, payload: "" }, {
    type: "echo",
    seq: 6,
    payload: "x".repeat(LIMITS.echoPayloadBytesMax),
  }],
  echo_reply: [{ type: "echo_reply", seq: 5, payload: 'quote " backslash \\ nl \n é 🚰 \u0000' }],
  request: [
    {
      type: "request",
      stream: 1,
      vendor: "openai",
      method: "POST",
      path: "/v1/chat/completions?x=1",
      headers: { "content-type": "application/json", "x-empty": "" },
      requestId: "req-1",
    },
    {
      type: "request",
      stream: 0xffff_ffff,
      vendor: "anthropic",
      channelId: "chan-1",
      method: "HEAD",
      path: "/",
      headers: {},
      requestId: "",
      priceVersion: 0,
      deadlineMs: 1_700_000_000_000,
    },
  ],
  response_head: [{
    type: "response_head",
    stream: 2,
    status: 200,
    headers: { "set-cookie": "a=b", "x-multi": "1, 2" },
  }, { type: "response_head", stream: 3, status: 999, headers: {} }],
  response_end: [{ type: "response_end", stream: 2, complete: false }, {
    type: "response_end",
    stream: 2,
    upstreamRequestId: "up-123",
    complete: true,
    usage: {
      ...emptyUsage(),
      inputTokens: 10,
      cachedInputTokens: 64,
      outputTokens: 20,
      reasoningTokens: 5,
    },
    promptTokens: 74,
    model: "gpt-4o-mini-2024-07-18",
    serviceTier: "default",
    keyRotations: 1,
  }],
  abort: [{ type: "abort", stream: 9, reason: "client went away" }],
  credit: [{ type: "credit", stream: 9, bytes: 65536 }, {
    type: "credit",
    stream: 1,
    bytes: 0xffff_ffff,
    window: 4 * 1024 * 1024,
  }],
  sync: [{ type: "sync", streams: [] }, { type: "sync", streams: [1, 2, 0xffff_ffff] }],
  probe: [{ type: "probe", token: "AbC_-09xyz" }],
  channel_status: [{ type: "channel_status", refused: [] }, {
    type: "channel_status",
    refused: [{
      id: "openai-6",
      reason: "egress IP 203.0.113.7 already carries 5 vendor accounts",
    }],
  }],
  settled: [{
    type: "settled",
    agentId: "agt_0123456789abcdef0123",
    seq: 1,
    requestId: "req_1",
    vendor: "openai",
    model: "gpt-6-luna",
    usage: { ...emptyUsage(), inputTokens: 12, outputTokens: 34 },
    priceVersion: 1,
    official: "0.0000182",
    userCharge: "0.0000182",
    agentPayout: "0.00001456",
    completedAtMs: 1_700_000_000_000,
    settledAtMs: 1_700_000_000_005,
    prevHash: "0".repeat(64),
    hash: "ab".repeat(32),
    zoneMultiplier: "1.00",
    payoutRatio: "0.80",
  }],
  settle_ack: [{
    type: "settle_ack",
    requestId: "req_1",
    seq: 1,
    hash: "0123456789abcdef".repeat(4),
  }],
  dispute: [{ type: "dispute", requestId: "req_1", seq: 7, reason: "agentPayout differs" }],
  prices: [{
    type: "prices",
    version: 2,
    publishedAtMs: 1_700_000_000_000,
    sha256: "cd".repeat(32),
    latest: true,
    table: '{"models":{"openai/gpt-x":{"input":"1.25"}},"source":"ü q"}',
  }],
  prices_get: [{ type: "prices_get", version: 7 }],
  prices_missing: [{ type: "prices_missing", version: 7, reason: "no price version 7" }],
  reconcile: [{
    type: "reconcile",
    seq: 12,
    hash: "ef".repeat(32),
    official: "1.25",
    userCharge: "1.5",
    agentPayout: "1.000000000001",
  }],
  reconcile_request: [{ type: "reconcile_request" }],
  reconcile_reply: [{
    type: "reconcile_reply",
    status: "diverged",
    seq: 12,
    hash: "ef".repeat(32),
    sent: 0,
    more: false,
    divergentSeq: 9,
  }, {
    type: "reconcile_reply",
    status: "catching_up",
    seq: 200,
    hash: "01".repeat(32),
    sent: 100,
    more: true,
  }],
  ledger_hashes_request: [{ type: "ledger_hashes_request", reqId: 3, seqs: [1, 5, 9] }],
  ledger_hashes: [{ type: "ledger_hashes", reqId: 3, hashes: ["ab".repeat(32), ""] }],
  claim: [{
    type: "claim",
    requestId: "req_9",
    vendor: "anthropic",
    model: "claude-x",
    usage: { ...emptyUsage(), inputTokens: 5, outputTokens: 6 },
    promptTokens: 5,
    completedAtMs: 1_700_000_000_000,
  }],
  claim_result: [{
    type: "claim_result",
    requestId: "req_9",
    outcome: "settled",
    reason: "",
    seq: 13,
  }, {
    type: "claim_result",
    requestId: "req_8",
    outcome: "rejected",
    reason: "no dispatch record",
  }],
  checkpoint: [{ type: "checkpoint", note: "aqueduct-checkpoint v1\nseq 100\n" }],
  checkpoint_reply: [{ type: "checkpoint_reply", seq: 100, note: "countersigned" }, {
    type: "checkpoint_reply",
    seq: 100,
    reason: "hash differs",
  }],
  goodbye: [{ type: "goodbye", reason: "shutting down", reconnect: true }, {
    type: "goodbye",
    reason: "",
    reconnect: false,
  }],
};

Deno.test("control sample table covers every CONTROL_TYPES entry (and nothing else)", () => {
  const missing = CONTROL_TYPES.filter((t) => !(SAMPLES[t]?.length > 0));
  assert.deepEqual(missing, [], `add a sample to SAMPLES for: ${missing.join(", ")}`);
  const extra = Object.keys(SAMPLES).filter((t) => !CONTROL_TYPES.includes(t as ControlType));
  assert.deepEqual(extra, [], `SAMPLES has types the protocol does not know: ${extra.join(", ")}`);
});

for (const type of CONTROL_TYPES) {
  Deno.test(`control round trip: ${type}`, () => {
    const samples: ControlFrame[] = SAMPLES[type] ?? [];
    assert.ok(samples.length > 0, `no sample for ${type}`);
    for (const sample of samples) {
      // Before encode: the sample is of the type under test and the encoder leaves it alone.
      assert.equal(sample.type, type);
      const before = structuredClone(sample);
      const text = encodeControl(sample);
      assert.deepEqual(sample, before, "encodeControl must not mutate its input");
      assert.deepEqual(JSON.parse(text), sample, "the wire form holds exactly the frame's fields");

      // After decode: the same frame, a fresh object, classified as a control frame.
      const decoded = decodeControl(text);
      assert.deepEqual(decoded, sample);
      assert.notEqual(decoded, sample);
      assert.equal(decoded.type, type);
      assert.equal(isBodyFrame(decoded), false);
      assert.deepEqual(decodeMessage(text), sample);
      assert.equal(encodeControl(decoded), text, "re-encoding is stable");
    }
  });
}

Deno.test("control decode drops unknown fields, at the top level and nested", () => {
  const text = JSON.stringify({
    type: "hello",
    v: 1,
    agentId: "a",
    keyId: "k",
    agentNonce: NONCE_A,
    timestampMs: 1,
    capabilities: {
      agentVersion: "v",
      future: { nested: true },
      channels: [{ id: "c", vendor: "v", models: ["m"], rpm: 1, tpm: 2, weight: 3 }],
    },
    extra: "dropped",
    constructor: { prototype: { polluted: true } },
  }).slice(0, -1) + ',"__proto__":{"polluted":true}}';
  const frame = decodeControl(text);
  assert.deepEqual(frame, {
    type: "hello",
    v: 1,
    agentId: "a",
    keyId: "k",
    agentNonce: NONCE_A,
    timestampMs: 1,
    capabilities: {
      agentVersion: "v",
      channels: [{ id: "c", vendor: "v", models: ["m"], rpm: 1, tpm: 2 }],
    },
  });
  assert.equal(Object.getPrototypeOf(frame), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined, "no prototype pollution");
});

Deno.test("control decode reads JSON -0 as 0, so decoded frames round-trip exactly", () => {
  const frame = decodeControl('{"type":"credit","stream":-0,"bytes":-0.0}');
  assert.deepEqual(frame, { type: "credit", stream: 0, bytes: 0 });
  assert.ok(frame.type === "credit" && Object.is(frame.stream, 0) && Object.is(frame.bytes, 0));
  assert.deepEqual(decodeControl(encodeControl(frame)), frame);
  const sync = decodeControl('{"type":"sync","streams":[-0,1]}');
  assert.ok(sync.type === "sync" && Object.is(sync.streams[0], 0));
});

function assertDecodeError(fn: () => unknown, code: FrameErrorCode, label?: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(
    thrown !== undefined,
    `${label ?? "decode"}: expected FrameDecodeError ${code}, no throw`,
  );
  assert.ok(
    thrown instanceof FrameDecodeError,
    `${label ?? "decode"}: expected FrameDecodeError, got ${thrown}`,
  );
  assert.equal(thrown.code, code, `${label ?? "decode"}: ${thrown.message}`);
  assert.equal(thrown.name, "FrameDecodeError");
  assert.ok(thrown.message.startsWith("Cannot decode frame: "));
}

Deno.test("control decode rejects bad JSON with bad_json", () => {
  for (const text of ["", "{", "not json", '{"type":"ping",}', "[1,2", "NaN", "{'type':'ping'}"]) {
    assertDecodeError(() => decodeControl(text), "bad_json", JSON.stringify(text));
  }
  // Valid JSON that is not an object.
  for (const text of ["null", "1", '"ping"', "[]", '[{"type":"ping"}]', "true"]) {
    assertDecodeError(() => decodeControl(text), "bad_json", text);
  }
});

Deno.test("control decode rejects unknown or missing types with unknown_type", () => {
  for (
    const frame of [
      {},
      { type: "nope" },
      { type: "PING", seq: 1, sentAtMs: 1 },
      { type: 1 },
      { type: null },
      { type: ["ping"] },
      { type: "toString" },
      { type: "constructor" },
      { type: "__proto__" },
      { type: "hasOwnProperty" },
    ]
  ) {
    assertDecodeError(
      () => decodeControl(JSON.stringify(frame)),
      "unknown_type",
      JSON.stringify(frame),
    );
  }
});

Deno.test("control decode rejects bad fields with bad_field", () => {
  const ping = { type: "ping", seq: 1, sentAtMs: 2 };
  const hello = SAMPLES.hello[0]!;
  const request = SAMPLES.request[0]!;
  const cases: [string, unknown][] = [
    // missing / wrong types
    ["missing field", { type: "ping", seq: 1 }],
    ["string for uint", { ...ping, seq: "1" }],
    ["null for uint", { ...ping, seq: null }],
    ["bool for uint", { ...ping, seq: true }],
    ["object for string", { type: "abort", stream: 1, reason: {} }],
    ["number for bool", { type: "goodbye", reason: "", reconnect: 1 }],
    ["string for array", { type: "sync", streams: "1,2" }],
    ["array for map", { ...request, headers: [["a", "b"]] }],
    ["non-string map value", { ...request, headers: { a: 1 } }],
    ["null optional", { type: "pong", seq: 1, streamsOpen: null }],
    ["method not allowed", { ...request, method: "get" }],
    // out-of-range integers
    ["negative", { ...ping, seq: -1 }],
    ["fraction", { ...ping, seq: 1.5 }],
    ["unsafe integer", { ...ping, seq: 2 ** 53 }],
    ["huge", { ...ping, seq: 1e300 }],
    ["stream above u32", { type: "credit", stream: 2 ** 32, bytes: 1 }],
    ["bytes above u32", { type: "credit", stream: 1, bytes: 2 ** 32 }],
    ["status above 999", { type: "response_head", stream: 1, status: 1000, headers: {} }],
    ["sync stream above u32", { type: "sync", streams: [1, 2 ** 32] }],
    // too-long strings and too many items
    ["reason too long", { type: "abort", stream: 1, reason: "r".repeat(501) }],
    ["echo too long", {
      type: "echo",
      seq: 1,
      payload: "e".repeat(LIMITS.echoPayloadBytesMax + 1),
    }],
    ["id too long", { ...hello, agentId: "a".repeat(81) }],
    ["header value too long", { ...request, headers: { a: "v".repeat(16385) } }],
    [
      "too many headers",
      {
        ...request,
        headers: Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`h${i}`, ""])),
      },
    ],
    ["too many streams", {
      type: "sync",
      streams: Array.from({ length: LIMITS.streamsPerSessionMax + 1 }, (_, i) => i + 1),
    }],
    // identifiers and base64url
    ["empty id", { ...hello, agentId: "" }],
    ["id with newline", { ...hello, agentId: "agent\n1" }],
    ["id with trailing newline", { ...hello, keyId: "abc\n" }],
    ["id with leading newline", { ...hello, keyId: "\nabc" }],
    ["id with CR", { ...hello, agentId: "agent\r" }],
    ["id with space", { ...hello, agentId: "agent 1" }],
    ["id with =", {
      type: "welcome",
      sessionId: "a=b",
      generation: 1,
      pingIntervalMs: 1,
      peerDeadAfterMs: 2,
    }],
    ["nonce with padding", { ...hello, agentNonce: "AAAA=" }],
    ["nonce with newline", { type: "auth", hubNonce: "abc\n", signature: SIG }],
    ["empty nonce", { type: "auth", hubNonce: "", signature: SIG }],
    ["signature with +", { type: "auth", hubNonce: NONCE_A, signature: "a+b" }],
    // nested
    ["nested channel rpm", {
      ...hello,
      capabilities: { agentVersion: "v", channels: [{ ...capabilities.channels[0], rpm: -1 }] },
    }],
    ["nested channel vendor with newline", {
      ...hello,
      capabilities: {
        agentVersion: "v",
        channels: [{ ...capabilities.channels[0], vendor: "a\n" }],
      },
    }],
    ["capabilities not an object", { type: "capabilities", capabilities: [] }],
  ];
  for (const [label, frame] of cases) {
    assertDecodeError(() => decodeControl(JSON.stringify(frame)), "bad_field", label);
  }
});

Deno.test("control decode rejects oversized text with too_large before parsing", () => {
  const max = LIMITS.controlFrameBytesMax;
  const padded = (n: number) => {
    const head = '{"type":"ping","seq":1,"sentAtMs":2}';
    return head + " ".repeat(n - head.length);
  };
  assert.deepEqual(decodeControl(padded(max)), { type: "ping", seq: 1, sentAtMs: 2 });
  assertDecodeError(() => decodeControl(padded(max + 1)), "too_large");
  // Not even valid JSON: size is checked first.
  assertDecodeError(() => decodeControl("{".repeat(max + 1)), "too_large");
  assertDecodeError(() => decodeMessage("x".repeat(max * 4)), "too_large");
});

Deno.test("encodeControl refuses invalid or oversized frames", () => {
  assert.throws(
    () => encodeControl({ type: "ping", seq: -1, sentAtMs: 0 }),
    (e: unknown) => e instanceof FrameDecodeError && e.code === "bad_field",
  );
  assert.throws(
    () => encodeControl({ type: "nope" } as unknown as ControlFrame),
    (e: unknown) => e instanceof FrameDecodeError && e.code === "unknown_type",
  );
  const headers = Object.fromEntries(
    Array.from({ length: 20 }, (_, i) => [`h${i}`, "v".repeat(16_000)]),
  );
  assert.throws(
    () => encodeControl({ ...SAMPLES.request[0]!, headers }),
    RangeError,
  );
});

// ---------------------------------------------------------------------------------------------
// Body frames
// ---------------------------------------------------------------------------------------------

function pattern(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

Deno.test("body round trip at payload sizes 0, 1 and 64 KiB, with and without FIN", () => {
  for (const size of [0, 1, LIMITS.bodyFrameBytesMax]) {
    for (const kind of [BodyKind.request, BodyKind.response]) {
      for (const fin of [false, true]) {
        for (const stream of [1, 0x1234_5678, 0xffff_ffff]) {
          const frame: BodyFrame = { kind, stream, fin, payload: pattern(size) };
          const bytes = encodeBody(frame);
          assert.equal(bytes.length, LIMITS.bodyFrameHeaderBytes + size);
          assert.equal(bytes[0], PROTOCOL_VERSION);
          assert.equal(bytes[1], kind);
          assert.equal(bytes[2], fin ? FLAG_FIN : 0);
          assert.equal(bytes[3], 0);
          const view = new DataView(bytes.buffer);
          assert.equal(view.getUint32(4), stream);
          assert.equal(view.getUint32(8), size);

          const decoded = decodeBody(bytes);
          assert.deepEqual(decoded, frame);
          assert.equal(isBodyFrame(decoded), true);
          assert.deepEqual(decodeMessage(bytes), frame);
          assert.deepEqual(decodeMessage(bytes.buffer), frame);
        }
      }
    }
  }
});

Deno.test("decoded body payload is a view into the received bytes", () => {
  const bytes = encodeBody({
    kind: BodyKind.response,
    stream: 5,
    fin: false,
    payload: pattern(10),
  });
  const decoded = decodeBody(bytes);
  assert.equal(decoded.payload.buffer, bytes.buffer);
  assert.equal(decoded.payload.byteOffset, LIMITS.bodyFrameHeaderBytes);
});

function validBody(payloadSize = 4): Uint8Array<ArrayBuffer> {
  return encodeBody({
    kind: BodyKind.request,
    stream: 42,
    fin: true,
    payload: pattern(payloadSize),
  });
}

function mutated(edit: (bytes: Uint8Array<ArrayBuffer>, view: DataView) => void): Uint8Array {
  const bytes = validBody();
  edit(bytes, new DataView(bytes.buffer));
  return bytes;
}

Deno.test("body decode rejects each malformed header with its code", () => {
  // Header shorter than 12 bytes, including empty.
  for (let n = 0; n < LIMITS.bodyFrameHeaderBytes; n++) {
    assertDecodeError(() => decodeBody(validBody().subarray(0, n)), "bad_header", `short ${n}`);
  }
  for (const version of [0, 2, 255]) {
    assertDecodeError(
      () => decodeBody(mutated((b) => b[0] = version)),
      "bad_version",
      `v${version}`,
    );
  }
  for (const kind of [0, 3, 255]) {
    assertDecodeError(() => decodeBody(mutated((b) => b[1] = kind)), "bad_header", `kind ${kind}`);
  }
  for (const flags of [0x02, 0x03, 0x80, 0xff]) {
    assertDecodeError(
      () => decodeBody(mutated((b) => b[2] = flags)),
      "bad_header",
      `flags ${flags}`,
    );
  }
  for (const reserved of [1, 0x80, 0xff]) {
    assertDecodeError(() => decodeBody(mutated((b) => b[3] = reserved)), "bad_header", "reserved");
  }
  assertDecodeError(
    () => decodeBody(mutated((_, v) => v.setUint32(4, 0))),
    "bad_header",
    "stream 0",
  );
  for (const length of [0, 3, 5, 0xffff_ffff, LIMITS.bodyFrameBytesMax]) {
    assertDecodeError(
      () => decodeBody(mutated((_, v) => v.setUint32(8, length))),
      "bad_length",
      `length ${length}`,
    );
  }
  // Payload bytes missing or extra relative to the (unchanged) header.
  assertDecodeError(() => decodeBody(validBody().subarray(0, 15)), "bad_length", "truncated");
  const extra = new Uint8Array(validBody().length + 1);
  extra.set(validBody());
  assertDecodeError(() => decodeBody(extra), "bad_length", "trailing byte");
});

Deno.test("body decode rejects payloads above 64 KiB with too_large", () => {
  const max = LIMITS.bodyFrameBytesMax;
  const bytes = new Uint8Array(LIMITS.bodyFrameHeaderBytes + max + 1);
  bytes.set(validBody(0).subarray(0, 8));
  new DataView(bytes.buffer).setUint32(8, max + 1); // honest length, still too large
  assertDecodeError(() => decodeBody(bytes), "too_large");
  assertDecodeError(() => decodeMessage(bytes.buffer), "too_large");
  // Exactly at the limit is fine.
  assert.equal(decodeBody(validBody(max)).payload.length, max);
});

Deno.test("encodeBody rejects out-of-range input with RangeError", () => {
  const ok: BodyFrame = {
    kind: BodyKind.request,
    stream: 1,
    fin: false,
    payload: new Uint8Array(0),
  };
  const bad: [string, BodyFrame][] = [
    ["kind 0", { ...ok, kind: 0 as BodyKind }],
    ["kind 3", { ...ok, kind: 3 as BodyKind }],
    ["kind as string", { ...ok, kind: "1" as unknown as BodyKind }],
    ["stream 0", { ...ok, stream: 0 }],
    ["stream -1", { ...ok, stream: -1 }],
    ["stream 1.5", { ...ok, stream: 1.5 }],
    ["stream NaN", { ...ok, stream: NaN }],
    ["stream Infinity", { ...ok, stream: Infinity }],
    ["stream 2^32", { ...ok, stream: 2 ** 32 }],
    ["payload too large", { ...ok, payload: new Uint8Array(LIMITS.bodyFrameBytesMax + 1) }],
  ];
  for (const [label, frame] of bad) {
    assert.throws(() => encodeBody(frame), RangeError, label);
  }
  encodeBody(ok);
  encodeBody({ ...ok, stream: 0xffff_ffff, payload: new Uint8Array(LIMITS.bodyFrameBytesMax) });
});

// ---------------------------------------------------------------------------------------------
// decodeMessage routing
// ---------------------------------------------------------------------------------------------

Deno.test("decodeMessage routes text, ArrayBuffer, Uint8Array and offset subarrays", () => {
  const control = SAMPLES.ping[0]!;
  assert.deepEqual(decodeMessage(encodeControl(control)), control);

  const body: BodyFrame = { kind: BodyKind.response, stream: 77, fin: true, payload: pattern(33) };
  const bytes = encodeBody(body);
  assert.deepEqual(decodeMessage(bytes), body);
  assert.deepEqual(decodeMessage(bytes.buffer), body);

  // A frame in the middle of a larger buffer, with garbage around it.
  const big = new Uint8Array(bytes.length + 13);
  big.fill(0xee);
  big.set(bytes, 5);
  const view = big.subarray(5, 5 + bytes.length);
  assert.equal(view.byteOffset, 5);
  const decoded = decodeMessage(view);
  assert.ok(isBodyFrame(decoded));
  assert.deepEqual(decoded, body);
  assert.equal(decoded.payload.byteOffset, 5 + LIMITS.bodyFrameHeaderBytes);

  // A Uint8Array subclass (Node's Buffer is one) is binary too.
  class Bytes extends Uint8Array {}
  const fromSubclass = decodeMessage(new Bytes(bytes));
  assert.ok(isBodyFrame(fromSubclass));
  assert.deepEqual(
    { ...fromSubclass, payload: Array.from(fromSubclass.payload) },
    { ...body, payload: Array.from(body.payload) },
  );
});

Deno.test("decodeMessage rejects values that are neither text nor binary", () => {
  const bytes = validBody();
  for (
    const value of [
      undefined,
      null,
      42,
      true,
      {},
      { type: "ping", seq: 1, sentAtMs: 1 },
      [1, 2, 3],
      Array.from(bytes),
      new DataView(bytes.buffer),
      new Uint16Array(8),
      new Int8Array(bytes.buffer),
      new Uint8ClampedArray(bytes),
      new Blob([bytes]),
      Symbol("x"),
      () => {},
      new String('{"type":"ping","seq":1,"sentAtMs":1}'),
    ]
  ) {
    assertDecodeError(() => decodeMessage(value), "bad_header", String(typeof value));
  }
});
