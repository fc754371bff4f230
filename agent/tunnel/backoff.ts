/**
 * Full-jitter exponential backoff: the wait is uniform in [0, min(cap, base·2^attempt)), so a
 * fleet of agents reconnecting after a hub restart spreads out instead of arriving together.
 */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export function fullJitterDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number,
): number {
  // 2^attempt overflows nothing we care about: the cap bounds it long before.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
