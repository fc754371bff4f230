/**
 * The agent's check of each settlement the hub sends (SETTLED): the hub's ledger entry must be
 * exactly what the agent computes from its OWN usage count, with the same shared price table
 * (protocol/pricing.ts) and the zone multiplier / payout ratio the hub names, and it must extend
 * the agent's own chain (seq = head + 1, prevHash = head hash, hash recomputed). A match is
 * appended to the agent's ledger and acknowledged (SETTLE_ACK); anything else is kept as a
 * dispute and answered with DISPUTE naming the first difference.
 * @module
 */
import { type ChainHead, entryHash, type LedgerEntry } from "../../protocol/chain.ts";
import type { Clock } from "../../protocol/clock.ts";
import type { ControlFrame, Frame } from "../../protocol/frames.ts";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import { charges, costOf, findPrice, type PriceTable } from "../../protocol/pricing.ts";
import { DEFAULT_PRICE_TABLE } from "../../protocol/prices_default.ts";
import { type Usage, USAGE_FIELDS } from "../../protocol/usage.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { AgentLedger } from "./mod.ts";
import { lookupTable, type PriceLookup } from "./prices.ts";

/** What the agent itself measured for one request (from its upstream meter). */
export interface OwnUsage {
  vendor: string;
  usage: Usage;
  promptTokens: number;
  model?: string;
  serviceTier?: string;
  /** When the agent finished the request (agent clock). */
  atMs: number;
  /**
   * The agent CLAIMed it (no settlement came): the hub's claim policy may cap the payout at the
   * request's hold, so a payout below the formula is accepted (never above).
   */
  claimed?: boolean;
}

/** Where the checker finds the agent's own counts (in memory: UsageBook; durable: OwnCountStore). */
export interface OwnCounts {
  put(requestId: string, usage: OwnUsage): void;
  get(requestId: string): OwnUsage | undefined;
  delete(requestId: string): void;
}

/** Price tables the agent knows, by version (only v1 is published so far). */
export const KNOWN_PRICE_TABLES: ReadonlyMap<number, PriceTable> = new Map([
  [DEFAULT_PRICE_TABLE.version, DEFAULT_PRICE_TABLE],
]);

/** The hub's completion time may lag the agent's by clock skew plus settlement delay. */
export const COMPLETION_SKEW_MS = 10 * 60_000;

export type Verdict = { ok: true; entry: LedgerEntry } | { ok: false; reason: string };

/**
 * Checks one SETTLED frame against the agent's own count and chain head. Pure apart from
 * hashing; `own` is undefined when the agent has no count for the request.
 */
export async function verifySettlement(
  frame: Frame<"settled">,
  own: OwnUsage | undefined,
  head: ChainHead,
  agentId: string,
  tables: PriceLookup = KNOWN_PRICE_TABLES,
): Promise<Verdict> {
  const bad = (reason: string): Verdict => ({ ok: false, reason });
  if (frame.agentId !== agentId) return bad(`agentId ${frame.agentId} is not this agent`);
  if (frame.seq !== head.seq + 1) return bad(`seq ${frame.seq} is not head + 1 (${head.seq + 1})`);
  if (frame.prevHash !== head.hash) return bad("prevHash is not the agent's head hash");
  if (!own) return bad("no usage measured by the agent for this request");
  if (frame.vendor !== own.vendor) return bad(`vendor ${frame.vendor} is not ${own.vendor}`);
  for (const f of USAGE_FIELDS) {
    if (frame.usage[f] !== own.usage[f]) {
      return bad(`usage.${f} ${frame.usage[f]} differs from the agent's ${own.usage[f]}`);
    }
  }
  if (Math.abs(frame.completedAtMs - own.atMs) > COMPLETION_SKEW_MS) {
    return bad("completedAtMs is too far from the agent's completion time");
  }
  const table = await lookupTable(tables, frame.priceVersion); // may fetch it from the hub
  if (!table) return bad("unknown price version");
  const price = findPrice(table, frame.vendor, frame.model)?.price ??
    (own.model ? findPrice(table, own.vendor, own.model)?.price : undefined);
  if (!price) return bad(`no price for ${frame.vendor}/${frame.model} in version ${table.version}`);
  let expected: { official: string; userCharge: string; agentPayout: string };
  try {
    const official = costOf(
      own.usage,
      {
        promptTokens: own.promptTokens,
        completedAtMs: frame.completedAtMs,
        serviceTier: own.serviceTier,
      },
      price,
    );
    const split = charges({
      official,
      zoneMultiplier: frame.zoneMultiplier,
      payoutRatio: frame.payoutRatio,
    });
    expected = {
      official: formatUsd(official),
      userCharge: formatUsd(split.userCharge),
      agentPayout: formatUsd(split.agentPayout),
    };
  } catch (e) {
    return bad(`cannot price the request: ${errorMessage(e)}`);
  }
  // The agent's stake is the official cost and its payout: both must match to the picodollar.
  // The user's charge is the hub's business with its client; it may be lower than the formula
  // (capped at the hold when the balance ran short) but never higher.
  if (frame.official !== expected.official) {
    return bad(`official ${frame.official} differs from ${expected.official}`);
  }
  const payoutCapped = own.claimed && parseUsd(frame.agentPayout) < parseUsd(expected.agentPayout);
  if (frame.agentPayout !== expected.agentPayout && !payoutCapped) {
    return bad(`agentPayout ${frame.agentPayout} differs from ${expected.agentPayout}`);
  }
  if (parseUsd(frame.userCharge) > parseUsd(expected.userCharge)) {
    return bad(`userCharge ${frame.userCharge} is above ${expected.userCharge}`);
  }
  const entry: LedgerEntry = {
    agentId: frame.agentId,
    seq: frame.seq,
    requestId: frame.requestId,
    vendor: frame.vendor,
    model: frame.model,
    usage: Object.fromEntries(USAGE_FIELDS.map((f) => [f, frame.usage[f]])) as unknown as Usage,
    priceVersion: frame.priceVersion,
    official: frame.official,
    userCharge: frame.userCharge,
    agentPayout: frame.agentPayout,
    completedAtMs: frame.completedAtMs,
    settledAtMs: frame.settledAtMs,
    prevHash: frame.prevHash,
    hash: frame.hash,
  };
  let hash: string;
  try {
    hash = await entryHash(entry);
  } catch (e) {
    return bad(`malformed entry: ${errorMessage(e)}`);
  }
  if (hash !== frame.hash) return bad("hash does not match the entry's contents");
  return { ok: true, entry };
}

/** The agent's own counts per request id: bounded, each kept for `ttlMs`. */
export class UsageBook implements OwnCounts {
  readonly #entries = new Map<string, OwnUsage>();
  constructor(
    private readonly clock: Clock,
    private readonly max = 10_000,
    private readonly ttlMs = 60 * 60_000,
  ) {}

  put(requestId: string, usage: OwnUsage): void {
    this.#entries.delete(requestId);
    this.#entries.set(requestId, usage);
    const cutoff = this.clock.nowMs() - this.ttlMs;
    for (const [id, u] of this.#entries) { // insertion order: oldest first
      if (this.#entries.size <= this.max && u.atMs >= cutoff) break;
      this.#entries.delete(id);
    }
  }

  get(requestId: string): OwnUsage | undefined {
    const u = this.#entries.get(requestId);
    return u && u.atMs >= this.clock.nowMs() - this.ttlMs ? u : undefined;
  }

  delete(requestId: string): void {
    this.#entries.delete(requestId);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** A SETTLED that arrived ahead of its predecessor waits this long for the gap to fill. */
const GAP_WAIT_MS = 10_000;
const PARKED_MAX = 256;

/**
 * Handles SETTLED frames in seq order against one ledger: verify, append + SETTLE_ACK, or
 * record the dispute + DISPUTE. Frames that arrive ahead of a missing seq wait briefly.
 */
export class SettlementChecker {
  #queue: Promise<unknown> = Promise.resolve();
  /**
   * Verification runs ahead of the disk: `#tip` is the head once the appends in flight have
   * landed, so frames queued behind each other are verified at once and their appends share one
   * group commit (AgentLedger.append). Acks follow `#landed`, in order, only once durable.
   */
  #tip: ChainHead | undefined;
  #landed: Promise<void> = Promise.resolve();
  readonly #inFlight = new Set<string>();
  readonly #parked = new Map<
    number,
    { frame: Frame<"settled">; timer: ReturnType<typeof setTimeout> }
  >();

  constructor(
    private readonly deps: {
      ledger: AgentLedger;
      book: OwnCounts;
      agentId: string;
      log: Logger;
      tables?: PriceLookup;
      /** Called after each entry is appended and acknowledged (checkpoints, sync.ts). */
      onAppended?: (entry: LedgerEntry, reply: (f: ControlFrame) => void) => void;
    },
  ) {}

  /** Resolves once every frame handed in so far has been processed. */
  idle(): Promise<void> {
    return this.#queue.then(() => this.#landed);
  }

  /**
   * Processes `frame`; every reply (ack or dispute) goes to `reply`, in order. Resolves once it
   * (and every frame before it) has been answered; the next frame need not wait for that.
   */
  onSettled(frame: Frame<"settled">, reply: (f: ControlFrame) => void): Promise<void> {
    const run = this.#queue.then(() => this.#handle(frame, reply));
    this.#queue = run.catch((e) =>
      this.deps.log.error("settlement check failed", { error: errorMessage(e) })
    );
    return this.#queue.then(() => this.#landed);
  }

  async #handle(frame: Frame<"settled">, reply: (f: ControlFrame) => void): Promise<void> {
    const { ledger } = this.deps;
    const head = this.#tip ?? ledger.head();
    if (frame.seq <= head.seq) {
      // A replay of what we already hold is acknowledged again; anything else is a dispute.
      await this.#landed; // what it replays may still be on its way to disk
      const have = ledger.entryFor(frame.requestId);
      if (have && have.seq === frame.seq && have.hash === frame.hash) {
        return reply({
          type: "settle_ack",
          requestId: frame.requestId,
          seq: have.seq,
          hash: have.hash,
        });
      }
    } else if (frame.seq > head.seq + 1 && this.#parked.size < PARKED_MAX) {
      if (this.#parked.has(frame.seq)) clearTimeout(this.#parked.get(frame.seq)!.timer);
      const timer = setTimeout(() => {
        this.#parked.delete(frame.seq);
        this.#dispute(frame, `seq ${frame.seq} arrived but seq ${head.seq + 1} never did`, reply);
      }, GAP_WAIT_MS);
      this.#parked.set(frame.seq, { frame, timer });
      return;
    }
    const verdict = await verifySettlement(
      frame,
      this.deps.book.get(frame.requestId),
      head,
      this.deps.agentId,
      this.deps.tables,
    );
    if (!verdict.ok) {
      await this.#landed; // replies stay in frame order
      return this.#dispute(frame, verdict.reason, reply);
    }
    const { entry } = verdict;
    const booked = ledger.entryFor(entry.requestId);
    if (booked || this.#inFlight.has(entry.requestId)) {
      await this.#landed;
      const where = booked ? `as seq ${booked.seq}` : "by a frame still being written";
      return this.#dispute(frame, `request already settled ${where}`, reply);
    }
    this.#tip = { ...head, seq: entry.seq, hash: entry.hash }; // totals: not used to verify
    this.#inFlight.add(entry.requestId);
    const appended = ledger.append({
      requestId: entry.requestId,
      vendor: entry.vendor,
      model: entry.model,
      usage: entry.usage,
      priceVersion: entry.priceVersion,
      official: entry.official,
      userCharge: entry.userCharge,
      agentPayout: entry.agentPayout,
      completedAtMs: entry.completedAtMs,
      settledAtMs: entry.settledAtMs,
      agentId: entry.agentId,
    });
    // Handled at once (never an unhandled rejection), acted on in order.
    const outcome = appended.then((stored) => ({ stored }), (error: unknown) => ({ error }));
    this.#landed = this.#landed.then(() => outcome).then((o) => {
      if ("stored" in o) return this.#acknowledge(frame, entry, o.stored, reply);
      throw o.error;
    }).catch((e) => {
      this.#tip = undefined; // back to what the ledger holds
      this.deps.log.error("settlement check failed", { error: errorMessage(e) });
    }).finally(() => this.#inFlight.delete(entry.requestId));
    const next = this.#parked.get(entry.seq + 1);
    if (next) {
      clearTimeout(next.timer);
      this.#parked.delete(entry.seq + 1);
      this.onSettled(next.frame, reply);
    }
  }

  /** Once `entry` is durable: SETTLE_ACK (or a dispute if the ledger stored something else). */
  #acknowledge(
    frame: Frame<"settled">,
    entry: LedgerEntry,
    stored: LedgerEntry,
    reply: (f: ControlFrame) => void,
  ): void {
    if (stored.hash !== entry.hash || stored.seq !== entry.seq) {
      // Cannot happen after the checks above, but never ack an entry we did not store.
      this.#tip = undefined;
      return this.#dispute(frame, "the agent's ledger stored a different entry", reply);
    }
    this.deps.book.delete(entry.requestId);
    this.deps.log.debug("settlement verified", { requestId: entry.requestId, seq: entry.seq });
    reply({ type: "settle_ack", requestId: entry.requestId, seq: entry.seq, hash: entry.hash });
    this.deps.onAppended?.(stored, reply);
  }

  #dispute(frame: Frame<"settled">, reason: string, reply: (f: ControlFrame) => void): void {
    this.deps.log.error("disputing a settlement", {
      requestId: frame.requestId,
      seq: frame.seq,
      reason,
    });
    this.deps.ledger.recordDispute({ requestId: frame.requestId, reason, hubEntry: frame });
    reply({
      type: "dispute",
      requestId: frame.requestId,
      seq: frame.seq,
      reason: reason.slice(0, 500),
    });
  }

  /** Stops the gap timers (shutdown). */
  close(): void {
    for (const p of this.#parked.values()) clearTimeout(p.timer);
    this.#parked.clear();
  }
}
