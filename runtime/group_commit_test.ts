import assert from "node:assert/strict";
import { GroupCommit } from "./group_commit.ts";

/** A write that records its batches and finishes when the test says so. */
function gate() {
  const batches: number[][] = [];
  const open: (() => void)[] = [];
  const write = (items: number[]) => {
    batches.push(items);
    return new Promise<(string | Error)[]>((resolve, reject) =>
      open.push(() =>
        items.includes(-1)
          ? reject(new Error("disk gone"))
          : resolve(items.map((i) => i === 13 ? new RangeError(`refused ${i}`) : `ok ${i}`))
      )
    );
  };
  /** Lets the oldest write in flight finish, once it has started. */
  const release = async () => {
    for (let i = 0; open.length === 0; i++) {
      if (i > 100) throw new Error("no write in flight to release");
      await new Promise((r) => setTimeout(r, 0));
    }
    open.shift()!();
  };
  return { batches, write, release };
}

Deno.test("a lone item goes at once; items added meanwhile share the next batch, in order", async () => {
  const g = gate();
  const group = new GroupCommit(g.write, { batchMax: 3 });
  const first = group.add(1);
  assert.deepEqual(g.batches, [[1]]);
  const rest = [2, 3, 13, 5].map((i) => group.add(i));
  assert.equal(group.queued, 4);
  await g.release();
  assert.equal(await first, "ok 1");
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(g.batches, [[1], [2, 3, 13]], "batchMax 3; 5 waits for the batch in flight");
  await g.release();
  type R = PromiseSettledResult<string>;
  const [two, three, thirteen] = await Promise.allSettled(rest.slice(0, 3)) as [R, R, R];
  assert.deepEqual([two, three].map((r) => r.status === "fulfilled" && r.value), ["ok 2", "ok 3"]);
  assert.ok(thirteen.status === "rejected" && thirteen.reason instanceof RangeError);
  await g.release();
  assert.deepEqual(g.batches, [[1], [2, 3, 13], [5]]);
  assert.equal(await rest[3], "ok 5");
  await group.idle();
});

Deno.test("a batch whose write throws rejects each of its callers, and only them", async () => {
  const g = gate();
  const group = new GroupCommit(g.write, { batchMax: 10 });
  const a = group.add(7);
  const bad = [group.add(-1), group.add(8)];
  await g.release();
  assert.equal(await a, "ok 7");
  await g.release();
  for (const r of await Promise.allSettled(bad)) {
    assert.ok(r.status === "rejected" && r.reason.message === "disk gone");
  }
  const after = group.add(9);
  await g.release();
  assert.equal(await after, "ok 9");
  let idle = false;
  await group.idle().then(() => idle = true);
  assert.ok(idle);
});

Deno.test("gather: items fed one async step after another (as the SETTLED checker does) share batches", async () => {
  const batches: number[][] = [];
  const group = new GroupCommit((items: number[]) => {
    batches.push(items);
    return Promise.resolve(items.map(String));
  }, { batchMax: 100, gather: true });
  const feed = async () => {
    const out = [];
    for (let i = 0; i < 5; i++) {
      out.push(group.add(i));
      await crypto.subtle.digest("SHA-256", new Uint8Array(64)); // verifying the next frame
    }
    return Promise.all(out);
  };
  assert.deepEqual(await feed(), ["0", "1", "2", "3", "4"]);
  assert.ok(batches.length < 5, `5 items in ${batches.length} batches`);
  assert.deepEqual(batches.flat(), [0, 1, 2, 3, 4]);
});
