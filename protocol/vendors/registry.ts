/**
 * Every vendor surface the platform serves. Adding a vendor: one module + one line here; the
 * table-driven vendor test and the host allow-list pick it up. Order matters: a root path goes to
 * the first vendor that claims it (OpenAI keeps `/v1/chat/completions`; DeepSeek's `/v1` alias is
 * served only as `/deepseek/v1/…`; Azure's `/openai/v1/…` at the root stays OpenAI's prefixed
 * path, so Azure's v1 shape is served as `/azure/openai/v1/…`).
 */
import { anthropic } from "./anthropic.ts";
import { azure } from "./azure.ts";
import { bedrock } from "./bedrock.ts";
import { gemini } from "./gemini.ts";
import { dashscope } from "./dashscope.ts";
import { deepseek } from "./deepseek.ts";
import { openai } from "./openai.ts";
import { vertex } from "./vertex.ts";
import type { VendorSurface } from "./types.ts";

export const VENDORS: readonly VendorSurface[] = [
  openai,
  anthropic,
  deepseek,
  dashscope,
  gemini,
  azure,
  vertex,
  bedrock,
];

export function vendorNamed(name: string): VendorSurface | undefined {
  return VENDORS.find((v) => v.name === name);
}
