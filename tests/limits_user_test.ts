/** A user's limits span all of that user's keys; a key's own limits apply on top. */
import assert from "node:assert/strict";
import { admin } from "./support/cluster.ts";
import { post, startStack } from "./support/stack.ts";

Deno.test("user RPM is shared by the user's keys; key concurrency and RPM apply per key", async () => {
  const stack = await startStack();
  const chat = (key: string) =>
    post(`${stack.baseURL}/chat/completions`, key, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    });
  try {
    const patched = await admin(stack.hub, "PATCH", `/users/${stack.userId}`, {
      limits: { rpm: 4 },
    });
    assert.equal(patched.status, 200);
    const second =
      (await admin(stack.hub, "POST", "/keys", { userId: stack.userId, limits: { rpm: 2 } })).json
        .key;
    const statuses = [];
    for (const key of [stack.key, second, second, second, stack.key, stack.key]) {
      statuses.push((await chat(key)).status);
    }
    // key 2 stops at its own 2; the user's 4 are then used up by key 1's second request.
    assert.deepEqual(statuses, [200, 200, 200, 429, 200, 429]);
    const refused = await chat(stack.key);
    const body = JSON.parse(new TextDecoder().decode(refused.bytes));
    assert.equal(refused.status, 429);
    assert.match(body.error.message, /this account/);
    assert.equal(body.error.code, "rate_limit_exceeded");
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
  } finally {
    await stack.stop();
  }
});
