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

/** A fake upstream of another vendor: anything with a URL that can be closed. */
export interface VendorFake {
  url: string;
  close(): Promise<void>;
}

/** An extra vendor for the stack: its fake, the host it stands in for, and one agent channel. */
export interface StackVendor {
  /** Channel vendor name, e.g. `anthropic`. */
  vendor: string;
  /** Official API host the fake replaces in AGENT_DEV_UPSTREAMS, e.g. `api.anthropic.com`. */
  host: string;
  start: () => Promise<VendorFake>;
  /** Channel keys, in order. */
  keys: string[];
  /** The channel's `--models` list (default: every model). */
  models?: string;
  /** More official hosts this vendor's fake stands in for (e.g. an OAuth token host). */
  extraHosts?: string[];
  /** More `channel add` arguments (e.g. `--endpoint`, `--deployment`). */
  args?: string[];
}

export interface Stack {
  fake: FakeOpenAI;
  /** The extra vendors' fakes, by vendor name (see `StackOptions.vendors`). */
  vendorFakes: Record<string, VendorFake>;
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
  /** The channel's declared limits ("0" = smart mode). */
  channelRpm?: string;
  channelTpm?: string;
  /** More vendors, each with its own fake and agent channel (after the OpenAI one). */
  vendors?: StackVendor[];
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const tmp = await tempDir("stack");
  const fake = await startFakeOpenAI({
    keys: options.fakeKeys ?? [VENDOR_KEY],
    quotaExhaustedKeys: options.quotaExhaustedKeys,
  });
  let hub: HubProc | undefined;
  let agent: Proc | undefined;
  const vendorFakes: Record<string, VendorFake> = {};
  const stop = async () => {
    await agent?.stop();
    await hub?.proc.stop();
    await fake.close();
    for (const extra of Object.values(vendorFakes)) await extra.close();
    await tmp.remove();
  };
  try {
    const upstreams: Record<string, string> = { "api.openai.com": fake.url };
    for (const extra of options.vendors ?? []) {
      vendorFakes[extra.vendor] = await extra.start();
      for (const host of [extra.host, ...extra.extraHosts ?? []]) {
        upstreams[host] = vendorFakes[extra.vendor]!.url;
      }
    }
    hub = await startHub({ dir: tmp.path, env: options.hubEnv });
    const dir = `${tmp.path}/agent`;
    const setup = await enrollAgent(hub, dir);
    const keys = (options.channelKeys ?? [VENDOR_KEY]).flatMap((k) => ["--key", k]);
    const models = options.models ? ["--models", options.models] : [];
    // A large account, declared (expert mode): the tests exercise the path, not the limiter.
    const limits = [
      "--rpm",
      options.channelRpm ?? "100000",
      "--tpm",
      options.channelTpm ?? "1000000000",
    ];
    await agentCli([
      "channel",
      "add",
      "--vendor",
      "openai",
      ...keys,
      ...models,
      ...limits,
      "--dir",
      dir,
    ]);
    for (const extra of options.vendors ?? []) {
      await agentCli([
        "channel",
        "add",
        "--vendor",
        extra.vendor,
        ...extra.keys.flatMap((k) => ["--key", k]),
        ...(extra.models ? ["--models", extra.models] : []),
        ...extra.args ?? [],
        ...limits,
        "--dir",
        dir,
      ]);
    }
    agent = runAgent(dir, {
      AGENT_DEV_UPSTREAMS: JSON.stringify(upstreams),
      ...options.agentEnv,
    });
    await waitOnline(hub, setup.id);
    const user = await admin(hub, "POST", "/users", { name: "client-co" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, { amount: options.credit ?? "100" });
    const key = await admin(hub, "POST", "/keys", { userId: user.json.id });
    if (key.status !== 201) throw new Error(`key creation failed: ${JSON.stringify(key.json)}`);
    return {
      fake,
      vendorFakes,
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
