/**
 * The hub schema, as an ordered list of migrations with one SQL dialect per engine.
 *
 * Rules for adding one (append only; never edit a migration that has shipped):
 * - The next `version` is the last one + 1; a test checks the order.
 * - Column conventions, shared by every table: ids `VARCHAR(40)` (`TEXT` in SQLite), times
 *   `BIGINT` epoch milliseconds named `*_at_ms`, money `DECIMAL(38,12)` read and written as
 *   decimal strings (`TEXT` in SQLite, never REAL), JSON as text parsed by the store.
 * - MySQL/MariaDB commits DDL implicitly, so a MySQL migration cannot roll back halfway.
 *   Write its statements so that re-running them after a crash is harmless
 *   (`CREATE TABLE IF NOT EXISTS`, indexes declared inside the `CREATE TABLE`).
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
