/**
 * Which limit rules a request is charged against: the key's own (from its `limits` JSON) and the
 * chosen channel's declared RPM/TPM. Tokens are reserved up front from the request's size and
 * output cap and corrected once usage is known.
 */
import type { Usage } from "../../protocol/usage.ts";
import type { Acquire } from "../limits/mod.ts";

const MINUTE_MS = 60_000;
/** Output assumed when a request names no cap: enough to be safe, small enough not to starve. */
const DEFAULT_OUTPUT_TOKENS = 1024;

export interface KeyLimits {
  rpm?: number;
  tpm?: number;
  /** Concurrent requests (streams) in flight. */
  concurrency?: number;
}

/** Reads a key's `limits` JSON; anything malformed is ignored field by field (validated at creation). */
export function parseKeyLimits(value: unknown): KeyLimits {
  if (typeof value !== "object" || value === null) return {};
  const v = value as Record<string, unknown>;
  const positive = (x: unknown) =>
    typeof x === "number" && Number.isSafeInteger(x) && x > 0 ? x : undefined;
  return { rpm: positive(v.rpm), tpm: positive(v.tpm), concurrency: positive(v.concurrency) };
}

/** Checks a `limits` object for the admin API; returns an error message or null. */
export function keyLimitsProblem(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== "object" || Array.isArray(value)) return "limits must be an object";
  for (const [k, v] of Object.entries(value)) {
    if (!["rpm", "tpm", "concurrency"].includes(k)) {
      return `limits.${k} is not a known limit (rpm, tpm, concurrency)`;
    }
    if (!(typeof v === "number" && Number.isSafeInteger(v) && v > 0)) {
      return `limits.${k} must be a positive integer`;
    }
  }
  return null;
}

/** Worst-case tokens for a request: ~4 bytes per input token plus its output cap. */
export function estimateTokens(bodyBytes: number, maxOutputTokens: number | undefined): number {
  return Math.ceil(bodyBytes / 4) + (maxOutputTokens ?? DEFAULT_OUTPUT_TOKENS);
}

/** RPM/TPM rules for one scope, e.g. `key:key_…` or `user:usr_…` (a user's limits span its keys). */
export function limitRules(scope: string, limits: KeyLimits, tokens: number): Acquire[] {
  const parts: Acquire[] = [];
  if (limits.rpm) {
    parts.push({ rule: { key: `${scope}:rpm`, limit: limits.rpm, windowMs: MINUTE_MS }, units: 1 });
  }
  if (limits.tpm) {
    parts.push({
      rule: { key: `${scope}:tpm`, limit: limits.tpm, windowMs: MINUTE_MS },
      units: tokens,
    });
  }
  return parts;
}

export function channelRules(
  agentId: string,
  channel: { id: string; rpm: number; tpm: number },
  tokens: number,
): Acquire[] {
  const base = `ch:${agentId}/${channel.id}`;
  const parts: Acquire[] = [];
  if (channel.rpm > 0) {
    parts.push({ rule: { key: `${base}:rpm`, limit: channel.rpm, windowMs: MINUTE_MS }, units: 1 });
  }
  if (channel.tpm > 0) {
    parts.push({
      rule: { key: `${base}:tpm`, limit: channel.tpm, windowMs: MINUTE_MS },
      units: tokens,
    });
  }
  return parts;
}

/** Tokens a finished request really used, per TPM rule key (RPM rules keep their 1). */
export function actualTokenUnits(
  parts: readonly Acquire[],
  usage: Usage | null,
): Record<string, number> {
  const used = usage
    ? usage.inputTokens + usage.cachedInputTokens + usage.cacheWrite5mTokens +
      usage.cacheWrite1hTokens +
      usage.outputTokens
    : 0;
  const out: Record<string, number> = {};
  for (const p of parts) out[p.rule.key] = p.rule.key.endsWith(":tpm") ? used : p.units;
  return out;
}
