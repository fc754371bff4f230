/**
 * Tables, targets and the JSON line of `deno task bench gateway`. Every figure is the median of
 * the rounds; "added" is the median of the per-round differences hub − direct (each round measures
 * both sides minutes apart at most, so the difference cancels most drift of the machine).
 * Targets are printed with PASS/MISS and, when missed, by how much.
 */
import { median, medianOf, round, table } from "./stats.ts";

export interface SideRound {
  seqP50Us: number;
  seqP99Us: number;
  /** CPU µs per request during the sequential phase (0 on the direct side). */
  seqCpuHubUs: number;
  seqCpuAgentUs: number;
  rps: number;
  concP50Us: number;
  concP99Us: number;
  /** CPU µs per request during the concurrent phase, total and kernel part. */
  cpuHubUs: number;
  cpuHubSysUs: number;
  cpuAgentUs: number;
  cpuAgentSysUs: number;
  cpuFakeUs: number;
  cpuBenchUs: number;
  streamsDone: number;
  ttfbP50Us: number;
  ttfbP99Us: number;
  /** Gaps between content chunks (every body read but each stream's last)… */
  gapP50Us: number;
  gapP99Us: number;
  /** …and the last one, before `data: [DONE]`. */
  endGapP50Us: number;
  /** CPU use during the stream phase, % of one CPU. */
  streamHubCpuPct: number;
  streamAgentCpuPct: number;
  readsPerStream: number;
}

export interface Accounting {
  outcomes: Record<string, number>;
  usageRows: number;
}

export interface MemFigures {
  idle: { hub: { rssKiB: number }; agent: { rssKiB: number } };
  /** Highest VmRSS sampled at the end of a loaded phase (connections still open). */
  loadRssKiB: { hub: number; agent: number };
  /** VmHWM at the end of the run: the peak resident size since start. */
  hwmKiB: { hub: number; agent: number };
}

interface Config {
  rounds: number;
  sequential: number;
  connections: number;
  streams: number;
  phaseMs: number;
  chunkDelayMs: number;
  logLevel: string;
}

type Rounds = { direct: SideRound; hub: SideRound }[];

export function report(rounds: Rounds, mem: MemFigures, config: Config, acct: Accounting) {
  const a = medianOf(rounds.map((r) => r.direct));
  const b = medianOf(rounds.map((r) => r.hub));
  const added = (k: keyof SideRound) => median(rounds.map((r) => r.hub[k] - r.direct[k]));
  const ms = (us: number) => round(us / 1000, 3);

  const rows: (string | number)[][] = [["metric", "direct (a)", "hub (b)", "b − a", "b / a"]];
  const row = (label: string, k: keyof SideRound, scale = 1) =>
    rows.push([label, a[k] / scale, b[k] / scale, added(k) / scale, b[k] / a[k]]);
  row("sequential p50 ms", "seqP50Us", 1000);
  row("sequential p99 ms", "seqP99Us", 1000);
  row(`${config.connections} conns req/s`, "rps");
  row(`${config.connections} conns p50 ms`, "concP50Us", 1000);
  row(`${config.connections} conns p99 ms`, "concP99Us", 1000);
  row("stream TTFB p50 ms", "ttfbP50Us", 1000);
  row("stream TTFB p99 ms", "ttfbP99Us", 1000);
  row("chunk gap p50 ms", "gapP50Us", 1000);
  row("chunk gap p99 ms", "gapP99Us", 1000);
  row("gap before [DONE] p50 ms *", "endGapP50Us", 1000);
  row("body reads / stream", "readsPerStream");

  const perRound = [[
    "round",
    "side",
    "seq p50 ms",
    "seq p99",
    "req/s",
    "conc p50",
    "conc p99",
    "TTFB p50",
    "TTFB p99",
    "gap p99",
    "streams",
  ]];
  rounds.forEach((r, i) => {
    for (const [name, s] of [["direct", r.direct], ["hub", r.hub]] as const) {
      perRound.push([
        String(i + 1),
        name,
        ...[s.seqP50Us, s.seqP99Us].map((v) => fmt(v / 1000)),
        fmt(s.rps),
        ...[s.concP50Us, s.concP99Us, s.ttfbP50Us, s.ttfbP99Us, s.gapP99Us].map((v) =>
          fmt(v / 1000)
        ),
        String(s.streamsDone),
      ]);
    }
  });

  const cpuTotal = (s: SideRound, hub: boolean) =>
    (hub ? s.cpuHubUs + s.cpuAgentUs : 0) + s.cpuFakeUs + s.cpuBenchUs;
  const cpuRows = [
    ["process", "direct µs/req", "hub µs/req", "of it kernel", "sequential µs/req"],
    ["hub", "-", b.cpuHubUs, b.cpuHubSysUs, b.seqCpuHubUs],
    ["agent (locked child)", "-", b.cpuAgentUs, b.cpuAgentSysUs, b.seqCpuAgentUs],
    ["fake vendor", a.cpuFakeUs, b.cpuFakeUs, "", ""],
    ["bench (load generator)", a.cpuBenchUs, b.cpuBenchUs, "", ""],
    ["all processes", cpuTotal(a, false), cpuTotal(b, true), "", ""],
    ["→ req/s if 2 CPUs were 100% busy", 2e6 / cpuTotal(a, false), 2e6 / cpuTotal(b, true), "", ""],
  ];
  const mb = (kib: number) => round(kib / 1024, 1);
  const memRows = [
    ["process", "idle VmRSS MiB", "under load VmRSS MiB", "peak VmHWM MiB"],
    ["hub", mb(mem.idle.hub.rssKiB), mb(mem.loadRssKiB.hub), mb(mem.hwmKiB.hub)],
    ["agent", mb(mem.idle.agent.rssKiB), mb(mem.loadRssKiB.agent), mb(mem.hwmKiB.agent)],
  ];

  const targets = [
    verdict("sequential added p50", ms(added("seqP50Us")), "≤", 0.5, "ms"),
    verdict("sequential added p99", ms(added("seqP99Us")), "≤", 2, "ms"),
    verdict(`req/s through the hub at ${config.connections} conns`, round(b.rps, 0), "≥", 6000, ""),
    verdict("streaming added TTFB p50", ms(added("ttfbP50Us")), "≤", 1, "ms"),
    verdict("chunk-gap p99 − direct", ms(added("gapP99Us")), "≤", 1, "ms"),
  ];
  const benchShare = (s: SideRound) => (s.cpuBenchUs * s.rps) / 1e4;
  const text = [
    `Gateway overhead: (a) direct to the fake vendor vs (b) hub → agent → same fake; ` +
    `${config.rounds} rounds, order alternating, medians; unpinned, ${navigator.hardwareConcurrency} CPUs.`,
    `sequential: ${config.sequential} small chats on 1 connection; ${config.connections} conns: ` +
    `${config.phaseMs} ms each side per round; streams: ${config.streams} concurrent, ` +
    `[[words:30]] [[delay:${config.chunkDelayMs}]], ${config.phaseMs} ms; hub/agent LOG_LEVEL=` +
    `${config.logLevel}.`,
    "",
    table(rows),
    "",
    "Per round:",
    table(perRound),
    "",
    `CPU per request (/proc/<pid>/stat utime+stime, all threads) during the ` +
    `${config.connections}-connection phase, and for hub/agent also during the sequential phase:`,
    table(cpuRows),
    `stream phase (${config.streams} streams): hub ${fmt(b.streamHubCpuPct)}% and agent ` +
    `${fmt(b.streamAgentCpuPct)}% of one CPU busy`,
    `load generator: ${fmt(benchShare(a))}% of one CPU at ${fmt(a.rps)} req/s (direct), ` +
    `${fmt(benchShare(b))}% at ${fmt(b.rps)} req/s (hub)`,
    "",
    `* The agent adds stream_options.include_usage to streams whose client did not ask for it and ` +
    `strips the extra usage chunk; the fake paces that chunk like any other (+${config.chunkDelayMs} ms ` +
    `before [DONE]; OpenAI sends it right after the last chunk), so the last gap is kept out of ` +
    `the chunk-gap figures on both sides and shown on its own.`,
    `hub bookkeeping over the whole run: ${accountingText(acct)}`,
    "",
    "Memory (hub process; agent = the locked child holding the tunnel):",
    table(memRows),
    "",
    "Targets:",
    ...targets.map((t) => t.line),
  ].join("\n");
  const json = {
    config,
    direct: roundAll(a),
    hub: roundAll(b),
    added: {
      seqP50Ms: ms(added("seqP50Us")),
      seqP99Ms: ms(added("seqP99Us")),
      ttfbP50Ms: ms(added("ttfbP50Us")),
      ttfbP99Ms: ms(added("ttfbP99Us")),
      gapP99Ms: ms(added("gapP99Us")),
      rpsRatio: round(b.rps / a.rps, 3),
    },
    memMiB: {
      hub: {
        idle: mb(mem.idle.hub.rssKiB),
        load: mb(mem.loadRssKiB.hub),
        peak: mb(mem.hwmKiB.hub),
      },
      agent: {
        idle: mb(mem.idle.agent.rssKiB),
        load: mb(mem.loadRssKiB.agent),
        peak: mb(mem.hwmKiB.agent),
      },
    },
    hubAccounting: acct,
    targets: Object.fromEntries(targets.map((t) => [t.name, t.pass ? "PASS" : "MISS"])),
    rounds: rounds.map((r) => ({ direct: roundAll(r.direct), hub: roundAll(r.hub) })),
  };
  return { text, json };
}

function accountingText(acct: Accounting): string {
  const finished = Object.values(acct.outcomes).reduce((x, y) => x + y, 0);
  if (finished === 0) return `${acct.usageRows} usage rows stored (no request log at this level)`;
  const parts = Object.entries(acct.outcomes).map(([k, n]) => `${n} ${k}`).join(", ");
  return `${finished} requests logged as finished (${parts}); ${acct.usageRows} usage rows stored`;
}

function verdict(name: string, value: number, op: "≤" | "≥", limit: number, unit: string) {
  const pass = op === "≤" ? value <= limit : value >= limit;
  const off = op === "≤" ? value - limit : limit - value;
  const by = pass
    ? ""
    : ` — MISS by ${fmt(off)}${unit ? " " + unit : ""} (${
      fmt(op === "≤" ? value / limit : limit / value)
    }×)`;
  return {
    name,
    pass,
    line: `  ${pass ? "PASS" : "MISS"}  ${name}: ${fmt(value)}${unit ? " " + unit : ""} ` +
      `(target ${op} ${limit}${unit ? " " + unit : ""})${by}`,
  };
}

function fmt(n: number): string {
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k, typeof v === "number" ? round(v, 1) : v]),
  ) as T;
}
