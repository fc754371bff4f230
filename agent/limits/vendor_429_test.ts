import assert from "node:assert/strict";
import {
  limiterRefusal,
  parseRateLimitHeaders,
  parseRetryAfter,
  parseVendorDuration,
  RATE_LIMIT_HEADER_PARSERS,
} from "./vendor_429.ts";

const NOW = Date.parse("2025-06-01T12:00:00Z");

Deno.test("OpenAI reset durations parse to milliseconds", () => {
  const cases: [string, number][] = [
    ["1s", 1000],
    ["6m0s", 360_000],
    ["20ms", 20],
    ["1h2m3.5s", 3_723_500],
    ["0s", 0],
    ["12ms", 12],
    ["7.66s", 7660],
    ["2m30.5s", 150_500],
    ["1m", 60_000],
    ["1h", 3_600_000],
    ["500us", 0.5],
    ["250µs", 0.25],
    ["1s20ms", 1020],
    ["6", 6000], // a bare number is seconds (Azure-style)
    [" 1s ", 1000],
  ];
  for (const [text, ms] of cases) {
    assert.ok(Math.abs(parseVendorDuration(text)! - ms) < 1e-9, `${text} → ${ms}`);
  }
  for (const bad of ["", "s", "1x", "1s2", "-1s", "abc", "1 s", "m5"]) {
    assert.equal(parseVendorDuration(bad), undefined, JSON.stringify(bad));
  }
  assert.equal(parseVendorDuration(undefined), undefined);
});

Deno.test("OpenAI x-ratelimit headers map to the observation", () => {
  const headers = new Headers({
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-limit-tokens": "160000",
    "x-ratelimit-remaining-tokens": "159976",
    "x-ratelimit-reset-tokens": "6m0s",
  });
  assert.deepEqual(parseRateLimitHeaders("openai", headers, NOW), {
    requestLimit: 5000,
    requestRemaining: 4999,
    requestResetMs: 12,
    tokenLimit: 160_000,
    tokenRemaining: 159_976,
    tokenResetMs: 360_000,
  });
});

Deno.test("Anthropic anthropic-ratelimit headers map to the observation (RFC 3339 resets)", () => {
  const headers = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2025-06-01T12:00:01.5Z",
    "anthropic-ratelimit-tokens-limit": "40000",
    "anthropic-ratelimit-tokens-remaining": "12000",
    "anthropic-ratelimit-tokens-reset": "2025-06-01T12:00:30Z",
    "anthropic-ratelimit-input-tokens-limit": "30000",
    "retry-after": "2",
  };
  assert.deepEqual(parseRateLimitHeaders("anthropic", headers, NOW), {
    requestLimit: 50,
    requestRemaining: 0,
    requestResetMs: 1500,
    tokenLimit: 40_000,
    tokenRemaining: 12_000,
    tokenResetMs: 30_000,
    retryAfterMs: 2000,
  });
  // Without the combined tokens-* headers, input-tokens-* stands in.
  const inputOnly = parseRateLimitHeaders("anthropic", {
    "anthropic-ratelimit-input-tokens-limit": "30000",
    "anthropic-ratelimit-input-tokens-remaining": "29000",
    "anthropic-ratelimit-input-tokens-reset": "2025-06-01T11:59:00Z", // in the past → 0
  }, NOW);
  assert.deepEqual(inputOnly, { tokenLimit: 30_000, tokenRemaining: 29_000, tokenResetMs: 0 });
});

Deno.test("unknown vendors get nothing but the standard retry-after", () => {
  const headers = { "x-ratelimit-limit-requests": "5000", "retry-after-ms": "250" };
  assert.deepEqual(parseRateLimitHeaders("gemini", headers, NOW), { retryAfterMs: 250 });
  assert.deepEqual(parseRateLimitHeaders("toString", {}, NOW), {}, "no prototype lookups");
  assert.deepEqual(parseRateLimitHeaders("openai", undefined, NOW), {});
  assert.deepEqual(Object.keys(RATE_LIMIT_HEADER_PARSERS).sort(), ["anthropic", "openai"]);
});

Deno.test("retry-after-ms wins; retry-after is seconds or an HTTP date", () => {
  const get = (h: Record<string, string>) => (name: string) => h[name];
  assert.equal(
    parseRetryAfter(get({ "retry-after-ms": "1500.5", "retry-after": "9" }), NOW),
    1500.5,
  );
  assert.equal(parseRetryAfter(get({ "retry-after": "3" }), NOW), 3000);
  assert.equal(parseRetryAfter(get({ "retry-after": "0.5" }), NOW), 500);
  assert.equal(
    parseRetryAfter(get({ "retry-after": "Sun, 01 Jun 2025 12:00:20 GMT" }), NOW),
    20_000,
  );
  assert.equal(parseRetryAfter(get({ "retry-after": "soon" }), NOW), undefined);
  assert.equal(parseRetryAfter(get({ "retry-after": "-4" }), NOW), undefined);
  assert.equal(parseRetryAfter(get({}), NOW), undefined);
});

Deno.test("the limiter's own 429 decision data", () => {
  assert.deepEqual(limiterRefusal({ reason: "rpm", retryAfterMs: 1234.2 }), {
    status: 429,
    reason: "rpm",
    retryAfterMs: 1235,
    message: "Rate limit reached for requests on this channel; retry after 1235 ms",
    headers: { "retry-after": "2", "retry-after-ms": "1235" },
  });
  assert.match(limiterRefusal({ reason: "tpm", retryAfterMs: 10 }).message, /for tokens on/);
  assert.match(
    limiterRefusal({ reason: "daily", retryAfterMs: 3_600_000 }).message,
    /for the daily token budget on this channel; retry after 3600000 ms/,
  );
});
