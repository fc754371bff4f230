/**
 * Part 1 of `deno task bench tunnel`: echo round trips through the tunnel (A) against a plain
 * WebSocket echo (B).
 *
 * A: the hub runs in the bench process (`startHub`); one real agent process, set up with the agent
 *    CLI exactly as tests/support/cluster.ts does (init → POST /admin/agents → set-id → run, which
 *    re-executes itself with locked permissions). We call `AgentSession.echo()` directly: hub →
 *    agent → hub as ECHO / ECHO_REPLY control frames, no HTTP in the path.
 * B: scripts/bench/ws_echo_server.ts in its own Deno process, and a native `WebSocket` client in
 *    the bench process sending the same payload text.
 *
 * Why it is fair: same topology (the bench process ⇄ exactly one other Deno process, one WebSocket
 * over loopback), same Deno WebSocket stack on both ends, same payload, same timing code
 * (`performance.now()` around an awaited promise), both kept running through all rounds and
 * measured in alternating blocks, under the same CPU placement (see cpu.ts). Per round trip each side sends one masked (client→server) and one
 * unmasked frame. What differs is exactly what the tunnel adds: JSON framing and schema checks on
 * both ends, the agent's in-order frame queue, the echo bookkeeping (map entry + timeout timer).
 */
import { parseHubConfig } from "../../hub/config.ts";
import { startHub } from "../../hub/server.ts";
import { createLogger } from "../../runtime/log.ts";
import { pollUntil, runToEnd, type Scope, taskArgs } from "./proc.ts";

export const ADMIN_TOKEN = "bench-admin-token-0123456789";

/** Something that echoes a text payload and resolves with what came back. */
export interface EchoTarget {
  name: string;
  /** Process group of the peer process(es), for CPU placement. */
  group: number;
  echo(payload: string): Promise<string>;
}

/** A: in-process hub + one real agent process. Everything is released by `scope`. */
export async function startTunnelTarget(scope: Scope): Promise<EchoTarget> {
  const dir = await scope.tempDir("echo");
  const hub = await startHub(
    parseHubConfig({
      HUB_LISTEN: "127.0.0.1:0",
      HUB_DB: `sqlite:${dir}/hub.db`,
      HUB_ADMIN_TOKEN: ADMIN_TOKEN,
      HUB_IDENTITY_KEY: `${dir}/hub.key`,
      LOG_LEVEL: "warn",
    }),
    { log: createLogger({ service: "hub", level: "warn" }) },
  );
  scope.defer(() => hub.close());

  const agentDir = `${dir}/agent`;
  const agent = taskArgs("agent");
  const publicKey = await runToEnd(scope, "agent init", [
    ...agent,
    "init",
    "--hub",
    hub.url,
    "--hub-key",
    hub.identity.publicKey,
    "--dir",
    agentDir,
  ]);
  const res = await fetch(`${hub.url}/admin/agents`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "bench-echo", publicKey, tier: 2 }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`enrol failed: ${res.status} ${JSON.stringify(body)}`);
  const agentId: string = body.id;
  await runToEnd(scope, "agent set-id", [...agent, "set-id", agentId, "--dir", agentDir]);

  // Deferred after hub.close(), so it runs first: the agent goes before the hub.
  const proc = scope.proc("agent", [...agent, "run", "--dir", agentDir], {
    env: { LOG_LEVEL: "warn" },
  });
  await pollUntil(
    () => hub.tunnel.registry.get(agentId),
    `agent online\n${proc.dump()}`,
    30_000,
    20,
  );
  return {
    name: "tunnel",
    group: proc.pid,
    echo: async (payload) => (await hub.tunnel.registry.get(agentId)!.echo(payload)).payload,
  };
}

/** B: plain echo server process + native WebSocket client. */
export async function startBaselineTarget(scope: Scope): Promise<EchoTarget> {
  const server = scope.proc("ws-echo", [
    "run",
    "--allow-net=127.0.0.1",
    "scripts/bench/ws_echo_server.ts",
  ]);
  const port = await server.waitLine(
    "stdout",
    (l) => /^\d+$/.test(l) ? Number(l) : undefined,
    "port",
    30_000,
  );
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("cannot connect to the echo server"));
  });
  scope.defer(() => ws.close());
  // WebSocket preserves order, so replies settle waiters first-in first-out.
  const waiting: { resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
  ws.onmessage = (e) => waiting.shift()?.resolve(e.data as string);
  ws.onclose = () => {
    for (const w of waiting.splice(0)) w.reject(new Error("echo server connection closed"));
  };
  return {
    name: "baseline",
    group: server.pid,
    echo: (payload) =>
      new Promise<string>((resolve, reject) => {
        waiting.push({ resolve, reject });
        ws.send(payload);
      }),
  };
}
