/** The only place that reads the real clock; everything else takes a `Clock`, so tests can steer time. */
export interface Clock {
  /** Wall-clock milliseconds since the epoch (timestamps that cross the wire). */
  nowMs(): number;
  /** Monotonic milliseconds (timeouts, durations). */
  monoMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monoMs: () => performance.now(),
};
