/**
 * The price versions an agent knows, kept in its data directory so it can check settlements
 * while the hub is away: `<dir>/<version>-<sha256>.json` holds the table's canonical text
 * (protocol/price_versions.ts). A table is trusted only after its hash, canonical form,
 * validation and version all check out, at receipt and again at every load; a version, once
 * held, is never replaced (a hub that sends other prices under a known version is refused and
 * logged). The built-in v1 is known offline.
 *
 * `table(version)` answers from memory, or asks the hub (PRICES_GET) and waits a bounded time
 * for its PRICES / PRICES_MISSING; the settlement checker disputes "unknown price version" when
 * nothing usable arrives.
 * @module
 */
import { join } from "node:path";
import type { Frame } from "../../protocol/frames.ts";
import {
  openPublished,
  publishedFrom,
  type PublishedPrices,
} from "../../protocol/price_versions.ts";
import type { PriceTable } from "../../protocol/pricing.ts";
import { DEFAULT_PRICE_TABLE } from "../../protocol/prices_default.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";

/** Where `verifySettlement` finds price tables: a fixed map, or an async getter. */
export type PriceLookup =
  | ReadonlyMap<number, PriceTable>
  | ((version: number) => Promise<PriceTable | undefined>);

/** The table of `version` from either kind of lookup. */
export function lookupTable(
  tables: PriceLookup,
  version: number,
): Promise<PriceTable | undefined> {
  return typeof tables === "function" ? tables(version) : Promise.resolve(tables.get(version));
}

/** How long `table()` waits for the hub to send a missing version. */
export const PRICE_FETCH_TIMEOUT_MS = 5_000;
const FILE = /^([1-9][0-9]{0,15})-([0-9a-f]{64})\.json$/;

export interface AgentPricesOptions {
  /** The directory the tables live in (created if missing). */
  dir: string;
  log: Logger;
  /** Sends PRICES_GET on the live connection; false when there is none. */
  send?: (frame: Frame<"prices_get">) => boolean;
  fetchTimeoutMs?: number;
  builtIn?: readonly PriceTable[];
}

interface Waiter {
  promise: Promise<PriceTable | undefined>;
  resolve: (t: PriceTable | undefined) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class AgentPrices {
  readonly #held = new Map<number, PublishedPrices>();
  readonly #waiting = new Map<number, Waiter>();
  #latest = 0;

  private constructor(readonly options: AgentPricesOptions) {}

  /** Loads the built-in and stored versions (a stored file that fails its checks is skipped). */
  static async open(options: AgentPricesOptions): Promise<AgentPrices> {
    const book = new AgentPrices(options);
    // Only v1 is built in: every later number is whatever the hub published under it (a hub may
    // hold an operator's own v2), so the agent learns those from the hub, never from its code.
    for (const t of options.builtIn ?? [DEFAULT_PRICE_TABLE]) book.#hold(publishedFrom(t));
    await Deno.mkdir(options.dir, { recursive: true, mode: 0o700 });
    for await (const entry of Deno.readDir(options.dir)) {
      const m = FILE.exec(entry.name);
      if (!entry.isFile || !m) continue;
      try {
        const text = await Deno.readTextFile(join(options.dir, entry.name));
        const p = openPublished(Number(m[1]), text, m[2]!);
        const held = book.#held.get(p.version);
        if (held && held.sha256 !== p.sha256) {
          throw new Error(`differs from the held version ${p.version} (${held.sha256})`);
        }
        book.#hold(p);
      } catch (e) {
        options.log.error("ignoring a stored price table", {
          file: entry.name,
          error: errorMessage(e),
        });
      }
    }
    options.log.info("price versions held", { versions: book.versions().join(",") });
    return book;
  }

  /** Versions held, ascending. */
  versions(): number[] {
    return [...this.#held.keys()].sort((a, b) => a - b);
  }

  /** The highest version the hub announced as current (0 before any). */
  get latest(): number {
    return this.#latest;
  }

  /** The held table of `version`, its hash too. */
  held(version: number): PublishedPrices | undefined {
    return this.#held.get(version);
  }

  /**
   * A PRICES frame from the hub: checked, held (usable at once), then written to disk. Returns
   * false (logged) for a table that fails its hash or checks, or that differs from the version
   * already held.
   */
  async accept(frame: Frame<"prices">): Promise<boolean> {
    const { log } = this.options;
    let p: PublishedPrices;
    try {
      p = openPublished(frame.version, frame.table, frame.sha256);
      if (p.publishedAtMs !== frame.publishedAtMs) {
        throw new Error("publishedAtMs differs from the table's");
      }
    } catch (e) {
      log.error("refusing a price table from the hub", {
        version: frame.version,
        error: errorMessage(e),
      });
      this.#wake(frame.version, undefined); // a waiting check disputes now, not at its timeout
      return false;
    }
    const held = this.#held.get(p.version);
    if (held) {
      if (held.sha256 !== p.sha256) {
        log.error("refusing a price table from the hub: this version already has other prices", {
          version: p.version,
          held: held.sha256,
          offered: p.sha256,
        });
        return false;
      }
    } else {
      // Usable at once (a SETTLED may be waiting); kept on disk for checks while the hub is away.
      // A failed write only costs a fetch after a restart.
      this.#hold(p);
      this.#wake(p.version, p.table);
      await this.#store(p).catch((e) =>
        log.error("cannot store a price table", { version: p.version, error: errorMessage(e) })
      );
      log.info("price version received", { version: p.version, sha256: p.sha256 });
    }
    if (frame.latest && p.version > this.#latest) this.#latest = p.version;
    this.#wake(p.version, p.table);
    return true;
  }

  /** The hub has no such version: whoever waits for it stops waiting. */
  missing(frame: Frame<"prices_missing">): void {
    this.options.log.warn("the hub has no such price version", {
      version: frame.version,
      reason: frame.reason,
    });
    this.#wake(frame.version, undefined);
  }

  /** The table of `version`: held, or fetched from the hub within the timeout; else undefined. */
  table(version: number): Promise<PriceTable | undefined> {
    const held = this.#held.get(version);
    if (held) return Promise.resolve(held.table);
    const waiting = this.#waiting.get(version);
    if (waiting) return waiting.promise;
    if (!this.options.send?.({ type: "prices_get", version })) return Promise.resolve(undefined);
    const { promise, resolve } = Promise.withResolvers<PriceTable | undefined>();
    const timer = setTimeout(() => {
      this.options.log.warn("no answer from the hub for a price version", { version });
      this.#wake(version, undefined);
    }, this.options.fetchTimeoutMs ?? PRICE_FETCH_TIMEOUT_MS);
    this.#waiting.set(version, { promise, resolve, timer });
    return promise;
  }

  /** This book as `verifySettlement`'s lookup. */
  readonly lookup: PriceLookup = (version) => this.table(version);

  /** Fails every pending fetch (shutdown). */
  close(): void {
    for (const version of [...this.#waiting.keys()]) this.#wake(version, undefined);
  }

  #hold(p: PublishedPrices): void {
    this.#held.set(p.version, p);
  }

  #wake(version: number, table: PriceTable | undefined): void {
    const w = this.#waiting.get(version);
    if (!w) return;
    this.#waiting.delete(version);
    clearTimeout(w.timer);
    w.resolve(table);
  }

  /** Written whole to a temp file, synced, then renamed: a crash never leaves half a table. */
  async #store(p: PublishedPrices): Promise<void> {
    const name = `${p.version}-${p.sha256}.json`;
    const tmp = join(this.options.dir, `.${name}.tmp`);
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      const bytes = new TextEncoder().encode(p.text);
      for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, join(this.options.dir, name));
  }
}
