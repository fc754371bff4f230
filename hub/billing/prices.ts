/**
 * The hub's current prices: the latest published version in the store, cached in memory.
 *
 * - `open` seeds the built-in tables (`BUILT_IN_PRICE_TABLES`) above the store's latest version,
 *   idempotently: hubs starting together on one database insert each once; a version another
 *   hub took meanwhile with other content is left alone (warned).
 * - `current()` is synchronous (the biller prices every request with it). Every `pollMs` the
 *   store's latest version is read (one indexed MAX); a newer one is loaded, verified (hash,
 *   canonical form, validation) and becomes current, so every hub sharing a database follows a
 *   publish within one poll. `get(version)` serves older versions from cache or the store.
 * - `publish` makes a new version from an admin's table (the next number, or the one named);
 *   publishing prices identical to the latest is a no-op that returns the latest.
 * - Listeners (`onPublished`) hear of each newer version once, whichever hub published it: the
 *   tunnel broadcasts PRICES to every connected agent.
 * @module
 */
import type { Clock } from "../../protocol/clock.ts";
import { encodeControl, type Frame } from "../../protocol/frames.ts";
import { LIMITS } from "../../protocol/limits.ts";
import {
  openPublished,
  publishedFrom,
  type PublishedPrices,
  samePrices,
} from "../../protocol/price_versions.ts";
import { type PriceTable } from "../../protocol/pricing.ts";
import { BUILT_IN_PRICE_TABLES } from "../../protocol/prices_default.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import { type PriceStore, StoreConflictError } from "../store/mod.ts";

/** How often a hub looks for a version another hub published. */
export const PRICE_POLL_MS = 3_000;
/** Versions kept in memory besides the current one. */
const CACHE_MAX = 64;

/** The frame that carries `p` to an agent. */
export function pricesFrame(p: PublishedPrices, latest: boolean): Frame<"prices"> {
  return {
    type: "prices",
    version: p.version,
    publishedAtMs: p.publishedAtMs,
    sha256: p.sha256,
    latest,
    table: p.text,
  };
}

/** Why a table cannot be published (the admin API answers 400 with the message). */
export class PricePublishError extends Error {
  override name = "PricePublishError";
}

/** A published version named by an explicit `version` already holds other prices (409). */
export class PriceVersionTakenError extends Error {
  override name = "PriceVersionTakenError";
}

export interface PriceBookOptions {
  store: PriceStore;
  clock: Clock;
  log: Logger;
  pollMs?: number;
  /** Seeded at open (default `BUILT_IN_PRICE_TABLES`). */
  builtIn?: readonly PriceTable[];
}

export class PriceBook {
  #current!: PublishedPrices;
  readonly #cache = new Map<number, PublishedPrices>();
  readonly #listeners = new Set<(p: PublishedPrices) => void>();
  #timer?: ReturnType<typeof setInterval>;
  #refreshing?: Promise<void>;

  private constructor(readonly options: PriceBookOptions) {}

  /** Seeds the built-in tables, loads the latest version, starts polling. */
  static async open(options: PriceBookOptions): Promise<PriceBook> {
    const book = new PriceBook(options);
    await book.#seed(options.builtIn ?? BUILT_IN_PRICE_TABLES);
    // The newest version that passes its checks: a damaged row is logged, never used.
    const versions = (await options.store.listPriceVersions()).map((v) => v.version).reverse();
    for (const version of versions) {
      const p = await book.get(version).catch((e) => void book.#reportBad(version, e));
      if (p) {
        book.#current = p;
        break;
      }
    }
    if (!book.#current) throw new Error("no price version in the store passes its checks");
    book.#timer = setInterval(() => void book.refresh(), options.pollMs ?? PRICE_POLL_MS);
    return book;
  }

  /** The latest version (what new settlements are priced with). */
  current(): PublishedPrices {
    return this.#current;
  }

  /** Calls `fn` with every version that becomes current after now. */
  onPublished(fn: (p: PublishedPrices) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** A version from cache or the store (verified), or undefined if none was published. */
  async get(version: number): Promise<PublishedPrices | undefined> {
    if (this.#current?.version === version) return this.#current;
    const cached = this.#cache.get(version);
    if (cached) return cached;
    if (!Number.isSafeInteger(version) || version < 1) return undefined;
    const row = await this.options.store.getPriceVersion(version);
    if (!row) return undefined;
    // A row that fails its hash or validation is never used: someone changed the database.
    const p = openPublished(row.version, row.canonical, row.sha256);
    if (p.publishedAtMs !== row.publishedAtMs) {
      throw new Error(`price version ${version}: publishedAtMs differs from the stored table's`);
    }
    this.#remember(p);
    return p;
  }

  /** Every published version (no tables), ascending. */
  list() {
    return this.options.store.listPriceVersions();
  }

  /** Looks for a newer version in the store (also what the poll does). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => this.#refreshing = undefined);
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    try {
      const latest = await this.options.store.latestPriceVersion();
      if (latest <= this.#current.version) return;
      const p = await this.get(latest).catch((e) => void this.#reportBad(latest, e));
      if (p) this.#advance(p);
    } catch (e) {
      this.options.log.error("cannot read the latest price version", { error: errorMessage(e) });
    }
  }

  readonly #reported = new Set<number>();
  /** Logs a version that fails its checks once (the poll meets it every few seconds). */
  #reportBad(version: number, e: unknown): void {
    if (this.#reported.has(version)) return;
    this.#reported.add(version);
    this.options.log.error("cannot load the latest price version", {
      version,
      error: errorMessage(e),
    });
  }

  /**
   * Publishes `content` (`source`, `models`, `aliases`; a `version` too when the caller names
   * one). Throws `PricePublishError` for an invalid or oversized table, `PriceVersionTakenError`
   * when a named version holds other prices. Returns the version and whether it is new.
   */
  async publish(
    content: Record<string, unknown>,
  ): Promise<{ published: PublishedPrices; created: boolean }> {
    const named = content.version;
    if (named !== undefined && (!Number.isSafeInteger(named) || (named as number) < 1)) {
      throw new PricePublishError("Invalid price table: version: expected an integer ≥ 1");
    }
    await this.refresh();
    if (named !== undefined && (named as number) <= this.#current.version) {
      const taken = await this.get(named as number);
      const candidate = this.#build({ ...content, version: named });
      if (taken && samePrices(taken.table, candidate.table)) {
        return { published: taken, created: false };
      }
      throw new PriceVersionTakenError(
        `Price version ${named} is not above the latest (${this.#current.version}); ` +
          "published versions are immutable",
      );
    }
    for (let attempt = 0;; attempt++) {
      const version = (named as number | undefined) ?? this.#current.version + 1;
      const candidate = this.#build({ ...content, version });
      if (named === undefined && samePrices(candidate.table, this.#current.table)) {
        return { published: this.#current, created: false };
      }
      try {
        const { outcome } = await this.options.store.publishPriceVersion({
          version,
          publishedAtMs: candidate.publishedAtMs,
          canonical: candidate.text,
        });
        this.options.log.info("price version published", { version, sha256: candidate.sha256 });
        this.#remember(candidate);
        if (version > this.#current.version) this.#advance(candidate);
        return { published: candidate, created: outcome === "inserted" };
      } catch (e) {
        if (!(e instanceof StoreConflictError)) throw e;
        const taken = await this.get(version);
        if (taken && samePrices(taken.table, candidate.table)) {
          return { published: taken, created: false };
        }
        if (named !== undefined) {
          throw new PriceVersionTakenError(
            `Price version ${version} is already published with other prices; versions are immutable`,
          );
        }
        // Another hub published this number a moment ago: take the next one.
        await this.refresh();
        if (attempt >= 5) throw e;
      }
    }
  }

  /** Stops polling. */
  close(): void {
    clearInterval(this.#timer);
  }

  #build(content: Record<string, unknown>): PublishedPrices {
    let p: PublishedPrices;
    try {
      p = publishedFrom({ ...content, publishedAtMs: this.options.clock.nowMs() });
    } catch (e) {
      throw new PricePublishError(errorMessage(e));
    }
    // One frame per table (see DESIGN "As built (prices)"): refuse what could never reach agents.
    let size: number;
    try {
      size = encodeControl(pricesFrame(p, true)).length;
    } catch {
      size = Infinity;
    }
    if (size > LIMITS.controlFrameBytesMax) {
      throw new PricePublishError(
        `Price table too large: its PRICES frame would be ${
          Number.isFinite(size) ? size : "over"
        } ${LIMITS.controlFrameBytesMax} bytes (a table must fit one tunnel control frame)`,
      );
    }
    return p;
  }

  /** Built-in versions above the store's latest only: never a new version below published ones. */
  async #seed(tables: readonly PriceTable[]): Promise<void> {
    const latest = await this.options.store.latestPriceVersion();
    for (const table of tables) {
      if (table.version <= latest) continue;
      const p = publishedFrom(table);
      try {
        const { outcome } = await this.options.store.publishPriceVersion({
          version: p.version,
          publishedAtMs: p.publishedAtMs,
          canonical: p.text,
        });
        if (outcome === "inserted") {
          this.options.log.info("built-in price version seeded", { version: p.version });
        }
        this.#remember(p);
      } catch (e) {
        if (!(e instanceof StoreConflictError)) throw e;
        this.options.log.warn("built-in price version not seeded: the version holds other prices", {
          version: p.version,
        });
      }
    }
  }

  #advance(p: PublishedPrices): void {
    if (p.version <= this.#current.version) return;
    this.#remember(this.#current);
    this.#current = p;
    this.options.log.info("price version now current", { version: p.version });
    for (const fn of this.#listeners) {
      try {
        fn(p);
      } catch (e) {
        this.options.log.error("price listener failed", { error: errorMessage(e) });
      }
    }
  }

  #remember(p: PublishedPrices): void {
    this.#cache.delete(p.version);
    this.#cache.set(p.version, p);
    while (this.#cache.size > CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
  }
}

/** A session as `tunnelPrices` needs it. */
interface PriceSession {
  agentId: string;
  send(frame: Frame<"prices"> | Frame<"prices_missing">): void;
}

/**
 * The tunnel's side of prices (hub/tunnel/session.ts `SessionPrices`): the current version after
 * WELCOME, any published version on PRICES_GET, PRICES_MISSING for one that never was.
 */
export function tunnelPrices(book: PriceBook, log: Logger) {
  return {
    greet(session: PriceSession): void {
      session.send(pricesFrame(book.current(), true));
    },
    request(session: PriceSession, version: number): void {
      book.get(version).then(
        (p) =>
          session.send(
            p ? pricesFrame(p, false) : {
              type: "prices_missing",
              version,
              reason: `no price version ${version} was published`,
            },
          ),
        (e) => {
          log.error("cannot load a price version for an agent", {
            agentId: session.agentId,
            version,
            error: errorMessage(e),
          });
          session.send({ type: "prices_missing", version, reason: "the hub cannot load it" });
        },
      );
    },
  };
}

/** Sends each newly current version to every connected agent. */
export function broadcastPrices(
  book: PriceBook,
  sessions: () => Iterable<{ send(frame: Frame<"prices">): void }>,
): () => void {
  return book.onPublished((p) => {
    const frame = pricesFrame(p, true);
    for (const s of sessions()) s.send(frame);
  });
}
