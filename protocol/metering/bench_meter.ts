/**
 * Manual benchmark (not a test): throughput of the SSE parser, the OpenAI meter and the
 * include_usage stripper over a 50 MB synthetic stream in 16 KiB chunks, against baselines.
 *
 *   deno run protocol/metering/bench_meter.ts [sizeMB=50] [runs=5]
 */
import { SseParser } from "./sse.ts";
import { createOpenAIMeter } from "./openai.ts";
import { UsageChunkStripper } from "./include_usage.ts";

const sizeMB = Number(Deno.args[0] ?? 50), runs = Number(Deno.args[1] ?? 5);
const CHUNK = 16 << 10;
const enc = new TextEncoder();

function chatStream(bytes: number): Uint8Array {
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const e =
      `data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk",` +
      `"created":1763780000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default",` +
      `"system_fingerprint":"fp_560af6e559","choices":[{"index":0,"delta":{"content":" token${i} é"},` +
      `"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"k2Xf"}\n\n`;
    parts.push(e);
    n += e.length + 1;
  }
  parts.push(
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",' +
      '"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}\n\n' +
      "data: [DONE]\n\n",
  );
  return enc.encode(parts.join(""));
}

function responsesStream(bytes: number): Uint8Array {
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const e = `event: response.output_text.delta\ndata: {"type":"response.output_text.delta",` +
      `"sequence_number":${i},"item_id":"msg_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654",` +
      `"output_index":0,"content_index":0,"delta":" token${i}","logprobs":[],"obfuscation":"k2"}\n\n`;
    parts.push(e);
    n += e.length;
  }
  parts.push(
    'event: response.completed\ndata: {"type":"response.completed","response":{"model":"gpt-4.1",' +
      '"usage":{"input_tokens":5,"output_tokens":9}},"sequence_number":1}\n\n',
  );
  return enc.encode(parts.join(""));
}

function chunks(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < b.length; i += CHUNK) out.push(b.subarray(i, i + CHUNK));
  return out;
}

function bench(name: string, cs: Uint8Array[], total: number, fn: (cs: Uint8Array[]) => unknown) {
  fn(cs); // warm-up
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    fn(cs);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  return { name, ms, mbps: total / 1e6 / (ms / 1000) };
}

let sink = 0;
const baseline = (cs: Uint8Array[]) => {
  for (const c of cs) sink ^= c.length ^ c[0]!;
};
const decodeAll = (cs: Uint8Array[]) => {
  const d = new TextDecoder();
  for (const c of cs) sink ^= d.decode(c, { stream: true }).length;
};
const sseOnly = (cs: Uint8Array[]) => {
  const p = new SseParser();
  const on = (e: { data: string }) => (sink ^= e.data.length);
  for (const c of cs) p.push(c, on);
  p.end(on);
};
const meterOver = (path: string) => (cs: Uint8Array[]) => {
  const m = createOpenAIMeter({ path, stream: true, contentType: "text/event-stream" });
  for (const c of cs) m.push(c);
  const r = m.end();
  if (!r.complete || r.usage === null) throw new Error("meter found no usage");
};
const stripAll = (cs: Uint8Array[]) => {
  const s = new UsageChunkStripper();
  for (const c of cs) sink ^= s.push(c).length;
  sink ^= s.end().length;
  if (s.rawUsage === null) throw new Error("stripper found no usage");
};

for (
  const [label, bytes, path] of [
    ["chat/completions stream (include_usage)", chatStream(sizeMB * 1e6), "/v1/chat/completions"],
    ["responses stream", responsesStream(sizeMB * 1e6), "/v1/responses"],
  ] as const
) {
  const cs = chunks(bytes);
  console.log(`\n${label}: ${(bytes.length / 1e6).toFixed(1)} MB, ${cs.length} chunks of 16 KiB`);
  const base = bench("baseline: iterate chunks", cs, bytes.length, baseline);
  const rows = [
    base,
    bench("baseline: TextDecoder over chunks", cs, bytes.length, decodeAll),
    bench("SseParser only", cs, bytes.length, sseOnly),
    bench("SseParser + OpenAI meter", cs, bytes.length, meterOver(path)),
  ];
  if (path === "/v1/chat/completions") {
    rows.push(bench("UsageChunkStripper", cs, bytes.length, stripAll));
  }
  const decode = rows[1]!;
  for (const r of rows) {
    console.log(
      `  ${r.name.padEnd(36)} ${r.ms.toFixed(1).padStart(7)} ms ${
        r.mbps.toFixed(0).padStart(7)
      } MB/s` +
        `  ×${(r.ms / base.ms).toFixed(0)} iterate, ×${(r.ms / decode.ms).toFixed(1)} decode`,
    );
  }
}
if (sink === 0.5) console.log(sink);
