/**
 * Test and bench helper (not a test): SETTLED frames an honest hub would send, continuing a chain,
 * with the agent's own counts that match them (openai/gpt-5.5 from the default price table).
 */
import { appendEntry, type LedgerEntry } from "../../protocol/chain.ts";
import type { Frame } from "../../protocol/frames.ts";
import { formatUsd } from "../../protocol/money.ts";
import { charges, costOf, findPrice } from "../../protocol/pricing.ts";
import { DEFAULT_PRICE_TABLE } from "../../protocol/prices_default.ts";
import { emptyUsage } from "../../protocol/usage.ts";
import type { OwnUsage } from "./verify.ts";

const MODEL = "gpt-5.5";
const ZONE = "1.25", RATIO = "0.80";

/** `count` frames after `prev` for `agentId`, request ids `<tag>-<i>`. */
export async function honestFrames(
  agentId: string,
  prev: LedgerEntry | null,
  count: number,
  tag: string,
): Promise<{ frame: Frame<"settled">; own: OwnUsage }[]> {
  const price = findPrice(DEFAULT_PRICE_TABLE, "openai", MODEL)!.price;
  const out: { frame: Frame<"settled">; own: OwnUsage }[] = [];
  for (let i = 0; i < count; i++) {
    const own: OwnUsage = {
      vendor: "openai",
      usage: { ...emptyUsage(), inputTokens: 1000 + (i % 700), outputTokens: 100 + (i % 300) },
      promptTokens: 1000 + (i % 700),
      model: MODEL,
      atMs: Date.now(),
    };
    const official = costOf(
      own.usage,
      { promptTokens: own.promptTokens, completedAtMs: own.atMs },
      price,
    );
    const split = charges({ official, zoneMultiplier: ZONE, payoutRatio: RATIO });
    const entry: LedgerEntry = await appendEntry(prev, {
      agentId,
      requestId: `${tag}-${i}`,
      vendor: "openai",
      model: MODEL,
      usage: own.usage,
      priceVersion: DEFAULT_PRICE_TABLE.version,
      official: formatUsd(official),
      userCharge: formatUsd(split.userCharge),
      agentPayout: formatUsd(split.agentPayout),
      completedAtMs: own.atMs,
      settledAtMs: own.atMs + 3,
    });
    out.push({
      frame: { type: "settled", ...entry, zoneMultiplier: ZONE, payoutRatio: RATIO },
      own,
    });
    prev = entry;
  }
  return out;
}
