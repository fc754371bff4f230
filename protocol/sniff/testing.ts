/**
 * Helpers for the sniffer tests: the same body fed in many chunkings, a replayable seed, and the
 * reference parsers (`JSON.parse`, `formData()`) reduced to what the sniffers report.
 * Replay a run: `SNIFF_SEED=<seed> deno test -A protocol/sniff/`.
 */
import { seedFromEnv } from "../../tests/support/seed.ts";
import { seededRandom } from "../prng.ts";
import { type JsonScalar, JsonTopLevelSniffer } from "./json_fields.ts";
import { MultipartFieldSniffer } from "./multipart_field.ts";

/** What the tests need of a sniffer. */
export interface ChunkSink {
  push(chunk: Uint8Array): void;
  end(): void;
}

/** UTF-8 bytes of `text`. */
export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** A random integer in [0, n). */
export const int = (rng: () => number, n: number): number => Math.floor(rng() * n);

/** A random element of `items`. */
export const pick = <T>(rng: () => number, items: readonly T[]): T =>
  items[int(rng, items.length)]!;

/** A seeded generator for a test, with the seed printed so that a failure can be replayed. */
export function testRandom(label: string): () => number {
  const seed = seedFromEnv("SNIFF_SEED");
  console.log(`${label}: seed ${seed} (replay: SNIFF_SEED=${seed})`);
  return seededRandom(seed);
}

/** Every cut of `body` in two (including empty halves), then one byte at a time. */
export function* everySplit(body: Uint8Array): Generator<Uint8Array[]> {
  for (let k = 0; k <= body.length; k++) yield [body.subarray(0, k), body.subarray(k)];
  yield Array.from({ length: body.length }, (_, i) => body.subarray(i, i + 1));
}

/** `body` cut into random chunks of 0 to `max` bytes. */
export function randomChunks(body: Uint8Array, rng: () => number, max: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < body.length;) {
    const size = rng() < 0.02 ? 0 : 1 + int(rng, rng() < 0.5 ? 8 : max);
    chunks.push(body.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Pushes every chunk, then ends the body. */
export function feed<S extends ChunkSink>(sink: S, chunks: Iterable<Uint8Array>): S {
  for (const chunk of chunks) sink.push(chunk);
  sink.end();
  return sink;
}

// --- Outcomes: what a sniffer reported, and what the reference parsers say ----------------------

/** What is known of one requested field (`early`, `conflict`: only from a sniffer or a model). */
export interface Seen<V> {
  has: boolean;
  value: V | undefined;
  early?: V | undefined;
  conflict?: boolean;
}
/** The result for all requested fields, or that the body was rejected. */
export type Outcome<V> = { error: true } | { error: false; fields: Record<string, Seen<V>> };

const outcome = <V>(fields: string[], seen: (f: string) => Seen<V>): Outcome<V> => ({
  error: false,
  fields: Object.fromEntries(fields.map((f) => [f, seen(f)])),
});

/** Everything a JSON sniffer reports once the chunks are fed. */
export function sniffJson(fields: string[], chunks: Iterable<Uint8Array>): Outcome<JsonScalar> {
  const s = feed(new JsonTopLevelSniffer(fields), chunks);
  if (s.error !== undefined) return { error: true };
  return outcome(
    fields,
    (f) => ({ has: s.has(f), value: s.get(f), early: s.getEarly(f), conflict: s.conflict(f) }),
  );
}

/** The JSON oracle: `JSON.parse` after a UTF-8 decode (as `Response.json()`); a top-level object. */
export function referenceJson(fields: string[], body: Uint8Array): Outcome<JsonScalar> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return { error: true };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { error: true };
  const o = v as Record<string, unknown>;
  return outcome(
    fields,
    (f) => ({ has: Object.hasOwn(o, f), value: Object.hasOwn(o, f) ? scalar(o[f]) : undefined }),
  );
}

/** A JSON value as the sniffer reports it: objects and arrays as `undefined`. */
export const scalar = (v: unknown): JsonScalar =>
  typeof v === "object" && v !== null ? undefined : v as JsonScalar;

/** Keeps only what the oracle knows (`has`, `value`). */
export function asReference<V>(o: Outcome<V>): Outcome<V> {
  return o.error
    ? o
    : outcome(Object.keys(o.fields), (f) => ({ has: o.fields[f]!.has, value: o.fields[f]!.value }));
}

/** Everything a multipart sniffer reports once the chunks are fed (`get` is the first value). */
export function sniffMultipart(
  contentType: string,
  fields: string[],
  chunks: Iterable<Uint8Array>,
): Outcome<string> {
  const s = feed(new MultipartFieldSniffer(contentType, fields), chunks);
  if (s.error !== undefined) return { error: true };
  return outcome(fields, (f) => ({ has: s.has(f), value: s.get(f), conflict: s.conflict(f) }));
}

/** The multipart oracle: Deno's `formData()`; a file has no value; a conflict from `getAll`. */
export async function referenceMultipart(
  contentType: string,
  fields: string[],
  body: Uint8Array,
): Promise<Outcome<string>> {
  let fd: FormData;
  try {
    fd = await new Response(body.slice(), { headers: { "content-type": contentType } }).formData();
  } catch {
    return { error: true };
  }
  return outcome(fields, (f) => {
    const [first, ...rest] = fd.getAll(f);
    const differs = (v: FormDataEntryValue) =>
      typeof v !== "string" || typeof first !== "string" || v !== first;
    return {
      has: first !== undefined,
      value: typeof first === "string" ? first : undefined,
      conflict: rest.some(differs),
    };
  });
}
