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
 *   nothing now: its ledger is reconciled against the hub's later (`GET /admin/ledger`).
 * - Prices are the in-memory `DEFAULT_PRICE_TABLE` for now (versioned tables in the store are a
 *   later step); the ledger entry records the table's `version`.
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
import {
  type BillingStore,
  InsufficientFundsError,
  type KeyWithUser,
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
  prices?: PriceTable;
  zones?: Readonly<Record<string, string>>;
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
  readonly prices: PriceTable;
  readonly #warned = new Set<string>();

  constructor(readonly options: BillerOptions) {
    this.prices = options.prices ?? DEFAULT_PRICE_TABLE;
  }

  /** The price of `vendor/model`, or undefined. */
  priceOf(vendor: string, model: string): ModelPrice | undefined {
    return findPrice(this.prices, vendor, model)?.price;
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
        { reservationId: requestId, userId: key.userId, amount, expiresAtMs: now + HOLD_TTL_MS },
        now,
      );
    } catch (e) {
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
    const price = this.priceOf(hold.vendor, hold.model) ??
      this.priceOf(hold.vendor, record.model);
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
        priceVersion: this.prices.version,
        official: formatUsd(official),
        userCharge: formatUsd(userCharge),
        agentPayout: formatUsd(split.agentPayout),
        completedAtMs: record.completedAtMs,
        settledAtMs: now,
      },
    });
    const zone = this.#zone(hold.zone), payoutRatio = this.options.payoutTable[grade];
    let stored: LedgerEntry;
    try {
      stored = await this.options.store.settle(entry(split.userCharge));
    } catch (e) {
      if (!(e instanceof InsufficientFundsError)) throw e;
      this.options.log.warn("charge above the hold and the balance; capped at the hold", {
        requestId: record.requestId,
        charge: formatUsd(split.userCharge),
        hold: formatUsd(hold.amount),
      });
      stored = await this.options.store.settle(entry(hold.amount));
    }
    this.#tellAgent(stored, zone, payoutRatio);
  }

  /** Sends the stored entry to the agent if it is connected (else: reconciled later). */
  #tellAgent(e: LedgerEntry, zoneMultiplier: string, payoutRatio: string): void {
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
