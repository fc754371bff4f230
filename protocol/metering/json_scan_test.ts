import assert from "node:assert/strict";
import {
  findTopLevelMember,
  parseJsonSlice,
  scanMembersBackward,
  scanMembersForward,
} from "./json_scan.ts";
import { seededRandom } from "../prng.ts";

const enc = new TextEncoder();

/** Random JSON values with nasty strings: quotes, backslashes, braces, fake members, unicode. */
function randomValue(rnd: () => number, depth: number): unknown {
  const pick = Math.floor(rnd() * (depth > 3 ? 4 : 6));
  const strings = ['"usage":{"x":1}', "\\", '\\"', "}{][", "é🌍", 'a"b', '\\\\"', "", "usage"];
  switch (pick) {
    case 0:
      return Math.floor(rnd() * 1e6) / (rnd() < 0.5 ? 1 : 7);
    case 1:
      return strings[Math.floor(rnd() * strings.length)]! + String(Math.floor(rnd() * 100));
    case 2:
      return [true, false, null][Math.floor(rnd() * 3)];
    case 3:
      return -1 - Math.floor(rnd() * 1e3);
    case 4:
      return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(rnd, depth + 1));
    default:
      return randomObject(rnd, depth + 1);
  }
}

function randomObject(rnd: () => number, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const keys = ["usage", "model", "a", 'we"ird', "x\\", "choices", "usage2"];
  for (let i = Math.floor(rnd() * 6); i > 0; i--) {
    o[keys[Math.floor(rnd() * keys.length)]! + (rnd() < 0.3 ? String(i) : "")] = randomValue(
      rnd,
      depth,
    );
  }
  return o;
}

function spaced(json: string, rnd: () => number): string {
  // re-serialize with random indentation to exercise whitespace handling
  return rnd() < 0.5 ? json : JSON.stringify(JSON.parse(json), null, Math.floor(rnd() * 3) + 1);
}

Deno.test("json_scan: backward and forward scans agree with JSON.parse on random objects", () => {
  const rnd = seededRandom(20261122);
  for (let t = 0; t < 2000; t++) {
    const value = randomObject(rnd, 0);
    const bytes = enc.encode(spaced(JSON.stringify(value), rnd));
    const back: [string, unknown][] = [];
    scanMembersBackward(bytes, 0, bytes.length, 1, (_d, ks, ke, vs, ve) => {
      back.push([parseJsonSlice(bytes, ks, ke) as string, parseJsonSlice(bytes, vs, ve)]);
      return false;
    });
    assert.deepEqual(back.reverse(), Object.entries(value), `case ${t}`);
    const fwd: [string, unknown][] = [];
    scanMembersForward(bytes, 0, bytes.length, (_d, ks, ke, vs, ve) => {
      fwd.push([parseJsonSlice(bytes, ks, ke) as string, parseJsonSlice(bytes, vs, ve)]);
      return false;
    });
    assert.deepEqual(fwd, Object.entries(value), `case ${t}`);
  }
});

Deno.test("json_scan: windows cut anywhere never report a wrong member", () => {
  const rnd = seededRandom(7);
  for (let t = 0; t < 300; t++) {
    const value = randomObject(rnd, 0);
    const bytes = enc.encode(spaced(JSON.stringify(value), rnd));
    for (let cut = 0; cut <= bytes.length; cut += 1 + Math.floor(rnd() * 5)) {
      scanMembersBackward(bytes, cut, bytes.length, 1, (_d, ks, ke, vs, ve) => {
        const key = parseJsonSlice(bytes, ks, ke) as string;
        assert.deepEqual(parseJsonSlice(bytes, vs, ve), value[key], `tail from ${cut}`);
        return false;
      });
      scanMembersForward(bytes, 0, cut, (_d, ks, ke, vs, ve) => {
        const key = parseJsonSlice(bytes, ks, ke) as string;
        assert.deepEqual(parseJsonSlice(bytes, vs, ve), value[key], `head to ${cut}`);
        return false;
      });
    }
  }
});

Deno.test("json_scan: depth-2 members and findTopLevelMember", () => {
  const text = '{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":3},' +
    '"metadata":{}},"sequence_number":9}';
  const b = enc.encode(text);
  const seen: string[] = [];
  scanMembersBackward(b, 0, b.length, 2, (d, ks, ke) => {
    seen.push(`${d}:${parseJsonSlice(b, ks, ke)}`);
    return false;
  });
  assert.deepEqual(seen, [
    "1:sequence_number",
    "2:metadata",
    "2:usage",
    "2:id",
    "1:response",
    "1:type",
  ]);
  const nested = enc.encode('{"a":{"usage":null},"usage":{"n":1}}');
  const span = findTopLevelMember(nested, 0, nested.length, "usage")!;
  assert.deepEqual(parseJsonSlice(nested, span.valueStart, span.valueEnd), { n: 1 });
  assert.equal(findTopLevelMember(enc.encode('{"a":{"usage":null}}'), 0, 20, "usage"), null);
  assert.equal(findTopLevelMember(enc.encode('{"usage":1'), 0, 10, "usage"), null); // cut
});
