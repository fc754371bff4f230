// Test-only: the backends the conformance suite runs against, each able to hand out a fresh,
// empty database per test case so cases never see each other's rows.
import mysql from "mysql2/promise";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { randomHex } from "./_rows.ts";
import { type HubStore, openStore, redactDsn } from "./mod.ts";

/** One fresh database and the ways to open stores on it. */
export interface Target {
  /** The SQL dialect of the database (`Migration.sqlite` or `Migration.mysql`). */
  engine: HubStore["kind"];
  open(): Promise<HubStore>;
  /**
   * Runs raw statements on the database, bypassing the store (to build an older schema).
   * Persistent backends only: on `sqlite::memory:` nothing could open the result.
   */
  exec(statements: readonly string[]): Promise<void>;
  /** Starts `n` stores on this database at the same moment; resolves to their schema versions. */
  openConcurrently(n: number): Promise<number[]>;
  dispose(): Promise<void>;
}

/** One behaviour every HubStore must show; run on a fresh database per backend. */
export interface Case {
  name: string;
  /** Needs a database that outlives one store instance (not `sqlite::memory:`). */
  persistentOnly?: boolean;
  /** Runs on this engine only: behaviour the other engine cannot even reach. */
  engineOnly?: HubStore["kind"];
  run(target: Target): Promise<void>;
}

/** Opens a store on `target`, runs `fn`, and closes the store whatever happens. */
export async function withStore<T>(target: Target, fn: (s: HubStore) => Promise<T>): Promise<T> {
  const store = await target.open();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A store engine under test. */
export interface Backend {
  name: string;
  engine: HubStore["kind"];
  /** False for `sqlite::memory:`: each open() is a new, private database. */
  persistent: boolean;
  /** Prepares the engine (fails loudly if unreachable); `fresh()` then makes one database per case. */
  start(): Promise<{ fresh(): Promise<Target>; stop(): Promise<void> }>;
}

async function openAll(n: number, open: () => Promise<HubStore>): Promise<number[]> {
  const opened = await Promise.allSettled(Array.from({ length: n }, () => open()));
  const stores = opened.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  try {
    // Close the ones that did open even when another failed, or their pools leak.
    const failure = opened.find((r) => r.status === "rejected");
    if (failure) throw failure.reason;
    return await Promise.all(stores.map((s) => s.schemaVersion()));
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

/**
 * node:sqlite is synchronous, so two stores in one process can never race; real concurrency
 * needs separate processes, as two hubs sharing a file would be. Process start-up takes far
 * longer than a migration, so the children load the code, report "ready", and only open the
 * store once the parent has seen every child ready (a barrier on stdin).
 */
async function openInProcesses(n: number, dsn: string): Promise<number[]> {
  const mod = new URL("./mod.ts", import.meta.url).href;
  const code = `import { openStore } from ${JSON.stringify(mod)};
    console.log("ready"); await Deno.stdin.read(new Uint8Array(1));
    const s = await openStore(Deno.env.get("STORE_DSN")); console.log(await s.schemaVersion()); await s.close();`;
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    cwd: new URL("../..", import.meta.url),
    env: { STORE_DSN: dsn, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const children = Array.from({ length: n }, () => cmd.spawn());
  const stderr = children.map((c) => new Response(c.stderr).text());
  const stdout = children.map((c) => c.stdout.pipeThrough(new TextDecoderStream()).getReader());
  const texts = children.map(() => "");
  const readUntil = async (i: number, done: (text: string) => boolean) => {
    while (!done(texts[i]!)) {
      const chunk = await stdout[i]!.read();
      if (chunk.done) return;
      texts[i] += chunk.value;
    }
  };
  await Promise.all(children.map((_, i) => readUntil(i, (t) => t.includes("ready\n"))));
  await Promise.all(children.map(async (c) => {
    const stdin = c.stdin.getWriter();
    await stdin.write(new Uint8Array([10]));
    await stdin.close();
  }));
  await Promise.all(children.map((_, i) => readUntil(i, () => false)));
  const statuses = await Promise.all(children.map((c) => c.status));
  return await Promise.all(statuses.map(async (status, i) => {
    if (!status.success) {
      throw new Error(`store process failed (exit ${status.code}): ${await stderr[i]}`);
    }
    await stderr[i];
    return Number(texts[i]!.replace("ready\n", "").trim());
  }));
}

/** `sqlite::memory:`: every open is a new private database, so no persistence cases. */
export const sqliteMemory: Backend = {
  name: "sqlite::memory:",
  engine: "sqlite",
  persistent: false,
  start: () =>
    Promise.resolve({
      fresh: () => {
        const open = () => openStore("sqlite::memory:");
        return Promise.resolve({
          engine: "sqlite",
          open,
          exec: () => Promise.reject(new Error("sqlite::memory: has no database to prepare")),
          openConcurrently: (n) => openAll(n, open),
          dispose: () => Promise.resolve(),
        });
      },
      stop: () => Promise.resolve(),
    }),
};

/** A SQLite file per case in a temp directory removed afterwards. */
export const sqliteFile: Backend = {
  name: "sqlite file",
  engine: "sqlite",
  persistent: true,
  start: async () => {
    const dir = await Deno.makeTempDir({ prefix: "aq_store_" });
    return {
      fresh: () => {
        // A missing parent directory on purpose: openStore must create it.
        const path = `${dir}/${randomHex(4)}/hub.db`;
        const dsn = `sqlite:${path}`;
        return Promise.resolve({
          engine: "sqlite",
          open: () => openStore(dsn),
          exec: (statements) =>
            Promise.try(() => {
              Deno.mkdirSync(dirname(path), { recursive: true });
              const db = new DatabaseSync(path);
              try {
                for (const sql of statements) db.exec(sql);
              } finally {
                db.close();
              }
            }),
          openConcurrently: (n) => openInProcesses(n, dsn),
          dispose: () => Promise.resolve(),
        });
      },
      stop: () => Deno.remove(dir, { recursive: true }),
    };
  },
};

/** Where the MariaDB suite connects; it creates and drops its own `aq_test_*` databases there. */
export const TEST_MYSQL_DSN = Deno.env.get("AQUEDUCT_TEST_MYSQL") ??
  "mysql://root@127.0.0.1:3306/test";

/** A fresh `aq_test_<hex>` database per case on the server at {@link TEST_MYSQL_DSN}. */
export const mariadb: Backend = {
  name: "mariadb",
  engine: "mysql",
  persistent: true,
  start: async () => {
    const admin = mysql.createPool({ uri: TEST_MYSQL_DSN, connectionLimit: 2 });
    try {
      await admin.query("SELECT 1");
    } catch (e) {
      await admin.end();
      throw new Error(
        `MariaDB is unreachable at ${redactDsn(TEST_MYSQL_DSN)} ` +
          `(set AQUEDUCT_TEST_MYSQL, or run .ci/run to start it): ${(e as Error).message}`,
        { cause: e },
      );
    }
    return {
      fresh: async () => {
        const db = `aq_test_${randomHex(8)}`;
        await admin.query(`CREATE DATABASE ${db}`);
        const url = new URL(TEST_MYSQL_DSN);
        url.pathname = `/${db}`;
        const open = () => openStore(url.href);
        return {
          engine: "mysql",
          open,
          exec: async (statements) => {
            const conn = await mysql.createConnection({ uri: url.href });
            try {
              for (const sql of statements) await conn.query(sql);
            } finally {
              await conn.end();
            }
          },
          openConcurrently: (n) => openAll(n, open),
          dispose: async () => void await admin.query(`DROP DATABASE IF EXISTS ${db}`),
        };
      },
      stop: () => admin.end(),
    };
  },
};
