/**
 * Every bound of the tunnel in one place. Each name ends with its unit.
 * `limits_test.ts` checks how they relate (e.g. a peer is declared dead only after
 * several missed pings).
 */
export const LIMITS = {
  /** Largest body payload carried by one binary frame. */
  bodyFrameBytesMax: 64 * 1024,
  /** Largest JSON control frame (capabilities of a big agent fit comfortably). */
  controlFrameBytesMax: 256 * 1024,
  /** Binary frame header: version, kind, flags, reserved, stream id u32, length u32. */
  bodyFrameHeaderBytes: 12,
  /** Random bytes in each handshake nonce. */
  nonceBytes: 32,
  /** Allowed difference between the two peers' clocks during the handshake. */
  handshakeClockSkewMs: 5 * 60_000,
  /** From socket open to WELCOME; a silent or slow peer is dropped after this. */
  handshakeTimeoutMs: 10_000,
  /** Remembered agent nonces (replay cache); older ones expire with the skew window. */
  nonceCacheEntriesMax: 200_000,
  /** The hub pings every agent this often. */
  pingIntervalMs: 15_000,
  /** A peer that sent nothing for this long is dead. */
  peerDeadAfterMs: 45_000,
  /** Payload bound for admin echo probes. */
  echoPayloadBytesMax: 16 * 1024,
  /** An echo without a reply after this fails. */
  echoTimeoutMs: 10_000,
  /** Echoes in flight per session. */
  echoesInFlightMax: 1024,
  /** Agent reconnect backoff: full jitter over base·2^attempt, capped. */
  reconnectBaseMs: 1_000,
  reconnectCapMs: 60_000,
  /** A connection that lasted this long resets the backoff. */
  reconnectStableAfterMs: 60_000,
  /** After sending a close frame, wait this long for the peer's before giving up on it. */
  closeGraceMs: 1_000,
  /** Agent gives up a dial attempt after this. */
  dialTimeoutMs: 15_000,
  /** Per-stream flow-control window: initial and ceiling. */
  streamWindowBytesInitial: 256 * 1024,
  streamWindowBytesMax: 4 * 1024 * 1024,
  /** Bytes in flight across all streams of one session. */
  sessionWindowBytesMax: 16 * 1024 * 1024,
  /** Concurrent request streams per session. */
  streamsPerSessionMax: 4096,
} as const;

export type Limits = typeof LIMITS;

/** Tunables a hub operator (or a test) may shorten; the hub sends them to the agent in WELCOME. */
export interface HeartbeatTiming {
  pingIntervalMs: number;
  peerDeadAfterMs: number;
}

/** Checks a heartbeat configuration, so a typo cannot declare every agent dead. */
export function checkHeartbeatTiming(t: HeartbeatTiming): HeartbeatTiming {
  if (!Number.isInteger(t.pingIntervalMs) || t.pingIntervalMs < 50) {
    throw new RangeError(`Invalid heartbeat: pingIntervalMs ${t.pingIntervalMs} is below 50`);
  }
  if (!Number.isInteger(t.peerDeadAfterMs) || t.peerDeadAfterMs < 2 * t.pingIntervalMs) {
    throw new RangeError(
      `Invalid heartbeat: peerDeadAfterMs ${t.peerDeadAfterMs} is below 2 × pingIntervalMs ${t.pingIntervalMs}`,
    );
  }
  return t;
}
