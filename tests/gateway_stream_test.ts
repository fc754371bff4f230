/**
 * Streaming under pressure through real processes: many concurrent streams on one agent, 50 MB
 * each way with bounded hub memory, cancellation reaching the vendor promptly, and a dying agent
 * surfacing as a failed stream (never a fabricated success).
 */
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { lockedAgentPid } from "./support/cluster.ts";
import { waitFor } from "./support/process.ts";
import { post, startStack } from "./support/stack.ts";

function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/VmHWM:\s+(\d+) kB/)![1]) / 1024;
}

Deno.test("200 concurrent streams through one agent each get exactly their own content", async () => {
  const stack = await startStack();
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  try {
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const stream = await client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: `stream number ${i} [[words:30]]` }],
        stream: true,
      });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      return { i, text };
    }));
    for (const { i, text } of results) {
      assert.ok(
        text.startsWith(`Echo: stream number ${i} `),
        `stream ${i} got ${text.slice(0, 40)}`,
      );
    }
    const direct = await post(`${stack.fake.url}/v1/chat/completions`, "sk-real-vendor-key-1", {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "stream number 7 [[words:30]]" }],
    });
    const expected = JSON.parse(new TextDecoder().decode(direct.bytes)).choices[0].message.content;
    assert.equal(results[7]!.text, expected, "same words in the same order as the vendor's");
  } finally {
    await stack.stop();
  }
});

Deno.test("50 MB up and 50 MB down pass; hub memory stays bounded", async () => {
  const stack = await startStack();
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  const size = 50 * 1024 * 1024;
  try {
    const before = peakRssMiB(stack.hub.proc.pid);
    // Up: a 50 MB multipart upload (model part first, as the SDK sends it).
    const audio = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
    const text = await client.audio.transcriptions.create({
      model: "whisper-1",
      file: await toFile(audio, "big.wav", { type: "audio/wav" }),
    });
    assert.ok(text.text.length > 0);
    const upload = stack.fake.requests.findLast((r) => r.path === "/v1/audio/transcriptions")!;
    assert.ok(upload.bodyBytes > size, `vendor received ${upload.bodyBytes} bytes`);

    // Down: a 50 MB completion, read as a stream and counted, never held.
    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: `big [[bytes:${size}]]` }],
      }),
    });
    assert.equal(res.status, 200);
    let received = 0;
    for await (const chunk of res.body!) received += chunk.length;
    assert.ok(received > size, `received ${received} bytes`);
    const finished = await waitFor(
      () =>
        stack.hub.proc.lines.find((l) =>
          l.msg === "request finished" && Number(l.responseBytes) > size / 2
        ),
      "usage of the 50 MB response",
    ).catch((e) => {
      throw new Error(
        `${e.message}\n${
          stack.hub.proc.lines.filter((l) => l.msg === "request finished").map((l) =>
            JSON.stringify(l)
          ).join("\n")
        }`,
      );
    });
    assert.ok(Number(finished.outputTokens) > 0, "usage metered from the tail of a 50 MB body");
    const after = peakRssMiB(stack.hub.proc.pid);
    // Bounded means independent of body size: 100 MB more must not raise the peak materially.
    for (let i = 0; i < 2; i++) {
      const more = await fetch(`${stack.baseURL}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.key}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "gpt-4o-mini",
          messages: [{ role: "user", content: `more ${i} [[bytes:${size}]]` }],
        }),
      });
      for await (const _ of more.body!) { /* drain */ }
    }
    const later = peakRssMiB(stack.hub.proc.pid);
    console.log(
      `hub peak RSS: ${before.toFixed(1)} MiB idle, ${
        after.toFixed(1)
      } MiB after 50 MB up + 50 MB down, ` +
        `${later.toFixed(1)} MiB after 100 MB more`,
    );
    assert.ok(
      after - before < 200, // the heap grows until V8 settles on a size (lazy GC): a sanity ceiling
      `peak grew ${(after - before).toFixed(1)} MiB for the first 100 MB`,
    );
    assert.ok(
      later - after < 24,
      `peak grew ${(later - after).toFixed(1)} MiB for 100 MB more: not bounded`,
    );
  } finally {
    await stack.stop();
  }
});

Deno.test("client disconnect mid-stream cancels the vendor request within 100 ms", async () => {
  const stack = await startStack();
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  try {
    const controller = new AbortController();
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "slow one [[words:500]] [[delay:20]]" }],
      stream: true,
    }, { signal: controller.signal });
    let abortedAt = 0;
    let n = 0;
    try {
      for await (const _ of stream) {
        if (++n === 3) {
          abortedAt = performance.now();
          controller.abort(); // the SDK ends the iteration quietly on its own abort
        }
      }
    } catch (e) {
      assert.equal((e as Error).name, "APIUserAbortError");
    }
    assert.equal(n, 3, "no chunk after the abort");
    const record = await waitFor(
      () => stack.fake.requests.find((r) => r.path === "/v1/chat/completions" && r.cancelledAt),
      "vendor sees the cancellation",
      5000,
    );
    const lagMs = record.cancelledAt! - abortedAt;
    console.log(`vendor saw the cancellation ${lagMs.toFixed(1)} ms after the client aborted`);
    assert.ok(lagMs < 100, `cancellation took ${lagMs} ms`);
  } finally {
    await stack.stop();
  }
});

Deno.test("agent killed mid-stream: the SDK raises an error, no [DONE]", async () => {
  const stack = await startStack();
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  try {
    const pid = await lockedAgentPid(stack.agent);
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "long one [[words:400]] [[delay:20]]" }],
      stream: true,
    });
    let chunks = 0;
    let finishReason: string | null | undefined;
    await assert.rejects(async () => {
      for await (const chunk of stream) {
        finishReason ??= chunk.choices[0]?.finish_reason;
        if (++chunks === 3) Deno.kill(pid, "SIGKILL");
      }
    });
    assert.ok(chunks >= 3);
    assert.equal(finishReason ?? null, null, "no fabricated finish");
    const line = await waitFor(
      () =>
        stack.hub.proc.lines.find((l) =>
          l.msg === "request finished" && String(l.outcome).startsWith("aborted")
        ),
      "request recorded as aborted",
    );
    assert.equal(line.inputTokens, undefined, "nothing metered for an incomplete stream");
  } finally {
    await stack.stop();
  }
});
