import assert from "node:assert/strict";
import { ByteRing } from "./ring.ts";
import { ChunkWriter } from "./chunk_writer.ts";
import { seededRandom } from "../prng.ts";

Deno.test("ring: keeps exactly the last bytes, whatever the write sizes", () => {
  const rnd = seededRandom(5);
  for (const capacity of [1, 7, 64]) {
    const ring = new ByteRing(capacity);
    const all: number[] = [];
    for (let w = 0; w < 300; w++) {
      const src = Uint8Array.from({ length: Math.floor(rnd() * 150) }, () => rnd() * 256);
      const s = Math.floor(rnd() * src.length);
      ring.write(src, s);
      all.push(...src.subarray(s));
      assert.deepEqual(ring.bytes(), Uint8Array.from(all.slice(-capacity)));
      assert.equal(ring.total, all.length);
    }
    ring.reset();
    assert.equal(ring.bytes().length, 0);
  }
});

Deno.test("chunk_writer: zero-copy for one contiguous range of the chunk, copies otherwise", () => {
  const w = new ChunkWriter();
  const chunk = new TextEncoder().encode("abcdefgh");
  w.begin(chunk);
  w.emit(chunk, 1, 3);
  w.emit(chunk, 3, 5);
  const view = w.collect();
  assert.equal(view.buffer, chunk.buffer); // a view, no copy
  assert.deepEqual(view, chunk.subarray(1, 5));
  const other = new Uint8Array([1, 2]);
  w.emit(chunk, 0, 2);
  w.emit(other, 0, 2);
  w.emit(chunk, 5, 8);
  const copied = w.collect();
  assert.notEqual(copied.buffer, chunk.buffer);
  other.fill(9); // later changes to a non-chunk source must not leak into the output
  assert.deepEqual(copied, Uint8Array.from([97, 98, 1, 2, 102, 103, 104]));
  assert.equal(w.collect().length, 0);
});
