/**
 * A virtual key's routing policy, parsed from the key's stored `policy` JSON. Parsing is strict
 * (unknown fields are errors, so a typo such as `minGrad` is caught at the admin API rather than
 * silently routing with defaults) and every error is a `TypeError` whose message the admin API
 * can show as is.
 *
 * Whatever the policy, `select` also filters by vendor, model and channel health.
 * @module
 */
import { type Grade, GRADES } from "./grades.ts";

/** Only these agents' channels, or only these `"agentId/channelId"` channels (either matches). */
export interface PinnedPolicy {
  type: "pinned";
  readonly agents: readonly string[];
  readonly channels: readonly string[];
}

/** Any channel graded `minGrade` or better, ranked by the auto score. */
export interface GradePolicy {
  type: "grade";
  minGrade: Grade;
}

/** Every channel, ranked by the auto score (the default). */
export interface AutoPolicy {
  type: "auto";
}

/** The lowest payout ratio first (optionally only `minGrade` or better), then the auto score. */
export interface CheapestPolicy {
  type: "cheapest";
  minGrade: Grade | null;
}

/** A parsed, normalised routing policy. */
export type Policy = PinnedPolicy | GradePolicy | AutoPolicy | CheapestPolicy;

/** The policy type names. */
export type PolicyType = Policy["type"];

/** The policy a key without one gets. */
export const DEFAULT_POLICY: AutoPolicy = Object.freeze({ type: "auto" }) as AutoPolicy;

/** Bounds that keep a stored policy small enough to evaluate on every request. */
export const POLICY_LIST_MAX = 1000;
const ID_MAX = 200;

const FIELDS: Readonly<Record<PolicyType, readonly string[]>> = {
  pinned: ["type", "agents", "channels"],
  grade: ["type", "minGrade"],
  auto: ["type"],
  cheapest: ["type", "minGrade"],
};

/**
 * Parses a key's policy: the stored JSON value (or its JSON text). `null`/`undefined` means
 * `{type:"auto"}`. Throws `TypeError` with an admin-facing message for anything invalid.
 */
export function parsePolicy(input: unknown): Policy {
  let value = input;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      throw new TypeError("Invalid routing policy: not valid JSON");
    }
  }
  if (value === null || value === undefined) return DEFAULT_POLICY;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError('Invalid routing policy: expected an object such as {"type":"auto"}');
  }
  const obj = value as Record<string, unknown>;
  const type = obj.type;
  if (typeof type !== "string" || !Object.hasOwn(FIELDS, type)) {
    throw new TypeError(
      `Invalid routing policy: "type" must be one of ${Object.keys(FIELDS).join(", ")}`,
    );
  }
  const t = type as PolicyType;
  for (const key of Object.keys(obj)) {
    if (!FIELDS[t].includes(key)) {
      throw new TypeError(
        `Invalid routing policy: unknown field "${key.slice(0, 40)}" for type "${t}" ` +
          `(allowed: ${FIELDS[t].join(", ")})`,
      );
    }
  }
  switch (t) {
    case "auto":
      return DEFAULT_POLICY;
    case "grade": {
      if (obj.minGrade === undefined) {
        throw new TypeError('Invalid routing policy: type "grade" needs "minGrade"');
      }
      return { type: "grade", minGrade: parseGrade(obj.minGrade) };
    }
    case "cheapest":
      return {
        type: "cheapest",
        minGrade: obj.minGrade === undefined || obj.minGrade === null
          ? null
          : parseGrade(obj.minGrade),
      };
    case "pinned": {
      const agents = parseIdList(obj.agents, "agents");
      const channels = parseIdList(obj.channels, "channels");
      for (const ch of channels) {
        const slash = ch.indexOf("/");
        if (slash <= 0 || slash === ch.length - 1 || ch.indexOf("/", slash + 1) !== -1) {
          throw new TypeError(
            `Invalid routing policy: channel "${ch.slice(0, 60)}" must be "agentId/channelId"`,
          );
        }
      }
      if (agents.length === 0 && channels.length === 0) {
        throw new TypeError(
          'Invalid routing policy: type "pinned" needs at least one entry in "agents" or "channels"',
        );
      }
      // Frozen: select caches lookups per policy object, so it must not change after parsing.
      return Object.freeze({
        type: "pinned",
        agents: Object.freeze(agents),
        channels: Object.freeze(channels),
      });
    }
  }
}

function parseGrade(value: unknown): Grade {
  if (typeof value !== "string" || !(GRADES as readonly string[]).includes(value)) {
    throw new TypeError(
      `Invalid routing policy: "minGrade" must be one of ${GRADES.join(", ")} (S is best)`,
    );
  }
  return value as Grade;
}

function parseIdList(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`Invalid routing policy: "${field}" must be an array of strings`);
  }
  if (value.length > POLICY_LIST_MAX) {
    throw new TypeError(
      `Invalid routing policy: "${field}" has ${value.length} entries; at most ${POLICY_LIST_MAX}`,
    );
  }
  for (const item of value) {
    if (typeof item !== "string" || item.length === 0 || item.length > ID_MAX) {
      throw new TypeError(
        `Invalid routing policy: every entry of "${field}" must be a non-empty string of at ` +
          `most ${ID_MAX} characters`,
      );
    }
  }
  return [...new Set(value as string[])]; // duplicates are harmless; drop them once here
}
