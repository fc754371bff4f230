/**
 * The processes of `deno task bench gateway`, set up as tests/support/stack.ts does but owned by a
 * bench `Scope` (proc.ts): the fake vendor (gateway_fake_server.ts), the hub (`deno task hub`'s
 * command line, SQLite in a temp dir) and one agent (`agent init` → POST /admin/agents →
 * `set-id` → `channel add` → `agent run`, which re-executes itself network-locked), then a user
 * with credit and a virtual key.
 *
 * Hub and agent log at `--log-level` (default `info`, the deployed default: one JSON line per
 * request each) into files in the temp dir, as a service manager would capture them — not into a
 * pipe the bench process would have to drain, which would put their logging cost on the load
 * generator (or, with the pipe full, block them on a slow reader).
 *
 * `cpuProfDir`: hub and agent run with `--cpu-prof` (the agent's locked child is then started
 * directly with the exact flags the launcher would give it) and get SIGTERM at clean-up, so
 * that the profiles are written.
 */
import { DatabaseSync } from "node:sqlite";
import { allowedNetHosts, lockedRunFlags } from "../../agent/permissions.ts";
import { tunnelUrl } from "../../agent/config.ts";
import { groupPids } from "./cpu.ts";
import { DENO, pollUntil, PROJECT_DIR, runToEnd, type Scope, taskArgs } from "./proc.ts";

export const VENDOR_KEY = "sk-bench-vendor-key-1";
const ADMIN_TOKEN = "bench-admin-token-0123456789";

export interface Daemon {
  name: string;
  /** The process (group leader) that was started. */
  pid: number;
  logPath: string;
  exited: () => boolean;
}

export interface GatewayStack {
  fakeUrl: string;
  fakePid: number;
  hubUrl: string;
  hub: Daemon;
  /** The process that holds the tunnel (the agent launcher's locked child). */
  agentPid: number;
  /** The virtual key a client uses at the hub. */
  key: string;
  /** The hub's SQLite file. */
  dbPath: string;
}

/** Starts `deno args…` in its own process group, stdout+stderr appended to `logPath`. */
export function spawnLogged(
  scope: Scope,
  name: string,
  args: string[],
  env: Record<string, string>,
  logPath: string,
  gracefulStop = false,
): Daemon {
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", 'f=$1; shift; exec "$@" >>"$f" 2>&1', "sh", logPath, DENO, ...args],
    cwd: PROJECT_DIR,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  scope.defer(async () => {
    if (gracefulStop && !exited) {
      for (const pid of groupPids(child.pid)) kill(pid, "SIGTERM");
      const timer = setTimeout(() => kill(-child.pid, "SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
    }
    kill(-child.pid, "SIGKILL"); // the group: a launcher's child too
    await child.status;
  });
  return { name, pid: child.pid, logPath, exited: () => exited };
}

/** A temp dir under `parent` (e.g. /dev/shm), removed with the scope. */
async function tempDirIn(scope: Scope, parent: string): Promise<string> {
  const path = await Deno.makeTempDir({ dir: parent, prefix: "aqueduct-bench-db-" });
  scope.defer(() => Deno.remove(path, { recursive: true }).catch(() => {}));
  return path;
}

function kill(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch { /* gone */ }
}

/** The first JSON log line of `d` whose `msg` is `msg`. */
export function waitLog(d: Daemon, msg: string, timeoutMs = 30_000) {
  return pollUntil(
    () => {
      let text = "";
      try {
        text = Deno.readTextFileSync(d.logPath);
      } catch { /* not yet created */ }
      for (const line of text.split("\n")) {
        if (!line.includes(`"msg":"${msg}"`)) continue;
        return JSON.parse(line) as Record<string, unknown>;
      }
      if (d.exited()) throw new Error(`${d.name} exited before "${msg}":\n${text.slice(-3000)}`);
    },
    `${d.name}: "${msg}"`,
    timeoutMs,
  );
}

export async function startGatewayStack(
  scope: Scope,
  options: { logLevel: string; cpuProfDir?: string; dbDir?: string },
): Promise<GatewayStack> {
  const dir = await scope.tempDir("gateway");
  const fake = scope.proc("fake", [
    "run",
    "--allow-net=127.0.0.1",
    "scripts/bench/gateway_fake_server.ts",
    VENDOR_KEY,
  ]);
  const fakeUrl = await fake.waitLine(
    "stdout",
    (l) => l.startsWith("http") ? l : undefined,
    "url",
    30_000,
  );

  const prof = options.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  const [, ...hubRest] = taskArgs("hub"); // "run", flags…, hub/main.ts, serve
  const dbPath = `${options.dbDir ? await tempDirIn(scope, options.dbDir) : dir}/hub.db`;
  const hub = spawnLogged(
    scope,
    "hub",
    ["run", ...prof, ...hubRest],
    {
      HUB_LISTEN: "127.0.0.1:0",
      HUB_DB: `sqlite:${dbPath}`,
      HUB_ADMIN_TOKEN: ADMIN_TOKEN,
      HUB_IDENTITY_KEY: `${dir}/hub.key`,
      LOG_LEVEL: options.logLevel,
    },
    `${dir}/hub.log`,
    prof.length > 0,
  );
  const listening = await waitLog(hub, "hub listening");
  const hubUrl = String(listening.url);
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${hubUrl}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (res.status >= 300) {
      throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    }
    return json;
  };

  const agentDir = `${dir}/agent`;
  const agent = taskArgs("agent");
  const cli = (name: string, args: string[]) =>
    runToEnd(scope, `agent ${name}`, [...agent, name, ...args, "--dir", agentDir]);
  const publicKey = await cli("init", ["--hub", hubUrl, "--hub-key", String(listening.hubKey)]);
  const enrolled = await admin("POST", "/agents", { name: "bench", publicKey, tier: 2 });
  await runToEnd(scope, "agent set-id", [...agent, "set-id", enrolled.id, "--dir", agentDir]);
  // Declared (expert-mode) limits far above what this box can send: the limiters run their
  // bookkeeping on every request, as in production, but never refuse (an undeclared channel starts
  // from a conservative default rate and would measure the limiter instead of the gateway).
  await cli("channel", [
    "add",
    ...["--vendor", "openai", "--key", VENDOR_KEY],
    ...["--rpm", "100000000", "--tpm", "100000000000"],
  ]);
  const upstreams = JSON.stringify({ "api.openai.com": fakeUrl });
  const agentEnv = { AGENT_DEV_UPSTREAMS: upstreams, LOG_LEVEL: options.logLevel };
  // With profiling the locked child is started directly (a launcher would drop --cpu-prof).
  const agentArgs = prof.length
    ? [
      "run",
      ...lockedRunFlags(agentDir, allowedNetHosts(tunnelUrl(hubUrl), upstreams)),
      ...prof,
      "agent/main.ts",
      "run",
      "--dir",
      agentDir,
    ]
    : [...agent, "run", "--dir", agentDir];
  const agentProc = spawnLogged(
    scope,
    "agent",
    agentArgs,
    agentEnv,
    `${dir}/agent.log`,
    prof.length > 0,
  );
  await waitLog(agentProc, "tunnel open");
  await pollUntil(
    async () => (await admin("GET", `/agents/${enrolled.id}`)).online || undefined,
    "agent online",
    15_000,
  );
  const locked = groupPids(agentProc.pid).filter((p) => p !== agentProc.pid);
  const agentPid = prof.length ? agentProc.pid : locked[0];
  if (agentPid === undefined) throw new Error("cannot find the agent's locked child process");

  const user = await admin("POST", "/users", { name: "bench-client" });
  await admin("POST", `/users/${user.id}/credit`, { amount: "1000000" });
  const key = await admin("POST", "/keys", { userId: user.id });
  return { fakeUrl, fakePid: fake.pid, hubUrl, hub, agentPid, key: key.key, dbPath };
}

/**
 * What the hub says it did: `request finished` lines by outcome (from its log) and the usage rows
 * it stored (read from its SQLite file, read-only; WAL lets another process read).
 */
export function hubAccounting(stack: GatewayStack) {
  const outcomes: Record<string, number> = {};
  for (const line of Deno.readTextFileSync(stack.hub.logPath).split("\n")) {
    if (!line.includes('"msg":"request finished"')) continue;
    const outcome = String(JSON.parse(line).outcome);
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  const db = new DatabaseSync(stack.dbPath, { readOnly: true });
  try {
    const row = db.prepare("SELECT COUNT(*) AS n FROM usage_records").get() as { n: number };
    return { outcomes, usageRows: Number(row.n) };
  } finally {
    db.close();
  }
}
