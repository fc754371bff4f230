import assert from "node:assert/strict";
import { type SseEvent, SseParser, type SseParserOptions } from "./sse.ts";
import { seededRandom } from "../prng.ts";

const enc = new TextEncoder();

function parse(chunks: Uint8Array[], options?: SseParserOptions) {
  const p = new SseParser(options);
  const events: SseEvent[] = [];
  const on = (e: SseEvent) => events.push(e);
  for (const c of chunks) p.push(c, on);
  p.end(on);
  return { events, oversized: p.oversizedEvents, lastEventId: p.lastEventId };
}

/** Parses `bytes` split at every point (2 chunks), then in 1-byte chunks; all must agree. */
function assertEveryChunking(bytes: Uint8Array, expected: SseEvent[], options?: SseParserOptions) {
  const whole = parse([bytes], options);
  assert.deepEqual(whole.events, expected);
  for (let i = 0; i <= bytes.length; i++) {
    const got = parse([bytes.subarray(0, i), bytes.subarray(i)], options);
    assert.deepEqual(got, whole, `split at ${i}`);
  }
  const ones = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  assert.deepEqual(parse(ones, options), whole, "1-byte chunks");
  const rnd = seededRandom(bytes.length);
  for (let t = 0; t < 50; t++) {
    const cuts = [0, ...[0, 0, 0].map(() => Math.floor(rnd() * bytes.length))].sort((a, b) =>
      a - b
    );
    const parts = cuts.map((c, k) => bytes.subarray(c, cuts[k + 1] ?? bytes.length));
    assert.deepEqual(parse(parts, options), whole, `cuts ${cuts}`);
  }
  return whole;
}

const STREAM = [
  ": keepalive comment",
  "event: response.created",
  'data: {"type":"response.created","text":"héllo 🌍 ünïcødé"}',
  "",
  "data: line1",
  "data: line2",
  "data:",
  "data: line4",
  "",
  "data:nospace",
  "",
  "data:  two spaces",
  "",
  "id: 42",
  "data: with id",
  "",
  "event: no-data-so-no-dispatch",
  "",
  "data",
  "",
  "retry: 1000",
  "unknown: field",
  "data: after ignored fields",
  "",
  "",
  "",
  "data: [DONE]",
  "",
  "",
];
const EXPECTED: SseEvent[] = [
  { event: "response.created", data: '{"type":"response.created","text":"héllo 🌍 ünïcødé"}' },
  { data: "line1\nline2\n\nline4" },
  { data: "nospace" },
  { data: " two spaces" },
  { data: "with id" },
  { data: "" },
  { data: "after ignored fields" },
  { data: "[DONE]" },
];

for (const [name, eol] of [["LF", "\n"], ["CRLF", "\r\n"], ["CR", "\r"]] as const) {
  Deno.test(`sse: same events at every split point (${name})`, () => {
    const got = assertEveryChunking(enc.encode(STREAM.join(eol)), EXPECTED);
    assert.equal(got.lastEventId, "42");
    assert.equal(got.oversized, 0);
  });
}

Deno.test("sse: mixed line endings, and CR then LF split across chunks is one terminator", () => {
  const text = "data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r";
  assertEveryChunking(enc.encode(text), [{ data: "a\nb\nc" }, { data: "d" }]);
  // "\r" + "\n" in separate chunks must not yield an extra blank line (which would split events)
  const got = parse([enc.encode("data: a\r"), enc.encode("\ndata: b\r\n\r\n")]);
  assert.deepEqual(got.events, [{ data: "a\nb" }]);
});

Deno.test("sse: leading BOM skipped; end() dispatches an unterminated last event", () => {
  assertEveryChunking(enc.encode("\uFEFFdata: x\n\ndata: y"), [{ data: "x" }, { data: "y" }]);
  assertEveryChunking(enc.encode("data: x\n"), [{ data: "x" }]);
  assertEveryChunking(enc.encode(": only a comment\n\n"), []);
});

Deno.test("sse: an oversized event is skipped and counted, neighbours intact", () => {
  const big = "x".repeat(500);
  const text = `data: small1\n\nevent: big\ndata: ${big}\ndata: more\n\ndata: small2\n\n`;
  const got = assertEveryChunking(enc.encode(text), [{ data: "small1" }, { data: "small2" }], {
    maxEventBytes: 100,
  });
  assert.equal(got.oversized, 1);
  // many short lines add up too, and an oversized event cut by the end of stream is counted
  const lines = `data: a\n${"data: bbbbbbbbbb\n".repeat(20)}\ndata: ok\n\ndata: ${big}`;
  const got2 = assertEveryChunking(enc.encode(lines), [{ data: "ok" }], { maxEventBytes: 100 });
  assert.equal(got2.oversized, 2);
});

Deno.test("sse: oversizedTailBytes dispatches the tail of an oversized event's last line", () => {
  const data = "0123456789".repeat(30) + '"usage":{"t":1}}';
  const text = `event: response.completed\ndata: ${data}\n\ndata: after\n\n`;
  const got = assertEveryChunking(enc.encode(text), [
    { event: "response.completed", data: data.slice(-32), truncated: true },
    { data: "after" },
  ], { maxEventBytes: 100, oversizedTailBytes: 32 });
  assert.equal(got.oversized, 1);
  // a last line shorter than the tail is given whole, without its field name
  const short = `data: ${"y".repeat(150)}\ndata: tail-line\n\n`;
  assertEveryChunking(enc.encode(short), [{ data: "tail-line", truncated: true }], {
    maxEventBytes: 100,
    oversizedTailBytes: 32,
  });
});

Deno.test("sse: malformed UTF-8 becomes U+FFFD, never throws", () => {
  const bytes = new Uint8Array([...enc.encode("data: a"), 0xff, 0xc3, ...enc.encode("b\n\n")]);
  assertEveryChunking(bytes, [{ data: "a\uFFFD\uFFFDb" }]);
});
