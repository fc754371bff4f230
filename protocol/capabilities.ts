/**
 * What an agent offers: its channels (one vendor account each) and their declared limits.
 * Sent in HELLO and again in CAPABILITIES whenever the owner changes a channel.
 * Never carries a credential.
 */
export interface ChannelCapability {
  /** Stable id chosen by the agent, unique within the agent. */
  id: string;
  /** Vendor surface name, e.g. "openai". */
  vendor: string;
  /** Models this channel serves; empty means "whatever the vendor serves". */
  models: string[];
  /** Declared requests per minute; 0 means undeclared. */
  rpm: number;
  /** Declared tokens per minute; 0 means undeclared. */
  tpm: number;
  /**
   * Azure: deployment name → the model it runs (`--deployment my-gpt=gpt-4o`). The hub routes a
   * deployment-scoped URL to channels that have the deployment and prices it by the model.
   */
  deployments?: Record<string, string>;
  /** Vertex: the locations this channel serves (its `--endpoint`); the hub routes by them. */
  locations?: string[];
}

export interface Capabilities {
  /** Agent software version, for the admin view and later update checks. */
  agentVersion: string;
  channels: ChannelCapability[];
  /**
   * Frame families the agent understands beyond the first release's (absent: none). The hub
   * sends a frame of a family only to agents that list it, so a hub can be upgraded before its
   * agents: an older agent closes on a control type it does not know.
   */
  features?: string[];
}

export const EMPTY_CAPABILITIES: Capabilities = { agentVersion: "unknown", channels: [] };

/**
 * Frame families this build understands beyond the first release's. The agent lists them in its
 * capabilities, the hub in WELCOME; each side sends a frame of a family only to a peer that
 * listed it, so either side can run a newer build than the other.
 */
export const FEATURES: readonly string[] = ["prices", "ledger_sync"];

/** The feature a peer must list before it is sent a control frame of this type. */
const FEATURE_OF_TYPE: Readonly<Record<string, string>> = {
  prices: "prices",
  prices_get: "prices",
  prices_missing: "prices",
  reconcile: "ledger_sync",
  reconcile_request: "ledger_sync",
  reconcile_reply: "ledger_sync",
  ledger_hashes_request: "ledger_sync",
  ledger_hashes: "ledger_sync",
  claim: "ledger_sync",
  claim_result: "ledger_sync",
  checkpoint: "ledger_sync",
  checkpoint_reply: "ledger_sync",
};

/** Whether a peer that listed `features` (absent: a first-release peer) reads frames of `type`. */
export function peerUnderstands(features: readonly string[] | undefined, type: string): boolean {
  const feature = FEATURE_OF_TYPE[type];
  return feature === undefined || features?.includes(feature) === true;
}
