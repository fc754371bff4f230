/**
 * Manual benchmark of the body sniffers (not a test): `deno run protocol/sniff/bench_sniff.ts [runs]`
 *
 * Feeds ~50 MB bodies in 64 KiB chunks and prints MB/s (median and best of the runs) for each
 * sniffer and for two baselines: a loop that only iterates the chunks (what forwarding costs
 * without a sniffer) and a loop that reads every byte once (the cheapest per-byte JS scan).
 * Ratios are sniffer time / baseline time.
 */
import { JsonTopLevelSniffer } from "./json_fields.ts";
import { MultipartFieldSniffer } from "./multipart_field.ts";

const SIZE = 50 * 2 ** 20, CHUNK = 65536, RUNS = Number(Deno.args[0] ?? 7);
const utf8 = (s: string) => new TextEncoder().encode(s);
const chunked = (b: Uint8Array) =>
  Array.from(
    { length: Math.ceil(b.length / CHUNK) },
    (_, i) => b.subarray(i * CHUNK, (i + 1) * CHUNK),
  );

/** A chat completion request: long messages with newlines, quotes, non-ASCII; model first. */
function chatBody(): Uint8Array {
  const line = 'Summarize this log line:\n\t"GET /v1/chat" 200 — état ✓ 😀 {"k": [1, 2]} ';
  const message = { role: "user", content: line.repeat(400) };
  const messages = Array(Math.ceil(SIZE / utf8(JSON.stringify(message) + ",").length)).fill(
    message,
  );
  return utf8(JSON.stringify({ model: "gpt-4o", messages, stream: true, temperature: 0.2 }));
}

/** Embeddings input of numbers only: the per-byte path of the state machine, a worst case. */
function numbersBody(): Uint8Array {
  const row = JSON.stringify(Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e-3));
  const rows = Array(Math.ceil(SIZE / (row.length + 1))).fill(row).join(",");
  return utf8(`{"model":"text-embedding-3-small","input":[${rows}]}`);
}

/** An audio transcription upload: model, a 50 MB file of random bytes, language. */
function multipartBody(boundary: string): Uint8Array {
  const part = (name: string, v: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${v}\r\n`;
  const file = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n`;
  const head = utf8(`${part("model", "whisper-1")}${file}Content-Type: audio/wav\r\n\r\n`);
  const tail = utf8(`\r\n${part("language", "de")}--${boundary}--\r\n`);
  const body = new Uint8Array(head.length + SIZE + tail.length);
  body.set(head);
  for (let at = head.length; at < head.length + SIZE; at += CHUNK) {
    crypto.getRandomValues(body.subarray(at, Math.min(head.length + SIZE, at + CHUNK)));
  }
  body.set(tail, head.length + SIZE);
  return body;
}

/** Median and best time of `RUNS` runs, in ms. */
function time(f: () => void): [number, number] {
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return [times[times.length >> 1]!, times[0]!];
}

let sink = 0; // keeps the baselines from being optimized away
const iterateOnly = (chunks: Uint8Array[]) => {
  for (const c of chunks) sink += c.length;
};
const readEveryByte = (chunks: Uint8Array[]) => {
  for (const c of chunks) for (let i = 0; i < c.length; i++) sink ^= c[i]!;
};
const sniffJson = (chunks: Uint8Array[]) => {
  const s = new JsonTopLevelSniffer(["model", "stream"]);
  for (const c of chunks) s.push(c);
  s.end();
  return `model=${s.get("model")} stream=${s.get("stream")} error=${s.error}`;
};
const boundary = "----formdata-undici-0123456789012";
const sniffMultipart = (chunks: Uint8Array[]) => {
  const s = new MultipartFieldSniffer(`multipart/form-data; boundary=${boundary}`, [
    "model",
    "language",
  ]);
  for (const c of chunks) s.push(c);
  s.end();
  return `model=${s.get("model")} language=${s.get("language")} error=${s.error}`;
};

const cases: [string, Uint8Array, (chunks: Uint8Array[]) => string][] = [
  ["JSON chat body", chatBody(), sniffJson],
  ["JSON numbers body", numbersBody(), sniffJson],
  ["multipart upload", multipartBody(boundary), sniffMultipart],
];
const rate = (bytes: number, ms: number) =>
  `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`.padStart(14);
console.log(`median (best) of ${RUNS} runs; ${CHUNK}-byte chunks; MB = 10^6 bytes`);
for (const [name, body, sniff] of cases) {
  const chunks = chunked(body);
  console.log(`${name}: ${(body.length / 1e6).toFixed(1)} MB; ${sniff(chunks)}`);
  const [ms, best] = time(() => sniff(chunks));
  console.log(`  sniffer         ${rate(body.length, ms)} (${rate(body.length, best).trim()})`);
  for (
    const [label, loop] of [["iterate chunks ", iterateOnly], [
      "read each byte ",
      readEveryByte,
    ]] as const
  ) {
    const [base, baseBest] = time(() => loop(chunks));
    const ratio = ms / base;
    console.log(
      `  ${label} ${rate(body.length, base)} (${rate(body.length, baseBest).trim()})`,
      ` sniffer/baseline ${ratio < 10 ? ratio.toFixed(2) : ratio.toFixed(0)}x`,
    );
  }
}
if (sink === 0.5) console.log(sink);
