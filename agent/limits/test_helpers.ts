/** Shared by the limiter tests: a steerable clock and small fixtures. */
import assert from "node:assert/strict";
import type { Clock } from "../../protocol/clock.ts";
import type { AcquireResult, Ticket } from "./channel_limiter.ts";

/** 2025-06-01T12:00:00Z, a wall-clock start for the fake clock. */
export const T0 = Date.parse("2025-06-01T12:00:00Z");

/** A clock whose `now` the test sets. */
export const fakeClock = (start = T0) => {
  const clock = { now: start, nowMs: () => clock.now, monoMs: () => clock.now - start };
  return clock satisfies Clock;
};

/** The ticket of an admission (fails the test on a refusal). */
export const ticketOf = (r: AcquireResult): Ticket => {
  assert.ok(r.ok, `expected admission, got ${JSON.stringify(r)}`);
  return r.ticket;
};

/** OpenAI rate-limit headers advertising `rpm` / `tpm`. */
export const openaiHeaders = (rpm: number, tpm: number, extra: Record<string, string> = {}) => ({
  "x-ratelimit-limit-requests": String(rpm),
  "x-ratelimit-remaining-requests": String(rpm - 1),
  "x-ratelimit-limit-tokens": String(tpm),
  "x-ratelimit-remaining-tokens": String(tpm - 100),
  ...extra,
});
