/**
 * Every vendor surface the platform serves. Adding a vendor: one module + one line here; the
 * table-driven vendor test and the host allow-list pick it up.
 */
import { anthropic } from "./anthropic.ts";
import { openai } from "./openai.ts";
import type { VendorSurface } from "./types.ts";

export const VENDORS: readonly VendorSurface[] = [openai, anthropic];

export function vendorNamed(name: string): VendorSurface | undefined {
  return VENDORS.find((v) => v.name === name);
}
