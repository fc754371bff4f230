/**
 * Runs the echo rounds of `deno task bench tunnel` and reports them. Each round measures both
 * targets under each CPU placement (cpu.ts). Within a placement the targets take turns in short
 * blocks (250 sequential round trips, then a fifth of the pipelined messages), and the target
 * going first alternates from round to round, so drift of the machine (frequency, other load)
 * hits both alike. Figures are the medians of the rounds; ratios are tunnel / baseline.
 */
import { cpuNs, CPUS, groupPids, place, type Placement, unpin } from "./cpu.ts";
import { type Latency, latencyOf, median, medianOf, round, table } from "./stats.ts";
import type { EchoTarget } from "./tunnel_echo.ts";

export interface EchoRound extends Latency {
  /** Steady state, `inFlight` outstanding (the drain at the end of each chunk left out). */
  msgsPerSec: number;
  /** Median time, per chunk, from the steady state's end until the last reply. */
  drainMs: number;
  /** CPU time per pipelined echo spent by the bench process (hub / WS client)… */
  benchCpuUs: number;
  /** …and by the peer process(es) (agent / echo server); all threads, from schedstat. */
  peerCpuUs: number;
}

export interface EchoCounts {
  warmup: number;
  sequential: number;
  pipelined: number;
  inFlight: number;
}

const PLACEMENT_TEXT: Record<Placement | "free", string> = {
  apart: "bench process on CPU 0, peer process on CPU 1",
  shared: "bench and peer processes on CPU 0 (software cost only, no cross-CPU wake-ups)",
  free: "unpinned (taskset unavailable or 1 CPU): latency may jump between scheduler modes",
};

/** Runs `rounds` rounds; returns the text tables and the figures for the JSON line. */
export async function echoRounds(
  a: EchoTarget,
  b: EchoTarget,
  payload: string,
  counts: EchoCounts,
  rounds: number,
  pinning: boolean,
) {
  const placements: (Placement | "free")[] = pinning ? ["apart", "shared"] : ["free"];
  const results = new Map(
    placements.map((p) => [p, { tunnel: [] as EchoRound[], baseline: [] as EchoRound[] }]),
  );
  try {
    for (let r = 1; r <= rounds; r++) {
      for (const p of placements) {
        if (p !== "free") await place(p, [a.group, b.group]);
        const measured = await measureRound(r % 2 ? [a, b] : [b, a], payload, counts);
        const into = results.get(p)!;
        into.tunnel.push(measured.get(a)!);
        into.baseline.push(measured.get(b)!);
        console.error(
          `bench: round ${r} ${p}: tunnel p50 ${round(measured.get(a)!.p50Us)} µs, ` +
            `baseline p50 ${round(measured.get(b)!.p50Us)} µs`,
        );
      }
    }
  } finally {
    if (pinning) await unpin();
  }
  const text: string[] = [
    `Echo round trip, ${payload.length}-byte payload: ${counts.sequential} sequential after ` +
    `${counts.warmup} warm-up; ${counts.pipelined} pipelined in ${PIPELINED_CHUNKS} chunks with ` +
    `${counts.inFlight} in flight (msgs/s: steady state; drain: wait for the last ` +
    `${counts.inFlight} replies of a chunk; CPU µs per pipelined echo in the bench process ` +
    `(hub / WS client) and the peer (agent / echo server)); ${rounds} rounds; ${CPUS} CPUs.`,
    `Tunnel = hub → agent process → hub (AgentSession.echo); baseline = plain WebSocket to ` +
    `ws_echo_server.ts. Medians of the rounds.`,
  ];
  const json: Record<string, unknown> = { payloadBytes: payload.length, rounds, ...counts };
  for (const [p, { tunnel, baseline }] of results) {
    const mt = medianOf(tunnel), mb = medianOf(baseline);
    const ratio = {
      p50: mt.p50Us / mb.p50Us,
      p99: mt.p99Us / mb.p99Us,
      mean: mt.meanUs / mb.meanUs,
      throughput: mt.msgsPerSec / mb.msgsPerSec,
      benchCpu: mt.benchCpuUs / mb.benchCpuUs,
      peerCpu: mt.peerCpuUs / mb.peerCpuUs,
    };
    const rows = tunnel.flatMap((t, i) => [
      [String(i + 1), "tunnel", ...cells(t)],
      [String(i + 1), "baseline", ...cells(baseline[i]!)],
    ]);
    rows.push(["median", "tunnel", ...cells(mt)], ["median", "baseline", ...cells(mb)]);
    rows.push([
      "ratio",
      "tunnel/baseline",
      ratio.p50,
      ratio.p99,
      ratio.mean,
      ratio.throughput,
      "",
      ratio.benchCpu,
      ratio.peerCpu,
    ]);
    text.push(
      "",
      `placement ${p}: ${PLACEMENT_TEXT[p]}`,
      table([[
        "round",
        "side",
        "p50 µs",
        "p99 µs",
        "mean µs",
        "msgs/s",
        "drain ms",
        "CPU µs/msg bench",
        "peer",
      ], ...rows]),
    );
    json[p] = {
      tunnel: roundAll(mt),
      baseline: roundAll(mb),
      ratio: roundAll(ratio, 2),
      roundsTunnel: tunnel.map((x) => roundAll(x)),
      roundsBaseline: baseline.map((x) => roundAll(x)),
    };
  }
  return { text: text.join("\n"), json };
}

function cells(f: EchoRound): number[] {
  return [f.p50Us, f.p99Us, f.meanUs, f.msgsPerSec, f.drainMs, f.benchCpuUs, f.peerCpuUs];
}

export function roundAll<T extends object>(o: T, decimals = 1): T {
  return Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k, typeof v === "number" ? round(v, decimals) : v]),
  ) as T;
}

/** Round trips per block of the sequential phase, and chunks of the pipelined phase. */
const SEQUENTIAL_BLOCK = 250;
const PIPELINED_CHUNKS = 5;

/** One round over both targets, taking turns in blocks, `order[0]` first. */
export async function measureRound(
  order: EchoTarget[],
  payload: string,
  counts: EchoCounts,
): Promise<Map<EchoTarget, EchoRound>> {
  for (const t of order) {
    for (let i = 0; i < counts.warmup; i++) check(t, payload, await t.echo(payload));
    await pipelined(t, payload, counts.inFlight * 20, counts.inFlight);
  }
  const samples = new Map(order.map((t) => [t, new Float64Array(counts.sequential)]));
  for (let from = 0; from < counts.sequential; from += SEQUENTIAL_BLOCK) {
    const to = Math.min(counts.sequential, from + SEQUENTIAL_BLOCK);
    for (const t of order) {
      const into = samples.get(t)!;
      for (let i = from; i < to; i++) {
        const t0 = performance.now();
        const reply = await t.echo(payload);
        into[i] = performance.now() - t0;
        check(t, payload, reply);
      }
    }
  }
  const steady = new Map(order.map((t) => [t, {
    messages: 0,
    ms: 0,
    drainsMs: [] as number[],
    benchNs: 0,
    peerNs: 0,
    peers: groupPids(t.group),
  }]));
  const chunk = Math.ceil(counts.pipelined / PIPELINED_CHUNKS);
  for (let done = 0; done < counts.pipelined; done += chunk) {
    const n = Math.min(chunk, counts.pipelined - done);
    for (const t of order) {
      const into = steady.get(t)!;
      const bench0 = cpuNs([Deno.pid]), peer0 = cpuNs(into.peers);
      const run = await pipelined(t, payload, n, counts.inFlight);
      into.benchNs += cpuNs([Deno.pid]) - bench0;
      into.peerNs += cpuNs(into.peers) - peer0;
      into.messages += n - counts.inFlight;
      into.ms += run.steadyMs;
      into.drainsMs.push(run.drainMs);
    }
  }
  return new Map(order.map((t) => {
    const { messages, ms, drainsMs, benchNs, peerNs } = steady.get(t)!;
    return [t, {
      ...latencyOf(samples.get(t)!),
      msgsPerSec: messages / (ms / 1000),
      drainMs: median(drainsMs),
      benchCpuUs: benchNs / 1000 / counts.pipelined,
      peerCpuUs: peerNs / 1000 / counts.pipelined,
    }];
  }));
}

/**
 * `total` echoes with `inFlight` outstanding. Steady state lasts until all but the last
 * `inFlight` replies are in (64 in flight throughout); the drain is the wait for those last ones.
 * The drain is reported on its own: a peer with Nagle's algorithm on (Deno's WebSocket client sets
 * TCP_NODELAY to 0) holds its last small replies until the other side's delayed ACK, ~40 ms.
 */
async function pipelined(t: EchoTarget, payload: string, total: number, inFlight: number) {
  let started = 0, completed = 0, steadyEnd = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (started < total) {
      started++;
      check(t, payload, await t.echo(payload));
      if (++completed === total - inFlight) steadyEnd = performance.now();
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, worker));
  const end = performance.now();
  return { steadyMs: (steadyEnd || end) - t0, drainMs: end - (steadyEnd || end) };
}

function check(target: EchoTarget, sent: string, got: string): void {
  if (got !== sent) throw new Error(`${target.name}: echo returned a different payload`);
}
