/**
 * `deno task bench tunnel [--rounds N] [--agents N] [--quick] [--seed N] [--only echo|rss]`
 *
 * 1. Echo round trip through the tunnel (hub → real agent process → hub, `AgentSession.echo`)
 *    against a plain Deno WebSocket echo between the same two kinds of endpoints (see
 *    tunnel_echo.ts for why that comparison is fair), under two explicit CPU placements (cpu.ts
 *    says why), taking turns in short blocks (echo_rounds.ts); medians of the rounds.
 * 2. Hub RSS per idle connected agent at N agents (default 1,000), next to the same figure for
 *    a bare Deno WebSocket server with N plain connections (see tunnel_rss.ts).
 *
 * Prints tables to stdout and, last, one JSON line `{"bench":"tunnel",…}` for the README.
 * Progress goes to stderr. Every process and temp dir is released on success, error or Ctrl-C.
 */
import { parseArgs } from "node:util";
import { seededRandom } from "../../protocol/prng.ts";
import { canPin } from "./cpu.ts";
import { type EchoCounts, echoRounds, roundAll } from "./echo_rounds.ts";
import { withScope } from "./proc.ts";
import { intFlag, round, table } from "./stats.ts";
import { startBaselineTarget, startTunnelTarget } from "./tunnel_echo.ts";
import { measureRss, type RssFigures } from "./tunnel_rss.ts";

const PAYLOAD_BYTES = 64;
const PING_INTERVAL_MS = 1000;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: "string" },
      agents: { type: "string" },
      seed: { type: "string" },
      only: { type: "string" },
      concurrency: { type: "string" },
      quick: { type: "boolean", default: false },
    },
  });
  const quick = values.quick ?? false;
  const rounds = intFlag(values.rounds, "rounds", quick ? 2 : 5);
  const agents = intFlag(values.agents, "agents", quick ? 100 : 1000);
  const concurrency = intFlag(values.concurrency, "concurrency", 50);
  const seed = values.seed === undefined
    ? crypto.getRandomValues(new Uint32Array(1))[0]!
    : intFlag(values.seed, "seed", 1) >>> 0;
  const only = values.only;
  if (only !== undefined && only !== "echo" && only !== "rss") {
    throw new RangeError("--only must be echo or rss");
  }
  const counts: EchoCounts = quick
    ? { warmup: 100, sequential: 500, pipelined: 5_000, inFlight: 64 }
    : { warmup: 500, sequential: 5_000, pipelined: 50_000, inFlight: 64 };
  const random = seededRandom(seed);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const payload = Array.from({ length: PAYLOAD_BYTES }, () => alphabet[Math.floor(random() * 64)])
    .join("");
  console.error(`bench tunnel: seed ${seed}, rounds ${rounds}, agents ${agents}`);

  const started = performance.now();
  const loadBefore = loadAverage();
  const echo = only === "rss" ? undefined : await withScope(async (scope) => {
    console.error("bench: starting hub + agent, and the baseline echo server …");
    const [a, b] = await Promise.all([startTunnelTarget(scope), startBaselineTarget(scope)]);
    const pinning = await canPin();
    if (!pinning) console.error("bench: WARNING cannot pin CPUs (taskset); measuring unpinned");
    return await echoRounds(a, b, payload, counts, rounds, pinning);
  });
  const rssOptions = {
    agents,
    warm: Math.min(10, Math.floor(agents / 10)),
    concurrency,
    pingIntervalMs: PING_INTERVAL_MS,
  };
  const rss = only === "echo" ? undefined : {
    hub: await withScope((scope) => {
      console.error(`bench: hub memory with ${agents} agents …`);
      return measureRss(scope, "hub", rssOptions);
    }),
    plain: await withScope((scope) => {
      console.error(`bench: plain WebSocket server memory with ${agents} connections …`);
      return measureRss(scope, "plain", rssOptions);
    }),
  };

  const out: Record<string, unknown> = {
    bench: "tunnel",
    seed,
    quick,
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
  };
  if (echo) {
    console.log(echo.text + "\n");
    out.echo = echo.json;
  }
  if (rss) {
    console.log(rssText(rss.hub, rss.plain, concurrency) + "\n");
    out.rss = {
      ...roundAll(rss.hub),
      plainWebSocket: roundAll(rss.plain),
      ratioPerAgentSettled: round(rss.hub.perAgentSettledKiB / rss.plain.perAgentSettledKiB, 2),
    };
  }
  out.totalSeconds = round((performance.now() - started) / 1000, 1);
  // Other work on the box shows up here; the interleaving only makes it hit both sides alike.
  out.loadAverage1m = { before: loadBefore, after: loadAverage() };
  console.log(`load average (1 min) before ${loadBefore}, after ${loadAverage()}\n`);
  console.log(JSON.stringify(out));
  return 0;
}

function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

function rssText(f: RssFigures, plain: RssFigures, concurrency: number): string {
  const added = f.agents - f.warmAgents;
  const row = (name: string, point: keyof RssFigures, per?: keyof RssFigures) => [
    name,
    f[point],
    per ? f[per] : "-",
    plain[point],
    per ? plain[per] : "-",
  ];
  return [
    `Server RSS per idle connection: ${f.agents} connections (${f.warmAgents} opened before ` +
    `"before" as warm-up, per-connection figures divide by the other ${added}); hub pings ` +
    `every ${PING_INTERVAL_MS} ms; baseline = ws_echo_server.ts with plain WebSockets`,
    table([
      ["point", "hub KiB", "hub KiB/agent", "plain WS KiB", "plain KiB/conn"],
      row("before (enrolled, warm)", "rssBeforeKiB"),
      row("after (all online)", "rssAfterKiB", "perAgentKiB"),
      row(`settled (≥${f.minPingsPerAgent} pings each)`, "rssSettledKiB", "perAgentSettledKiB"),
      ["ratio hub/plain (settled)", "", f.perAgentSettledKiB / plain.perAgentSettledKiB, "", ""],
    ]),
    `connect: ${added} agent handshakes in ${Math.round(f.connectMs)} ms = ` +
    `${Math.round(f.handshakesPerSec)}/s (${concurrency} at a time; plain WebSocket opens: ` +
    `${Math.round(plain.handshakesPerSec)}/s); hub settled after ${Math.round(f.settleMs)} ms`,
    `10,000 agents: deno task bench tunnel --agents 10000  (needs ulimit -n ≥ 10512 in the ` +
    `server and the load generator, ~20,000 fds on this box; raised automatically up to the ` +
    `hard limit)`,
  ].join("\n");
}
