import assert from "node:assert/strict";
import {
  addDecimal,
  appendEntry,
  canonicalBytes,
  type ChainHead,
  entryHash,
  firstDivergence,
  GENESIS_HASH,
  type LedgerEntry,
  signCheckpoint,
  verifyChain,
  verifyCheckpoint,
} from "./chain.ts";
import { generateIdentity, verifierFor } from "./identity.ts";
import { seededRandom } from "./prng.ts";
import { emptyUsage, USAGE_FIELDS } from "./usage.ts";

const SEED = Number(Deno.env.get("CHAIN_SEED") ?? Date.now() % 1_000_000);
console.log(`chain_test seed ${SEED} (rerun with CHAIN_SEED=${SEED})`);

async function makeChain(rand: () => number, n: number, agentId = "agent-1") {
  const out: LedgerEntry[] = [];
  const int = (max: number) => Math.floor(rand() * max);
  for (let i = 0; i < n; i++) {
    const usage = emptyUsage();
    for (const f of USAGE_FIELDS) usage[f] = rand() < 0.5 ? 0 : int(100_000);
    usage.audioSeconds = int(1000) / 4;
    out.push(
      await appendEntry(out.at(-1) ?? null, {
        agentId,
        requestId: `req-${int(1e9)}-${i}`,
        vendor: ["openai", "anthropic", "gemini"][int(3)]!,
        model: `m-${int(50)}`,
        usage,
        priceVersion: 1 + int(5),
        official: `${int(10)}.${String(int(1e6)).padStart(6, "0")}`,
        userCharge: `${int(10)}.${int(1e4)}`,
        agentPayout: `0.${String(int(1e9)).padStart(9, "0")}`,
        completedAtMs: 1_700_000_000_000 + i * 1000,
        settledAtMs: 1_700_000_000_500 + i * 1000,
      }),
    );
  }
  return out;
}

type Path = [keyof LedgerEntry] | ["usage", string];
const PATHS: Path[] = [
  ...(["agentId", "seq", "requestId", "vendor", "model", "priceVersion", "official", "userCharge"]
    .map((k) => [k] as Path)),
  ...(["agentPayout", "completedAtMs", "settledAtMs", "prevHash", "hash"].map((k) => [k] as Path)),
  ...USAGE_FIELDS.map((f) => ["usage", f] as Path),
];

function tamper(e: LedgerEntry, path: Path): LedgerEntry {
  const t = structuredClone(e) as unknown as Record<string, unknown>;
  const obj = (path.length === 2 ? t.usage : t) as Record<string, unknown>;
  const key = path.at(-1)!;
  const v = obj[key];
  if (typeof v === "number") obj[key] = v + 1;
  else if (key === "hash" || key === "prevHash") {
    const s = v as string;
    obj[key] = (s[0] === "a" ? "b" : "a") + s.slice(1);
  } else if (/^\d/.test(v as string)) obj[key] = `${v}1`;
  else obj[key] = `${v}x`;
  return t as unknown as LedgerEntry;
}

const ZERO_TOTALS = { official: "0.00", userCharge: "0.00", agentPayout: "0.00" };

Deno.test("a fresh chain verifies and sums its totals exactly", async () => {
  const chain = await makeChain(seededRandom(SEED), 20);
  const r = await verifyChain(chain);
  assert.ok(r.ok);
  assert.equal(r.head.seq, 20);
  assert.equal(r.head.hash, chain[19]!.hash);
  assert.equal(chain[0]!.prevHash, GENESIS_HASH);
  const sum = chain.reduce((s, e) => addDecimal(s, e.official), "0");
  assert.equal(r.head.totals.official, sum);
  assert.deepEqual(await verifyChain([]), {
    ok: true,
    head: { agentId: "", seq: 0, hash: GENESIS_HASH, totals: ZERO_TOTALS },
  });
});

Deno.test("a chain verified page by page from a trusted head equals it verified whole", async () => {
  const chain = await makeChain(seededRandom(SEED + 7), 25);
  const whole = await verifyChain(chain);
  const first = await verifyChain(chain.slice(0, 10));
  assert.ok(whole.ok && first.ok);
  let head = first.head;
  for (const page of [chain.slice(10, 17), chain.slice(17)]) {
    const r = await verifyChain(page, head);
    assert.ok(r.ok, JSON.stringify(r));
    head = r.head;
  }
  assert.deepEqual(head, whole.head);
  // A page that does not follow the trusted head is refused at the seq it should have started at.
  const gap = await verifyChain(chain.slice(11), first.head);
  assert.deepEqual([gap.ok, !gap.ok && gap.firstBadSeq], [false, 11]);
  const unlinked = await verifyChain(chain.slice(10), { ...first.head, hash: chain[8]!.hash });
  assert.deepEqual([unlinked.ok, !unlinked.ok && unlinked.firstBadSeq], [false, 11]);
});

Deno.test("tampering any single field of any entry is pinpointed (exhaustive, 8 entries)", async () => {
  const chain = await makeChain(seededRandom(SEED + 1), 8);
  for (let k = 0; k < chain.length; k++) {
    for (const path of PATHS) {
      const bad = chain.slice();
      bad[k] = tamper(chain[k]!, path);
      const r = await verifyChain(bad);
      assert.ok(!r.ok, `tamper ${path.join(".")} at seq ${k + 1} undetected`);
      assert.equal(r.firstBadSeq, k + 1, `${path.join(".")} at ${k + 1}: ${r.reason}`);
    }
  }
});

Deno.test("random tampering, reordering and dropping on random chains (seeded)", async () => {
  const rand = seededRandom(SEED + 2);
  for (let round = 0; round < 60; round++) {
    const n = 2 + Math.floor(rand() * 40);
    const chain = await makeChain(rand, n);
    const k = Math.floor(rand() * n);
    const path = PATHS[Math.floor(rand() * PATHS.length)]!;
    const tampered = chain.slice();
    tampered[k] = tamper(chain[k]!, path);
    const t = await verifyChain(tampered);
    assert.ok(!t.ok && t.firstBadSeq === k + 1, `round ${round}: ${path.join(".")} @${k + 1}`);
    const j = (k + 1 + Math.floor(rand() * (n - 1))) % n; // j != k
    const swapped = chain.slice();
    [swapped[k], swapped[j]] = [swapped[j]!, swapped[k]!];
    const s = await verifyChain(swapped);
    assert.ok(!s.ok && s.firstBadSeq === Math.min(j, k) + 1, `round ${round}: swap ${k}/${j}`);
    const dropAt = Math.floor(rand() * (n - 1)); // not the last: that is a valid prefix
    const dropped = chain.filter((_, i) => i !== dropAt);
    const d = await verifyChain(dropped);
    assert.ok(!d.ok && d.firstBadSeq === dropAt + 1, `round ${round}: drop ${dropAt + 1}`);
    const dup = [...chain.slice(0, k + 1), chain[k]!, ...chain.slice(k + 1)];
    const u = await verifyChain(dup);
    assert.ok(!u.ok && u.firstBadSeq === k + 2, `round ${round}: duplicate ${k + 1}`);
  }
});

Deno.test("canonical encoding is domain-separated and unambiguous", async () => {
  const [base] = await makeChain(seededRandom(SEED + 3), 1);
  const { hash: _, ...body } = base!;
  const bytes = canonicalBytes(body);
  assert.deepEqual([...bytes.subarray(0, 4)], [0, 0, 0, 24]);
  assert.equal(new TextDecoder().decode(bytes.subarray(4, 28)), "aqueduct/ledger-entry/v1");
  assert.notEqual(bytes[0], "{".charCodeAt(0));
  const variants = [
    { vendor: "ab", model: "c" },
    { vendor: "a", model: "bc" },
    { vendor: "a|b", model: "c" },
    { vendor: "a", model: "b|c" },
    { vendor: "a\u0000", model: "c" },
    { vendor: "a", model: "\u0000c" },
  ];
  const hashes = new Set<string>();
  for (const v of variants) hashes.add(await entryHash({ ...body, ...v }));
  assert.equal(hashes.size, variants.length);
  const amounts = new Set<string>();
  for (const [official, userCharge] of [["1.0", "1"], ["1", "1.0"], ["11", "1"], ["1", "11"]]) {
    amounts.add(await entryHash({ ...body, official: official!, userCharge: userCharge! }));
  }
  assert.equal(amounts.size, 4);
  const u1 = { ...body.usage, inputTokens: 12, cachedInputTokens: 3 };
  const u2 = { ...body.usage, inputTokens: 1, cachedInputTokens: 23 };
  assert.notEqual(await entryHash({ ...body, usage: u1 }), await entryHash({ ...body, usage: u2 }));
  assert.throws(() => canonicalBytes({ ...body, official: "1e-3" }), TypeError);
  assert.throws(() => canonicalBytes({ ...body, usage: { ...body.usage, x: 1 } as never }));
  assert.throws(() => canonicalBytes({ ...body, seq: 1.5 }), TypeError);
});

Deno.test("addDecimal is exact", () => {
  assert.equal(addDecimal("0.1", "0.2"), "0.30");
  assert.equal(addDecimal("0.000000001", "12345678901.123456789"), "12345678901.12345679");
  assert.equal(addDecimal("-2.5", "1"), "-1.50");
  assert.equal(addDecimal("0", "0"), "0.00");
  assert.throws(() => addDecimal("1e3", "1"), TypeError);
});

Deno.test("checkpoints carry agent and hub signatures; tampering is rejected", async () => {
  const agent = (await generateIdentity()).signer, hub = (await generateIdentity()).signer;
  const verifiers = {
    agent: await verifierFor(agent.publicKey),
    hub: await verifierFor(hub.publicKey),
  };
  const chain = await makeChain(seededRandom(SEED + 4), 5, "agent-7");
  const v = await verifyChain(chain);
  assert.ok(v.ok);
  const head: ChainHead = v.head;
  const agentOnly = await signCheckpoint(head, "agent", agent);
  const both = await signCheckpoint(agentOnly, "hub", hub);
  console.log(both);
  assert.match(both, /^aqueduct\/ledger\/agent-7\n5\n[0-9a-f]{64}\nofficial /);
  assert.deepEqual(await verifyCheckpoint(both, verifiers), { ok: true, head });
  assert.equal((await verifyCheckpoint(agentOnly, verifiers)).ok, false);
  assert.equal((await verifyCheckpoint(agentOnly, { agent: verifiers.agent })).ok, true);
  const tampered = [
    both.replace("\n5\n", "\n6\n"),
    both.replace(head.totals.agentPayout, addDecimal(head.totals.agentPayout, "1")),
    both.replace("agent-7", "agent-8"),
    both.replace("— hub ", "— agent "), // hub's signature relabelled as the agent's
  ];
  for (const note of tampered) assert.equal((await verifyCheckpoint(note, verifiers)).ok, false);
  const swapped = { agent: verifiers.hub, hub: verifiers.agent };
  assert.equal((await verifyCheckpoint(both, swapped)).ok, false);
  assert.equal((await verifyCheckpoint("garbage", verifiers)).ok, false);
  await assert.rejects(() => signCheckpoint("nope\n\n", "hub", hub), TypeError);
});

Deno.test("firstDivergence finds the exact seq in ≤ ⌈log2 n⌉+1 comparisons (n = 1..1000)", async () => {
  const rand = seededRandom(SEED + 5);
  for (let n = 1; n <= 1000; n++) {
    const d = 1 + Math.floor(rand() * n);
    let comparisons = 0;
    const local = (seq: number) => (comparisons++, Promise.resolve(`h${seq}`));
    const remote = (seq: number) => Promise.resolve(seq < d ? `h${seq}` : `x${seq}`);
    assert.equal(await firstDivergence(local, remote, n), d, `n=${n} d=${d}`);
    assert.ok(comparisons <= Math.ceil(Math.log2(n)) + 1, `n=${n}: ${comparisons} comparisons`);
    assert.equal(await firstDivergence(local, local, n), null);
  }
});

Deno.test("firstDivergence on real chains that fork at a random seq", async () => {
  const rand = seededRandom(SEED + 6);
  const a = await makeChain(rand, 200);
  const d = 1 + Math.floor(rand() * 200);
  const b = a.slice(0, d - 1);
  for (let i = d - 1; i < 200; i++) {
    const fields = i === d - 1
      ? { ...a[i]!, agentPayout: addDecimal(a[i]!.agentPayout, "1") }
      : a[i]!;
    b.push(await appendEntry(b.at(-1) ?? null, fields));
  }
  assert.ok((await verifyChain(b)).ok);
  const at = (c: LedgerEntry[]) => (seq: number) => Promise.resolve(c[seq - 1]?.hash ?? null);
  assert.equal(await firstDivergence(at(a), at(b), 200), d);
});
