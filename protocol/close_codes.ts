/**
 * WebSocket close codes of the tunnel (4000–4999 is the application range). Each rejection has its
 * own code so an operator can tell from one log line why a session ended.
 */
export const CloseCode = {
  /**
   * Deliberate shutdown of either side (the reason says which). Not 1001: the WebSocket API
   * only lets applications send 1000 and 3000–4999.
   */
  shutdown: 1000,
  /** Never sent: what a side reports when the connection dropped without a close frame. */
  connectionLost: 1006,
  /** A frame failed to decode (bad JSON, bad header, unknown type, bad field). */
  malformedFrame: 4000,
  /** HELLO or a body frame named another protocol version. */
  unsupportedVersion: 4001,
  /** A frame above its size limit. */
  frameTooLarge: 4002,
  /** A frame that is valid but not allowed in the current state (e.g. a second HELLO). */
  unexpectedFrame: 4003,
  /** The peer sent more body bytes than its credit allowed, or acknowledged bytes never sent. */
  flowControl: 4004,
  /** HELLO named an agent id / key id the hub has not enrolled (or has disabled). */
  unknownAgent: 4401,
  /** AUTH signature does not verify against the enrolled agent key. */
  badAgentSignature: 4402,
  /** A nonce was seen before, or AUTH answered a challenge other than this connection's. */
  replayedNonce: 4403,
  /** HELLO or CHALLENGE timestamp outside the allowed clock skew. */
  clockSkew: 4404,
  /** The handshake did not finish in time. */
  handshakeTimeout: 4408,
  /** A newer session of the same agent took over (fencing). */
  superseded: 4409,
  /** An operator disconnected the agent. */
  kicked: 4410,
  /** No frame from the peer within the dead-peer timeout. */
  peerDead: 4411,
  /** Agent side: the hub's challenge signature does not match the pinned hub identity key. */
  hubIdentityMismatch: 4430,
  /** Internal error while handling the session. */
  internalError: 4500,
} as const;

export type CloseCode = typeof CloseCode[keyof typeof CloseCode];

const NAMES = new Map<number, string>(Object.entries(CloseCode).map(([k, v]) => [v, k]));

/** Human name of a close code for logs, e.g. `4409 superseded`. */
export function describeClose(code: number): string {
  return `${code} ${NAMES.get(code) ?? "unknown"}`;
}

const CLOSE_REASON_BYTES_MAX = 123; // RFC 6455 §5.5: control frame payload 125 bytes minus the code

/** Trims a close reason to what the WebSocket API accepts (it throws on longer ones). */
export function boundCloseReason(reason: string): string {
  const encoder = new TextEncoder();
  if (encoder.encode(reason).length <= CLOSE_REASON_BYTES_MAX) return reason;
  let out = reason.slice(0, CLOSE_REASON_BYTES_MAX);
  while (encoder.encode(out + "…").length > CLOSE_REASON_BYTES_MAX) out = out.slice(0, -1);
  return out + "…";
}
