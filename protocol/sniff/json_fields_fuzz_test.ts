/**
 * Property tests of `JsonTopLevelSniffer` on seeded random bodies, against a model of the body as
 * written (first values, duplicates) and against `JSON.parse`.
 * Replay a run: `SNIFF_SEED=<seed> deno test -A protocol/sniff/json_fields_fuzz_test.ts`
 */
import assert from "node:assert/strict";
import type { JsonScalar } from "./json_fields.ts";
import {
  asReference,
  everySplit,
  int,
  type Outcome,
  pick,
  randomChunks,
  referenceJson,
  scalar,
  type Seen,
  sniffJson,
  testRandom,
  utf8,
} from "./testing.ts";

const FIELDS = ["model", "stream", "n", "é", "😀", "__proto__", ""];
type Rng = () => number;
type Value = null | boolean | number | string | Value[] | Obj;
/** An object as written, duplicate keys kept (JSON.parse keeps the last). */
class Obj {
  constructor(readonly entries: [string, Value][]) {}
}

/** The model's answer, including first values and conflicts, from the entries as written. */
function expected(top: Obj): Outcome<JsonScalar> {
  const seen = (f: string): Seen<JsonScalar> => {
    const vs = top.entries.filter(([k]) => k === f).map(([, v]) => v);
    const differs = (v: Value) =>
      scalar(v) === undefined || scalar(vs[0]) === undefined || !Object.is(v, vs[0]);
    const [value, early] = vs.length > 0 ? [scalar(vs.at(-1)), scalar(vs[0])] : [];
    return { has: vs.length > 0, value, early, conflict: vs.slice(1).some(differs) };
  };
  return { error: false, fields: Object.fromEntries(FIELDS.map((f) => [f, seen(f)])) };
}

const KEYS = [...FIELDS, "messages", "content", "mode", "models", "MODEL"];
const CHARS = [...'az éß€😀"\\/\n\t\r\b\f\u0000\u001f\u007f\u2028\ufeff', "\ud800", "\udfff"];
const NUMBERS = "0 1 -1 7 42 3.5 -0.25 1e21 1.5e-7 9007199254740992 5e-324 1.7976931348623157e308"
  .split(" ").map(Number);
const WS = ["", "", "", " ", "\n", "\t", "\r\n  "];
const SHORT = new Map([...'"\\\n\t\r\b\f'].map((c, i) => [c, "\\" + '"\\ntrbf'[i]]));

function genValue(r: Rng, depth: number): Value {
  switch (int(r, depth > 3 ? 4 : 6)) {
    case 0:
      return pick(r, [null, true, false]);
    case 1:
      return r() < 0.5
        ? pick(r, NUMBERS)
        : Math.round((r() - 0.5) * 1e6) / pick(r, [1, 1e2, 1e9]) || 1;
    case 2:
    case 3:
      return Array.from({ length: int(r, 10) }, () => pick(r, CHARS)).join("");
    case 4:
      return Array.from({ length: int(r, 4) }, () => genValue(r, depth + 1));
    default:
      return genObj(r, depth + 1);
  }
}
const genObj = (r: Rng, depth: number): Obj =>
  new Obj(Array.from({ length: int(r, 6) }, () => [pick(r, KEYS), genValue(r, depth)]));

/** A JSON string for `s`, escaping at random (`\uXXXX` in either case, short escapes, `\/`). */
function quote(r: Rng, s: string): string {
  const hex = (u: number) =>
    "\\u" + u.toString(16).padStart(4, "0")[r() < 0.5 ? "toLowerCase" : "toUpperCase"]();
  let out = '"';
  for (const ch of s) {
    const u = ch.charCodeAt(0), lone = ch.length === 1 && u >= 0xd800 && u <= 0xdfff;
    if (lone || u < 0x20 || ch === '"' || ch === "\\" || r() < 0.15) {
      out += SHORT.has(ch) && r() < 0.7
        ? SHORT.get(ch)
        : ch.split("").map((unit) => hex(unit.charCodeAt(0))).join("");
    } else out += ch === "/" && r() < 0.3 ? "\\/" : ch;
  }
  return out + '"';
}

function serialize(r: Rng, v: Value): string {
  const ws = () => pick(r, WS);
  if (typeof v === "string") return quote(r, v);
  if (typeof v === "number") {
    const exp = v.toExponential(),
      forms = [String(v), exp, exp.toUpperCase(), exp.replace("e+", "e")];
    return pick(r, forms);
  }
  if (v === null || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) {
    return `[${ws()}${v.map((x) => serialize(r, x)).join(`${ws()},${ws()}`)}${ws()}]`;
  }
  const entries = v.entries.map(([k, x]) => `${quote(r, k)}${ws()}:${ws()}${serialize(r, x)}`);
  return `{${ws()}${entries.join(`${ws()},${ws()}`)}${ws()}}`;
}

Deno.test("json fuzz: every split of random bodies matches the model and JSON.parse", () => {
  const r = testRandom("json random bodies");
  let conflicts = 0;
  for (let n = 0; n < 300; n++) {
    const top = genObj(r, 0), body = utf8(pick(r, WS) + serialize(r, top) + pick(r, WS));
    const want = expected(top), text = new TextDecoder().decode(body);
    assert.deepEqual(referenceJson(FIELDS, body), asReference(want), text);
    conflicts += Object.values(want.error ? {} : want.fields).some((f) => f.conflict) ? 1 : 0;
    for (const chunks of everySplit(body)) assert.deepEqual(sniffJson(FIELDS, chunks), want, text);
  }
  assert.ok(conflicts > 10, `vacuous run: ${conflicts} bodies with a conflict`);
});

Deno.test("json fuzz: mutated bodies are rejected exactly when JSON.parse rejects them", () => {
  const r = testRandom("json mutations");
  const bytes = [...utf8('{}[]:,"\\u0e-+.9 tfn\u00e9\u0001')];
  let rejected = 0;
  for (let n = 0; n < 3000; n++) {
    const body = [...utf8(serialize(r, genObj(r, 0)))];
    for (let m = 1 + int(r, 3); m > 0; m--) {
      const at = int(r, body.length + 1), op = int(r, 3);
      if (op === 0) body.splice(at, 1);
      else if (op === 1) body.splice(at, 0, pick(r, bytes));
      else body.length = at;
    }
    const input = new Uint8Array(body), want = referenceJson(FIELDS, input);
    rejected += want.error ? 1 : 0;
    for (let k = 0; k < 3; k++) {
      const got = asReference(sniffJson(FIELDS, randomChunks(input, r, 16)));
      assert.deepEqual(got, want, new TextDecoder().decode(input));
    }
  }
  assert.ok(rejected > 1000 && rejected < 2900, `vacuous run: ${rejected} rejected`);
});

Deno.test("json fuzz: a large chat body in seeded random chunks matches JSON.parse", () => {
  const r = testRandom("json large body");
  const words = ["lorem ", "ipsum\n", '"q" ', "é😀 ", "\\path ", "\u0001"];
  const content = Array.from({ length: 2000 }, () => pick(r, words)).join("");
  const messages = Array.from(
    { length: 600 },
    (_, i) => ({ role: "user", content: content + i, model: "x" }),
  );
  const body = utf8(JSON.stringify({ messages, stream: true, n: 2.5e3, model: "gpt-4o-mini" }));
  const want = referenceJson(FIELDS, body);
  assert.ok(body.length > 6e6, `body is only ${body.length} bytes`);
  assert.deepEqual(asReference(sniffJson(FIELDS, randomChunks(body, r, 65536))), want);
  assert.deepEqual(asReference(sniffJson(FIELDS, randomChunks(body, r, 1500))), want);
});
