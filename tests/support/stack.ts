/**
 * A whole request path as real processes: fake vendor ← agent (locked, AGENT_DEV_UPSTREAMS) ←
 * tunnel ← hub, plus a user with credit and a virtual key, ready for official SDK clients.
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

export const VENDOR_KEY = "sk-real-vendor-key-1";

export interface Stack {
  fake: FakeOpenAI;
  hub: HubProc;
  agent: Proc;
  agentId: string;
  agentDir: string;
  userId: string;
  /** The client's virtual key. */
  key: string;
  /** `http://127.0.0.1:PORT/v1` — the base URL an OpenAI SDK user sets. */
  baseURL: string;
  stop(): Promise<void>;
}

export interface StackOptions {
  hubEnv?: Record<string, string>;
  agentEnv?: Record<string, string>;
  /** Channel keys, in order (default: the one key the fake accepts). */
  channelKeys?: string[];
  fakeKeys?: string[];
  quotaExhaustedKeys?: string[];
  models?: string;
  credit?: string;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const tmp = await tempDir("stack");
  const fake = await startFakeOpenAI({
    keys: options.fakeKeys ?? [VENDOR_KEY],
    quotaExhaustedKeys: options.quotaExhaustedKeys,
  });
  let hub: HubProc | undefined;
  let agent: Proc | undefined;
  const stop = async () => {
    await agent?.stop();
    await hub?.proc.stop();
    await fake.close();
    await tmp.remove();
  };
  try {
    hub = await startHub({ dir: tmp.path, env: options.hubEnv });
    const dir = `${tmp.path}/agent`;
    const setup = await enrollAgent(hub, dir);
    const keys = (options.channelKeys ?? [VENDOR_KEY]).flatMap((k) => ["--key", k]);
    const models = options.models ? ["--models", options.models] : [];
    await agentCli(["channel", "add", "--vendor", "openai", ...keys, ...models, "--dir", dir]);
    agent = runAgent(dir, {
      AGENT_DEV_UPSTREAMS: JSON.stringify({ "api.openai.com": fake.url }),
      ...options.agentEnv,
    });
    await waitOnline(hub, setup.id);
    const user = await admin(hub, "POST", "/users", { name: "client-co" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, { amount: options.credit ?? "100" });
    const key = await admin(hub, "POST", "/keys", { userId: user.json.id });
    if (key.status !== 201) throw new Error(`key creation failed: ${JSON.stringify(key.json)}`);
    return {
      fake,
      hub,
      agent,
      agentId: setup.id,
      agentDir: dir,
      userId: user.json.id,
      key: key.json.key,
      baseURL: `${hub.url}/v1`,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Raw POST helper returning status, headers and the body bytes. */
export async function post(
  url: string,
  key: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return {
    status: res.status,
    headers: res.headers,
    bytes: new Uint8Array(await res.arrayBuffer()),
  };
}
