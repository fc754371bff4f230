/**
 * The measured phases of `deno task bench gateway`, each run against one target (the fake vendor
 * directly, or the hub in front of the agent in front of that same fake) with the same request
 * bytes and the same client (gateway_client.ts):
 *
 *   sequential — N small non-stream chat completions, one at a time, on one keep-alive connection;
 *                latency = request written → last response byte read.
 *   concurrent — `conns` keep-alive connections, each sending the next request as soon as the
 *                previous answer is complete, for a fixed time; req/s = answers / elapsed; CPU
 *                time of every process read around it (/proc/<pid>/stat utime+stime) → µs/req.
 *   streams    — `conns` connections each streaming one answer after another for a fixed time
 *                (`[[delay:20]]` between chunks); TTFB = request written → first body byte, gaps
 *                = time between successive reads that carried body bytes (the last one, before
 *                `data: [DONE]`, kept apart). Starts are staggered over one chunk interval so the
 *                streams do not tick in lock-step.
 * Every answer is checked (status 200, complete body) and a failure aborts the bench.
 */
import { Http1Conn, type Reply } from "./gateway_client.ts";

export interface Procs {
  /** Named processes whose CPU time is read around the concurrent phase. */
  [name: string]: number;
}

export async function openConns(port: number, n: number): Promise<Http1Conn[]> {
  return await Promise.all(Array.from({ length: n }, () => Http1Conn.open(port)));
}

export function closeAll(conns: Http1Conn[]): void {
  for (const c of conns) c.close();
}

function check(reply: Reply, stream: boolean): void {
  const ok = reply.status === 200 &&
    (stream ? reply.tail.endsWith("data: [DONE]\n\n") : reply.tail.trimEnd().endsWith("}"));
  if (!ok) {
    throw new Error(
      `bad answer: status ${reply.status}, ${reply.bodyBytes} bytes, ends ${
        JSON.stringify(reply.tail)
      }`,
    );
  }
}

/** Latencies (ms) of `n` sequential round trips on `conn`. */
export async function sequential(
  conn: Http1Conn,
  request: Uint8Array,
  n: number,
): Promise<Float64Array> {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const reply = await conn.roundTrip(request);
    out[i] = performance.now() - reply.sentAt;
    check(reply, false);
  }
  return out;
}

/** CPU time (ms) of `pid`, all threads including exited ones: user and system (kernel). */
export function cpuMs(pid: number): { user: number; sys: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // after ")": state(0) … utime(11) stime(12); clock ticks are 100 Hz on Linux
  return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10 };
}

/** Starts a CPU reading of `procs`; the returned function gives µs per request since then. */
export function cpuMeter(procs: Procs): (requests: number) => CpuPerReq {
  const at0 = Object.entries(procs).map(([k, pid]) => [k, pid, cpuMs(pid)] as const);
  return (requests) => {
    const total: Record<string, number> = {}, sys: Record<string, number> = {};
    for (const [k, pid, c0] of at0) {
      const c = cpuMs(pid);
      total[k] = (c.user + c.sys - c0.user - c0.sys) * 1000 / requests;
      sys[k] = (c.sys - c0.sys) * 1000 / requests;
    }
    return { total, sys };
  };
}

export interface CpuPerReq {
  /** µs of CPU per request, per named process… */
  total: Record<string, number>;
  /** …and the part of it spent in the kernel. */
  sys: Record<string, number>;
}

export interface ConcurrentResult {
  requests: number;
  ms: number;
  latencies: Float64Array;
  cpu: CpuPerReq;
}

export async function concurrent(
  conns: Http1Conn[],
  request: Uint8Array,
  durationMs: number,
  procs: Procs,
): Promise<ConcurrentResult> {
  const latencies: number[] = [];
  const cpu = cpuMeter(procs);
  const t0 = performance.now();
  const until = t0 + durationMs;
  await Promise.all(conns.map(async (conn) => {
    while (performance.now() < until) {
      const reply = await conn.roundTrip(request);
      latencies.push(performance.now() - reply.sentAt);
      check(reply, false);
    }
  }));
  const ms = performance.now() - t0;
  const n = latencies.length;
  return { requests: n, ms, latencies: Float64Array.from(latencies), cpu: cpu(n) };
}

export interface StreamResult {
  streams: number;
  ttfb: Float64Array;
  /** Gaps between body reads, except each stream's last one… */
  gaps: Float64Array;
  /** …which is the wait for `data: [DONE]` (see gateway.ts on the usage chunk behind it). */
  endGaps: Float64Array;
  /** Body reads per stream (mean): fewer than the vendor's events means chunks were merged. */
  readsPerStream: number;
}

export async function streams(
  conns: Http1Conn[],
  request: Uint8Array,
  durationMs: number,
  chunkDelayMs: number,
): Promise<StreamResult> {
  const ttfb: number[] = [], gaps: number[] = [], endGaps: number[] = [];
  let reads = 0;
  const until = performance.now() + durationMs;
  await Promise.all(conns.map(async (conn, i) => {
    await new Promise((r) => setTimeout(r, (i * chunkDelayMs) / conns.length));
    while (performance.now() < until) {
      const reply = await conn.roundTrip(request, true);
      check(reply, true);
      const t = reply.bodyReads;
      ttfb.push(t[0]! - reply.sentAt);
      for (let j = 1; j < t.length - 1; j++) gaps.push(t[j]! - t[j - 1]!);
      if (t.length > 1) endGaps.push(t.at(-1)! - t.at(-2)!);
      reads += t.length;
    }
  }));
  return {
    streams: ttfb.length,
    ttfb: Float64Array.from(ttfb),
    gaps: Float64Array.from(gaps),
    endGaps: Float64Array.from(endGaps),
    readsPerStream: reads / ttfb.length,
  };
}

/** VmRSS and VmHWM (peak) of `pid`, in KiB. */
export function memKiB(pid: number): { rssKiB: number; hwmKiB: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1]);
  return { rssKiB: field("VmRSS"), hwmKiB: field("VmHWM") };
}
