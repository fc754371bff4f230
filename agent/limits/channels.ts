/**
 * One `ChannelLimiter` per channel, kept across requests and rebuilt only when the owner changes
 * that channel's limits (so learned smart-mode rates survive unrelated edits).
 */
import type { Channel } from "../config.ts";
import { ChannelLimiter, type LimiterConfig, limiterConfigOf } from "./channel_limiter.ts";

export class ChannelLimiters {
  readonly #byChannel = new Map<string, { config: string; limiter: ChannelLimiter }>();

  for(channel: Channel): ChannelLimiter {
    const config: LimiterConfig = limiterConfigOf(channel);
    const key = JSON.stringify(config);
    const entry = this.#byChannel.get(channel.id);
    if (entry?.config === key) return entry.limiter;
    const limiter = new ChannelLimiter(config);
    this.#byChannel.set(channel.id, { config: key, limiter });
    return limiter;
  }

  /** What heartbeats report: remaining requests and tokens per minute, per channel. */
  capacity(): { id: string; remainingRpm: number; remainingTpm: number }[] {
    return [...this.#byChannel].map(([id, { limiter }]) => {
      const s = limiter.snapshot();
      return {
        id,
        remainingRpm: Math.max(0, Math.floor(s.remainingRpm)),
        remainingTpm: Math.max(0, Math.floor(s.remainingTpm)),
      };
    });
  }
}
