import assert from "node:assert/strict";
import {
  encodeRecord,
  isUpgradeRequest,
  type RealtimeRecord,
  RecordDecodeError,
  RecordDecoder,
  sendableCloseCode,
} from "./realtime_wire.ts";
import { concatBytes } from "./http.ts";
import { seededRandom } from "./prng.ts";

const records: RealtimeRecord[] = [
  { kind: "text", data: '{"type":"session.update"}' },
  { kind: "binary", data: new Uint8Array([0, 1, 2, 255]) },
  { kind: "text", data: "" },
  { kind: "text", data: "héllo ✓" },
  { kind: "binary", data: new Uint8Array(70_000).map((_, i) => i) },
  { kind: "close", code: 4000, reason: "bye ✓" },
];

Deno.test("records survive any split into chunks, in order", () => {
  const seed = Date.now() >>> 0;
  console.log(`seed ${seed}`);
  const random = seededRandom(seed);
  const bytes = concatBytes(
    records.map(encodeRecord),
    records.map(encodeRecord).reduce((n, b) => n + b.length, 0),
  );
  for (let round = 0; round < 50; round++) {
    const decoder = new RecordDecoder();
    const out: RealtimeRecord[] = [];
    for (let at = 0; at < bytes.length;) {
      const n = 1 + Math.floor(random() * (round % 2 ? 7 : 40_000));
      out.push(...decoder.push(bytes.subarray(at, at + n)));
      at += n;
    }
    assert.deepEqual(out, records, `seed ${seed} round ${round}`);
    assert.equal(decoder.pendingBytes, 0);
  }
});

Deno.test("malformed records are refused", () => {
  assert.throws(() => new RecordDecoder().push(new Uint8Array([9, 0, 0, 0, 0])), RecordDecodeError);
  assert.throws(
    () => new RecordDecoder(10).push(new Uint8Array([1, 0, 0, 0, 11])),
    /above 10/,
  );
  assert.throws(() => new RecordDecoder().push(new Uint8Array([1, 0, 0, 0, 1, 0xff])), /UTF-8/);
  assert.throws(() => new RecordDecoder().push(new Uint8Array([3, 0, 0, 0, 1, 1])), /code/);
  assert.throws(
    () => encodeRecord({ kind: "binary", data: new Uint8Array(16 * 1024 * 1024 + 1) }),
    RangeError,
  );
});

Deno.test("close codes and the upgrade marker", () => {
  assert.equal(sendableCloseCode(1000), 1000);
  assert.equal(sendableCloseCode(4001), 4001);
  assert.equal(sendableCloseCode(1006), 1000);
  assert.equal(sendableCloseCode(1005), 1000);
  assert.equal(sendableCloseCode(1011), 1011);
  assert.equal(sendableCloseCode(2000), 1000);
  assert.ok(isUpgradeRequest({ upgrade: "WebSocket" }));
  assert.ok(!isUpgradeRequest({ "content-type": "application/json" }));
});
