/**
 * `deno task bench ledger [--rounds N] [--count N] [--in-flight N] [--quick]
 *  [--only sqlite|mariadb|agent] [--mysql DSN]`
 *
 * Settlement throughput with durable commits. Hub (ledger_hub.ts): settlements/s on a SQLite file
 * and on MariaDB, `store.settle` one at a time (the baseline, one commit each) and from N
 * concurrent callers, against the `SettleBatcher` group commit (`settleMany`: one transaction per
 * batch) with 1 and N callers. Agent (ledger_agent.ts): SETTLED frames verified + committed per
 * second by the real checker and ledger, with its two halves alone for the split.
 *
 * Rounds are interleaved (every variant once per round, the order rotating) and figures are the
 * medians of the rounds; "×" is the ratio to the sequential `settle` of the same backend in the
 * same run. Every chain is verified at the end (gapless, hashes). Prints tables and one JSON line
 * `{"bench":"ledger",…}`.
 */
import { parseArgs } from "node:util";
import { TEST_MYSQL_DSN } from "../../hub/store/_test_backends.ts";
import { AgentBench, type AgentPart, type AgentRun } from "./ledger_agent.ts";
import {
  AGENTS,
  checkChains,
  type HubRun,
  type HubSetup,
  mariadbSetup,
  type Mode,
  runHub,
  sqliteSetup,
  USERS,
} from "./ledger_hub.ts";
import { intFlag, latencyOf, median, round, table } from "./stats.ts";

interface Variant {
  mode: Mode;
  inFlight: number;
}

interface Figures {
  label: string;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  perTransaction: number;
  ratio: number;
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: "string" },
      count: { type: "string" },
      "in-flight": { type: "string" },
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      mysql: { type: "string" },
    },
  });
  const rounds = intFlag(values.rounds, "rounds", values.quick ? 2 : 3);
  const count = intFlag(values.count, "count", values.quick ? 500 : 3000);
  const inFlight = intFlag(values["in-flight"], "in-flight", 64);
  const only = values.only;
  if (only !== undefined && !["sqlite", "mariadb", "agent"].includes(only)) {
    throw new RangeError("--only must be sqlite, mariadb or agent");
  }
  const variants: Variant[] = [
    { mode: "settle", inFlight: 1 },
    { mode: "settle", inFlight },
    { mode: "batched", inFlight: 1 },
    { mode: "batched", inFlight },
  ];
  console.log(
    `ledger bench: ${rounds} interleaved rounds, ${count} settlements per variant per round, ` +
      `${USERS} users, ${AGENTS} agents; medians`,
  );
  const json: Record<string, unknown> = { bench: "ledger", rounds, count, inFlight };
  const hubs: [HubSetup["backend"], () => Promise<HubSetup>][] = [
    ["sqlite", sqliteSetup],
    ["mariadb", () => mariadbSetup(values.mysql ?? TEST_MYSQL_DSN)],
  ];
  for (const [backend, setup] of hubs) {
    if (only !== undefined && only !== backend) continue;
    json[backend] = await benchHub(await setup(), variants, rounds, count);
  }
  if (only === undefined || only === "agent") json.agent = await benchAgent(rounds, count);
  console.log(JSON.stringify(json));
  return 0;
}

async function benchHub(setup: HubSetup, variants: Variant[], rounds: number, count: number) {
  const runs = new Map<string, HubRun[]>();
  const key = (v: Variant) => `${v.mode}/${v.inFlight}`;
  try {
    await runHub(setup, "batched", 64, Math.min(count, 500)); // warm-up: JIT, caches, pools
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < variants.length; i++) {
        const v = variants[(i + r) % variants.length]!;
        const run = await runHub(setup, v.mode, v.inFlight, count);
        runs.set(key(v), [...runs.get(key(v)) ?? [], run]);
      }
    }
    const entries = await checkChains(setup);
    const base = median(runs.get(key(variants[0]!))!.map((r) => r.perSec));
    const figures: Figures[] = variants.map((v) => {
      const rs = runs.get(key(v))!;
      const lat = rs.map((r) => latencyOf(r.latenciesMs));
      const perSec = median(rs.map((r) => r.perSec));
      return {
        label: `${v.mode === "settle" ? "store.settle" : "SettleBatcher"}, ${v.inFlight} in flight`,
        perSec,
        p50Ms: median(lat.map((l) => l.p50Us)) / 1000,
        p99Ms: median(lat.map((l) => l.p99Us)) / 1000,
        perTransaction: median(rs.map((r) => r.settlements / r.transactions)),
        ratio: perSec / base,
      };
    });
    console.log(`\n${setup.backend}: ${setup.durability}`);
    console.log(table([
      ["", "settlements/s", "× baseline", "p50 ms", "p99 ms", "per commit"],
      ...figures.map((f) => [f.label, f.perSec, f.ratio, f.p50Ms, f.p99Ms, f.perTransaction]),
    ]));
    console.log(`(${entries} entries over ${AGENTS} chains verified gapless after the runs)`);
    return {
      durability: setup.durability,
      rows: figures.map((f) => ({
        ...f,
        perSec: Math.round(f.perSec),
        ratio: round(f.ratio, 2),
        p50Ms: round(f.p50Ms, 2),
        p99Ms: round(f.p99Ms, 2),
        perTransaction: round(f.perTransaction, 1),
      })),
    };
  } finally {
    await setup.dispose();
  }
}

async function benchAgent(rounds: number, count: number) {
  const bench = await AgentBench.open();
  const parts: AgentPart[] = ["verify", "append", "verify+commit, 1 at a time", "verify+commit"];
  const runs = new Map<AgentPart, AgentRun[]>();
  try {
    await bench.run("verify+commit", Math.min(count, 300)); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < parts.length; i++) {
        const part = parts[(i + r) % parts.length]!;
        runs.set(part, [...runs.get(part) ?? [], await bench.run(part, count)]);
      }
    }
  } finally {
    await bench.close();
  }
  const base = median(runs.get("verify+commit, 1 at a time")!.map((r) => r.perSec));
  const rows = parts.map((part) => {
    const rs = runs.get(part)!;
    const lat = rs.map((r) => latencyOf(r.latenciesMs));
    const perSec = median(rs.map((r) => r.perSec));
    return {
      part,
      perSec,
      ratio: perSec / base,
      p50Ms: median(lat.map((l) => l.p50Us)) / 1000,
      p99Ms: median(lat.map((l) => l.p99Us)) / 1000,
    };
  });
  const label: Record<AgentPart, string> = {
    verify: "verifySettlement alone (re-price + hash)",
    append: "AgentLedger.append alone, one awaited at a time",
    "verify+commit, 1 at a time": "SettlementChecker, each frame after the previous ack",
    "verify+commit": "SettlementChecker, frames back to back (group commit)",
  };
  console.log("\nagent: log fdatasync, then SQLite WAL synchronous=FULL, per batch of appends");
  console.log(table([
    ["", "frames/s", "× 1 at a time", "p50 ms", "p99 ms"],
    ...rows.map((r) => [label[r.part], r.perSec, r.ratio, r.p50Ms, r.p99Ms]),
  ]));
  console.log("(p50/p99 of verify + commit: frame handed in → its SETTLE_ACK, queueing included)");
  return rows.map((r) => ({
    ...r,
    perSec: Math.round(r.perSec),
    ratio: round(r.ratio, 2),
    p50Ms: round(r.p50Ms, 3),
    p99Ms: round(r.p99Ms, 3),
  }));
}
