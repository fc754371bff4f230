// Internals shared by both engines, so that both map rows and errors the same way.
import type { Capabilities } from "../../protocol/capabilities.ts";
import type { AgentRecord, AgentTier, NewAgent } from "./mod.ts";

/** Column list for every agent SELECT, in one place so both engines read the same shape. */
export const AGENT_COLUMNS =
  "id, name, public_key, key_id, tier, disabled, created_at_ms, last_seen_at_ms, capabilities";

/**
 * An `agents` row as both drivers return it: integers as JS numbers (node:sqlite without
 * readBigInts, mysql2 without supportBigNumbers; epoch ms stay far below 2^53).
 */
export interface AgentRow {
  id: string;
  name: string;
  public_key: string;
  key_id: string;
  tier: number;
  disabled: number;
  created_at_ms: number;
  last_seen_at_ms: number | null;
  capabilities: string | null;
}

/** `bytes` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The record a successful `createAgent` stores and returns, with a new id:
 * `agt_` + 20 lowercase hex chars (80 random bits: collisions are not a practical concern).
 */
export function newAgentRecord(agent: NewAgent, nowMs: number): AgentRecord {
  return {
    id: "agt_" + randomHex(10),
    name: agent.name,
    publicKey: agent.publicKey,
    keyId: agent.keyId,
    tier: agent.tier,
    disabled: false,
    createdAtMs: nowMs,
    lastSeenAtMs: null,
    capabilities: null,
  };
}

/** Converts a stored row into the public record type. */
export function rowToAgent(row: AgentRow): AgentRecord {
  return {
    id: row.id,
    name: row.name,
    publicKey: row.public_key,
    keyId: row.key_id,
    tier: row.tier as AgentTier,
    disabled: row.disabled === 1,
    createdAtMs: row.created_at_ms,
    lastSeenAtMs: row.last_seen_at_ms,
    capabilities: row.capabilities === null ? null : JSON.parse(row.capabilities) as Capabilities,
  };
}

/**
 * The record field behind a unique column (SQLite names the column) or unique index (MySQL
 * names the index); `undefined` when the name is not one we know.
 */
export function conflictField(columnOrIndex: string): string | undefined {
  return UNIQUE_FIELDS[columnOrIndex];
}

const UNIQUE_FIELDS: Readonly<Record<string, string>> = {
  id: "id",
  PRIMARY: "id",
  public_key: "publicKey",
  agents_public_key: "publicKey",
  secret_hash: "secretHash",
  virtual_keys_secret_hash: "secretHash",
  aws_access_key_id: "awsAccessKeyId",
  virtual_keys_aws_access_key_id: "awsAccessKeyId",
};
