/**
 * A hub, a locked agent and a fake OpenAI with the tunnel running through a TunnelTap (which can
 * lose chosen frames and cut the connection), for the ledger tests: start/stop/crash either
 * side, read both ledgers, wait for entries.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ChainHead, LedgerEntry } from "../../protocol/chain.ts";
import { AgentLedger } from "../../agent/ledger/mod.ts";
import { startFakeOpenAI } from "../fakes/openai.ts";
import {
  admin,
  agentCli,
  enrollAgent,
  type HubProc,
  runAgent,
  startHub,
  waitOnline,
} from "./cluster.ts";
import { type Proc, tempDir, waitFor } from "./process.ts";
import { VENDOR_KEY } from "./stack.ts";
import { TunnelTap } from "./tunnel_tap.ts";

/** Priced in the default table. */
export const MODEL = "gpt-5.5";

export interface Tapped {
  hub: HubProc;
  tap: TunnelTap;
  agent: Proc;
  agentId: string;
  agentDir: string;
  hubDb: string;
  userId: string;
  key: string;
  startAgent(): Promise<void>;
  stopAgent(): Promise<void>;
  /** Resolves once the (running) agent's tunnel to the current hub is up. */
  waitAgentOnline(): Promise<void>;
  /** kill -9 the agent (its whole process group); the hub sees the tunnel drop. */
  crashAgent(): Promise<void>;
  /** kill -9 the hub, then start it again on the same port, database and identity. */
  crashAndRestartHub(): Promise<void>;
  stop(): Promise<void>;
}

export async function tappedStack(
  options: {
    agentEnv?: Record<string, string>;
    hubEnv?: Record<string, string>;
    /** The client's starting balance (default 10.00). */
    credit?: string;
  } = {},
): Promise<Tapped> {
  const tmp = await tempDir("ledger-sync");
  const fake = await startFakeOpenAI({ keys: [VENDOR_KEY] });
  let hub: HubProc | undefined, tap: TunnelTap | undefined, agent: Proc | undefined;
  const stop = async () => {
    await agent?.stop();
    await tap?.close();
    await hub?.proc.stop();
    await fake.close();
    await tmp.remove();
  };
  try {
    const hubEnv = { HUB_UNPRICED_MODELS: "refuse", ...options.hubEnv };
    hub = await startHub({ dir: tmp.path, env: hubEnv });
    tap = TunnelTap.start({ hostname: "127.0.0.1", port: hub.port });
    const agentDir = join(tmp.path, "agent");
    const setup = await enrollAgent(hub, agentDir, { hubUrl: tap.url });
    await agentCli([
      "channel",
      "add",
      "--vendor",
      "openai",
      "--key",
      VENDOR_KEY,
      "--rpm",
      "100000",
      "--tpm",
      "1000000000",
      "--dir",
      agentDir,
    ]);
    const env = {
      AGENT_DEV_UPSTREAMS: JSON.stringify({ "api.openai.com": fake.url }),
      AGENT_CLAIM_GRACE_MS: "1",
      ...options.agentEnv,
    };
    const user = await admin(hub, "POST", "/users", { name: "client-co" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, {
      amount: options.credit ?? "10.00",
    });
    const key = await admin(hub, "POST", "/keys", { userId: user.json.id });
    const s: Tapped = {
      hub,
      tap,
      agent: undefined as unknown as Proc,
      agentId: setup.id,
      agentDir,
      hubDb: join(tmp.path, "hub.db"),
      userId: user.json.id,
      key: key.json.key,
      async startAgent() {
        agent = s.agent = runAgent(agentDir, env);
        await waitOnline(hub!, setup.id).catch((e) => {
          throw new Error(`${e.message}\n${s.agent.dump()}`);
        });
      },
      async stopAgent() {
        s.agent.kill("SIGTERM");
        await s.agent.exited();
        await s.agent.stop();
        await waitOnline(hub!, setup.id, false);
      },
      async waitAgentOnline() {
        await waitOnline(hub!, setup.id).catch((e) => {
          throw new Error(`${e.message}\n${s.agent.dump()}`);
        });
      },
      async crashAgent() {
        await s.agent.stop(); // SIGKILL to the process group
        await waitOnline(hub!, setup.id, false);
      },
      async crashAndRestartHub() {
        await hub!.proc.stop(); // SIGKILL
        hub = s.hub = await startHub({ dir: tmp.path, env: hubEnv, port: hub!.port });
      },
      stop,
    };
    await s.startAgent();
    return s;
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One chat completion through the hub; its request id. */
export async function chat(s: Tapped, maxTokens = 40): Promise<string> {
  const res = await fetch(`${s.hub.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: MODEL,
      messages: [{ role: "user", content: "count me" }],
      max_tokens: maxTokens,
    }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return res.headers.get("x-request-id")!;
}

export async function hubLedger(
  s: Tapped,
): Promise<{ head: ChainHead | null; entries: LedgerEntry[] }> {
  return (await admin(s.hub, "GET", `/ledger?agentId=${s.agentId}&limit=1000`)).json;
}

export function waitHubEntries(s: Tapped, n: number): Promise<LedgerEntry[]> {
  return waitFor(async () => {
    const l = await hubLedger(s);
    return l.entries.length >= n ? l.entries : undefined;
  }, `hub ledger has ${n} entries`);
}

/** Lines in the agent's fsync'd ledger log (readable while the agent runs). */
export async function agentLogLines(s: Tapped): Promise<number> {
  const text = await Deno.readTextFile(join(s.agentDir, "ledger", "ledger.log")).catch(() => "");
  return text.split("\n").filter(Boolean).length;
}

export function waitAgentEntries(s: Tapped, n: number): Promise<true> {
  return waitFor(
    async () => (await agentLogLines(s)) >= n || undefined,
    `agent ledger has ${n} entries\n${s.agent.dump()}`,
  );
}

/** The agent's ledger, read with the agent stopped. */
export async function agentEntries(
  s: Tapped,
): Promise<{ entries: LedgerEntry[]; head: ChainHead }> {
  const ledger = await AgentLedger.open(join(s.agentDir, "ledger"));
  try {
    return { entries: ledger.entriesFrom(1), head: ledger.head() };
  } finally {
    await ledger.close();
  }
}

export async function divergences(s: Tapped) {
  return (await admin(s.hub, "GET", `/ledger/divergences?agentId=${s.agentId}`)).json
    .divergences as { seq: number; kind: string; detail: string }[];
}
