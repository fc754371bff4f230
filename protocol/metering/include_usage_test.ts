import assert from "node:assert/strict";
import { ensureIncludeUsage, UsageChunkStripper } from "./include_usage.ts";
import { seededRandom } from "../prng.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const USAGE = {
  prompt_tokens: 1117,
  completion_tokens: 46,
  total_tokens: 1163,
  prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
};

interface Variant {
  eol: "\n" | "\r\n" | "\r";
  /** Where OpenAI puts `"usage":null` among the chunk's members. */
  at: "last" | "beforeObfuscation" | "first";
  /** Separators: compact (OpenAI) or spaced. */
  spaced: boolean;
  azure: boolean;
}

/**
 * A tiny deterministic OpenAI chat stream generator, producing the same stream with and without
 * `stream_options.include_usage` (the latter is what the stripper must reproduce byte for byte).
 */
function generate(v: Variant, includeUsage: boolean, contents = CONTENTS): Uint8Array {
  const sep = v.spaced ? ", " : ",", kv = v.spaced ? ": " : ":";
  const obj = (members: [string, string][]) => {
    const list = members.filter(([k]) => includeUsage || k !== "usage");
    return "{" + list.map(([k, val]) => `"${k}"${kv}${val}`).join(sep) + "}";
  };
  const chunk = (choices: string, usage: string, extra: [string, string][] = []) => {
    const m: [string, string][] = [
      ["id", '"chatcmpl-AbC"'],
      ["object", '"chat.completion.chunk"'],
      ["created", "1763780000"],
      ["model", '"gpt-4o-mini-2024-07-18"'],
      ["service_tier", '"default"'],
      ["system_fingerprint", '"fp_560af6e559"'],
      ["choices", choices],
      ...extra,
    ];
    if (v.at === "first") m.unshift(["usage", usage]);
    else if (v.at === "last") m.push(["usage", usage]);
    else m.push(["usage", usage], ["obfuscation", '"x9"']);
    return obj(m);
  };
  const events: string[] = [];
  if (v.azure) {
    events.push(obj([
      ["choices", "[]"],
      ["created", "0"],
      ["id", '""'],
      ["model", '""'],
      ["object", '""'],
      ["prompt_filter_results", '[{"prompt_index":0,"content_filter_results":{}}]'],
      ["usage", "null"],
    ]));
  }
  contents.forEach((content, i) => {
    const delta = i === 0 ? `{"role":"assistant","content":${content}}` : `{"content":${content}}`;
    const choice = `[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":null}]`;
    // a nested `"usage":null` is not OpenAI's to strip: it must survive in both variants
    events.push(chunk(choice, "null", i === 2 ? [["x_meta", '{"usage":null}']] : []));
  });
  events.push(chunk('[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]', "null"));
  if (includeUsage) events.push(chunk("[]", JSON.stringify(USAGE)));
  const e = v.eol;
  const body = events.map((x, i) => (i === 1 ? `: keepalive${e}${e}` : "") + `data: ${x}${e}${e}`);
  return enc.encode(body.join("") + `data: [DONE]${e}${e}`);
}

const CONTENTS = [
  '""',
  '"Hello"',
  '" \\"usage\\":null, \\"usage\\":{\\"x\\":1} "',
  '" \\\\\\"usage\\":null é🌍 }{ "',
  '"\\n\\r data: [DONE]"',
];

function strip(chunks: Uint8Array[], max?: number) {
  const s = new UsageChunkStripper({ maxEventBytes: max });
  const out: Uint8Array[] = chunks.map((c) => s.push(c));
  out.push(s.end());
  const bytes = new Uint8Array(out.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of out) (bytes.set(c, at), at += c.length);
  return { bytes, s };
}

function assertStripsTo(input: Uint8Array, expected: Uint8Array, max?: number) {
  const ok = (got: Uint8Array, what: string) => {
    if (got.length !== expected.length || got.some((b, i) => b !== expected[i])) {
      assert.equal(dec.decode(got), dec.decode(expected), what); // readable diff
      assert.fail(`${what}: bytes differ`);
    }
  };
  const whole = strip([input], max);
  ok(whole.bytes, "whole");
  for (let i = 0; i <= input.length; i++) {
    const { bytes, s } = strip([input.subarray(0, i), input.subarray(i)], max);
    ok(bytes, `split at ${i}`);
    assert.deepEqual([s.rawUsage, s.sawDone], [whole.s.rawUsage, whole.s.sawDone], `split ${i}`);
  }
  ok(strip(Array.from(input, (_, i) => input.subarray(i, i + 1)), max).bytes, "1-byte chunks");
  const rnd = seededRandom(input.length);
  for (let t = 0; t < 100; t++) {
    const cuts = [0, 0, 0].map(() => Math.floor(rnd() * input.length)).sort((a, b) => a - b);
    const parts = [0, ...cuts].map((c, k, all) => input.subarray(c, all[k + 1] ?? input.length));
    ok(strip(parts, max).bytes, `cuts ${cuts}`);
  }
  return whole.s;
}

for (const eol of ["\n", "\r\n", "\r"] as const) {
  for (const at of ["last", "beforeObfuscation", "first"] as const) {
    for (const spaced of [false, true]) {
      const v: Variant = { eol, at, spaced, azure: at === "last" };
      Deno.test(`include_usage: stripped == generated without (${JSON.stringify(v)})`, () => {
        const s = assertStripsTo(generate(v, true), generate(v, false));
        assert.deepEqual(s.rawUsage, USAGE);
        assert.deepEqual(s.usage?.usage.cachedInputTokens, 1024);
        assert.deepEqual([s.model, s.serviceTier, s.sawDone], [
          "gpt-4o-mini-2024-07-18",
          "default",
          true,
        ]);
        assert.equal(s.droppedEvents, 1);
        // and a stream without include_usage goes through unchanged
        assertStripsTo(generate(v, false), generate(v, false));
      });
    }
  }
}

Deno.test("include_usage: an oversized event passes through untouched, the rest is stripped", () => {
  const v: Variant = { eol: "\n", at: "last", spaced: false, azure: false };
  const contents = ['"a"', `"${"b".repeat(600)}"`, '"c"'];
  const withU = dec.decode(generate(v, true, contents)),
    without = dec.decode(generate(v, false, contents));
  const big = (s: string) => s.split("\n\n").findIndex((e) => e.includes("bbbb"));
  const expected = without.split("\n\n");
  expected[big(without)] = withU.split("\n\n")[big(withU)]!;
  assertStripsTo(enc.encode(withU), enc.encode(expected.join("\n\n")), 400);
});

Deno.test("include_usage: ensureIncludeUsage adds only what is missing", () => {
  const captured =
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}';
  const r1 = ensureIncludeUsage(enc.encode(captured));
  assert.equal(r1.added, true);
  assert.equal(
    dec.decode(r1.body),
    captured.slice(0, -1) + ',"stream_options":{"include_usage":true}}',
  );
  const sdk = enc.encode(captured.slice(0, -1) + ',"stream_options":{"include_usage":true}}');
  const same = ensureIncludeUsage(sdk);
  assert.equal(same.body, sdk); // the very same bytes
  assert.equal(same.added, false);
  // other bytes kept exactly: big integers, escapes, key order, pretty printing
  const pretty = '{\n  "seed": 12345678901234567890,\n  "logit_bias": {"50256": -100, "1": 1},\n' +
    '  "messages": [{"role":"user","content":"\\u00e9 \\"stream_options\\""}],\n  "stream": true,\n' +
    '  "stream_options": {"include_usage": false, "include_obfuscation": false}\n}\n';
  const r2 = ensureIncludeUsage(enc.encode(pretty));
  assert.equal(r2.added, true);
  assert.equal(
    dec.decode(r2.body),
    pretty.replace(
      '{"include_usage": false, "include_obfuscation": false}',
      '{"include_usage":true,"include_obfuscation":false}',
    ),
  );
  const r3 = ensureIncludeUsage(enc.encode('{"stream":true,"stream_options":null}  '));
  assert.equal(dec.decode(r3.body), '{"stream":true,"stream_options":{"include_usage":true}}  ');
  for (
    const body of [
      '{"model":"m","stream":false}',
      '{"model":"m"}',
      '{"stream":"true"}',
      "[1]",
      "not json",
      '{"stream":true',
      "",
    ]
  ) {
    const b = enc.encode(body);
    assert.deepEqual(ensureIncludeUsage(b), { body: b, added: false }, body);
  }
  const invalidUtf8 = new Uint8Array([...enc.encode('{"stream":true,"x":"'), 0xff, 0x22, 0x7d]);
  assert.equal(ensureIncludeUsage(invalidUtf8).added, false);
});
