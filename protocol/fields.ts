/**
 * Field validators for control frames. Each takes an untrusted JSON value and returns it typed,
 * or throws `FrameDecodeError`. A schema is an object of validators; `Infer` turns it into a type,
 * so a frame's shape is written once.
 */

/** Why a frame was rejected; the tunnel maps the code to a close code. */
export type FrameErrorCode =
  | "too_large"
  | "bad_json"
  | "bad_header"
  | "bad_length"
  | "bad_version"
  | "unknown_type"
  | "bad_field";

/** Thrown for every malformed frame; never anything else. */
export class FrameDecodeError extends SyntaxError {
  override name = "FrameDecodeError";
  constructor(readonly code: FrameErrorCode, message: string) {
    super(`Cannot decode frame: ${message}`);
  }
}

export type Field<T> = (value: unknown, name: string) => T;
export type Schema = Record<string, Field<unknown>>;

type OptionalKeys<S extends Schema> = {
  [K in keyof S]: undefined extends ReturnType<S[K]> ? K : never;
}[keyof S];
/** The object type a schema accepts; fields whose validator may yield `undefined` are optional. */
export type Infer<S extends Schema> =
  & { [K in Exclude<keyof S, OptionalKeys<S>>]: ReturnType<S[K]> }
  & { [K in OptionalKeys<S>]?: ReturnType<S[K]> };

function bad(name: string, expected: string, value: unknown): never {
  const shown = typeof value === "string" ? `a string of length ${value.length}` : typeof value;
  throw new FrameDecodeError("bad_field", `field "${name}" must be ${expected}, got ${shown}`);
}

/** Non-negative safe integer ≤ max. JSON `-0` is read as `0`, so a decoded frame round-trips. */
export function uint(max = Number.MAX_SAFE_INTEGER): Field<number> {
  return (v, name) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= max
      ? v + 0 // -0 + 0 is +0
      : bad(name, `an integer in 0..${max}`, v);
}

/** String of bounded length, optionally restricted to a pattern. */
export function str(maxLength: number, pattern?: RegExp): Field<string> {
  return (v, name) =>
    typeof v === "string" && v.length <= maxLength && (!pattern || pattern.test(v))
      ? v
      : bad(name, `a string of ≤ ${maxLength} chars${pattern ? ` matching ${pattern}` : ""}`, v);
}

export function bool(): Field<boolean> {
  return (v, name) => typeof v === "boolean" ? v : bad(name, "a boolean", v);
}

export function oneOf<const T extends readonly string[]>(values: T): Field<T[number]> {
  return (v, name) =>
    typeof v === "string" && values.includes(v) ? v : bad(name, `one of ${values.join("|")}`, v);
}

export function optional<T>(field: Field<T>): Field<T | undefined> {
  return (v, name) => v === undefined ? undefined : field(v, name);
}

export function array<T>(item: Field<T>, maxItems: number): Field<T[]> {
  return (v, name) => {
    if (!Array.isArray(v) || v.length > maxItems) return bad(name, `an array of ≤ ${maxItems}`, v);
    return v.map((x, i) => item(x, `${name}[${i}]`));
  };
}

/** String → string map with bounded size (HTTP headers). */
export function stringMap(
  maxEntries: number,
  maxValueLength: number,
): Field<Record<string, string>> {
  return (v, name) => {
    if (!isPlainObject(v)) return bad(name, "an object", v);
    const entries = Object.entries(v);
    if (entries.length > maxEntries) return bad(name, `an object of ≤ ${maxEntries} entries`, v);
    const out: Record<string, string> = {};
    for (const [k, x] of entries) out[k] = str(maxValueLength)(x, `${name}.${k}`);
    return out;
  };
}

/** Nested object validated by its own schema. */
export function object<S extends Schema>(schema: S): Field<Infer<S>> {
  return (v, name) => {
    if (!isPlainObject(v)) return bad(name, "an object", v);
    return pick(schema, v, `${name}.`);
  };
}

/** Copies only the schema's fields (unknown fields are dropped, so peers may add fields). */
export function pick<S extends Schema>(
  schema: S,
  v: Record<string, unknown>,
  prefix = "",
): Infer<S> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema)) {
    const value = field(v[key], prefix + key);
    if (value !== undefined) out[key] = value;
  }
  return out as Infer<S>;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Identifiers (agent ids, key ids, channel ids): no separators that could confuse a transcript. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,80}$/;
/** base64url without padding. */
export const B64URL_PATTERN = /^[A-Za-z0-9_-]+$/;
