/**
 * `deno task bench gateway [--rounds N] [--quick] [--log-level info|warn] [--cpu-prof DIR]
 *  [--db-dir DIR]` — the last three are for diagnosis: CPU profiles of hub and agent, and the
 *  hub's SQLite file elsewhere (e.g. a symlink to a tmpfs dir: Deno refuses /dev/* paths).
 *
 * What the hub + agent add to an OpenAI chat completion, against the same fake vendor called
 * directly: (a) client → fake; (b) client → hub → tunnel → agent → fake → back. Measured:
 *   1. sequential small non-stream requests on one keep-alive connection: p50/p99, (b) − (a);
 *   2. req/s and p50/p99 with 64 connections, each with one request in flight;
 *   3. CPU µs per request of the hub, agent, fake and bench processes during (2), of hub and
 *      agent also during (1), and their CPU share during (4);
 *   4. 50 concurrent streams, 20 ms between chunks: TTFB p50/p99 and inter-chunk gap p99;
 *   5. hub and agent RSS under load (current VmRSS, peak VmHWM).
 *
 * Why the comparison is fair: one fake vendor process serves both sides (the same code, the same
 * heap, the same answers — its cost is in both); the bench process is only the load generator and
 * sends byte-identical requests (the headers the official SDK sends, captured from a real SDK
 * call; only host and key differ) through the same thin client (gateway_client.ts); each round
 * runs every phase for (a) and (b) back to back, the order alternating per round, and figures are
 * the medians of the rounds ("added" = median of the per-round differences). Hub and agent are the
 * real CLIs with the tasks' flags and the deployed log level; nothing is pinned (the scheduler
 * spreads the four processes over the 2 CPUs as in production; ≥ 3 rounds absorb the drift).
 * Before measuring, the official SDK is run against both and must get the same answer.
 */
import { parseArgs } from "node:util";
import { codeState, sdkCheck } from "./gateway_checks.ts";
import { requestBytes, type Target } from "./gateway_client.ts";
import * as P from "./gateway_phases.ts";
import { type MemFigures, report, type SideRound } from "./gateway_report.ts";
import { hubAccounting, startGatewayStack, VENDOR_KEY } from "./gateway_stack.ts";
import { withScope } from "./proc.ts";
import { intFlag, latencyOf } from "./stats.ts";

const MODEL = "gpt-4o-mini";
const CHUNK_DELAY_MS = 20;
const SMALL = {
  model: MODEL,
  messages: [{ role: "user" as const, content: "hello there [[words:8]]" }],
};
const STREAM = {
  model: MODEL,
  stream: true,
  messages: [{ role: "user", content: `stream [[words:30]] [[delay:${CHUNK_DELAY_MS}]]` }],
};

interface Side {
  target: Target;
  small: Uint8Array;
  stream: Uint8Array;
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: "string" },
      quick: { type: "boolean", default: false },
      "log-level": { type: "string", default: "info" },
      "cpu-prof": { type: "string" },
      "db-dir": { type: "string" },
    },
  });
  const quick = values.quick ?? false;
  const config = {
    rounds: intFlag(values.rounds, "rounds", quick ? 3 : 5),
    sequential: quick ? 500 : 2000,
    connections: 64,
    streams: 50,
    phaseMs: quick ? 1500 : 3000,
    chunkDelayMs: CHUNK_DELAY_MS,
    logLevel: values["log-level"]!,
  };
  const started = performance.now();
  const load0 = loadAverage();
  console.error(`bench gateway: ${JSON.stringify(config)}`);
  return await withScope(async (scope) => {
    const stack = await startGatewayStack(scope, {
      logLevel: config.logLevel,
      cpuProfDir: values["cpu-prof"],
      dbDir: values["db-dir"],
    });
    const headers = await sdkCheck(stack.fakeUrl, stack.hubUrl, stack.key, SMALL);
    const side = (name: string, url: string, key: string): Side => {
      const target = { name, port: Number(new URL(url).port), key };
      const path = "/v1/chat/completions";
      return {
        target,
        small: requestBytes(target, path, JSON.stringify(SMALL), headers),
        stream: requestBytes(target, path, JSON.stringify(STREAM), headers),
      };
    };
    const a = side("direct", stack.fakeUrl, VENDOR_KEY);
    const b = side("hub", stack.hubUrl, stack.key);
    const procs = {
      hub: stack.hub.pid,
      agent: stack.agentPid,
      fake: stack.fakePid,
      bench: Deno.pid,
    };
    const mem: MemFigures = {
      idle: { hub: P.memKiB(stack.hub.pid), agent: P.memKiB(stack.agentPid) },
      loadRssKiB: { hub: 0, agent: 0 },
      hwmKiB: { hub: 0, agent: 0 },
    };
    const sampleMem = () => {
      mem.loadRssKiB.hub = Math.max(mem.loadRssKiB.hub, P.memKiB(stack.hub.pid).rssKiB);
      mem.loadRssKiB.agent = Math.max(mem.loadRssKiB.agent, P.memKiB(stack.agentPid).rssKiB);
    };

    console.error("bench: warm-up (JIT, connection pools) …");
    for (const s of [a, b]) {
      await measureSide(s, { ...config, sequential: 300, phaseMs: 1000 }, procs, () => {});
    }
    const rounds: { direct: SideRound; hub: SideRound }[] = [];
    for (let r = 1; r <= config.rounds; r++) {
      const order = r % 2 ? [a, b] : [b, a];
      const got = new Map<Side, SideRound>();
      for (const s of order) {
        got.set(s, await measureSide(s, config, procs, s === b ? sampleMem : () => {}));
      }
      const round = { direct: got.get(a)!, hub: got.get(b)! };
      rounds.push(round);
      console.error(
        `bench: round ${r}/${config.rounds}: seq p50 ${round.direct.seqP50Us.toFixed(0)} / ` +
          `${round.hub.seqP50Us.toFixed(0)} µs, ${round.direct.rps.toFixed(0)} / ` +
          `${round.hub.rps.toFixed(0)} req/s, TTFB p50 ${round.direct.ttfbP50Us.toFixed(0)} / ` +
          `${round.hub.ttfbP50Us.toFixed(0)} µs (direct / hub)`,
      );
    }
    // The kernel updates VmHWM lazily; a VmRSS sampled earlier can be a little higher.
    mem.hwmKiB = {
      hub: Math.max(P.memKiB(stack.hub.pid).hwmKiB, mem.loadRssKiB.hub),
      agent: Math.max(P.memKiB(stack.agentPid).hwmKiB, mem.loadRssKiB.agent),
    };
    const out = report(rounds, mem, config, hubAccounting(stack));
    console.log(out.text);
    console.log(
      `\nload average (1 min) before ${load0}, after ${loadAverage()}; ` +
        `${((performance.now() - started) / 1000).toFixed(0)} s\n`,
    );
    console.log(JSON.stringify({
      bench: "gateway",
      quick,
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      code: await codeState(),
      ...out.json,
      loadAverage1m: { before: load0, after: loadAverage() },
      totalSeconds: Math.round((performance.now() - started) / 100) / 10,
    }));
    return 0;
  });
}

/** All three phases against one side; sequential and streams use fresh connections too. */
async function measureSide(
  s: Side,
  config: { sequential: number; connections: number; streams: number; phaseMs: number },
  procs: P.Procs,
  sampleMem: () => void,
): Promise<SideRound> {
  const [one] = await P.openConns(s.target.port, 1);
  await P.sequential(one!, s.small, 20);
  const seqCpu = P.cpuMeter(procs);
  const seq = latencyOf(await P.sequential(one!, s.small, config.sequential));
  const seqCpuUs = seqCpu(config.sequential).total;
  one!.close();

  const conns = await P.openConns(s.target.port, config.connections);
  await P.concurrent(conns, s.small, 300, procs); // every connection warm, steady state reached
  const conc = await P.concurrent(conns, s.small, config.phaseMs, procs);
  sampleMem();
  P.closeAll(conns);
  const concLat = latencyOf(conc.latencies);
  const { total: cpu, sys } = conc.cpu;

  const streamConns = await P.openConns(s.target.port, config.streams);
  const streamCpu = P.cpuMeter(procs), t0 = performance.now();
  const st = await P.streams(streamConns, s.stream, config.phaseMs, CHUNK_DELAY_MS);
  const busy = streamCpu((performance.now() - t0) * 10).total; // µs per 100 µs of phase = %
  sampleMem();
  P.closeAll(streamConns);
  const ttfb = latencyOf(st.ttfb), gaps = latencyOf(st.gaps), endGaps = latencyOf(st.endGaps);
  return {
    seqP50Us: seq.p50Us,
    seqP99Us: seq.p99Us,
    seqCpuHubUs: seqCpuUs.hub!,
    seqCpuAgentUs: seqCpuUs.agent!,
    rps: conc.requests / (conc.ms / 1000),
    concP50Us: concLat.p50Us,
    concP99Us: concLat.p99Us,
    cpuHubUs: cpu.hub!,
    cpuHubSysUs: sys.hub!,
    cpuAgentUs: cpu.agent!,
    cpuAgentSysUs: sys.agent!,
    cpuFakeUs: cpu.fake!,
    cpuBenchUs: cpu.bench!,
    streamsDone: st.streams,
    ttfbP50Us: ttfb.p50Us,
    ttfbP99Us: ttfb.p99Us,
    gapP50Us: gaps.p50Us,
    gapP99Us: gaps.p99Us,
    endGapP50Us: endGaps.p50Us,
    streamHubCpuPct: busy.hub!,
    streamAgentCpuPct: busy.agent!,
    readsPerStream: st.readsPerStream,
  };
}

function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}
