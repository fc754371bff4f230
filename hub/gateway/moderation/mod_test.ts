import assert from "node:assert/strict";
import {
  ALLOWED,
  ModerationChain,
  type ModerationInput,
  type ModerationVerdict,
  type Moderator,
} from "./mod.ts";

const input: ModerationInput = {
  requestId: "r1",
  vendor: "openai",
  model: "gpt-4o",
  texts: ["hello"],
  images: [],
};

/** A moderator that records its calls and answers with a fixed verdict (or throws). */
function fake(name: string, calls: string[], answer: ModerationVerdict | Error): Moderator {
  return {
    name,
    check() {
      calls.push(name);
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
  };
}
const block = (moderator: string): ModerationVerdict => ({
  allowed: false,
  moderator,
  reason: `${moderator} says no`,
});

Deno.test("an empty chain is disabled and allows", async () => {
  const chain = new ModerationChain([]);
  assert.equal(chain.enabled, false);
  assert.deepEqual(await chain.check(input, new AbortController().signal), ALLOWED);
});

Deno.test("moderators run in order and all run when every one allows", async () => {
  const calls: string[] = [];
  const chain = new ModerationChain([fake("a", calls, ALLOWED), fake("b", calls, ALLOWED)]);
  assert.equal(chain.enabled, true);
  assert.deepEqual(chain.names, ["a", "b"]);
  assert.deepEqual(await chain.check(input, new AbortController().signal), { allowed: true });
  assert.deepEqual(calls, ["a", "b"]);
});

Deno.test("the first block wins and later moderators are not asked", async () => {
  const calls: string[] = [];
  const chain = new ModerationChain([
    fake("a", calls, ALLOWED),
    fake("b", calls, block("b")),
    fake("c", calls, block("c")),
  ]);
  assert.deepEqual(await chain.check(input, new AbortController().signal), block("b"));
  assert.deepEqual(calls, ["a", "b"]);
});

Deno.test("a moderator that throws blocks by default (fail-closed) and is reported", async () => {
  const calls: string[] = [];
  const errors: [string, unknown][] = [];
  const boom = new Error("boom");
  const chain = new ModerationChain(
    [fake("a", calls, boom), fake("b", calls, ALLOWED)],
    { onError: (name, error) => errors.push([name, error]) },
  );
  assert.deepEqual(await chain.check(input, new AbortController().signal), {
    allowed: false,
    moderator: "a",
    reason: "moderator error",
  });
  assert.deepEqual(calls, ["a"]);
  assert.deepEqual(errors, [["a", boom]]);
});

Deno.test("fail-open skips a throwing moderator but still honours later blocks", async () => {
  const calls: string[] = [];
  const errors: string[] = [];
  const options = { failOpen: true, onError: (name: string) => errors.push(name) };
  const allowing = new ModerationChain([
    fake("a", calls, new Error("x")),
    fake("b", calls, ALLOWED),
  ], options);
  assert.deepEqual(await allowing.check(input, new AbortController().signal), ALLOWED);
  const blocking = new ModerationChain([
    fake("a", calls, new Error("x")),
    fake("b", calls, block("b")),
  ], options);
  assert.deepEqual(await blocking.check(input, new AbortController().signal), block("b"));
  assert.deepEqual(calls, ["a", "b", "a", "b"]);
  assert.deepEqual(errors, ["a", "a"]);
});

Deno.test("an aborted request is blocked even in fail-open mode", async () => {
  const calls: string[] = [];
  const controller = new AbortController();
  const aborting: Moderator = {
    name: "a",
    check() {
      controller.abort();
      return Promise.reject(new DOMException("gone", "AbortError"));
    },
  };
  const chain = new ModerationChain([aborting, fake("b", calls, ALLOWED)], { failOpen: true });
  assert.deepEqual(await chain.check(input, controller.signal), {
    allowed: false,
    moderator: "a",
    reason: "aborted",
  });
  assert.deepEqual(calls, [], "nothing runs after the abort");
});

Deno.test("the chain copies its moderator list", async () => {
  const calls: string[] = [];
  const list = [fake("a", calls, ALLOWED)];
  const chain = new ModerationChain(list);
  list.push(fake("late", calls, block("late")));
  assert.deepEqual(await chain.check(input, new AbortController().signal), ALLOWED);
  assert.deepEqual(chain.names, ["a"]);
});
