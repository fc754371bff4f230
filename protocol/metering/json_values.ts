/** Reading vendor JSON defensively: values that are not what we expect count as absent. */
import { isPlainObject } from "../fields.ts";

/** A plain JSON object. */
export type Obj = Record<string, unknown>;

/** `v` if it is a plain object. */
export function obj(v: unknown): Obj | undefined {
  return isPlainObject(v) ? v : undefined;
}

/** A positive finite count at `o[key]`, else 0 (vendors send null, negatives, strings). */
export function num(o: Obj | undefined, key: string): number {
  const v = o?.[key];
  return typeof v === "number" && v > 0 && Number.isFinite(v) ? v : 0;
}
