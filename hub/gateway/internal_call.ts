/**
 * A request the hub itself makes through an agent (e.g. the LLM moderator asking a moderation
 * model). It takes the same route as client traffic: channel selection, tunnel stream, vendor call.
 */
import type { VendorSurface } from "../../protocol/vendors/types.ts";
import { selectCandidates } from "../routing/select.ts";
import type { SessionRegistry } from "../tunnel/registry.ts";
import { newRequestId } from "./routes.ts";

const RESPONSE_BYTES_MAX = 1024 * 1024;

export function internalJsonCall(
  registry: SessionRegistry,
  vendor: VendorSurface,
  path: string,
  idleTimeoutMs: number,
) {
  return async (body: unknown, signal: AbortSignal): Promise<{ status: number; json: unknown }> => {
    const model = (body as { model?: string }).model ?? "";
    const choice = selectCandidates(registry, vendor.name, model)[0];
    if (!choice) return { status: 503, json: null };
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const response = await choice.session.openStream({
      vendor: vendor.name,
      channelId: choice.channelId,
      method: "POST",
      path,
      headers: { "content-type": "application/json" },
      requestId: newRequestId(),
      body: new Blob([bytes]).stream(),
      signal,
      idleTimeoutMs,
    });
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > RESPONSE_BYTES_MAX) {
        await reader.cancel();
        return { status: 502, json: null };
      }
      chunks.push(value);
    }
    const text = new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
    try {
      return { status: response.status, json: JSON.parse(text) };
    } catch {
      return { status: 502, json: null };
    }
  };
}
