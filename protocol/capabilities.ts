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
}

export const EMPTY_CAPABILITIES: Capabilities = { agentVersion: "unknown", channels: [] };
