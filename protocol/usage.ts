/**
 * One usage shape for every vendor, as pricing consumes it. Counts are disjoint where billing
 * needs them to be: `inputTokens` is fresh (uncached) input only; cache reads and writes are
 * separate; `outputTokens` is everything billed as output, with `reasoningTokens` the part of it
 * spent thinking. Missing dimensions are 0. See reference/vendor-wire.md §9 for each vendor's
 * mapping.
 */
export interface Usage {
  /** Input tokens billed at the fresh-input price (excludes cache reads and writes). */
  inputTokens: number;
  /** Input tokens served from the prompt cache. */
  cachedInputTokens: number;
  /** Tokens written to the prompt cache with a 5-minute (or unspecified) lifetime. */
  cacheWrite5mTokens: number;
  /** Tokens written to the prompt cache with a 1-hour lifetime. */
  cacheWrite1hTokens: number;
  /** All tokens billed as output, reasoning included. */
  outputTokens: number;
  /** Of `outputTokens`, those spent on reasoning/thinking (informational). */
  reasoningTokens: number;
  /** Audio input/output tokens (priced apart where vendors do so); included in the totals above. */
  audioInputTokens: number;
  audioOutputTokens: number;
  /** Image input/output tokens (image generation); included in the totals above. */
  imageInputTokens: number;
  imageOutputTokens: number;
  /** Audio seconds for duration-billed models (e.g. whisper). */
  audioSeconds: number;
}

export const USAGE_FIELDS = [
  "inputTokens",
  "cachedInputTokens",
  "cacheWrite5mTokens",
  "cacheWrite1hTokens",
  "outputTokens",
  "reasoningTokens",
  "audioInputTokens",
  "audioOutputTokens",
  "imageInputTokens",
  "imageOutputTokens",
  "audioSeconds",
] as const satisfies readonly (keyof Usage)[];

export function emptyUsage(): Usage {
  return Object.fromEntries(USAGE_FIELDS.map((f) => [f, 0])) as unknown as Usage;
}

/** A usage record: what one request consumed, with what pricing needs beyond the counts. */
export interface UsageRecord {
  requestId: string;
  vendor: string;
  model: string;
  /** Prompt size as the vendor counts it (for prompt-length price tiers). */
  promptTokens: number;
  /** Vendor service tier or speed when reported (e.g. "default", "flex", "priority"). */
  serviceTier?: string;
  /** When the vendor finished (price validity by time of day / date). */
  completedAtMs: number;
  usage: Usage;
}
