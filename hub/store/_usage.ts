// Usage records: the parts both engines share (columns, validation, row mapping, the list query),
// so that both store, compare and return records alike. Never holds a request or response body.
import { USAGE_FIELDS, type UsageRecord } from "../../protocol/usage.ts";
import type { UsageContext, UsageFilter } from "./mod.ts";

export type StoredUsage = UsageRecord & UsageContext;
/** One SQL parameter or column value as both drivers hand them over. */
export type SqlValue = string | number | null;
/** A `usage_records` row keyed by column name. */
export type UsageRow = Record<string, unknown>;

export const LIST_LIMIT_DEFAULT = 100;
export const LIST_LIMIT_MAX = 1000;

/** `cacheWrite5mTokens` → `cache_write_5m_tokens`. */
export function snakeCase(field: string): string {
  return field.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()).replace(/([a-z])(\d)/g, "$1_$2");
}

interface Column {
  name: string;
  field: keyof StoredUsage;
  /** Text columns only: the most UTF-16 code units accepted (within the MySQL VARCHAR size). */
  max?: number;
  /** Text columns only: `undefined` is stored as NULL and read back as an absent property. */
  optional?: true;
}

/** The columns besides the usage counts, in the order of `USAGE_COLUMNS`. */
const RECORD_COLUMNS: readonly Column[] = [
  { name: "request_id", field: "requestId", max: 128 },
  { name: "key_id", field: "keyId", max: 40 },
  { name: "user_id", field: "userId", max: 40 },
  { name: "agent_id", field: "agentId", max: 40 },
  { name: "channel_id", field: "channelId", max: 80, optional: true },
  { name: "vendor", field: "vendor", max: 40 },
  { name: "model", field: "model", max: 200 },
  { name: "prompt_tokens", field: "promptTokens" },
  { name: "service_tier", field: "serviceTier", max: 64, optional: true },
  { name: "completed_at_ms", field: "completedAtMs" },
];

/**
 * One BIGINT column per `USAGE_FIELDS` entry, named in snake_case: the only place the store
 * derives them, so a new usage field needs nothing here, only a migration adding its column.
 */
export const USAGE_FIELD_COLUMNS: readonly string[] = USAGE_FIELDS.map(snakeCase);

/** Every `usage_records` column, in the order of `usageValues`. */
export const USAGE_COLUMNS: readonly string[] = [
  ...RECORD_COLUMNS.map((c) => c.name),
  ...USAGE_FIELD_COLUMNS,
];

export const USAGE_SELECT = `SELECT ${USAGE_COLUMNS.join(", ")} FROM usage_records`;
export const USAGE_INSERT = `INSERT INTO usage_records (${USAGE_COLUMNS.join(", ")})
  VALUES (${USAGE_COLUMNS.map(() => "?").join(", ")})`;

/**
 * The column values for `record` in `USAGE_COLUMNS` order. Throws `RangeError` for a count or
 * time that is not a safe integer ≥ 0, or text that is missing, too long or (requestId) empty,
 * before anything is written. Fields beyond the record's type are ignored.
 */
export function usageValues(record: UsageRecord, context: UsageContext): SqlValue[] {
  const flat = { ...record, ...context } as Record<string, unknown>;
  const usage = (record.usage ?? {}) as unknown as Record<string, unknown>;
  return [
    ...RECORD_COLUMNS.map((c) =>
      c.max === undefined ? count(c.field, flat[c.field]) : text(c, flat)
    ),
    ...USAGE_FIELDS.map((f) => count(`usage.${f}`, usage[f])),
  ];
}

function count(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`Cannot record usage: ${name} must be a safe integer ≥ 0, got ${v}`);
  }
  return v + 0; // -0 + 0 is +0
}

function text(c: Column, flat: Record<string, unknown>): string | null {
  const v = flat[c.field];
  if (v === undefined && c.optional) return null;
  if (typeof v !== "string" || v.length > c.max! || (c.field === "requestId" && v === "")) {
    const want = `a string of ${c.field === "requestId" ? "1" : "0"}..${c.max} chars`;
    throw new RangeError(`Cannot record usage: ${c.field} must be ${want}`);
  }
  return v;
}

/** A row's values in `USAGE_COLUMNS` order, counts as numbers, comparable to `usageValues`. */
function rowValues(row: UsageRow): SqlValue[] {
  return USAGE_COLUMNS.map((name, i) => {
    const v = row[name];
    const isText = i < RECORD_COLUMNS.length && RECORD_COLUMNS[i]!.max !== undefined;
    return v === null || v === undefined ? null : isText ? String(v) : Number(v);
  });
}

/** Whether the stored row holds exactly `values` (what a replay must match). */
export function sameUsage(row: UsageRow, values: readonly SqlValue[]): boolean {
  return rowValues(row).every((v, i) => v === values[i]);
}

/** The public record for a row; NULL optional columns become absent properties. */
export function rowToUsage(row: UsageRow): StoredUsage {
  const values = rowValues(row);
  const out: Record<string, unknown> = {};
  RECORD_COLUMNS.forEach((c, i) => {
    if (values[i] !== null) out[c.field] = values[i];
  });
  const base = RECORD_COLUMNS.length;
  out.usage = Object.fromEntries(USAGE_FIELDS.map((f, i) => [f, values[base + i]]));
  return out as unknown as StoredUsage;
}

/**
 * The `listUsage` query: filters joined by AND, newest first (`completed_at_ms` descending,
 * then `request_id` ascending). Throws `RangeError` for a `sinceMs` that is not a safe integer
 * or a `limit` that is not one ≥ 1; a limit above `LIST_LIMIT_MAX` is capped to it.
 */
export function usageListQuery(filter: UsageFilter): { sql: string; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const equal: [string, string | undefined][] = [
    ["key_id", filter.keyId],
    ["user_id", filter.userId],
    ["agent_id", filter.agentId],
  ];
  for (const [column, value] of equal) {
    if (value === undefined) continue;
    if (typeof value !== "string") throw new TypeError(`listUsage: ${column} must be a string`);
    where.push(`${column} = ?`);
    params.push(value);
  }
  if (filter.sinceMs !== undefined) {
    if (!Number.isSafeInteger(filter.sinceMs)) {
      throw new RangeError(`listUsage: sinceMs must be a safe integer, got ${filter.sinceMs}`);
    }
    where.push("completed_at_ms >= ?");
    params.push(filter.sinceMs);
  }
  const limit = filter.limit ?? LIST_LIMIT_DEFAULT;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`listUsage: limit must be an integer ≥ 1, got ${filter.limit}`);
  }
  params.push(Math.min(limit, LIST_LIMIT_MAX));
  const condition = where.length ? ` WHERE ${where.join(" AND ")}` : "";
  return {
    sql: `${USAGE_SELECT}${condition} ORDER BY completed_at_ms DESC, request_id LIMIT ?`,
    params,
  };
}
