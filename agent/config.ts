/**
 * The agent's directory: `agent.key` (Ed25519, 0600), `config.json` (hub URL, pinned hub key and
 * certificate fingerprints, agent id) and `channels.json` (0600; vendor keys never leave the agent).
 */
import { join } from "node:path";
import { type Capabilities, type ChannelCapability, FEATURES } from "../protocol/capabilities.ts";
import { parsePublicKey } from "../protocol/identity.ts";
import { vendorNamed } from "../protocol/vendors/registry.ts";
import { normalizeFingerprint } from "./tunnel/dial.ts";

export const AGENT_VERSION = "0.2.0";

export interface AgentConfig {
  /** Hub base URL (`http(s)://` or `ws(s)://`); the tunnel path is appended. */
  hubUrl: string;
  /** Hub identity public key, pinned at init. */
  hubPublicKey: string;
  /** SHA-256 fingerprints of the hub certificate (current + backup), for `wss://`. */
  hubFingerprints: string[];
  /** Assigned by the hub at enrolment. */
  agentId?: string;
}

export interface Channel extends ChannelCapability {
  /** Real vendor credentials; the first is used, the rest are fallbacks. */
  keys: string[];
  /**
   * The owner's endpoint name, for vendors whose API host depends on the account (e.g. the
   * resource of a per-resource host); the vendor module turns it into the origin. Agent-only.
   */
  endpoint?: string;
}

/** What `--endpoint` may be: a lower-case DNS label (it becomes part of a host name). */
export const CHANNEL_ENDPOINT = /^[a-z0-9-]{2,64}$/;

export const paths = (dir: string) => ({
  key: join(dir, "agent.key"),
  config: join(dir, "config.json"),
  channels: join(dir, "channels.json"),
});

export function validateConfig(value: unknown, source: string): AgentConfig {
  const v = value as Partial<AgentConfig>;
  if (typeof v !== "object" || v === null) throw new TypeError(`${source}: not a JSON object`);
  if (typeof v.hubUrl !== "string") throw new TypeError(`${source}: hubUrl is missing`);
  const url = tunnelUrl(v.hubUrl); // throws on a bad URL
  if (typeof v.hubPublicKey !== "string") throw new TypeError(`${source}: hubPublicKey is missing`);
  parsePublicKey(v.hubPublicKey);
  const fingerprints = (v.hubFingerprints ?? []).map(normalizeFingerprint);
  if (fingerprints.length && !url.startsWith("wss://")) {
    throw new TypeError(`${source}: certificate fingerprints need a https:// or wss:// hub URL`);
  }
  if (v.agentId !== undefined && !/^[A-Za-z0-9._:-]{1,80}$/.test(v.agentId)) {
    throw new TypeError(`${source}: agentId is malformed`);
  }
  return {
    hubUrl: v.hubUrl,
    hubPublicKey: v.hubPublicKey,
    hubFingerprints: fingerprints,
    agentId: v.agentId,
  };
}

/** `https://hub:8443` → `wss://hub:8443/tunnel/connect` (and http → ws). */
export function tunnelUrl(hubUrl: string): string {
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw new TypeError(`Invalid hub URL "${hubUrl}"`);
  }
  const scheme = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" }[url.protocol];
  if (!scheme) throw new TypeError(`Invalid hub URL "${hubUrl}": expected http(s):// or ws(s)://`);
  url.protocol = scheme;
  url.pathname = url.pathname.replace(/\/+$/, "") + "/tunnel/connect";
  url.search = "";
  url.hash = "";
  return url.toString();
}

export async function readConfig(dir: string): Promise<AgentConfig> {
  const file = paths(dir).config;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${file} not found: run "agent init --hub <url> --hub-key <key>" first`);
    }
    throw e;
  }
  return validateConfig(JSON.parse(text), file);
}

export async function writeJsonAtomic(file: string, value: unknown, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2) + "\n", { mode });
  await Deno.rename(tmp, file); // atomic: readers see the old or the new file, never half of one
}

export async function readChannels(dir: string): Promise<Channel[]> {
  try {
    const parsed = JSON.parse(await Deno.readTextFile(paths(dir).channels));
    if (!Array.isArray(parsed?.channels)) throw new TypeError("channels.json: no channels array");
    return parsed.channels as Channel[];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** What the hub may know about the channels: everything but the keys. */
export function capabilitiesOf(channels: Channel[]): Capabilities {
  return {
    agentVersion: AGENT_VERSION,
    features: [...FEATURES],
    channels: channels.map((c) => {
      const { id, vendor, models, rpm, tpm, deployments } = c;
      const locations = vendorNamed(vendor)?.channelLocations?.(c);
      return {
        id,
        vendor,
        models,
        rpm,
        tpm,
        ...(deployments ? { deployments } : {}),
        ...(locations?.length ? { locations } : {}),
      };
    }),
  };
}
