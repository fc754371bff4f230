// Price versions (migration 6): each published price table, insert only. The parts both engines
// share: the interface, argument checks and row mapping. The store keeps text and hash; what
// the text means (protocol/price_versions.ts) is checked by the callers.
import { sha256Text } from "../../protocol/price_versions.ts";
import { StoreConflictError } from "./errors.ts";

/** One stored price version: the canonical table text and its SHA-256 (hex). */
export interface PriceVersionRecord {
  version: number;
  publishedAtMs: number;
  canonical: string;
  sha256: string;
}

/** What `listPriceVersions` returns per version (no table text). */
export type PriceVersionSummary = Omit<PriceVersionRecord, "canonical">;

/** Largest table text a version may hold (MEDIUMTEXT holds 16 MiB; PRICES frames far less). */
export const PRICE_TEXT_CHARS_MAX = 4 * 1024 * 1024;

export interface PriceStore {
  /**
   * Publishes a version, insert only. The store computes `sha256` from `canonical`. Returns
   * `"inserted"`, or `"duplicate"` when the version already holds exactly this text and
   * publication time (nothing changes); throws `StoreConflictError` (field `"version"`) when it
   * holds anything else, and `RangeError` for a version that is not an integer ≥ 1, a bad time
   * or an empty / oversized text (nothing written).
   */
  publishPriceVersion(
    p: { version: number; publishedAtMs: number; canonical: string },
  ): Promise<{ outcome: "inserted" | "duplicate"; record: PriceVersionRecord }>;
  /** The version, or `null`. */
  getPriceVersion(version: number): Promise<PriceVersionRecord | null>;
  /** The highest published version, 0 when there is none. */
  latestPriceVersion(): Promise<number>;
  /** Every version, ascending. */
  listPriceVersions(): Promise<PriceVersionSummary[]>;
}

export const PRICE_COLUMNS = "version, published_at_ms, canonical, sha256";

export function checkPriceVersion(
  p: { version: number; publishedAtMs: number; canonical: string },
) {
  if (!Number.isSafeInteger(p.version) || p.version < 1) {
    throw new RangeError("price version must be an integer ≥ 1");
  }
  if (!Number.isSafeInteger(p.publishedAtMs) || p.publishedAtMs < 0) {
    throw new RangeError("publishedAtMs must be an integer ≥ 0");
  }
  if (typeof p.canonical !== "string" || p.canonical === "") {
    throw new RangeError("price table text must be a non-empty string");
  }
  if (p.canonical.length > PRICE_TEXT_CHARS_MAX) {
    throw new RangeError(`price table text is above ${PRICE_TEXT_CHARS_MAX} chars`);
  }
}

/** The record a publish would store. */
export function newPriceRecord(
  p: { version: number; publishedAtMs: number; canonical: string },
): PriceVersionRecord {
  checkPriceVersion(p);
  return { ...p, sha256: sha256Text(p.canonical) };
}

export function rowToPriceVersion(row: Record<string, unknown>): PriceVersionRecord {
  return {
    version: Number(row.version),
    publishedAtMs: Number(row.published_at_ms),
    canonical: String(row.canonical),
    sha256: String(row.sha256),
  };
}

/** A publish that found its version taken: a replay if identical, else a conflict. */
export function replayedPrice(
  stored: PriceVersionRecord | null,
  given: PriceVersionRecord,
  cause?: unknown,
): { outcome: "duplicate"; record: PriceVersionRecord } {
  if (
    stored && stored.sha256 === given.sha256 && stored.canonical === given.canonical &&
    stored.publishedAtMs === given.publishedAtMs
  ) return { outcome: "duplicate", record: stored };
  throw new StoreConflictError("version", { cause });
}
