/**
 * Money around one request: `reserve` a worst-case hold on the user's balance before dispatch,
 * then exactly one of `settle` (the stream completed with a usage count: charge the user, pay the
 * agent, append the agent's ledger entry) or `release` (no completion: nothing is charged).
 *
 * - Worst case = the request's input estimate at the dearest input rate + its output cap at the
 *   output rate, at the dearest service tier, × the key's zone multiplier (`costOf` on a
 *   synthetic usage, so the same rounding as the real charge).
 * - Official cost = `costOf(usage, price)` at completion time; user charge and agent payout via
 *   `charges` with the key's zone multiplier and the agent's current grade payout ratio.
 * - A model with no price: refused before dispatch (400 "no price for model X") when
 *   `unpriced` is `"refuse"`; served without a hold, charge or ledger entry (warned once per
 *   model) when `"allow"`. Requests that name no model at all (e.g. GET /v1/models) are free.
 * - After a settlement is stored, the entry goes to the agent as a SETTLED frame on its current
 *   session, with the zone multiplier and payout ratio used; the agent re-prices its own count and
 *   answers SETTLE_ACK or DISPUTE (hub/tunnel/session.ts). An agent that is offline then gets
 *   nothing now: it catches up when it reconnects (RECONCILE, hub/billing/ledger_sync.ts).
 * - Ledger sync: `dispatchedTo` records which agent an attempt went to, and `settle` marks the
 *   dispatch delivered (with the zone multiplier and payout ratio) before booking, so a CLAIM
 *   can be judged and a catch-up can resend the SETTLED; `claimAmounts` prices a CLAIM.
 * - Prices are the current published version (`prices`: a provider, hub/billing/prices.ts, read
 *   once per reserve and per settlement; `DEFAULT_PRICE_TABLE` when none is given); the ledger
 *   entry records the `version` that priced it.
 * @module
 */
import type { Clock } from "../../protocol/clock.ts";
import { formatUsd, type Money } from "../../protocol/money.ts";
import {
  charges,
  costOf,
  DEFAULT_ZONE_MULTIPLIERS,
  findPrice,
  type ModelPrice,
  type PriceTable,
  zoneMultiplier,
} from "../../protocol/pricing.ts";
import { DEFAULT_PRICE_TABLE } from "../../protocol/prices_default.ts";
import { emptyUsage, type Usage, type UsageRecord } from "../../protocol/usage.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import { GatewayError } from "../gateway/errors.ts";
import { gradeOf, type PayoutTable } from "../routing/grades.ts";
import type { StatsBoard } from "../routing/stats.ts";
import type { ControlFrame } from "../../protocol/frames.ts";
import type { LedgerEntry } from "../../protocol/chain.ts";
import { SettleBatcher } from "./settle_batcher.ts";
import { GroupCommit } from "../../runtime/group_commit.ts";
import type { Frame } from "../../protocol/frames.ts";
import {
  type BillingStore,
  type DispatchWrite,
  InsufficientFundsError,
  KeyCapExceededError,
  type KeyWithUser,
  type LedgerSyncStore,
  type UsageContext,
} from "../store/mod.ts";

export type UnpricedPolicy = "allow" | "refuse";

/** A hold is released by the sweeper after this long; far beyond any real stream. */
export const HOLD_TTL_MS = 60 * 60_000;

/** What `reserve` hands back for `settle` / `release`. */
export interface BillingHold {
  reservationId: string;
  userId: string;
  vendor: string;
  /** The model the client asked for (priced by this name at settlement). */
  model: string;
  zone: string;
  amount: Money;
}

export interface BillerOptions {
  store: BillingStore;
  clock: Clock;
  log: Logger;
  stats: StatsBoard;
  payoutTable: PayoutTable;
  unpriced: UnpricedPolicy;
  /** A fixed table, or the provider of the current one (read at each reserve / settlement). */
  prices?: PriceTable | (() => PriceTable);
  zones?: Readonly<Record<string, string>>;
  /** Dispatch records for ledger sync (claims, catch-up); absent: none are kept. */
  ledgerSync?: Pick<LedgerSyncStore, "writeDispatches">;
  /** The agent's live session to send SETTLED on (default: its current tunnel session). */
  sessionOf: (agentId: string) => { send(frame: ControlFrame): void } | undefined;
}

/** Token estimate of a request before dispatch. */
export interface TokenEstimate {
  inputTokens: number;
  outputTokens: number;
}

const INPUT_DIMENSIONS = [
  "inputTokens",
  "cacheWrite5mTokens",
  "cacheWrite1hTokens",
] as const satisfies readonly (keyof Usage)[];

export class Biller {
  readonly #prices: () => PriceTable;
  readonly #warned = new Set<string>();
  /** Concurrent settlements share one commit (group commit); each still awaits its own. */
  readonly #settler: SettleBatcher;
  /**
   * Dispatch records and delivery marks (two per request) share commits when they overlap: on
   * MariaDB the writes that arrive during a commit's round trip go together in the next one. A
   * lone write goes at once (on SQLite synchronously, so a dispatch is on disk before its
   * REQUEST leaves); no gathering delay, which would widen the crash windows CLAIM has to cover.
   */
  readonly #dispatchWrites?: GroupCommit<DispatchWrite, void>;

  constructor(readonly options: BillerOptions) {
    const fixed = options.prices ?? DEFAULT_PRICE_TABLE;
    this.#prices = typeof fixed === "function" ? fixed : () => fixed;
    this.#settler = new SettleBatcher(options.store);
    const sync = options.ledgerSync;
    if (sync) {
      this.#dispatchWrites = new GroupCommit(async (batch) => {
        await sync.writeDispatches(batch);
        return batch.map(() => undefined);
      }, { batchMax: 256 });
    }
  }

  /** The price table in force now. */
  get prices(): PriceTable {
    return this.#prices();
  }

  /** The price of `vendor/model` in `table` (default: the current one), or undefined. */
  priceOf(vendor: string, model: string, table = this.prices): ModelPrice | undefined {
    return findPrice(table, vendor, model)?.price;
  }

  /** The worst-case user charge of a request (picodollars). Pure apart from the clock. */
  worstCase(price: ModelPrice, zone: string, estimate: TokenEstimate): Money {
    const completedAtMs = this.options.clock.nowMs();
    const tiers = ["", ...Object.keys(price.serviceTiers ?? {})];
    let worst = 0n;
    for (const dimension of INPUT_DIMENSIONS) {
      const usage = {
        ...emptyUsage(),
        [dimension]: estimate.inputTokens,
        outputTokens: estimate.outputTokens,
      };
      for (const serviceTier of tiers) {
        const cost = costOf(
          usage,
          { promptTokens: estimate.inputTokens, completedAtMs, serviceTier },
          price,
        );
        if (cost > worst) worst = cost;
      }
    }
    return charges({
      official: worst,
      zoneMultiplier: this.#zone(zone),
      payoutRatio: "0",
    }).userCharge;
  }

  /**
   * Holds the worst case on the key's user, or throws the GatewayError to answer: 429
   * `insufficient_quota` when the balance cannot cover it, 400 for an unpriced model under
   * `refuse`. Returns `null` when nothing is billed (no model, or unpriced under `allow`).
   */
  async reserve(
    key: KeyWithUser,
    vendor: string,
    model: string,
    estimate: TokenEstimate,
    requestId: string,
  ): Promise<BillingHold | null> {
    if (!model) return null;
    const price = this.priceOf(vendor, model);
    if (!price) {
      if (this.options.unpriced === "refuse") {
        throw new GatewayError(
          400,
          "invalid_request_error",
          `no price for model ${model}`,
          "model",
          "model_not_priced",
        );
      }
      if (!this.#warned.has(`${vendor}/${model}`) && this.#warned.size < 1000) {
        this.#warned.add(`${vendor}/${model}`);
        this.options.log.warn("serving an unpriced model without charge", { vendor, model });
      }
      return null;
    }
    let amount: Money;
    try {
      amount = this.worstCase(price, key.zone, estimate);
    } catch (e) {
      this.options.log.error("cannot price request", { vendor, model, error: errorMessage(e) });
      throw new GatewayError(500, "server_error", `cannot price model ${model}`, null, null);
    }
    const now = this.options.clock.nowMs();
    try {
      await this.options.store.reserve(
        {
          reservationId: requestId,
          userId: key.userId,
          keyId: key.id,
          amount,
          expiresAtMs: now + HOLD_TTL_MS,
        },
        now,
      );
    } catch (e) {
      if (e instanceof KeyCapExceededError) throw keyCapRefusal(e);
      if (e instanceof InsufficientFundsError) {
        throw new GatewayError(
          429,
          "insufficient_quota",
          "You exceeded your current quota, please check your plan and billing details. " +
            `This request may cost up to ${formatUsd(amount)} USD.`,
          null,
          "insufficient_quota",
        );
      }
      throw e;
    }
    return { reservationId: requestId, userId: key.userId, vendor, model, zone: key.zone, amount };
  }

  /**
   * Notes that an attempt of `hold`'s request goes to `agentId` (what a later CLAIM is checked
   * against); resolves once that is durable, so the gateway sends the REQUEST only after it —
   * a completion the agent can CLAIM always has its record, whenever the hub dies. A failed
   * write is logged (such a claim is then refused) and does not fail the request.
   */
  async dispatchedTo(hold: BillingHold, agentId: string): Promise<void> {
    const { reservationId: requestId, vendor, model, zone } = hold;
    await this.#dispatchWrites?.add({
      requestId,
      agentId,
      vendor,
      model,
      zone,
      atMs: this.options.clock.nowMs(),
    })
      .catch((e) =>
        this.options.log.error("cannot record the dispatch", { requestId, error: errorMessage(e) })
      );
  }

  /** The zone multiplier and the agent's current payout ratio (its grade now). */
  pricingInputs(zone: string, agentId: string): { zoneMultiplier: string; payoutRatio: string } {
    const grade = gradeOf(this.options.stats.agentStats(agentId, this.options.clock.nowMs()));
    return { zoneMultiplier: this.#zone(zone), payoutRatio: this.options.payoutTable[grade] };
  }

  /**
   * Prices a CLAIM (policy in hub/billing/ledger_sync.ts): the official cost of the agent's
   * measured usage at the dispatched model's price, the user charge the key's zone would pay if
   * the response was delivered, and the agent's payout capped at the hold (the worst case).
   */
  claimAmounts(
    dispatch: { vendor: string; model: string; zone: string; agentId: string },
    claim: Frame<"claim">,
    hold: Money,
  ) {
    const price = this.priceOf(dispatch.vendor, dispatch.model) ??
      (claim.model ? this.priceOf(dispatch.vendor, claim.model) : undefined);
    if (!price) throw new Error(`no price for ${dispatch.vendor}/${dispatch.model}`);
    const usage = { ...emptyUsage(), ...claim.usage };
    const official = costOf(
      usage,
      {
        promptTokens: claim.promptTokens,
        completedAtMs: claim.completedAtMs,
        serviceTier: claim.serviceTier,
      },
      price,
    );
    const inputs = this.pricingInputs(dispatch.zone, dispatch.agentId);
    const split = charges({ official, ...inputs });
    const agentPayout = split.agentPayout > hold ? hold : split.agentPayout;
    return {
      ...inputs,
      usage,
      userChargeIfDelivered: split.userCharge,
      agentPayout,
      entry: {
        agentId: dispatch.agentId,
        requestId: claim.requestId,
        vendor: dispatch.vendor,
        model: claim.model || dispatch.model,
        usage,
        priceVersion: this.prices.version,
        official: formatUsd(official),
        userCharge: formatUsd(split.userCharge),
        agentPayout: formatUsd(agentPayout),
        completedAtMs: claim.completedAtMs,
        settledAtMs: this.options.clock.nowMs(),
      },
    };
  }

  /** Gives the hold back without charging (no completion, or a failure before dispatch). */
  async release(hold: BillingHold): Promise<void> {
    await this.options.store.release(hold.reservationId, this.options.clock.nowMs());
  }

  /**
   * Charges the completed request and appends the agent's ledger entry. A charge above the
   * hold is taken from the rest of the balance; if even that is short, it is capped at the
   * hold (logged).
   */
  async settle(hold: BillingHold, record: UsageRecord, context: UsageContext): Promise<void> {
    const prices = this.prices; // one version for the whole settlement, even across awaits
    const price = this.priceOf(hold.vendor, hold.model, prices) ??
      this.priceOf(hold.vendor, record.model, prices);
    if (!price) throw new Error(`no price for ${hold.vendor}/${hold.model} at settlement`);
    const now = this.options.clock.nowMs();
    const official = costOf(
      record.usage,
      {
        promptTokens: record.promptTokens,
        completedAtMs: record.completedAtMs,
        serviceTier: record.serviceTier,
      },
      price,
    );
    const grade = gradeOf(this.options.stats.agentStats(context.agentId, now));
    const split = charges({
      official,
      zoneMultiplier: this.#zone(hold.zone),
      payoutRatio: this.options.payoutTable[grade],
    });
    const entry = (userCharge: Money) => ({
      reservationId: hold.reservationId,
      userCharge,
      agentPayout: split.agentPayout,
      entry: {
        agentId: context.agentId,
        requestId: record.requestId,
        vendor: record.vendor,
        model: record.model || hold.model,
        usage: { ...emptyUsage(), ...record.usage },
        priceVersion: prices.version,
        official: formatUsd(official),
        userCharge: formatUsd(userCharge),
        agentPayout: formatUsd(split.agentPayout),
        completedAtMs: record.completedAtMs,
        settledAtMs: now,
      },
    });
    const zone = this.#zone(hold.zone), payoutRatio = this.options.payoutTable[grade];
    // Delivered (with the pricing inputs) before booking: if the hub dies in between, the
    // agent's CLAIM is charged to the user like this settlement would have been.
    // A failed mark only weakens a later claim and a catch-up of this entry: logged, not fatal.
    await this.#dispatchWrites?.add({
      requestId: record.requestId,
      agentId: context.agentId,
      vendor: hold.vendor,
      model: hold.model,
      zone: hold.zone,
      atMs: now,
      zoneMultiplier: zone,
      payoutRatio,
    }).catch((e) =>
      this.options.log.error("cannot mark the dispatch delivered", {
        requestId: record.requestId,
        error: errorMessage(e),
      })
    );
    let stored: LedgerEntry;
    try {
      stored = await this.#settler.settle(entry(split.userCharge));
    } catch (e) {
      if (!(e instanceof InsufficientFundsError)) throw e;
      this.options.log.warn("charge above the hold and the balance; capped at the hold", {
        requestId: record.requestId,
        charge: formatUsd(split.userCharge),
        hold: formatUsd(hold.amount),
      });
      stored = await this.#settler.settle(entry(hold.amount));
    }
    this.#tellAgent(stored, zone, payoutRatio);
  }

  /** Sends the stored entry to the agent if it is connected (else: reconciled later). */
  #tellAgent(e: LedgerEntry, zoneMultiplier: string, payoutRatio: string): void {
    this.sendSettled(e, zoneMultiplier, payoutRatio);
  }

  /** Sends one stored entry as SETTLED to the agent's live session, if any. */
  sendSettled(e: LedgerEntry, zoneMultiplier: string, payoutRatio: string): void {
    const session = this.options.sessionOf(e.agentId);
    if (!session) {
      this.options.log.info("agent offline at settlement; its ledger is reconciled later", {
        agentId: e.agentId,
        requestId: e.requestId,
        seq: e.seq,
      });
      return;
    }
    try {
      session.send({ type: "settled", ...e, usage: { ...e.usage }, zoneMultiplier, payoutRatio });
    } catch (err) {
      this.options.log.error("cannot send SETTLED", { seq: e.seq, error: errorMessage(err) });
    }
  }

  #zone(zone: string): string {
    return zoneMultiplier(zone, this.options.zones ?? DEFAULT_ZONE_MULTIPLIERS);
  }
}

const CAP_WORDS = {
  budget: "total budget",
  dailyCap: "daily spend cap (UTC day)",
  monthlyCap: "monthly spend cap (UTC month)",
} as const;

/** 429 `insufficient_quota` naming the key's cap that refused the hold. */
function keyCapRefusal(e: KeyCapExceededError): GatewayError {
  return new GatewayError(
    429,
    "insufficient_quota",
    `This API key's ${CAP_WORDS[e.cap]} of ${e.limit} USD would be exceeded: ${e.spent} USD ` +
      `is spent or held, and this request may cost up to ${e.amount} USD. ` +
      "See GET /api/keys/status.",
    null,
    "insufficient_quota",
  );
}
