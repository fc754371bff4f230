/**
 * Hubs and agents as real processes, started with the command lines of the README's
 * `deno task hub` / `deno task agent …`, each in its own temp directory and on an ephemeral port.
 */
import { Proc, taskArgs, waitFor } from "./process.ts";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

export interface HubProc {
  proc: Proc;
  url: string;
  hubKey: string;
  port: number;
  /** Trusts the hub's self-signed certificate (TLS hubs only). */
  client?: Deno.HttpClient;
}

export interface HubOptions {
  dir: string;
  port?: number;
  env?: Record<string, string>;
  /** PEM of the hub's TLS certificate, for the admin calls of a TLS hub. */
  caPem?: string;
}

export async function startHub(options: HubOptions): Promise<HubProc> {
  const proc = new Proc("hub", taskArgs("hub"), {
    env: {
      HUB_LISTEN: `127.0.0.1:${options.port ?? 0}`,
      HUB_DB: `sqlite:${options.dir}/hub.db`,
      HUB_ADMIN_TOKEN: ADMIN_TOKEN,
      HUB_IDENTITY_KEY: `${options.dir}/hub.key`,
      LOG_LEVEL: "debug",
      ...options.env,
    },
  });
  const line = await proc.waitForLine((l) => l.msg === "hub listening", "hub listening").catch(
    async (e) => {
      await proc.stop();
      throw new Error(`${e.message}\n${proc.dump()}`);
    },
  );
  const url = String(line.url);
  const client = options.caPem ? Deno.createHttpClient({ caCerts: [options.caPem] }) : undefined;
  return { proc, url, hubKey: String(line.hubKey), port: Number(new URL(url).port), client };
}

/** Calls the admin API; returns status and parsed JSON. */
export async function admin(
  hub: { url: string; client?: Deno.HttpClient },
  method: string,
  path: string,
  body?: unknown,
  init: RequestInit = {},
  // deno-lint-ignore no-explicit-any -- a test helper over arbitrary JSON answers
): Promise<{ status: number; json: any }> {
  const res = await fetch(`${hub.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    client: hub.client,
    ...init,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/** Runs an agent CLI command to completion; returns stdout. */
export async function agentCli(args: string[], env: Record<string, string> = {}): Promise<string> {
  const proc = new Proc("agent-cli", [...taskArgs("agent"), ...args], { env });
  const code = await proc.exited(30_000);
  await proc.stop();
  if (code !== 0) throw new Error(`agent ${args.join(" ")} exited ${code}\n${proc.dump()}`);
  return proc.stdout.join("\n").trim();
}

export interface AgentSetup {
  dir: string;
  id: string;
  publicKey: string;
}

/** `agent init` + enrol at the hub + `agent set-id`. */
export async function enrollAgent(
  hub: HubProc,
  dir: string,
  options: {
    hubKey?: string;
    hubUrl?: string;
    fingerprints?: string[];
    name?: string;
    tier?: number;
  } = {},
): Promise<AgentSetup> {
  const pins = (options.fingerprints ?? []).flatMap((f) => ["--hub-fingerprint", f]);
  const publicKey = await agentCli([
    "init",
    "--hub",
    options.hubUrl ?? hub.url,
    "--hub-key",
    options.hubKey ?? hub.hubKey,
    ...pins,
    "--dir",
    dir,
  ]);
  const res = await admin(hub, "POST", "/agents", {
    name: options.name ?? "agent",
    publicKey,
    tier: options.tier ?? 2,
  });
  if (res.status !== 201) {
    throw new Error(`enrol failed: ${res.status} ${JSON.stringify(res.json)}`);
  }
  await agentCli(["set-id", res.json.id, "--dir", dir]);
  return { dir, id: res.json.id, publicKey };
}

/** `deno task agent run` (the launcher re-executes itself with the network locked). */
export function runAgent(dir: string, env: Record<string, string> = {}): Proc {
  return new Proc("agent", [...taskArgs("agent"), "run", "--dir", dir], {
    env: {
      LOG_LEVEL: "debug",
      AGENT_RECONNECT_BASE_MS: "100",
      AGENT_RECONNECT_CAP_MS: "1000",
      ...env,
    },
  });
}

/** Waits until the hub lists the agent with `online` equal to `online`. */
export function waitOnline(
  hub: { url: string; client?: Deno.HttpClient },
  id: string,
  online = true,
  timeoutMs = 15_000,
) {
  return waitFor(
    async () => {
      const res = await admin(hub, "GET", `/agents/${id}`);
      return res.json?.online === online ? res.json : undefined;
    },
    `agent ${id} online=${online}`,
    timeoutMs,
  );
}

/** PID of the locked agent process (the one holding the tunnel socket). */
export async function lockedAgentPid(agent: Proc): Promise<number> {
  const line = await agent.waitForLine((l) => l.msg === "agent starting", "agent starting");
  return Number(line.pid);
}
