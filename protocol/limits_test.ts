import assert from "node:assert/strict";
import { checkHeartbeatTiming, LIMITS } from "./limits.ts";

Deno.test("limits relate sensibly", () => {
  assert.ok(
    LIMITS.peerDeadAfterMs >= 2 * LIMITS.pingIntervalMs,
    "dead only after ≥ 2 missed pings",
  );
  assert.ok(LIMITS.pingIntervalMs >= 10_000 && LIMITS.pingIntervalMs <= 15_000);
  assert.ok(LIMITS.peerDeadAfterMs >= 30_000 && LIMITS.peerDeadAfterMs <= 45_000);
  assert.ok(LIMITS.bodyFrameBytesMax <= 64 * 1024, "body frames stay ≤ 64 KiB");
  assert.ok(
    LIMITS.bodyFrameBytesMax < LIMITS.streamWindowBytesInitial,
    "a window holds several frames",
  );
  assert.ok(LIMITS.streamWindowBytesInitial <= LIMITS.streamWindowBytesMax);
  assert.ok(LIMITS.streamWindowBytesMax <= LIMITS.sessionWindowBytesMax);
  assert.ok(LIMITS.reconnectBaseMs < LIMITS.reconnectCapMs);
  assert.ok(LIMITS.reconnectCapMs <= LIMITS.reconnectStableAfterMs);
  assert.ok(LIMITS.echoPayloadBytesMax < LIMITS.controlFrameBytesMax);
  assert.ok(LIMITS.handshakeTimeoutMs < LIMITS.handshakeClockSkewMs);
  checkHeartbeatTiming(LIMITS);
});

Deno.test("checkHeartbeatTiming rejects a dead-after shorter than two pings", () => {
  assert.throws(
    () => checkHeartbeatTiming({ pingIntervalMs: 1000, peerDeadAfterMs: 1500 }),
    RangeError,
  );
  assert.throws(
    () => checkHeartbeatTiming({ pingIntervalMs: 10, peerDeadAfterMs: 100 }),
    RangeError,
  );
  assert.deepEqual(
    checkHeartbeatTiming({ pingIntervalMs: 200, peerDeadAfterMs: 1000 }),
    { pingIntervalMs: 200, peerDeadAfterMs: 1000 },
  );
});
