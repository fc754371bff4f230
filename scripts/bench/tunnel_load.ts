/**
 * Load generator for part 2 of `deno task bench tunnel` (server memory per idle connection), run
 * as its own process so the measured server process holds only the server, and its fd limit can
 * be raised apart from the bench's.
 *
 * `--mode tunnel`: each simulated agent is the real agent code: `dialHub` + `TunnelConnection`
 * (the same handshake, pinned hub key check, frame loop and pong replies as `agent run`); only the
 * process-per-agent and the supervisor's reconnect loop are left out. Agents are enrolled first
 * (POST /admin/agents, generateIdentity() each).
 * `--mode plain`: native WebSockets to ws_echo_server.ts, the baseline: what an idle connection
 * costs a bare Deno WebSocket server.
 *
 * Protocol with the parent: JSON events on stdout, commands on stdin (one per line).
 *   (tunnel) enrols N agents                                     → {"event":"enrolled"}
 *   opens the first W connections (warm-up of the server's paths) → {"event":"warm"}
 *   "go"     opens the other N−W, `concurrency` at a time          → {"event":"connected"}
 *   "status" → {"event":"status","open":…,"minPings":…} (hub pings counted per connection)
 *   "stop" or stdin EOF → closes every connection and exits.
 *
 *   BENCH_ADMIN_TOKEN=… deno run -A scripts/bench/tunnel_load.ts --mode tunnel --url URL \
 *     --hub-key KEY --agents N --warm W --concurrency C
 */
import { parseArgs } from "node:util";
import { systemClock } from "../../protocol/clock.ts";
import { CloseCode } from "../../protocol/close_codes.ts";
import { generateIdentity, type Signer, verifierFor } from "../../protocol/identity.ts";
import type { Logger } from "../../runtime/log.ts";
import { TunnelConnection } from "../../agent/tunnel/connection.ts";
import { dialHub } from "../../agent/tunnel/dial.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: Object.fromEntries(
    ["mode", "url", "hub-key", "agents", "warm", "concurrency"].map((k) => [k, { type: "string" }]),
  ) as Record<string, { type: "string" }>,
});
const mode = flags.mode, url = String(flags.url);
const agents = Number(flags.agents), warm = Number(flags.warm ?? 0);
const concurrency = Number(flags.concurrency ?? 50);
if ((mode !== "tunnel" && mode !== "plain") || !flags.url || !(agents > 0) || !(warm >= 0)) {
  console.error("usage: tunnel_load.ts --mode tunnel|plain --url URL [--hub-key K] --agents N …");
  Deno.exit(2);
}
const token = Deno.env.get("BENCH_ADMIN_TOKEN") ?? "";
const wsUrl = url.replace(/^http/, "ws") + (mode === "tunnel" ? "/tunnel/connect" : "/");
const hubKey = mode === "tunnel" ? await verifierFor(String(flags["hub-key"])) : undefined;
const capabilities = {
  agentVersion: "bench",
  channels: [{ id: "openai-1", vendor: "openai", models: ["gpt-4o-mini"], rpm: 60, tpm: 100000 }],
};

const emit = (event: string, fields: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ event, ...fields }));

/** Problems seen by any connection (the first few kept for the report). */
const problems: string[] = [];
let problemCount = 0;
const note = (msg: string) => {
  if (++problemCount <= 5) problems.push(msg);
};

/** A logger that stays silent, resolves `opened` on "tunnel open" and keeps warnings. */
function quietLogger(onOpen: () => void): Logger {
  const log: Logger = {
    debug: () => {},
    info: (msg) => msg === "tunnel open" && onOpen(),
    warn: (msg, f) => note(`${msg} ${JSON.stringify(f ?? {})}`),
    error: (msg, f) => note(`${msg} ${JSON.stringify(f ?? {})}`),
    with: () => log,
  };
  return log;
}

interface Agent {
  id: string;
  identity: Signer;
}
interface Live {
  open(): boolean;
  close(): void;
  done: Promise<unknown>;
  pings: number;
}
const live: Live[] = [];

async function enrol(i: number): Promise<Agent> {
  const { signer } = await generateIdentity();
  const res = await fetch(`${url}/admin/agents`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `bench-${i}`, publicKey: signer.publicKey, tier: 2 }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`enrol ${i}: ${res.status} ${JSON.stringify(body)}`);
  return { id: body.id, identity: signer };
}

async function connect(agent: Agent): Promise<void> {
  const socket = await dialHub(wsUrl, { connectTimeoutMs: 15_000 });
  const entry = { pings: 0 } as Live;
  // Listens next to the connection's own handler; only counts the hub's heartbeats.
  socket.addEventListener("message", (ev) => {
    if (typeof ev.data === "string" && ev.data.startsWith('{"type":"ping"')) entry.pings++;
  });
  const opened = Promise.withResolvers<void>();
  const conn = new TunnelConnection({
    socket,
    agentId: agent.id,
    identity: agent.identity,
    hubKey: hubKey!,
    capabilities,
    clock: systemClock,
    log: quietLogger(opened.resolve),
  });
  conn.done.then((end) =>
    opened.reject(new Error(`agent ${agent.id} closed: ${end.code} ${end.reason}`))
  );
  await opened.promise;
  entry.open = () => conn.open;
  entry.close = () => conn.close(CloseCode.shutdown, "bench done");
  entry.done = conn.done;
  live.push(entry);
}

async function connectPlain(): Promise<void> {
  const ws = new WebSocket(wsUrl);
  const done = new Promise((resolve) => ws.addEventListener("close", resolve));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot open ${wsUrl}`));
  });
  live.push({ open: () => ws.readyState === 1, close: () => ws.close(), done, pings: 0 });
}

/** Runs `task` over `items` with at most `limit` in flight; returns the failures. */
async function pool<T, R>(items: T[], limit: number, task: (t: T, i: number) => Promise<R>) {
  const out: R[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = await task(items[i]!, i);
      } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return { out, failures };
}

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
let pending = "";
async function nextCommand(): Promise<string> {
  for (;;) {
    const nl = pending.indexOf("\n");
    if (nl >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      return line;
    }
    const { value, done } = await lines.read();
    if (done) return "stop";
    pending += value;
  }
}

let t0 = performance.now();
const enrolled = mode === "tunnel"
  ? await pool(Array.from({ length: agents }, (_, i) => i), 50, enrol)
  : { out: Array.from({ length: agents }), failures: [] };
if (enrolled.failures.length) throw new Error(`enrolment failed: ${enrolled.failures[0]}`);
emit("enrolled", { agents, ms: performance.now() - t0 });
const open = mode === "tunnel" ? (a: unknown) => connect(a as Agent) : connectPlain;

const warmRun = await pool(enrolled.out.slice(0, warm), concurrency, open);
emit("warm", { open: live.length, failed: warmRun.failures.length, errors: warmRun.failures });

for (let cmd = await nextCommand(); cmd !== "stop"; cmd = await nextCommand()) {
  if (cmd === "go") {
    t0 = performance.now();
    const run = await pool(enrolled.out.slice(warm), concurrency, open);
    const ms = performance.now() - t0;
    emit("connected", {
      agents: agents - warm,
      ms,
      failed: run.failures.length,
      errors: run.failures.slice(0, 5),
    });
  } else if (cmd === "status") {
    let openCount = 0, minPings = Infinity;
    for (const l of live) {
      if (l.open()) openCount++;
      minPings = Math.min(minPings, l.pings);
    }
    emit("status", {
      open: openCount,
      minPings: live.length ? minPings : 0,
      problemCount,
      problems,
    });
  }
}
for (const l of live) l.close();
await Promise.race([
  Promise.all(live.map((l) => l.done)),
  new Promise((r) => setTimeout(r, 2000)),
]);
Deno.exit(0);
