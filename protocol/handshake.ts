/**
 * The handshake transcript both peers sign.
 *
 * ```
 * agent → hub   HELLO      agentId, keyId, agentNonce, timestamp, capabilities
 * hub → agent   CHALLENGE  hubNonce, hubKeyId, timestamp, sig_hub(transcript("hub"))
 * agent → hub   AUTH       hubNonce, sig_agent(transcript("agent"))
 * hub → agent   WELCOME    session id, generation, heartbeat timing
 * ```
 * The agent checks the hub's signature against the hub key it pinned at `init`; the hub checks
 * the agent's against its registry. The role label separates the two signatures, so one can never
 * stand in for the other; both nonces make every transcript unique.
 */
import { fromBase64Url, toBase64Url } from "./encoding.ts";
import { LIMITS } from "./limits.ts";
import { PROTOCOL_VERSION } from "./frames.ts";

export const TRANSCRIPT_LABEL = "aqueduct/tunnel-handshake";

export interface TranscriptFields {
  agentId: string;
  keyId: string;
  hubKeyId: string;
  agentNonce: string;
  hubNonce: string;
  /** The hub's CHALLENGE timestamp. */
  timestampMs: number;
}

/**
 * Canonical bytes to sign. Fields are validated identifiers/base64url (no newlines), so the
 * line-based encoding is unambiguous.
 */
export function transcript(role: "hub" | "agent", f: TranscriptFields): Uint8Array<ArrayBuffer> {
  const lines = [
    TRANSCRIPT_LABEL,
    `role=${role}`,
    `version=${PROTOCOL_VERSION}`,
    `agent_id=${f.agentId}`,
    `key_id=${f.keyId}`,
    `hub_key_id=${f.hubKeyId}`,
    `agent_nonce=${f.agentNonce}`,
    `hub_nonce=${f.hubNonce}`,
    `timestamp_ms=${f.timestampMs}`,
  ];
  for (const line of lines) {
    if (/[\r\n]/.test(line)) {
      throw new TypeError("Cannot build transcript: field contains a newline");
    }
  }
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

/** A fresh random nonce, base64url. */
export function newNonce(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(LIMITS.nonceBytes)));
}

/** True when a peer's timestamp lies within the allowed skew of ours. */
export function withinSkew(peerMs: number, nowMs: number): boolean {
  return Math.abs(peerMs - nowMs) <= LIMITS.handshakeClockSkewMs;
}

/** Decodes a base64url signature; malformed text yields an empty array (which never verifies). */
export function signatureBytes(text: string): Uint8Array<ArrayBuffer> {
  try {
    return fromBase64Url(text);
  } catch {
    return new Uint8Array(0);
  }
}
