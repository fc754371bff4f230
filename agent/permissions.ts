/**
 * The agent's network lock. `agent run` started with unrestricted network access re-executes
 * itself with `--allow-net` narrowed to the hub and the official vendor hosts, so even a bug or a
 * hostile request cannot make the agent call anywhere else (Deno answers `NotCapable`).
 * A release binary has the same flags baked in and runs directly.
 */
import { OFFICIAL_VENDOR_HOSTS } from "../protocol/vendors/hosts.ts";
import { vendorNamed } from "../protocol/vendors/registry.ts";
import type { UpstreamChannel } from "../protocol/vendors/types.ts";
import { upstreamNetHost } from "./upstream/whitelist.ts";

/** Env vars the locked agent may read (npm:ws probes the two WS_ ones at load). */
export const AGENT_ENV_ALLOWED = [
  "AGENT_ID",
  "AGENT_DIR",
  "AGENT_DEV_UPSTREAMS",
  "AGENT_RECONNECT_BASE_MS",
  "AGENT_RECONNECT_CAP_MS",
  "AGENT_CHECKPOINT_EVERY",
  "AGENT_CLAIM_GRACE_MS",
  "LOG_LEVEL",
  "WS_NO_BUFFER_UTIL",
  "WS_NO_UTF_8_VALIDATE",
];

/** `host:port` of the hub, as Deno's permission syntax wants it. */
export function hubNetAddress(tunnelUrl: string): string {
  const url = new URL(tunnelUrl);
  const port = url.port || (url.protocol === "wss:" ? "443" : "80");
  return `${url.hostname}:${port}`;
}

/** A channel as far as its host goes: the vendor and, for per-account hosts, the endpoint. */
export type NetChannel = UpstreamChannel & { vendor: string };

/**
 * The per-channel hosts of vendors whose host depends on the owner's account (e.g.
 * `<resource>.<vendor host>:443`); channels without a usable endpoint add nothing (the agent
 * refuses their requests anyway).
 */
export function channelNetHosts(channels: readonly NetChannel[]): string[] {
  const hosts = new Set<string>();
  for (const channel of channels) {
    const vendor = vendorNamed(channel.vendor);
    if (!vendor?.upstreamOriginFor) continue;
    try {
      hosts.add(upstreamNetHost(vendor, channel));
    } catch {
      // no or a malformed endpoint: nothing to allow
    }
  }
  return [...hosts];
}

/**
 * Hosts the agent may reach: the hub, the official vendor hosts, the per-account hosts of the
 * configured `channels` ({@link channelNetHosts}; a channel added later needs a restart), and —
 * tests only — the local fakes named by AGENT_DEV_UPSTREAMS
 * (`{"api.openai.com": "http://127.0.0.1:PORT"}`).
 */
export function allowedNetHosts(
  tunnelUrl: string,
  devUpstreams?: string,
  channels: readonly NetChannel[] = [],
): string[] {
  const hosts = new Set([
    hubNetAddress(tunnelUrl),
    ...OFFICIAL_VENDOR_HOSTS,
    ...channelNetHosts(channels),
  ]);
  if (devUpstreams) {
    for (const target of Object.values(parseDevUpstreams(devUpstreams))) {
      const url = new URL(target);
      hosts.add(`${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`);
    }
  }
  return [...hosts];
}

/** Parses AGENT_DEV_UPSTREAMS; only loopback targets are accepted. */
export function parseDevUpstreams(text: string): Record<string, string> {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== "object" || parsed === null) {
    throw new TypeError("AGENT_DEV_UPSTREAMS: not a JSON object");
  }
  const out: Record<string, string> = {};
  for (const [host, target] of Object.entries(parsed)) {
    if (typeof target !== "string") {
      throw new TypeError(`AGENT_DEV_UPSTREAMS.${host}: not a string`);
    }
    const url = new URL(target);
    if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
      throw new TypeError(`AGENT_DEV_UPSTREAMS.${host}: only loopback targets are allowed`);
    }
    out[host] = target;
  }
  return out;
}

/** True when this process may reach any host (so it should lock itself down). */
export function hasUnrestrictedNet(): boolean {
  return Deno.permissions.querySync({ name: "net" }).state === "granted";
}

/** Flags for the locked `agent run` process. */
export function lockedRunFlags(dir: string, netHosts: string[]): string[] {
  return [
    "--no-prompt",
    `--allow-net=${netHosts.join(",")}`,
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
    `--allow-env=${AGENT_ENV_ALLOWED.join(",")}`,
  ];
}
