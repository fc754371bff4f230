/**
 * Published price versions as hub and agent exchange and keep them (DESIGN.md "As built
 * (prices)").
 *
 * A published table has ONE text form, its canonical JSON: the validated table
 * (`validatePriceTable`) with object keys sorted at every level, arrays in their given order, no
 * whitespace. Its identity is `sha256` = hex SHA-256 of that text's UTF-8 bytes. The hub stores
 * the text and the hash; PRICES frames carry both; the agent recomputes the hash, re-parses and
 * re-validates before it trusts a table, and never replaces a version it already holds.
 * @module
 */
import { createHash } from "node:crypto";
import { type PriceTable, validatePriceTable } from "./pricing.ts";

/** A price version exactly as published: the table, its canonical text and that text's hash. */
export interface PublishedPrices {
  version: number;
  publishedAtMs: number;
  sha256: string;
  /** Canonical JSON of `table`. */
  text: string;
  table: PriceTable;
}

/** Raised when a text, hash or version does not make a valid published table. */
export class PriceVersionError extends Error {
  override name = "PriceVersionError";
}

/** JSON with object keys sorted (UTF-16 order) at every level and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const keys = Object.keys(value).filter((k) =>
      (value as Record<string, unknown>)[k] !== undefined
    )
      .sort();
    return `{${
      keys.map((k) =>
        `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`
      )
        .join(",")
    }}`;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new TypeError("canonical JSON has no non-finite numbers");
  }
  return JSON.stringify(value);
}

/** Hex SHA-256 of a text's UTF-8 bytes (synchronous: usable inside a SQLite transaction). */
export function sha256Text(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Validates `table` and returns it as published: canonical text and hash. */
export function publishedFrom(table: unknown): PublishedPrices {
  const valid = validatePriceTable(table);
  const text = canonicalJson(valid);
  return {
    version: valid.version,
    publishedAtMs: valid.publishedAtMs,
    sha256: sha256Text(text),
    text,
    table: valid,
  };
}

/**
 * Re-opens a published version from its text and claimed hash (a store row, a PRICES frame, a
 * file): the hash must match, the text must be a valid table in canonical form, and its own
 * `version` must be `version`. Throws `PriceVersionError` naming the first problem.
 */
export function openPublished(version: number, text: string, sha256: string): PublishedPrices {
  const actual = sha256Text(text);
  if (actual !== sha256) {
    throw new PriceVersionError(
      `price version ${version}: the table hashes to ${actual}, not the claimed ${sha256}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PriceVersionError(`price version ${version}: the table is not JSON`);
  }
  let published: PublishedPrices;
  try {
    published = publishedFrom(parsed);
  } catch (e) {
    throw new PriceVersionError(`price version ${version}: ${(e as Error).message}`);
  }
  if (published.text !== text) {
    throw new PriceVersionError(`price version ${version}: the table is not in canonical form`);
  }
  if (published.version !== version) {
    throw new PriceVersionError(
      `price version ${version}: the table says it is version ${published.version}`,
    );
  }
  return published;
}

/** The parts of a table an admin publishes (the hub assigns `version` and `publishedAtMs`). */
export function priceContent(t: PriceTable): Pick<PriceTable, "source" | "models" | "aliases"> {
  return { source: t.source, models: t.models, aliases: t.aliases };
}

/** True when two tables price alike: same source, models and aliases (versions aside). */
export function samePrices(a: PriceTable, b: PriceTable): boolean {
  const norm = (t: PriceTable) => canonicalJson({ ...priceContent(t), aliases: t.aliases ?? {} });
  return norm(a) === norm(b);
}
