/**
 * Several agents, each with its own fake vendor (which a test can make fail or slow down), behind
 * one or more hubs — for routing, failover and limit tests with real processes.
 */
import { type FakeOpenAI, startFakeOpenAI } from "../fakes/openai.ts";
import {
  admin,
  agentCli,
  enrollAgent,
  type HubProc,
  runAgent,
  startHub,
  waitOnline,
} from "./cluster.ts";
import { type Proc, tempDir } from "./process.ts";

export interface FleetAgent {
  id: string;
  name: string;
  fake: FakeOpenAI;
  proc: Proc;
  hub: HubProc;
}

export interface Fleet {
  hubs: HubProc[];
  agents: FleetAgent[];
  userId: string;
  dir: string;
  /** Creates a virtual key (on the first hub; hubs share the store when `sharedDb` is set). */
  key(body?: { policy?: unknown; limits?: unknown }): Promise<{ id: string; key: string }>;
  stop(): Promise<void>;
}

export interface FleetOptions {
  agents: { name: string; tier?: number; hub?: number; rpm?: number; tpm?: number }[];
  hubs?: number;
  hubEnv?: Record<string, string>;
  /** A store DSN all hubs share (needed for more than one hub). */
  sharedDb?: string;
}

export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const tmp = await tempDir("fleet");
  const hubs: HubProc[] = [];
  const agents: FleetAgent[] = [];
  const fakes: FakeOpenAI[] = [];
  const stop = async () => {
    for (const a of agents) await a.proc.stop();
    for (const h of hubs) await h.proc.stop();
    for (const f of fakes) await f.close();
    await tmp.remove();
  };
  try {
    for (let i = 0; i < (options.hubs ?? 1); i++) {
      hubs.push(
        await startHub({
          dir: tmp.path, // one identity key file: agents pin the same hub identity everywhere
          env: {
            ...(options.sharedDb
              ? { HUB_DB: options.sharedDb }
              : { HUB_DB: `sqlite:${tmp.path}/hub${i}.db` }),
            ...options.hubEnv,
          },
        }),
      );
    }
    for (const spec of options.agents) {
      const hub = hubs[spec.hub ?? 0]!;
      const fake = await startFakeOpenAI({ keys: [`sk-${spec.name}`] });
      fakes.push(fake);
      const setup = await enrollAgent(hub, `${tmp.path}/${spec.name}`, {
        name: spec.name,
        tier: spec.tier ?? 2,
      });
      await agentCli([
        "channel",
        "add",
        "--vendor",
        "openai",
        "--key",
        `sk-${spec.name}`,
        "--rpm",
        String(spec.rpm ?? 100_000),
        "--tpm",
        String(spec.tpm ?? 1_000_000_000),
        "--dir",
        setup.dir,
      ]);
      const proc = runAgent(setup.dir, {
        AGENT_DEV_UPSTREAMS: JSON.stringify({ "api.openai.com": fake.url }),
      });
      agents.push({ id: setup.id, name: spec.name, fake, proc, hub });
    }
    for (const a of agents) await waitOnline(a.hub, a.id);
    const user = await admin(hubs[0]!, "POST", "/users", { name: "fleet-user" });
    return {
      hubs,
      agents,
      userId: user.json.id,
      dir: tmp.path,
      async key(body = {}) {
        const res = await admin(hubs[0]!, "POST", "/keys", { userId: user.json.id, ...body });
        if (res.status !== 201) throw new Error(`key: ${res.status} ${JSON.stringify(res.json)}`);
        return { id: res.json.id, key: res.json.key };
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One small chat completion through `hub`; returns status, body JSON and the vendor that served it. */
export async function chat(hub: { url: string }, key: string, content = "hi") {
  const res = await fetch(`${hub.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content }],
      max_tokens: 50,
    }),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** How many requests each agent's vendor saw. */
export function servedCounts(fleet: Fleet): Record<string, number> {
  return Object.fromEntries(fleet.agents.map((a) => [a.name, a.fake.requests.length]));
}
