/**
 * CPU placement for the echo benchmark. On this 2-vCPU VM a round trip between two processes
 * costs ~15 µs when both run on the same vCPU and ~80 µs when each wakes the other across vCPUs
 * (an inter-processor interrupt to a halted vCPU), and the kernel's choice sticks to a process
 * pair for seconds: unpinned, the latency of one side or the other jumps between the two modes
 * from round to round, and the comparison measures the scheduler. So both sides are measured
 * under the same explicit placements, set with `taskset` on every thread of every process:
 *   apart  — the bench process on CPU 0, the peer process(es) on CPU 1 (each owns a core, as two
 *            machines would; wake-ups cross vCPUs);
 *   shared — everything on CPU 0 (no cross-vCPU wake-up; the round trip is pure software cost,
 *            and pipelined throughput is the inverse of the CPU time both ends spend per echo).
 */

export type Placement = "apart" | "shared";

export const CPUS = navigator.hardwareConcurrency;

/** True when `taskset` works here and there are two CPUs to place on. */
export async function canPin(): Promise<boolean> {
  if (CPUS < 2) return false;
  try {
    return (await taskset(["-p", String(Deno.pid)])).success;
  } catch {
    return false;
  }
}

/** Pins every thread of the bench process and of each process group in `peerGroups`. */
export async function place(placement: Placement, peerGroups: number[]): Promise<void> {
  await pinPids([Deno.pid], "0");
  const peers = peerGroups.flatMap(groupPids);
  await pinPids(peers, placement === "apart" ? "1" : "0");
}

/** Lets the bench process run anywhere again (children spawned later inherit this). */
export async function unpin(): Promise<void> {
  await pinPids([Deno.pid], `0-${CPUS - 1}`);
}

async function pinPids(pids: number[], cpus: string): Promise<void> {
  for (const pid of pids) {
    const out = await taskset(["-a", "-p", "-c", cpus, String(pid)]);
    // A process may exit between listing and pinning (a CLI step); only live ones matter.
    if (!out.success && alive(pid)) {
      throw new Error(`taskset -c ${cpus} ${pid}: ${new TextDecoder().decode(out.stderr)}`);
    }
  }
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Pids whose process group is `pgid` (a bench child and what it spawned). */
export function groupPids(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // Fields after the parenthesised command name: state ppid pgrp …
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid) pids.push(Number(entry.name));
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

/** CPU time, in ns, all threads of `pids` have run (/proc/<pid>/task/<tid>/schedstat). */
export function cpuNs(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
        const stat = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/schedstat`);
        total += Number(stat.split(" ")[0]);
      }
    } catch { /* exited meanwhile */ }
  }
  return total;
}

function taskset(args: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command("taskset", { args, stdout: "null", stderr: "piped" }).output();
}
