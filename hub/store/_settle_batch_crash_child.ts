/**
 * Test helper (not a test) for settle_batch_crash_test.ts: on the store at `Deno.args[0]`, for
 * user `args[1]` and agent `args[2]`: reserves `HOLDS` holds of 0.05 (ids `<args[3]>-<n>`, one
 * after another), then settles them at 0.03, `WAVE` at a time concurrently through a
 * `SettleBatcher` (batches of ≤ 16), printing each request id once its batch committed. The
 * parent SIGKILLs it at a random moment while it settles.
 */
import { parseUsd } from "../../protocol/money.ts";
import { SettleBatcher } from "../billing/settle_batcher.ts";
import { settlement } from "./_test_billing_cases.ts";
import { openStore } from "./mod.ts";

const HOLDS = 600, WAVE = 48;

const [dsn, userId, agentId, tag] = Deno.args as [string, string, string, string];
const store = await openStore(dsn);
const batcher = new SettleBatcher(store, { batchMax: 16, inFlightMax: 1 });
const enc = new TextEncoder();
// All holds first, so that once anything is reported the child is only settling.
const ids = Array.from({ length: HOLDS }, (_, n) => `${tag}-${n}`);
for (const id of ids) {
  await store.reserve({ reservationId: id, userId, amount: parseUsd("0.05"), expiresAtMs: 9 }, 1);
}
for (let at = 0; at < ids.length; at += WAVE) {
  await Promise.all(
    ids.slice(at, at + WAVE).map(async (id) => {
      await batcher.settle(settlement(id, agentId, `q-${id}`, "0.03", "0.025"));
      Deno.stdout.writeSync(enc.encode(`q-${id}\n`));
    }),
  );
}
Deno.stdout.writeSync(enc.encode("done\n"));
