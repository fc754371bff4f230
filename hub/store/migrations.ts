/**
 * The hub schema, as an ordered list of migrations with one SQL dialect per engine.
 *
 * Rules for adding one (append only; never edit a migration that has shipped):
 * - The next `version` is the last one + 1; a test checks the order.
 * - Column conventions, shared by every table: ids `VARCHAR(40)` (`TEXT` in SQLite), times
 *   `BIGINT` epoch milliseconds named `*_at_ms`, money `DECIMAL(38,12)` read and written as
 *   decimal strings (`TEXT` in SQLite holding the canonical `formatUsd` form, never REAL or
 *   INTEGER: 10^26 USD in picodollars overflows SQLite's 64-bit integers), JSON as text
 *   parsed by the store.
 * - MySQL/MariaDB commits DDL implicitly, so a MySQL migration cannot roll back halfway.
 *   Write its statements so that re-running them after a crash is harmless
 *   (`CREATE TABLE IF NOT EXISTS`, indexes declared inside the `CREATE TABLE`). MySQL has no
 *   `ADD COLUMN IF NOT EXISTS` (only MariaDB does): add a column with `mysqlAddColumn`, which
 *   checks `information_schema` first.
 * - SQLite migrations run in one transaction with their bookkeeping row, so plain
 *   `ALTER TABLE … ADD COLUMN` is safe there.
 * - MySQL tables use `utf8mb4_bin`: ids and base64url keys are case-sensitive, and binary
 *   comparison matches SQLite's default, so both engines sort and compare alike.
 */
export interface Migration {
  version: number;
  name: string;
  sqlite: string[];
  mysql: string[];
}

/** Appended to every MySQL `CREATE TABLE`. */
const MYSQL_TABLE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/**
 * The usage-count columns migration 3 creates: a frozen copy, NOT derived from `USAGE_FIELDS`,
 * because a shipped migration must never change. A new usage field gets a new migration
 * (`ALTER TABLE usage_records ADD COLUMN … BIGINT NOT NULL DEFAULT 0`); the store's column
 * list (`_usage.ts`) follows `USAGE_FIELDS` by itself.
 */
const V3_USAGE_COUNTS = [
  "input_tokens",
  "cached_input_tokens",
  "cache_write_5m_tokens",
  "cache_write_1h_tokens",
  "output_tokens",
  "reasoning_tokens",
  "audio_input_tokens",
  "audio_output_tokens",
  "image_input_tokens",
  "image_output_tokens",
  "audio_seconds",
];
const v3Counts = (type: string) =>
  V3_USAGE_COUNTS.map((c) => `${c} ${type} NOT NULL DEFAULT 0,`).join("\n");

/**
 * MySQL statements adding `column` to `table` unless it already exists, so that re-running a
 * migration after a crash between its `ALTER` and its bookkeeping row is harmless. The check
 * and the `ALTER` run as a prepared statement on the migrating connection (one statement per
 * `query`: the pool does not allow multiple statements). Shipped migrations depend on this
 * exact output: never change it, write a new helper instead.
 */
function mysqlAddColumn(table: string, column: string, definition: string): string[] {
  const alter = `ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`.replaceAll("'", "''");
  return [
    `SET @aq_migration_ddl = (
      SELECT IF(COUNT(*) = 0, '${alter}', 'DO 0')
      FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}' AND COLUMN_NAME = '${column}'
    )`,
    "PREPARE aq_migration_ddl FROM @aq_migration_ddl",
    "EXECUTE aq_migration_ddl",
    "DEALLOCATE PREPARE aq_migration_ddl",
  ];
}

/**
 * MySQL statements adding index `name` on `columns` to `table` unless it exists (MySQL has no
 * `CREATE INDEX IF NOT EXISTS`), like `mysqlAddColumn`. Migration 7 depends on this exact
 * output: never change it.
 */
function mysqlAddIndexV7(table: string, name: string, columns: string): string[] {
  const ddl = `CREATE INDEX ${name} ON ${table} (${columns})`;
  return [
    `SET @aq_migration_ddl = (
      SELECT IF(COUNT(*) = 0, '${ddl}', 'DO 0')
      FROM information_schema.STATISTICS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}' AND INDEX_NAME = '${name}'
    )`,
    "PREPARE aq_migration_ddl FROM @aq_migration_ddl",
    "EXECUTE aq_migration_ddl",
    "DEALLOCATE PREPARE aq_migration_ddl",
  ];
}

/** Every migration, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "agents",
    sqlite: [
      `CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        public_key TEXT NOT NULL,
        key_id TEXT NOT NULL,
        tier INTEGER NOT NULL CHECK (tier IN (0, 1, 2)),
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        created_at_ms INTEGER NOT NULL,
        last_seen_at_ms INTEGER,
        capabilities TEXT,
        CONSTRAINT agents_public_key UNIQUE (public_key)
      ) STRICT`,
      "CREATE INDEX agents_created ON agents (created_at_ms, id)",
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS agents (
        id VARCHAR(40) NOT NULL PRIMARY KEY,
        name VARCHAR(200) NOT NULL,
        public_key VARCHAR(200) NOT NULL,
        key_id VARCHAR(100) NOT NULL,
        tier TINYINT NOT NULL CHECK (tier IN (0, 1, 2)),
        disabled TINYINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        created_at_ms BIGINT NOT NULL,
        last_seen_at_ms BIGINT NULL,
        capabilities MEDIUMTEXT NULL,
        UNIQUE KEY agents_public_key (public_key),
        KEY agents_created (created_at_ms, id)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    // Users hold the prepaid balance; virtual keys are what clients send. Only SHA-256 of a
    // key's secret is stored. `aws_access_key_id` is reserved (NULL) for Bedrock-style
    // credentials, so adding them later needs no change to a UNIQUE column.
    version: 2,
    name: "users and virtual keys",
    sqlite: [
      `CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        balance TEXT NOT NULL CHECK (balance NOT LIKE '-%'),
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        created_at_ms INTEGER NOT NULL
      ) STRICT`,
      `CREATE TABLE virtual_keys (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id),
        secret_hash TEXT NOT NULL,
        prefix TEXT NOT NULL,
        zone TEXT NOT NULL,
        policy TEXT,
        limits TEXT,
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER,
        aws_access_key_id TEXT,
        CONSTRAINT virtual_keys_secret_hash UNIQUE (secret_hash),
        CONSTRAINT virtual_keys_aws_access_key_id UNIQUE (aws_access_key_id)
      ) STRICT`,
      "CREATE INDEX virtual_keys_user ON virtual_keys (user_id, created_at_ms, id)",
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS users (
        id VARCHAR(40) NOT NULL PRIMARY KEY,
        name VARCHAR(200) NOT NULL,
        balance DECIMAL(38,12) NOT NULL CHECK (balance >= 0),
        disabled TINYINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        created_at_ms BIGINT NOT NULL
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS virtual_keys (
        id VARCHAR(40) NOT NULL PRIMARY KEY,
        user_id VARCHAR(40) NOT NULL,
        secret_hash CHAR(64) NOT NULL,
        prefix VARCHAR(16) NOT NULL,
        zone VARCHAR(64) NOT NULL,
        policy MEDIUMTEXT NULL,
        limits MEDIUMTEXT NULL,
        disabled TINYINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NULL,
        aws_access_key_id VARCHAR(40) NULL,
        UNIQUE KEY virtual_keys_secret_hash (secret_hash),
        UNIQUE KEY virtual_keys_aws_access_key_id (aws_access_key_id),
        KEY virtual_keys_user (user_id, created_at_ms, id),
        CONSTRAINT virtual_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    // One row per finished request, written once by the gateway and read by billing.
    // Idempotent by request id; never holds a request or response body.
    version: 3,
    name: "usage records",
    sqlite: [
      `CREATE TABLE usage_records (
        request_id TEXT NOT NULL PRIMARY KEY,
        key_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        channel_id TEXT,
        vendor TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        service_tier TEXT,
        completed_at_ms INTEGER NOT NULL,
        ${v3Counts("INTEGER").replace(/,$/, "")}
      ) STRICT`,
      "CREATE INDEX usage_records_key ON usage_records (key_id, completed_at_ms)",
      "CREATE INDEX usage_records_user ON usage_records (user_id, completed_at_ms)",
      "CREATE INDEX usage_records_agent ON usage_records (agent_id, completed_at_ms)",
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS usage_records (
        request_id VARCHAR(128) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
        key_id VARCHAR(40) NOT NULL,
        user_id VARCHAR(40) NOT NULL,
        agent_id VARCHAR(40) NOT NULL,
        channel_id VARCHAR(80) NULL,
        vendor VARCHAR(40) NOT NULL,
        model VARCHAR(200) NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        service_tier VARCHAR(64) NULL,
        completed_at_ms BIGINT NOT NULL,
        ${v3Counts("BIGINT")}
        KEY usage_records_key (key_id, completed_at_ms),
        KEY usage_records_user (user_id, completed_at_ms),
        KEY usage_records_agent (agent_id, completed_at_ms)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    // Per-user limits ({rpm?, tpm?, concurrency?} as JSON text, like a key's), shared by all
    // of the user's keys. NULL: no user-wide limit. Existing users get NULL.
    version: 4,
    name: "user limits",
    sqlite: ["ALTER TABLE users ADD COLUMN limits TEXT"],
    mysql: mysqlAddColumn("users", "limits", "MEDIUMTEXT NULL"),
  },
  {
    // Billing (see _billing.ts). `reservations`: money moved out of `users.balance` while a
    // request runs ("held"), then "settled" or "released". `ledger_entries`: each agent's gapless
    // hash chain (protocol/chain.ts), amounts kept as the exact text that was hashed.
    // `ledger_heads`: each chain's last seq/hash and running totals. `postings`: double entry,
    // three signed rows per settled request (user −charge, agent +payout, platform margin)
    // summing to zero.
    version: 5,
    name: "billing: reservations, ledger, postings",
    sqlite: [
      `CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id),
        amount TEXT NOT NULL CHECK (amount NOT LIKE '-%'),
        status TEXT NOT NULL CHECK (status IN ('held', 'settled', 'released')),
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        closed_at_ms INTEGER,
        request_id TEXT
      ) STRICT`,
      "CREATE INDEX reservations_expiry ON reservations (status, expires_at_ms)",
      "CREATE INDEX reservations_user ON reservations (user_id, status)",
      `CREATE TABLE ledger_entries (
        agent_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        vendor TEXT NOT NULL,
        model TEXT NOT NULL,
        usage_json TEXT NOT NULL,
        price_version INTEGER NOT NULL,
        official TEXT NOT NULL,
        user_charge TEXT NOT NULL,
        agent_payout TEXT NOT NULL,
        completed_at_ms INTEGER NOT NULL,
        settled_at_ms INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (agent_id, seq),
        CONSTRAINT ledger_entries_request_id UNIQUE (request_id)
      ) STRICT`,
      `CREATE TABLE ledger_heads (
        agent_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        official TEXT NOT NULL,
        user_charge TEXT NOT NULL,
        agent_payout TEXT NOT NULL
      ) STRICT`,
      `CREATE TABLE postings (
        request_id TEXT NOT NULL,
        account TEXT NOT NULL CHECK (account IN ('user', 'agent', 'platform')),
        account_id TEXT NOT NULL,
        amount TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (request_id, account)
      ) STRICT`,
      "CREATE INDEX postings_account ON postings (account, account_id)",
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS reservations (
        id VARCHAR(128) NOT NULL PRIMARY KEY,
        user_id VARCHAR(40) NOT NULL,
        amount DECIMAL(38,12) NOT NULL CHECK (amount >= 0),
        status VARCHAR(16) NOT NULL CHECK (status IN ('held', 'settled', 'released')),
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        closed_at_ms BIGINT NULL,
        request_id VARCHAR(128) NULL,
        KEY reservations_expiry (status, expires_at_ms),
        KEY reservations_user (user_id, status),
        CONSTRAINT reservations_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS ledger_entries (
        agent_id VARCHAR(40) NOT NULL,
        seq BIGINT NOT NULL,
        request_id VARCHAR(128) NOT NULL,
        reservation_id VARCHAR(128) NOT NULL,
        vendor VARCHAR(40) NOT NULL,
        model VARCHAR(200) NOT NULL,
        usage_json TEXT NOT NULL,
        price_version BIGINT NOT NULL,
        official VARCHAR(64) NOT NULL,
        user_charge VARCHAR(64) NOT NULL,
        agent_payout VARCHAR(64) NOT NULL,
        completed_at_ms BIGINT NOT NULL,
        settled_at_ms BIGINT NOT NULL,
        prev_hash CHAR(64) NOT NULL,
        hash CHAR(64) NOT NULL,
        PRIMARY KEY (agent_id, seq),
        UNIQUE KEY ledger_entries_request_id (request_id)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS ledger_heads (
        agent_id VARCHAR(40) NOT NULL PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash CHAR(64) NOT NULL,
        official DECIMAL(38,12) NOT NULL,
        user_charge DECIMAL(38,12) NOT NULL,
        agent_payout DECIMAL(38,12) NOT NULL
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS postings (
        request_id VARCHAR(128) NOT NULL,
        account VARCHAR(16) NOT NULL CHECK (account IN ('user', 'agent', 'platform')),
        account_id VARCHAR(40) NOT NULL,
        amount DECIMAL(38,12) NOT NULL,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (request_id, account),
        KEY postings_account (account, account_id)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    // Published price tables (hub/billing/prices.ts), insert only: `canonical` is the table's
    // canonical JSON (protocol/price_versions.ts) and `sha256` its hash, checked on every read.
    version: 6,
    name: "price versions",
    sqlite: [
      `CREATE TABLE price_versions (
        version INTEGER PRIMARY KEY CHECK (version >= 1),
        published_at_ms INTEGER NOT NULL,
        canonical TEXT NOT NULL,
        sha256 TEXT NOT NULL
      ) STRICT`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS price_versions (
        version BIGINT NOT NULL PRIMARY KEY CHECK (version >= 1),
        published_at_ms BIGINT NOT NULL,
        canonical MEDIUMTEXT NOT NULL,
        sha256 CHAR(64) NOT NULL
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    // Per-key spend caps (see _key_spend.ts). `budget` (lifetime), `daily_cap`, `monthly_cap`:
    // NULL = no cap. The key's spend counters live on its row, so a hold locks ONE row to check
    // and count: `spent_total`, and `spent_day`/`spent_month` for the UTC day/month of
    // `spent_at_ms` (the latest admission; a newer period starts them at 0). A reservation made
    // with a key records it (`key_id`) and the instant its hold was counted at
    // (`key_spent_at_ms`), so settle/release correct the same period. `credits`: one row per
    // admin top-up, keyed by the caller's idempotency key, so a retried top-up credits once.
    version: 7,
    name: "key spend caps, top-up journal",
    sqlite: [
      "ALTER TABLE virtual_keys ADD COLUMN budget TEXT",
      "ALTER TABLE virtual_keys ADD COLUMN daily_cap TEXT",
      "ALTER TABLE virtual_keys ADD COLUMN monthly_cap TEXT",
      "ALTER TABLE virtual_keys ADD COLUMN spent_total TEXT NOT NULL DEFAULT '0.00'",
      "ALTER TABLE virtual_keys ADD COLUMN spent_day TEXT NOT NULL DEFAULT '0.00'",
      "ALTER TABLE virtual_keys ADD COLUMN spent_month TEXT NOT NULL DEFAULT '0.00'",
      "ALTER TABLE virtual_keys ADD COLUMN spent_at_ms INTEGER NOT NULL DEFAULT 0",
      "ALTER TABLE reservations ADD COLUMN key_id TEXT",
      "ALTER TABLE reservations ADD COLUMN key_spent_at_ms INTEGER",
      "CREATE INDEX reservations_key ON reservations (key_id, status)",
      `CREATE TABLE credits (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id),
        amount TEXT NOT NULL,
        balance_after TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
      ) STRICT`,
      "CREATE INDEX credits_user ON credits (user_id, created_at_ms)",
    ],
    mysql: [
      ...mysqlAddColumn("virtual_keys", "budget", "DECIMAL(38,12) NULL"),
      ...mysqlAddColumn("virtual_keys", "daily_cap", "DECIMAL(38,12) NULL"),
      ...mysqlAddColumn("virtual_keys", "monthly_cap", "DECIMAL(38,12) NULL"),
      ...mysqlAddColumn("virtual_keys", "spent_total", "DECIMAL(38,12) NOT NULL DEFAULT 0"),
      ...mysqlAddColumn("virtual_keys", "spent_day", "DECIMAL(38,12) NOT NULL DEFAULT 0"),
      ...mysqlAddColumn("virtual_keys", "spent_month", "DECIMAL(38,12) NOT NULL DEFAULT 0"),
      ...mysqlAddColumn("virtual_keys", "spent_at_ms", "BIGINT NOT NULL DEFAULT 0"),
      ...mysqlAddColumn("reservations", "key_id", "VARCHAR(40) NULL"),
      ...mysqlAddColumn("reservations", "key_spent_at_ms", "BIGINT NULL"),
      ...mysqlAddIndexV7("reservations", "reservations_key", "key_id, status"),
      `CREATE TABLE IF NOT EXISTS credits (
        id VARCHAR(128) NOT NULL PRIMARY KEY,
        user_id VARCHAR(40) NOT NULL,
        amount DECIMAL(38,12) NOT NULL,
        balance_after DECIMAL(38,12) NOT NULL,
        created_at_ms BIGINT NOT NULL,
        KEY credits_user (user_id, created_at_ms),
        CONSTRAINT credits_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    version: 8,
    name: "ledger sync: dispatch records, claims, checkpoints, divergences",
    // ledger_dispatches: which agents a request went to (one row per agent attempted), and for
    // the one whose response reached the client, when, with the pricing inputs (zone multiplier,
    // payout ratio) its SETTLED carried, so a catch-up can resend it and a CLAIM can be judged.
    sqlite: [
      `CREATE TABLE ledger_dispatches (
        request_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        vendor TEXT NOT NULL,
        model TEXT NOT NULL,
        zone TEXT NOT NULL,
        dispatched_at_ms INTEGER NOT NULL,
        delivered_at_ms INTEGER,
        zone_multiplier TEXT,
        payout_ratio TEXT,
        PRIMARY KEY (request_id, agent_id)
      ) STRICT`,
      `CREATE TABLE ledger_claims (
        request_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('settled', 'rejected')),
        reason TEXT NOT NULL,
        seq INTEGER,
        usage_json TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
      ) STRICT`,
      "CREATE INDEX ledger_claims_agent ON ledger_claims (agent_id, created_at_ms)",
      `CREATE TABLE ledger_checkpoints (
        agent_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        official TEXT NOT NULL,
        user_charge TEXT NOT NULL,
        agent_payout TEXT NOT NULL,
        note TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (agent_id, seq)
      ) STRICT`,
      `CREATE TABLE ledger_divergences (
        agent_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        hub_hash TEXT,
        agent_hash TEXT,
        detected_at_ms INTEGER NOT NULL,
        PRIMARY KEY (agent_id, seq, kind)
      ) STRICT`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS ledger_dispatches (
        request_id VARCHAR(128) NOT NULL,
        agent_id VARCHAR(40) NOT NULL,
        vendor VARCHAR(40) NOT NULL,
        model VARCHAR(200) NOT NULL,
        zone VARCHAR(64) NOT NULL,
        dispatched_at_ms BIGINT NOT NULL,
        delivered_at_ms BIGINT NULL,
        zone_multiplier VARCHAR(40) NULL,
        payout_ratio VARCHAR(40) NULL,
        PRIMARY KEY (request_id, agent_id)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS ledger_claims (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        request_id VARCHAR(128) NOT NULL,
        agent_id VARCHAR(40) NOT NULL,
        outcome VARCHAR(16) NOT NULL CHECK (outcome IN ('settled', 'rejected')),
        reason VARCHAR(500) NOT NULL,
        seq BIGINT NULL,
        usage_json TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        KEY ledger_claims_agent (agent_id, created_at_ms)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS ledger_checkpoints (
        agent_id VARCHAR(40) NOT NULL,
        seq BIGINT NOT NULL,
        hash CHAR(64) NOT NULL,
        official VARCHAR(64) NOT NULL,
        user_charge VARCHAR(64) NOT NULL,
        agent_payout VARCHAR(64) NOT NULL,
        note TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (agent_id, seq)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS ledger_divergences (
        agent_id VARCHAR(40) NOT NULL,
        seq BIGINT NOT NULL,
        kind VARCHAR(40) NOT NULL,
        detail VARCHAR(500) NOT NULL,
        hub_hash CHAR(64) NULL,
        agent_hash CHAR(64) NULL,
        detected_at_ms BIGINT NOT NULL,
        PRIMARY KEY (agent_id, seq, kind)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    // Hub-issued AWS access keys (Bedrock SigV4 clients): the secret is kept sealed (AES-256-GCM,
    // hub/gateway/sigv4_credentials.ts) because verifying a signature needs the secret itself.
    version: 9,
    name: "bedrock credentials",
    sqlite: [
      `CREATE TABLE aws_credentials (
        access_key_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES virtual_keys (id),
        secret_sealed TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
      ) STRICT`,
      "CREATE INDEX aws_credentials_key ON aws_credentials (key_id)",
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS aws_credentials (
        access_key_id VARCHAR(128) NOT NULL PRIMARY KEY,
        key_id VARCHAR(40) NOT NULL,
        secret_sealed VARCHAR(255) NOT NULL,
        created_at_ms BIGINT NOT NULL,
        KEY aws_credentials_key (key_id),
        CONSTRAINT aws_credentials_key_fk FOREIGN KEY (key_id) REFERENCES virtual_keys (id)
      ) ${MYSQL_TABLE}`,
    ],
  },
];

/** The version a fully migrated database reports. */
export const LATEST_VERSION: number = MIGRATIONS.at(-1)?.version ?? 0;

/** The bookkeeping table, created before any migration runs. */
export const SCHEMA_MIGRATIONS_DDL = {
  sqlite: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at_ms INTEGER NOT NULL
  ) STRICT`,
  mysql: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    applied_at_ms BIGINT NOT NULL
  ) ${MYSQL_TABLE}`,
} as const;

/** Migrations newer than `current`, in the order they must run. */
export function pendingMigrations(current: number): Migration[] {
  return MIGRATIONS.filter((m) => m.version > current);
}
