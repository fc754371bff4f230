/**
 * The only vendor-specific part of the limiter: a small table that reads a vendor account's
 * rate-limit headers, plus the decision data for a 429 the agent's own limiter returns. The
 * 429 body itself is written by the vendor module's error envelope (`VendorSurface.errorResponse`).
 *
 * - OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; resets are Go-style
 *   durations ("1s", "6m0s", "20ms"). Limits are read as per minute (RPM/TPM).
 * - Anthropic: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`; resets are
 *   RFC 3339 instants. `tokens-*` is the most restrictive token limit in effect; when absent,
 *   `input-tokens-*` is used.
 * - Any vendor: `retry-after-ms` (milliseconds) and `retry-after` (seconds or an HTTP date).
 */

/** Which of the channel's limits refused a request. */
export type LimitReason = "rpm" | "tpm" | "daily";

/** Response headers: a `Headers` or a plain record with lower-case names. */
export type HeadersLike = Headers | Record<string, string | undefined>;

/** What a response said about the account's limits. Every field is optional. */
export interface RateLimitObservation {
  /** Requests per minute the account allows. */
  requestLimit?: number;
  requestRemaining?: number;
  /** Milliseconds until the request limit is fully replenished. */
  requestResetMs?: number;
  /** Tokens per minute the account allows. */
  tokenLimit?: number;
  tokenRemaining?: number;
  /** Milliseconds until the token limit is fully replenished. */
  tokenResetMs?: number;
  /** The vendor's explicit "wait this long" (retry-after-ms / retry-after). */
  retryAfterMs?: number;
}

/** Reads one vendor's headers (`get` takes a lower-case name). */
export type RateLimitHeaderParser = (
  get: (name: string) => string | undefined,
  nowMs: number,
) => RateLimitObservation;

const num = (v: string | undefined): number | undefined => {
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
};

const DURATION_UNIT_MS: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 1e-3,
  "µs": 1e-3,
  ns: 1e-6,
};

/**
 * Parses a Go-style duration as OpenAI sends it ("1s", "6m0s", "20ms", "1h2m3.5s") into
 * milliseconds; a bare number is seconds. Returns undefined for anything else.
 */
export function parseVendorDuration(text: string | undefined): number | undefined {
  const s = text?.trim();
  if (!s) return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const part = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/y;
  let ms = 0;
  while (part.lastIndex < s.length) {
    const at = part.lastIndex;
    const m = part.exec(s);
    if (!m || m.index !== at) return undefined;
    ms += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
  }
  return ms;
}

/** Milliseconds from `nowMs` until an RFC 3339 / HTTP date, at least 0. */
function untilDate(text: string | undefined, nowMs: number): number | undefined {
  if (!text) return undefined;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

/** `retry-after-ms` wins over `retry-after` (seconds, or an HTTP date). */
export function parseRetryAfter(
  get: (name: string) => string | undefined,
  nowMs: number,
): number | undefined {
  const ms = num(get("retry-after-ms"));
  if (ms !== undefined && ms >= 0) return ms;
  const raw = get("retry-after");
  const seconds = num(raw);
  if (seconds !== undefined) return seconds >= 0 ? seconds * 1000 : undefined;
  return untilDate(raw, nowMs);
}

const openai: RateLimitHeaderParser = (get) => ({
  requestLimit: num(get("x-ratelimit-limit-requests")),
  requestRemaining: num(get("x-ratelimit-remaining-requests")),
  requestResetMs: parseVendorDuration(get("x-ratelimit-reset-requests")),
  tokenLimit: num(get("x-ratelimit-limit-tokens")),
  tokenRemaining: num(get("x-ratelimit-remaining-tokens")),
  tokenResetMs: parseVendorDuration(get("x-ratelimit-reset-tokens")),
});

const anthropic: RateLimitHeaderParser = (get, nowMs) => {
  const tokens = get("anthropic-ratelimit-tokens-limit") !== undefined ? "tokens" : "input-tokens";
  return {
    requestLimit: num(get("anthropic-ratelimit-requests-limit")),
    requestRemaining: num(get("anthropic-ratelimit-requests-remaining")),
    requestResetMs: untilDate(get("anthropic-ratelimit-requests-reset"), nowMs),
    tokenLimit: num(get(`anthropic-ratelimit-${tokens}-limit`)),
    tokenRemaining: num(get(`anthropic-ratelimit-${tokens}-remaining`)),
    tokenResetMs: untilDate(get(`anthropic-ratelimit-${tokens}-reset`), nowMs),
  };
};

/** Vendor name (as in `Channel.vendor`) → header parser. Unknown vendors get only retry-after. */
export const RATE_LIMIT_HEADER_PARSERS: Readonly<Record<string, RateLimitHeaderParser>> = {
  openai,
  anthropic,
};

/** Everything a response's headers say about the account's limits (undefined fields dropped). */
export function parseRateLimitHeaders(
  vendor: string,
  headers: HeadersLike | undefined,
  nowMs: number,
): RateLimitObservation {
  if (!headers) return {};
  const get = headers instanceof Headers
    ? (name: string) => headers.get(name) ?? undefined
    : (name: string) => headers[name];
  const parsed: RateLimitObservation = {
    ...(Object.hasOwn(RATE_LIMIT_HEADER_PARSERS, vendor)
      ? RATE_LIMIT_HEADER_PARSERS[vendor]!(get, nowMs)
      : {}),
    retryAfterMs: parseRetryAfter(get, nowMs),
  };
  for (const key of Object.keys(parsed) as (keyof RateLimitObservation)[]) {
    if (parsed[key] === undefined) delete parsed[key];
  }
  return parsed;
}

/** What the agent answers when its own limiter refuses: the vendor module renders the body. */
export interface LimiterRefusal {
  status: 429;
  reason: LimitReason;
  retryAfterMs: number;
  /** e.g. "Rate limit reached for requests on this channel; retry after 250 ms". */
  message: string;
  /** `retry-after` (whole seconds, rounded up) and `retry-after-ms`, as the SDKs read them. */
  headers: Record<string, string>;
}

const WHAT: Record<LimitReason, string> = {
  rpm: "requests",
  tpm: "tokens",
  daily: "the daily token budget",
};

/** Turns a limiter refusal into the 429 decision data. */
export function limiterRefusal(
  refused: { reason: LimitReason; retryAfterMs: number },
): LimiterRefusal {
  const ms = Math.max(0, Math.ceil(refused.retryAfterMs));
  return {
    status: 429,
    reason: refused.reason,
    retryAfterMs: ms,
    message: `Rate limit reached for ${WHAT[refused.reason]} on this channel; retry after ${ms} ms`,
    headers: { "retry-after": String(Math.ceil(ms / 1000)), "retry-after-ms": String(ms) },
  };
}
