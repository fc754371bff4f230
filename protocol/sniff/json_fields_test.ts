import assert from "node:assert/strict";
import { JsonTopLevelSniffer } from "./json_fields.ts";
import { asReference, everySplit, feed, referenceJson, sniffJson, utf8 } from "./testing.ts";

const FIELDS = ["model", "stream", "n", "é", "😀", "__proto__", ""];

const VALID = [
  '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi \\"x\\" \\u00e9"}]}',
  '{"mo\\u0064el": -1.5e+3, "stream": null, "n": 0.5E-2}',
  '\ufeff {"model": {"model": "nested"}, "stream": false, "😀": "\\ud83d\\ude00😀"}',
  '{"messages":[{"model":"evil"}],"metadata":{"model":"evil","stream":true},"n":[1,{"n":2}]}',
  '{"model":"a","model":"b","stream":true,"stream":true}',
  " {}\r\n",
  '{"__proto__":"p","":"empty","\\u00E9":"\\u00e9","model":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
  '{"n":-0,"model":1e400,"stream":123456789012345678901234567890}',
  '{"model":"日本語 ✓ \\uD83D\\uDE00 \\ud800 lone","n":-12.5e-3,"😀":0E0}',
];
const MALFORMED = [
  ...'  ,[1],"model",null,{,{"model",{"model":,{"model":"x",{a:1},{\'a\':1}'.split(","),
  ...['{"model":"x",}', '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":1e}', '{"a":-}', '{"a":+1}'],
  ...['{"a":tru}', '{"a":nul}', '{"a":True}', '{"a":"\\x"}', '{"a":"\\u12G4"}', '{"a":1}}'],
  ...['{"a":"tab\there"}', '{"a":1} {}', '{"a":[1,]}', '{"a":[1}', '{"a" 1}', '{"a":1,"b"}'],
  ...['{"a":[}', "\ufeff\ufeff{}", '{"a":"x"]', '{"model":"ok"} trailing', '{"a":"\u0000"}'],
];

Deno.test("json: every split of hand-written bodies matches JSON.parse", () => {
  for (const text of [...VALID, ...MALFORMED]) {
    const body = utf8(text), want = referenceJson(FIELDS, body);
    assert.equal(want.error, MALFORMED.includes(text), text);
    for (const chunks of everySplit(body)) {
      assert.deepEqual(asReference(sniffJson(FIELDS, chunks)), want, text);
    }
  }
});

Deno.test("json: escaped keys, nested same-name keys, unicode and numbers", () => {
  const text =
    '{"m\\u006Fdel":"\\u00e9t\\u00E9 😀","msgs":[{"model":"x"}],"n":-1.25E+2,"stream":0}';
  for (const chunks of everySplit(utf8(text))) {
    const s = feed(new JsonTopLevelSniffer(["model", "n", "stream", "msgs"]), chunks);
    assert.deepEqual([s.get("model"), s.get("n"), s.get("stream")], ["été 😀", -125, 0]);
    assert.deepEqual([s.has("msgs"), s.get("msgs"), s.conflict("model")], [true, undefined, false]);
  }
  const nested = feed(new JsonTopLevelSniffer(["model"]), [
    utf8('{"a":{"model":"x"},"b":[{"model":1}]}'),
  ]);
  assert.deepEqual([nested.error, nested.has("model"), nested.ready], [undefined, false, true]);
});

Deno.test("json: duplicate top-level keys — first for routing, last is final, conflict flagged", () => {
  const s = new JsonTopLevelSniffer(["model", "stream"]);
  s.push(utf8('{"model":"cheap","stream":true,"messages":[{"model":"x"}],'));
  assert.deepEqual([s.ready, s.done, s.getEarly("model"), s.get("stream")], [
    true,
    false,
    "cheap",
    true,
  ]);
  feed(s, [utf8('"model":"expensive"}')]);
  assert.deepEqual([s.done, s.get("model"), s.getEarly("model")], [true, "expensive", "cheap"]);
  assert.deepEqual([s.conflict("model"), s.conflict("stream"), s.error], [true, false, undefined]);
  const same = feed(new JsonTopLevelSniffer(["model"]), [utf8('{"model":"a","model":"\\u0061"}')]);
  assert.deepEqual([same.get("model"), same.conflict("model")], ["a", false]);
  const shape = feed(new JsonTopLevelSniffer(["model"]), [utf8('{"model":[],"model":"a"}')]);
  assert.deepEqual([shape.get("model"), shape.has("model"), shape.conflict("model")], [
    "a",
    true,
    true,
  ]);
});

Deno.test("json: ready, done and errors; never throws", () => {
  const s = new JsonTopLevelSniffer(["model", "stream"]);
  s.push(utf8('{"model":"m"'));
  assert.deepEqual([s.ready, s.done, s.getEarly("model"), s.has("stream")], [
    false,
    false,
    "m",
    false,
  ]);
  s.end();
  assert.deepEqual([s.ready, s.done], [true, true]);
  assert.match(s.error!, /unexpected end of body/);
  s.push(utf8("}"));
  assert.match(s.error!, /unexpected end/);
  const late = feed(new JsonTopLevelSniffer(["model"]), [utf8("{}")]);
  late.push(utf8(" "));
  assert.match(late.error!, /push\(\) after end\(\)/);
  const array = feed(new JsonTopLevelSniffer(["model"]), [utf8("[]")]);
  assert.match(array.error!, /byte 0: body is not a JSON object/);
  assert.match(feed(new JsonTopLevelSniffer([]), []).error!, /empty body/);
  const ctl = feed(new JsonTopLevelSniffer(["model"]), [utf8('{"model":"a\nb"}')]);
  assert.match(ctl.error!, /byte 11: control character in string/);
});

Deno.test("json: valueBytesMax bounds captured values only; depthMax bounds nesting", () => {
  const long = "x".repeat(5000);
  const big = feed(new JsonTopLevelSniffer(["model"]), [utf8(`{"model":"${long}"}`)]);
  assert.match(big.error!, /value of "model" exceeds 4096 bytes/);
  const num = feed(new JsonTopLevelSniffer(["n"], { valueBytesMax: 8 }), [
    utf8(`{"n":1234567890}`),
  ]);
  assert.match(num.error!, /value of "n" exceeds 8 bytes/);
  const body = utf8(`{"${long}":"${long}","model":"m"}`);
  const other = feed(new JsonTopLevelSniffer(["model"], { valueBytesMax: 16 }), [body]);
  assert.deepEqual([other.error, other.get("model")], [undefined, "m"]);
  const deep = utf8(`{"a":${"[".repeat(5000)}${"]".repeat(5000)},"model":1}`);
  assert.match(feed(new JsonTopLevelSniffer(["model"]), [deep]).error!, /nesting too deep/);
  const allowed = feed(new JsonTopLevelSniffer(["model"], { depthMax: 6000 }), [deep]);
  assert.deepEqual([allowed.error, allowed.get("model")], [undefined, 1]);
});
