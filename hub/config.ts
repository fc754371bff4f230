/**
 * Hub configuration, read once at start-up from the environment (and optionally a JSON file named
 * by HUB_CONFIG holding the same keys). Every problem is reported before the hub listens.
 */
import { checkHeartbeatTiming, type HeartbeatTiming, LIMITS } from "../protocol/limits.ts";
import { type LogLevel, parseLogLevel } from "../runtime/log.ts";
import { EGRESS_DEFAULTS, type EgressOptions } from "./tunnel/egress.ts";

export interface HubConfig {
  listen: { hostname: string; port: number };
  /** A second, HTTP/2-only listener for the AWS SDK's default transport (hub/h2_listener.ts). */
  h2Listen?: { hostname: string; port: number };
  db: string;
  redis?: string;
  /** Unset → the admin API answers 503. */
  adminToken?: string;
  identityKeyPath: string;
  /**
   * Seals the hub-issued AWS secret access keys at rest (32 bytes, hex or base64); unset → a key
   * derived from the hub identity. See hub/gateway/sigv4_credentials.ts.
   */
  credentialsKey?: string;
  tls?: { certPath: string; keyPath: string };
  timing: HeartbeatTiming;
  gateway: { maxRequestBytes: number; streamIdleTimeoutMs: number; replayBytesMax: number };
  limits: { failMode: "local" | "open" | "closed"; localScale: number };
  breakerCooldownMs: number;
  egress: EgressOptions;
  moderation: {
    /** Raw keyword list (comma-separated or JSON array); parsed by the keyword moderator. */
    keywords?: string;
    /** A moderation model to ask through an agent (e.g. omni-moderation-latest). */
    model?: string;
    failOpen: boolean;
  };
  billing: {
    /**
     * A request for a model the price table does not know: `allow` serves it without a hold,
     * charge or ledger entry (a warning is logged once per model); `refuse` answers 400
     * "no price for model X" before dispatch.
     */
    unpriced: "allow" | "refuse";
  };
  /** Ledger sync with agents (hub/billing/ledger_sync.ts). */
  ledgerSync: {
    /** How often every connected agent is asked to compare chain heads (they also do at connect). */
    reconcileIntervalMs: number;
  };
  logLevel: LogLevel;
}

const KEYS = [
  "HUB_LISTEN",
  "HUB_H2_LISTEN",
  "HUB_DB",
  "HUB_REDIS",
  "HUB_ADMIN_TOKEN",
  "HUB_CREDENTIALS_KEY",
  "HUB_IDENTITY_KEY",
  "HUB_TLS_CERT",
  "HUB_TLS_KEY",
  "HUB_PING_INTERVAL_MS",
  "HUB_PEER_DEAD_AFTER_MS",
  "HUB_MAX_REQUEST_BYTES",
  "HUB_REPLAY_BYTES_MAX",
  "HUB_LIMITS_FAIL_MODE",
  "HUB_LIMITS_LOCAL_SCALE",
  "HUB_BREAKER_COOLDOWN_MS",
  "HUB_EGRESS_ACCOUNTS_MAX",
  "HUB_EGRESS_PROBE_INTERVAL_MS",
  "HUB_STREAM_IDLE_TIMEOUT_MS",
  "HUB_MODERATION_KEYWORDS",
  "HUB_MODERATION_MODEL",
  "HUB_MODERATION_FAIL_OPEN",
  "HUB_UNPRICED_MODELS",
  "HUB_RECONCILE_INTERVAL_MS",
  "LOG_LEVEL",
] as const;
type Key = typeof KEYS[number];
export type ConfigSource = Partial<Record<Key, string>>;

/** Reads HUB_CONFIG (if set) and the environment; the environment wins. */
export function configSourceFromEnv(): ConfigSource {
  const source: ConfigSource = {};
  const file = Deno.env.get("HUB_CONFIG");
  if (file) {
    const parsed: unknown = JSON.parse(Deno.readTextFileSync(file));
    if (typeof parsed !== "object" || parsed === null) {
      throw new TypeError(`${file}: not a JSON object`);
    }
    for (const key of KEYS) {
      const v = (parsed as Record<string, unknown>)[key];
      if (v !== undefined) source[key] = String(v);
    }
  }
  for (const key of KEYS) {
    const v = Deno.env.get(key);
    if (v !== undefined && v !== "") source[key] = v;
  }
  return source;
}

export function parseHubConfig(src: ConfigSource): HubConfig {
  const adminToken = src.HUB_ADMIN_TOKEN;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new RangeError("Invalid HUB_ADMIN_TOKEN: use at least 16 characters");
  }
  if (Boolean(src.HUB_TLS_CERT) !== Boolean(src.HUB_TLS_KEY)) {
    throw new TypeError("Invalid TLS config: set both HUB_TLS_CERT and HUB_TLS_KEY, or neither");
  }
  if (src.HUB_REDIS && !/^rediss?:\/\//.test(src.HUB_REDIS)) {
    throw new TypeError("Invalid HUB_REDIS: expected redis://host:port");
  }
  return {
    listen: parseListen(src.HUB_LISTEN ?? "0.0.0.0:8080"),
    ...(src.HUB_H2_LISTEN ? { h2Listen: parseListen(src.HUB_H2_LISTEN) } : {}),
    db: src.HUB_DB ?? "sqlite:./data/hub.db",
    redis: src.HUB_REDIS,
    adminToken,
    identityKeyPath: src.HUB_IDENTITY_KEY ?? "./data/hub.key",
    ...(src.HUB_CREDENTIALS_KEY ? { credentialsKey: src.HUB_CREDENTIALS_KEY } : {}),
    tls: src.HUB_TLS_CERT ? { certPath: src.HUB_TLS_CERT, keyPath: src.HUB_TLS_KEY! } : undefined,
    timing: checkHeartbeatTiming({
      pingIntervalMs: intOr(
        src.HUB_PING_INTERVAL_MS,
        "HUB_PING_INTERVAL_MS",
        LIMITS.pingIntervalMs,
      ),
      peerDeadAfterMs: intOr(
        src.HUB_PEER_DEAD_AFTER_MS,
        "HUB_PEER_DEAD_AFTER_MS",
        LIMITS.peerDeadAfterMs,
      ),
    }),
    gateway: {
      maxRequestBytes: intOr(src.HUB_MAX_REQUEST_BYTES, "HUB_MAX_REQUEST_BYTES", 64 * 1024 * 1024),
      streamIdleTimeoutMs: intOr(
        src.HUB_STREAM_IDLE_TIMEOUT_MS,
        "HUB_STREAM_IDLE_TIMEOUT_MS",
        300_000,
      ),
      replayBytesMax: intOr(src.HUB_REPLAY_BYTES_MAX, "HUB_REPLAY_BYTES_MAX", 8 * 1024 * 1024),
    },
    limits: {
      failMode: parseFailMode(src.HUB_LIMITS_FAIL_MODE),
      localScale: parseScale(src.HUB_LIMITS_LOCAL_SCALE),
    },
    breakerCooldownMs: intOr(src.HUB_BREAKER_COOLDOWN_MS, "HUB_BREAKER_COOLDOWN_MS", 30_000),
    egress: {
      ...EGRESS_DEFAULTS,
      accountsPerIpMax: intOr(
        src.HUB_EGRESS_ACCOUNTS_MAX,
        "HUB_EGRESS_ACCOUNTS_MAX",
        EGRESS_DEFAULTS.accountsPerIpMax,
      ),
      probeIntervalMs: intOr(
        src.HUB_EGRESS_PROBE_INTERVAL_MS,
        "HUB_EGRESS_PROBE_INTERVAL_MS",
        EGRESS_DEFAULTS.probeIntervalMs,
      ),
    },
    moderation: {
      keywords: src.HUB_MODERATION_KEYWORDS,
      model: src.HUB_MODERATION_MODEL,
      failOpen: src.HUB_MODERATION_FAIL_OPEN === "true",
    },
    billing: { unpriced: parseUnpriced(src.HUB_UNPRICED_MODELS) },
    ledgerSync: {
      reconcileIntervalMs: intOr(
        src.HUB_RECONCILE_INTERVAL_MS,
        "HUB_RECONCILE_INTERVAL_MS",
        10 * 60_000,
      ),
    },
    logLevel: parseLogLevel(src.LOG_LEVEL),
  };
}

/** `host:port`, `[v6]:port` or `:port`. */
export function parseListen(value: string): { hostname: string; port: number } {
  const m = value.match(/^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new TypeError(`Invalid HUB_LISTEN "${value}": expected host:port`);
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}

function intOr(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new RangeError(`Invalid ${name} "${value}": expected a positive integer`);
  }
  return n;
}

function parseFailMode(value: string | undefined): "local" | "open" | "closed" {
  if (value === undefined || value === "local" || value === "open" || value === "closed") {
    return value ?? "local";
  }
  throw new TypeError(`Invalid HUB_LIMITS_FAIL_MODE "${value}": expected local, open or closed`);
}

/** Share of each limit a hub enforces alone while Redis is down (e.g. 0.5 for two hubs). */
function parseScale(value: string | undefined): number {
  if (value === undefined) return 1;
  const n = Number(value);
  if (!(n > 0 && n <= 1)) {
    throw new RangeError(`Invalid HUB_LIMITS_LOCAL_SCALE "${value}": expected (0, 1]`);
  }
  return n;
}

function parseUnpriced(value: string | undefined): "allow" | "refuse" {
  if (value === undefined || value === "allow" || value === "refuse") return value ?? "allow";
  throw new TypeError(`Invalid HUB_UNPRICED_MODELS "${value}": expected allow or refuse`);
}
