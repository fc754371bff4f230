/**
 * Part 2 of `deno task bench tunnel`: hub resident memory per idle connected agent.
 *
 * The hub runs as its own process (`deno run -A hub/main.ts serve`, SQLite store in a temp dir),
 * so its VmRSS holds the hub alone. The load generator (tunnel_load.ts, another process) enrols N
 * agents through the admin API and connects them with the real agent-side handshake and frame
 * loop. Heartbeats are shortened (ping every 1 s, dead after 5 s) so that pings and pongs really
 * run during the measurement.
 *
 * Measured points (VmRSS of the hub process):
 *   before   — hub started, N agents enrolled (N admin requests served: SQLite and HTTP warm) and
 *              W warm-up agents connected (the tunnel's code paths compiled, first-use costs paid);
 *   after    — right when /healthz reports all N agents online;
 *   settled  — once every connection has received ≥ 3 pings.
 * Per agent = (RSS − before) / (N − W), the marginal cost of one more idle agent. RSS is what the
 * operator pays; V8 may hold garbage not yet collected, so it is an upper bound of live memory.
 *
 * Baseline: the same steps against ws_echo_server.ts (Deno.serve + upgradeWebSocket, nothing else)
 * with N plain native WebSockets from the same load generator, and the same idle time: what any
 * Deno WebSocket server pays per connection, so the hub's own share per agent is the difference.
 *
 * File descriptors: each connection holds one fd in the server and one in the load generator.
 * Deno raises its own soft limit to the hard one at start-up; `nofileFor` checks the limits with
 * `sh -c ulimit` and warns when the hard limit is too low for N (then connects fail, and the hub
 * process currently exits on EMFILE from its accept loop).
 */
import { ADMIN_TOKEN } from "./tunnel_echo.ts";
import { fdLimits, pollUntil, rssKiB, type Scope } from "./proc.ts";

export interface RssOptions {
  agents: number;
  warm: number;
  concurrency: number;
  pingIntervalMs: number;
}

export interface RssFigures {
  agents: number;
  warmAgents: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  rssSettledKiB: number;
  perAgentKiB: number;
  perAgentSettledKiB: number;
  connectMs: number;
  /** Handshakes (or WebSocket opens, for the plain server) per second. */
  handshakesPerSec: number;
  minPingsPerAgent: number;
  settleMs: number;
}

interface Event {
  event: string;
  [k: string]: unknown;
}

/** Soft fd limit for the hub and the load generator, raised when N connections need it. */
export async function nofileFor(agents: number): Promise<number | undefined> {
  const need = agents + 512;
  const { soft, hard } = await fdLimits();
  if (soft >= need) return undefined;
  if (hard >= need) {
    console.error(`bench: ulimit -n is ${soft}; raising it to ${need} for the hub and load`);
    return need;
  }
  console.error(
    `bench: WARNING ulimit -n is ${soft} (hard ${hard}); ${agents} agents need ~${need} fds in ` +
      `the hub and in the load generator (2 per connection on this box). Raise the hard limit ` +
      `(e.g. \`ulimit -Hn ${need}\` as root, or LimitNOFILE) and run again.`,
  );
  return Number.isFinite(hard) ? hard : undefined;
}

/**
 * `server`: "hub" (the real hub, real agent handshakes) or "plain" (ws_echo_server.ts with plain
 * WebSockets: the floor any Deno WebSocket server pays per idle connection).
 */
export async function measureRss(
  scope: Scope,
  server: "hub" | "plain",
  options: RssOptions,
): Promise<RssFigures> {
  const { agents, warm, concurrency, pingIntervalMs } = options;
  const nofile = await nofileFor(agents);
  const target = server === "hub"
    ? await startHubProc(scope, nofile, pingIntervalMs)
    : await startPlainProc(scope, nofile);
  const { proc, url } = target;
  const comm = Deno.readTextFileSync(`/proc/${proc.pid}/comm`).trim();
  if (comm !== "deno") throw new Error(`${proc.name} pid ${proc.pid} is "${comm}", not deno`);

  const load = scope.proc("load", [
    "run",
    "-A",
    "scripts/bench/tunnel_load.ts",
    ...["--mode", server === "hub" ? "tunnel" : "plain", "--url", url],
    ...(target.hubKey ? ["--hub-key", target.hubKey] : []),
    ...["--agents", String(agents), "--warm", String(warm)],
    ...["--concurrency", String(concurrency)],
  ], { stdin: true, nofile, env: { BENCH_ADMIN_TOKEN: ADMIN_TOKEN } });
  const event = (name: string, timeoutMs: number, fromLine = 0) =>
    load.waitLine(
      "stdout",
      (l) => {
        const v = parseJson(l) as Event | undefined;
        return v?.event === name ? v : undefined;
      },
      `"${name}" event`,
      timeoutMs,
      fromLine,
    );
  const status = async () => {
    const from = load.stdout.length;
    await load.send("status");
    return await event("status", 10_000, from);
  };
  // The hub says how many agents it has; the plain server is taken at the clients' word.
  const online = (n: number, timeoutMs: number) =>
    server === "plain" ? Promise.resolve(n) : pollUntil(
      async () => {
        const health = await (await fetch(`${url}/healthz`)).json();
        return health.agentsOnline === n ? n : undefined;
      },
      `${n} agents online`,
      timeoutMs,
      100,
    );

  const enrolled = await event("enrolled", 60_000 + agents * 20);
  if (server === "hub") {
    console.error(`bench: enrolled ${agents} agents in ${Math.round(Number(enrolled.ms))} ms`);
  }
  const warmed = await event("warm", 60_000);
  if (Number(warmed.failed) > 0) throw new Error(`warm-up failed: ${JSON.stringify(warmed)}`);
  await online(warm, 15_000);
  const rssBeforeKiB = rssKiB(proc.pid);

  const connectedEvent = event("connected", 60_000 + agents * 20);
  await load.send("go");
  const connected = await connectedEvent;
  if (Number(connected.failed) > 0) {
    throw new Error(
      `${connected.failed} of ${agents - warm} connects failed: ${
        JSON.stringify(connected.errors)
      }\n${proc.dump()}`,
    );
  }
  await online(agents, 30_000);
  const rssAfterKiB = rssKiB(proc.pid);

  // Settle on a condition: every connection has answered at least 3 of the hub's pings. The
  // plain server sends none; it gets the same 3 intervals of idle time.
  const settleStart = performance.now();
  const settled = server === "plain"
    ? await new Promise((r) => setTimeout(r, 3 * pingIntervalMs + 100)).then(status)
    : await pollUntil(
      async () => {
        const v = await status();
        return Number(v.minPings) >= 3 ? v : undefined;
      },
      "3 pings on every connection",
      20 * pingIntervalMs + agents * 5,
      250,
    );
  const settleMs = performance.now() - settleStart;
  await online(agents, 5_000); // nobody was declared dead meanwhile
  if (Number(settled.open) !== agents) throw new Error(`only ${settled.open} connections open`);
  const rssSettledKiB = rssKiB(proc.pid);

  const added = agents - warm;
  const connectMs = Number(connected.ms);
  return {
    agents,
    warmAgents: warm,
    rssBeforeKiB,
    rssAfterKiB,
    rssSettledKiB,
    perAgentKiB: (rssAfterKiB - rssBeforeKiB) / added,
    perAgentSettledKiB: (rssSettledKiB - rssBeforeKiB) / added,
    connectMs,
    handshakesPerSec: added / (connectMs / 1000),
    minPingsPerAgent: Number(settled.minPings),
    settleMs,
  };
}

async function startHubProc(scope: Scope, nofile: number | undefined, pingIntervalMs: number) {
  const dir = await scope.tempDir("rss");
  const proc = scope.proc("hub", ["run", "-A", "hub/main.ts", "serve"], {
    nofile,
    env: {
      HUB_LISTEN: "127.0.0.1:0",
      HUB_DB: `sqlite:${dir}/hub.db`,
      HUB_ADMIN_TOKEN: ADMIN_TOKEN,
      HUB_IDENTITY_KEY: `${dir}/hub.key`,
      HUB_PING_INTERVAL_MS: String(pingIntervalMs),
      HUB_PEER_DEAD_AFTER_MS: String(5 * pingIntervalMs),
      // "hub listening" is an info line; the per-agent info lines are drained and dropped.
      LOG_LEVEL: "info",
    },
  });
  return await proc.waitLine(
    "stderr",
    (l) => {
      const v = parseJson(l);
      return v?.msg === "hub listening"
        ? { proc, url: String(v.url), hubKey: String(v.hubKey) as string | undefined }
        : undefined;
    },
    "hub listening",
    30_000,
  );
}

async function startPlainProc(scope: Scope, nofile: number | undefined) {
  const proc = scope.proc("ws-echo", [
    "run",
    "--allow-net=127.0.0.1",
    "scripts/bench/ws_echo_server.ts",
  ], { nofile });
  const port = await proc.waitLine(
    "stdout",
    (l) => /^\d+$/.test(l) ? l : undefined,
    "port",
    30_000,
  );
  // A few plain HTTP requests, as the hub served admin requests before its baseline.
  for (let i = 0; i < 3; i++) await (await fetch(`http://127.0.0.1:${port}/`)).body?.cancel();
  return { proc, url: `http://127.0.0.1:${port}`, hubKey: undefined };
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
