import assert from "node:assert/strict";
import { crc32 } from "./crc32.ts";
import {
  decodeMessage,
  encodeMessage,
  EventStreamDecoder,
  eventStreamDecoderStream,
  EventStreamError,
  type EventStreamMessage,
} from "./eventstream.ts";
import {
  decodeChunkBytes,
  readBedrockEvent,
  usageFromConverse,
  usageFromInvocationMetrics,
} from "./bedrock_events.ts";

const enc = new TextEncoder();
const hexOf = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const event = (eventType: string, body: unknown) =>
  encodeMessage({
    headers: {
      ":event-type": eventType,
      ":content-type": "application/json",
      ":message-type": "event",
    },
    payload: JSON.stringify(body),
  });
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
};
const decodeAll = (chunks: Uint8Array[]) => {
  const d = new EventStreamDecoder();
  const out = chunks.flatMap((c) => d.push(c));
  d.end();
  return out;
};

Deno.test("crc32 check value and the reference frame from vendor-wire §6.4", () => {
  assert.equal(crc32(enc.encode("123456789")), 0xcbf43926);
  const frame = event("chunk", { bytes: btoa('{"type":"message_stop"}') });
  assert.equal(frame.length, 135);
  assert.equal(hexOf(frame.subarray(0, 12)), "000000870000004b87ea2bf3");
  assert.equal(hexOf(frame.subarray(-4)), "ba48ab22");
  const m = decodeMessage(frame);
  const ev = readBedrockEvent(m);
  assert.deepEqual(ev, {
    kind: "event",
    eventType: "chunk",
    body: { bytes: btoa('{"type":"message_stop"}') },
  });
  assert.deepEqual(decodeChunkBytes(ev.kind === "event" && ev.body), { type: "message_stop" });
});

Deno.test("every header type round-trips", () => {
  const msg = {
    headers: {
      t: { type: "bool", value: true },
      f: { type: "bool", value: false },
      b: { type: "byte", value: -7 },
      s: { type: "short", value: -30000 },
      i: { type: "int", value: 2 ** 31 - 1 },
      l: { type: "long", value: -(2n ** 63n) },
      y: { type: "bytes", value: new Uint8Array([0, 255, 1]) },
      str: { type: "string", value: "héllo ✓" },
      ts: { type: "timestamp", value: 1_763_775_258_000n },
      u: { type: "uuid", value: new Uint8Array(16).fill(0xab) },
    },
    payload: new Uint8Array([1, 2, 3]),
  } as const satisfies Parameters<typeof encodeMessage>[0];
  const m = decodeMessage(encodeMessage(msg));
  assert.deepEqual({ ...m.headers }, msg.headers);
  assert.deepEqual(m.payload, msg.payload);
  assert.deepEqual(decodeMessage(encodeMessage({})), {
    headers: Object.create(null),
    payload: new Uint8Array(0),
  });
  assert.throws(() => encodeMessage({ headers: { ["x".repeat(256)]: "v" } }), RangeError);
  assert.throws(
    () => encodeMessage({ headers: { u: { type: "uuid", value: new Uint8Array(3) } } }),
    RangeError,
  );
});

Deno.test("round trip at every split point (one and two splits) and byte by byte", () => {
  const msgs = [
    event("messageStart", { role: "assistant" }),
    encodeMessage({}),
    event("messageStop", { stopReason: "end_turn" }),
  ];
  const all = concat(msgs);
  const want = msgs.map((m) => decodeMessage(m));
  for (let i = 0; i <= all.length; i++) {
    assert.deepEqual(decodeAll([all.subarray(0, i), all.subarray(i)]), want, `split ${i}`);
  }
  const two = concat(msgs.slice(0, 2));
  for (let i = 0; i <= two.length; i++) {
    for (let j = i; j <= two.length; j++) {
      const got = decodeAll([two.subarray(0, i), two.subarray(i, j), two.subarray(j)]);
      assert.equal(got.length, 2, `splits ${i},${j}`);
    }
  }
  assert.deepEqual(decodeAll([...all].map((b) => new Uint8Array([b]))), want);
});

Deno.test("a flipped bit anywhere in a message is detected by the right CRC", () => {
  const frame = event("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "Hi" } });
  for (let i = 0; i < frame.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = frame.slice();
      bad[i]! ^= 1 << bit;
      let threw = false;
      try {
        decodeAll([bad]);
      } catch (e) {
        threw = true;
        assert.ok(e instanceof EventStreamError);
        const reason = e.reason;
        if (i < 12) assert.equal(reason, "prelude_crc", `byte ${i} bit ${bit}`);
        else assert.equal(reason, "message_crc", `byte ${i} bit ${bit}`);
      }
      assert.ok(threw, `byte ${i} bit ${bit} went unnoticed`);
    }
  }
});

Deno.test("truncation, oversize, bad lengths and a poisoned decoder", () => {
  const frame = event("messageStop", { stopReason: "end_turn" });
  for (let i = 1; i < frame.length; i++) {
    assert.throws(
      () => decodeAll([frame.subarray(0, i)]),
      (e: unknown) => e instanceof EventStreamError && e.reason === "truncated",
    );
    assert.throws(() => decodeMessage(frame.subarray(0, i)), EventStreamError);
  }
  const prelude = (total: number, headers: number) => {
    const b = new Uint8Array(12);
    const v = new DataView(b.buffer);
    v.setUint32(0, total);
    v.setUint32(4, headers);
    v.setUint32(8, crc32(b, 0, 8));
    return b;
  };
  const reasonOf = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof EventStreamError, String(e));
      return e.reason;
    }
    return "none";
  };
  const d = new EventStreamDecoder();
  assert.equal(reasonOf(() => d.push(prelude(0xffffffff, 0))), "too_large");
  assert.equal(reasonOf(() => d.push(frame)), "too_large", "poisoned");
  assert.equal(reasonOf(() => new EventStreamDecoder(frame.length).push(frame)), "none");
  assert.equal(reasonOf(() => new EventStreamDecoder(frame.length - 1).push(frame)), "too_large");
  assert.equal(reasonOf(() => new EventStreamDecoder().push(prelude(15, 0))), "bad_length");
  assert.equal(reasonOf(() => new EventStreamDecoder().push(prelude(40, 25))), "bad_length");
  assert.equal(reasonOf(() => decodeMessage(concat([frame, new Uint8Array(1)]))), "bad_length");
  const unknownType = encodeMessage({ headers: { a: "b" } });
  unknownType[12 + 2] = 42;
  const fixed = (b: Uint8Array) => {
    new DataView(b.buffer).setUint32(b.length - 4, crc32(b, 0, b.length - 4));
    return b;
  };
  assert.equal(reasonOf(() => decodeMessage(fixed(unknownType))), "bad_header");
  const dup = encodeMessage({ headers: { a: "b", c: "d" } });
  dup[12 + 6] = "a".charCodeAt(0);
  assert.equal(reasonOf(() => decodeMessage(fixed(dup))), "bad_header");
});

async function viaStream(bytes: Uint8Array, chunk: number): Promise<EventStreamMessage[]> {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  const out: EventStreamMessage[] = [];
  for await (const m of ReadableStream.from(chunks).pipeThrough(eventStreamDecoderStream())) {
    out.push(m);
  }
  return out;
}

Deno.test("a realistic ConverseStream: events in order, usage from metadata, padding ignored", async () => {
  const p = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
  const bytes = concat([
    event("messageStart", { p, role: "assistant" }),
    event("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "Hel" }, p }),
    event("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "lo" }, p: p.slice(0, 5) }),
    event("contentBlockStop", { contentBlockIndex: 0, p }),
    event("messageStop", { p, stopReason: "end_turn" }),
    event("metadata", {
      metrics: { latencyMs: 412 },
      p,
      usage: { inputTokens: 12, outputTokens: 5, totalTokens: 17 },
    }),
  ]);
  for (const chunk of [1, 7, 64, bytes.length]) {
    const events = (await viaStream(bytes, chunk)).map(readBedrockEvent);
    assert.deepEqual(events.map((e) => e.kind === "event" && e.eventType), [
      "messageStart",
      "contentBlockDelta",
      "contentBlockDelta",
      "contentBlockStop",
      "messageStop",
      "metadata",
    ]);
    const text = events.map((e) =>
      e.kind === "event" && (e.body as { delta?: { text: string } }).delta?.text
    ).filter(Boolean).join("");
    assert.equal(text, "Hello");
    const last = events.at(-1)!;
    assert.deepEqual(usageFromConverse(last.kind === "event" && last.body), {
      inputTokens: 12,
      outputTokens: 5,
      cacheReadInputTokens: 0,
      cacheWriteInputTokens: 0,
    });
  }
  await assert.rejects(viaStream(bytes.subarray(0, bytes.length - 3), 50), EventStreamError);
});

Deno.test("InvokeModelWithResponseStream chunks: base64 Anthropic events, invocation metrics, exceptions", async () => {
  const chunk = (body: unknown) =>
    event("chunk", { bytes: btoa(JSON.stringify(body)), p: "abcdefgh" });
  const bytes = concat([
    chunk({ type: "message_start", message: { usage: { input_tokens: 9, output_tokens: 1 } } }),
    chunk({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hi" } }),
    chunk({
      type: "message_stop",
      "amazon-bedrock-invocationMetrics": {
        inputTokenCount: 9,
        outputTokenCount: 3,
        invocationLatency: 523,
        firstByteLatency: 301,
      },
    }),
    encodeMessage({
      headers: {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
      },
      payload: '{"message":"Too many requests"}',
    }),
    encodeMessage({
      headers: {
        ":error-code": "InternalFailure",
        ":error-message": "boom",
        ":message-type": "error",
      },
    }),
  ]);
  const events = (await viaStream(bytes, 13)).map(readBedrockEvent);
  const decoded = events.slice(0, 3).map((e) => decodeChunkBytes(e.kind === "event" && e.body));
  assert.deepEqual(decoded.map((d) => (d as { type: string }).type), [
    "message_start",
    "content_block_delta",
    "message_stop",
  ]);
  assert.equal(usageFromInvocationMetrics(decoded[1]), null);
  assert.deepEqual(usageFromInvocationMetrics(decoded[2]), {
    inputTokens: 9,
    outputTokens: 3,
    cacheReadInputTokens: 0,
    cacheWriteInputTokens: 0,
  });
  assert.deepEqual(events[3], {
    kind: "exception",
    exceptionType: "throttlingException",
    message: "Too many requests",
  });
  assert.deepEqual(events[4], { kind: "error", errorCode: "InternalFailure", message: "boom" });
  assert.throws(() => decodeChunkBytes({ bytes: "@@" }), EventStreamError);
  assert.throws(() => decodeChunkBytes({}), EventStreamError);
  assert.throws(
    () => readBedrockEvent(decodeMessage(encodeMessage({ headers: { ":message-type": "event" } }))),
    EventStreamError,
  );
});
