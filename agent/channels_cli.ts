/** `agent channel add|list|remove`: edits channels.json (0600) atomically; a running agent picks it up. */
import { parseArgs } from "node:util";
import { sha256, toHex } from "../protocol/encoding.ts";
import { vendorNamed } from "../protocol/vendors/registry.ts";
import { type Channel, CHANNEL_ENDPOINT, paths, readChannels, writeJsonAtomic } from "./config.ts";
import { upstreamOrigin } from "./upstream/whitelist.ts";

export async function channelCommand(
  args: string[],
  dirOf: (v: { dir?: string }) => string,
): Promise<number> {
  const [action, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      vendor: { type: "string" },
      key: { type: "string", multiple: true },
      models: { type: "string" },
      rpm: { type: "string" },
      tpm: { type: "string" },
      id: { type: "string" },
      endpoint: { type: "string" },
      deployment: { type: "string", multiple: true },
      dir: { type: "string" },
    },
  });
  const dir = dirOf(values);
  const channels = await readChannels(dir);
  if (action === "list") {
    for (const c of channels) {
      // Show key fingerprints only: a terminal scrollback is not a secret store.
      const keys = await Promise.all(
        c.keys.map(async (k) => toHex((await sha256(k)).subarray(0, 4))),
      );
      console.log(JSON.stringify({ ...c, keys: keys.map((k) => `sha256:${k}…`) }));
    }
    return 0;
  }
  if (action === "remove") {
    const left = channels.filter((c) => c.id !== values.id);
    if (left.length === channels.length) throw new Error(`no channel "${values.id}"`);
    await writeJsonAtomic(paths(dir).channels, { channels: left });
    return 0;
  }
  if (action !== "add") throw new TypeError("usage: agent channel <add|list|remove> …");
  if (!values.vendor || !/^[a-z0-9-]{1,40}$/.test(values.vendor)) {
    throw new TypeError("--vendor is required (e.g. openai)");
  }
  if (!values.key?.length) throw new TypeError("--key is required (repeat it for fallback keys)");
  // `--key @file` reads the key from a file (e.g. a Vertex service-account JSON), so it never sits
  // in a shell history or a process list; the content is stored like any key.
  const keys = await Promise.all(values.key.map(async (key) => {
    if (!key.startsWith("@")) return key;
    try {
      return (await Deno.readTextFile(key.slice(1))).trim();
    } catch (e) {
      throw new Error(`--key ${key}: cannot read the file (${e instanceof Error ? e.name : e})`);
    }
  }));
  const id = values.id ??
    `${values.vendor}-${channels.filter((c) => c.vendor === values.vendor).length + 1}`;
  if (!/^[A-Za-z0-9._-]{1,80}$/.test(id)) throw new TypeError(`--id "${id}" is malformed`);
  if (channels.some((c) => c.id === id)) throw new Error(`channel "${id}" exists; remove it first`);
  if (values.endpoint !== undefined && !CHANNEL_ENDPOINT.test(values.endpoint)) {
    throw new TypeError(
      `--endpoint "${values.endpoint}" is malformed (expected ${CHANNEL_ENDPOINT})`,
    );
  }
  const channel: Channel = {
    id,
    vendor: values.vendor,
    models: values.models ? values.models.split(",").map((m) => m.trim()).filter(Boolean) : [],
    rpm: count(values.rpm, "--rpm"),
    tpm: count(values.tpm, "--tpm"),
    keys,
    ...(values.endpoint !== undefined ? { endpoint: values.endpoint } : {}),
    ...(values.deployment?.length ? { deployments: deploymentMap(values.deployment) } : {}),
  };
  // Vendors on per-account hosts need the endpoint: refuse a channel that could never be called.
  const vendor = vendorNamed(channel.vendor);
  if (vendor) upstreamOrigin(vendor, channel);
  // Vendors whose key has a shape (e.g. a service-account JSON) refuse a malformed one now.
  if (vendor?.validateKey) { for (const key of keys) vendor.validateKey(key); }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await writeJsonAtomic(paths(dir).channels, { channels: [...channels, channel] });
  console.log(id);
  return 0;
}

/** Deployment names as Azure allows them (they become a URL path segment). */
const DEPLOYMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * `--deployment my-gpt=gpt-4o` (repeatable): the deployment names this channel's account has and
 * the model each runs; the hub routes deployment URLs by name and prices by the model.
 */
function deploymentMap(specs: string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    const name = spec.slice(0, eq), model = spec.slice(eq + 1);
    if (
      eq <= 0 || !DEPLOYMENT_NAME.test(name) || !/^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/.test(model)
    ) {
      throw new TypeError(
        `--deployment "${spec}" is malformed (expected NAME=MODEL, e.g. my-gpt=gpt-4o)`,
      );
    }
    if (Object.hasOwn(map, name)) throw new TypeError(`--deployment ${name} is given twice`);
    map[name] = model;
  }
  return map;
}

function count(value: string | undefined, name: string): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${name} "${value}" is not a whole number`);
  }
  return n;
}
