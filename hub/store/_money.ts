/**
 * Exact USD amounts for the store: the one implementation lives in `protocol/money.ts` (hub and
 * agent compute money with the same code); the store keeps these names.
 */
export { formatUsd, parseUsd, PICO_PER_USD, USD_SCALE } from "../../protocol/money.ts";
