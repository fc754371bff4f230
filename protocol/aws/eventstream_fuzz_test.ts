/**
 * Seeded fuzz of the event-stream decoder. Property: every input, pushed in random chunks, either
 * decodes to messages that re-encode and re-decode to equal messages, or throws `EventStreamError`.
 * Half the mutants get their CRCs recomputed so the header parser is reached, not just the CRCs.
 *
 * Replay: `FUZZ_SEED=<seed> deno test -A protocol/aws/eventstream_fuzz_test.ts`
 * Longer: `FUZZ_ITERATIONS=1000000 deno test -A protocol/aws/eventstream_fuzz_test.ts`
 */
import assert from "node:assert/strict";
import { seedFromEnv } from "../../tests/support/seed.ts";
import { seededRandom } from "../prng.ts";
import { crc32 } from "./crc32.ts";
import {
  decodeMessage,
  encodeMessage,
  EventStreamDecoder,
  EventStreamError,
  type HeaderValue,
} from "./eventstream.ts";

type Rng = () => number;
const int = (r: Rng, n: number) => Math.floor(r() * n);
const ITERATIONS = Number(Deno.env.get("FUZZ_ITERATIONS") ?? 25_000);

function randomMessage(r: Rng): Uint8Array {
  const headers: Record<string, string | HeaderValue> = {};
  const names = [":event-type", ":content-type", ":message-type", ":exception-type", "x", "é"];
  for (let i = int(r, 5); i > 0; i--) {
    const name = names[int(r, names.length)]!;
    const k = int(r, 6);
    headers[name] = k === 0
      ? { type: "int", value: int(r, 2 ** 31) }
      : k === 1
      ? { type: "long", value: BigInt(int(r, 2 ** 40)) }
      : k === 2
      ? { type: "uuid", value: new Uint8Array(16).map(() => int(r, 256)) }
      : k === 3
      ? { type: "bool", value: r() < 0.5 }
      : "v".repeat(int(r, 40));
  }
  const payload = new Uint8Array(int(r, 80)).map(() => int(r, 256));
  return encodeMessage({ headers, payload });
}

function fixCrcs(b: Uint8Array): void {
  if (b.length < 12) return;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  v.setUint32(8, crc32(b, 0, 8));
  const total = v.getUint32(0);
  if (total >= 16 && total <= b.length) v.setUint32(total - 4, crc32(b, 0, total - 4));
}

function mutate(r: Rng, input: Uint8Array): Uint8Array {
  let b = input.slice();
  for (let n = 1 + int(r, 4); n > 0; n--) {
    const at = int(r, b.length + 1);
    switch (int(r, 6)) {
      case 0:
        if (b.length) b[at % b.length]! ^= 1 << int(r, 8);
        break;
      case 1:
        if (b.length) b[at % b.length] = int(r, 256);
        break;
      case 2:
        b = Uint8Array.from([...b.subarray(0, at), int(r, 256), ...b.subarray(at)]);
        break;
      case 3:
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1 + int(r, 8))]);
        break;
      case 4:
        b = b.slice(0, at);
        break;
      case 5: // a length field set to something interesting
        if (b.length >= 12) {
          const v = new DataView(b.buffer);
          const field = [0, 4][int(r, 2)]!;
          v.setUint32(
            field,
            [0, 15, 16, b.length, b.length + 1, 0xffffffff, int(r, 300)][int(r, 7)]!,
          );
        }
    }
  }
  if (r() < 0.5) fixCrcs(b);
  return b;
}

Deno.test("event-stream decoder fuzz: decode and round-trip, or EventStreamError", () => {
  const seed = seedFromEnv("FUZZ_SEED");
  console.log(
    `event-stream fuzz seed ${seed} (replay with FUZZ_SEED=${seed}), ${ITERATIONS} inputs`,
  );
  const r = seededRandom(seed);
  const stats = { decoded: 0, rejected: 0, messages: 0 };
  const reasons = new Set<string>();
  for (let i = 0; i < ITERATIONS; i++) {
    const valid = Array.from({ length: 1 + int(r, 3) }, () => randomMessage(r));
    const stream = Uint8Array.from(valid.flatMap((m) => [...m]));
    const input = i % 10 === 0 ? stream : mutate(r, stream);
    const d = new EventStreamDecoder(1 + int(r, 2) === 1 ? 4096 : 200);
    try {
      let at = 0;
      const got = [];
      while (at < input.length) {
        const n = 1 + int(r, 64);
        got.push(...d.push(input.subarray(at, at + n)));
        at += n;
      }
      d.end();
      for (const m of got) assert.deepEqual(decodeMessage(encodeMessage(m)), m);
      stats.decoded++;
      stats.messages += got.length;
    } catch (e) {
      if (!(e instanceof EventStreamError)) {
        console.error(`seed ${seed} input ${i}: ${[...input]}`);
        throw e;
      }
      reasons.add(e.reason);
      stats.rejected++;
    }
  }
  console.log(JSON.stringify({ ...stats, reasons: [...reasons].sort() }));
  // Canary: the harness must see both outcomes and the deep reasons, or it tests nothing.
  assert.ok(
    stats.decoded > ITERATIONS / 20 && stats.rejected > ITERATIONS / 4,
    JSON.stringify(stats),
  );
  for (const reason of ["prelude_crc", "message_crc", "truncated", "bad_length", "bad_header"]) {
    assert.ok(reasons.has(reason), `no input was rejected for ${reason}`);
  }
});
