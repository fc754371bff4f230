import assert from "node:assert/strict";
import { LlmModerator, type ModerationCall, moderationRequestBody } from "./llm.ts";
import type { ModerationInput } from "./mod.ts";

const input: ModerationInput = {
  requestId: "r1",
  vendor: "openai",
  model: "gpt-4o",
  texts: ["hello", "world"],
  images: [
    { kind: "url", url: "https://example.com/a.png" },
    { kind: "data", mediaType: "image/png", base64: "AAAA" },
  ],
};
const signal = () => new AbortController().signal;
const result = (flagged: boolean, categories: Record<string, boolean> = {}) => ({
  flagged,
  categories,
});
const answering =
  (status: number, json: unknown, bodies: unknown[] = []): ModerationCall => (body) => {
    bodies.push(body);
    return Promise.resolve({ status, json });
  };
/** A fake transport that never answers but rejects once its signal aborts, as a real one does. */
const hanging: ModerationCall = (_body, s) =>
  new Promise((_, reject) => s.addEventListener("abort", () => reject(s.reason), { once: true }));

/**
 * Deno.test that also fails if the moderator leaves a timer pending: Deno's sanitizers do not
 * track timers, so setTimeout/clearTimeout are wrapped to count the ones neither fired nor cleared.
 */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test(name, async () => {
    // Typed loosely: with npm packages in the graph, the timer globals carry Node's overloads.
    const timers = globalThis as unknown as {
      setTimeout: (callback: () => void, ms?: number) => unknown;
      clearTimeout: (id: unknown) => void;
    };
    const realSet = timers.setTimeout.bind(globalThis);
    const realClear = timers.clearTimeout.bind(globalThis);
    const [originalSet, originalClear] = [timers.setTimeout, timers.clearTimeout];
    const pending = new Set<unknown>();
    timers.setTimeout = (callback, ms) => {
      const id = realSet(() => {
        pending.delete(id);
        callback();
      }, ms);
      pending.add(id);
      return id;
    };
    timers.clearTimeout = (id) => {
      pending.delete(id);
      realClear(id);
    };
    try {
      await fn();
      assert.equal(pending.size, 0, "timers left pending");
    } finally {
      timers.setTimeout = originalSet;
      timers.clearTimeout = originalClear;
    }
  });
}

test("the request body is the multi-modal /v1/moderations form", async () => {
  const bodies: unknown[] = [];
  const moderator = new LlmModerator({
    model: "omni-moderation-latest",
    call: answering(200, { results: [result(false)] }, bodies),
    timeoutMs: 1000,
  });
  assert.deepEqual(await moderator.check(input, signal()), { allowed: true });
  const expected = {
    model: "omni-moderation-latest",
    input: [
      { type: "text", text: "hello" },
      { type: "text", text: "world" },
      { type: "image_url", image_url: { url: "https://example.com/a.png" } },
      { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
    ],
  };
  assert.deepEqual(bodies, [expected]);
  assert.deepEqual(moderationRequestBody("omni-moderation-latest", input), expected);
});

test("any flagged result blocks, naming the flagged categories", async () => {
  const moderator = new LlmModerator({
    model: "m",
    call: answering(200, {
      results: [result(false), result(true, { violence: true, hate: false, "self-harm": true })],
    }),
    timeoutMs: 1000,
  });
  assert.deepEqual(await moderator.check(input, signal()), {
    allowed: false,
    moderator: "llm",
    reason: "flagged: violence, self-harm",
  });
});

test("an input with nothing in it is allowed without a call", async () => {
  const bodies: unknown[] = [];
  const moderator = new LlmModerator({
    model: "m",
    call: answering(200, {}, bodies),
    timeoutMs: 10,
  });
  assert.deepEqual(await moderator.check({ ...input, texts: [], images: [] }, signal()), {
    allowed: true,
  });
  assert.equal(bodies.length, 0);
});

test("failures block by default and allow with failOpen, reported either way", async () => {
  const failing: [ModerationCall, string][] = [
    [answering(500, { error: { message: "upstream" } }), "HTTP 500"],
    [answering(429, {}), "HTTP 429"],
    [answering(200, { id: "x" }), "no results in answer"],
    [answering(200, "not json"), "no results in answer"],
    [() => Promise.reject(new Error("agent offline")), "call failed: Error: agent offline"],
    [() => {
      throw new Error("sync");
    }, "call failed: Error: sync"],
  ];
  for (const [call, reason] of failing) {
    const reported: string[] = [];
    const closed = new LlmModerator({
      model: "m",
      call,
      timeoutMs: 1000,
      onFailure: (r) => reported.push(r),
    });
    assert.deepEqual(await closed.check(input, signal()), {
      allowed: false,
      moderator: "llm",
      reason,
    });
    const open = new LlmModerator({
      model: "m",
      call,
      timeoutMs: 1000,
      failOpen: true,
      onFailure: (r) => reported.push(r),
    });
    assert.deepEqual(await open.check(input, signal()), { allowed: true });
    assert.deepEqual(reported, [reason, reason]);
  }
});

test("a call that never answers times out, aborts the call, and leaves no timer", async () => {
  let callSignal: AbortSignal | undefined;
  const call: ModerationCall = (body, s) => {
    callSignal = s;
    return hanging(body, s);
  };
  const closed = new LlmModerator({ model: "m", call, timeoutMs: 20, name: "omni" });
  assert.deepEqual(await closed.check(input, signal()), {
    allowed: false,
    moderator: "omni",
    reason: "timed out after 20 ms",
  });
  assert.equal(callSignal?.aborted, true);
  const open = new LlmModerator({ model: "m", call: hanging, timeoutMs: 20, failOpen: true });
  assert.deepEqual(await open.check(input, signal()), { allowed: true });
});

test("the timeout holds even if the call ignores its signal", async () => {
  const deaf: ModerationCall = () => new Promise(() => {});
  const moderator = new LlmModerator({ model: "m", call: deaf, timeoutMs: 10 });
  assert.equal((await moderator.check(input, signal())).allowed, false);
});

test("the request's own abort propagates to the call and is thrown, not failed open", async () => {
  const controller = new AbortController();
  const moderator = new LlmModerator({
    model: "m",
    call: hanging,
    timeoutMs: 10_000,
    failOpen: true,
  });
  const checking = moderator.check(input, controller.signal);
  controller.abort(new Error("client gone"));
  await assert.rejects(checking, /client gone/);
  await assert.rejects(moderator.check(input, controller.signal), /client gone/, "already aborted");
});
