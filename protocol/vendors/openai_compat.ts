/**
 * Pieces every OpenAI-compatible surface shares (OpenAI itself, DeepSeek, DashScope's compatible
 * mode): Bearer credentials, the `{"error":{…}}` envelope, the model list and the
 * `include_usage` round trip of metering/include_usage.ts with a vendor's own usage mapping.
 */
import { ensureIncludeUsage, UsageChunkStripper } from "../metering/include_usage.ts";
import type { MappedUsage } from "../metering/openai_usage.ts";
import { createOpenAIMeter } from "../metering/openai.ts";
import type { Meter, MeterContext, MeterResult, UsageExactness, VendorError } from "./types.ts";

export const jsonResponse = (body: unknown, status: number, headers?: HeadersInit) => {
  const res = new Response(JSON.stringify(body), { status, headers });
  res.headers.set("content-type", "application/json");
  return res;
};

/** The key of an `Authorization: Bearer <key>` header. */
export function bearerCredential(headers: Headers): string | null {
  const auth = headers.get("authorization") ?? "";
  return auth.toLowerCase().startsWith("bearer ") ? auth.slice(7).trim() || null : null;
}

export function applyBearer(headers: Headers, key: string): void {
  headers.set("authorization", `Bearer ${key}`);
}

/** The inner `error` object of OpenAI's envelope. */
export function openAIErrorObject(error: VendorError) {
  return { message: error.message, type: error.type, param: error.param ?? null, code: error.code };
}

export function openAIErrorResponse(error: VendorError, headers?: HeadersInit): Response {
  return jsonResponse({ error: openAIErrorObject(error) }, error.status, headers);
}

export function openAIModelsResponse(models: string[], ownedBy = "aqueduct"): Response {
  return jsonResponse({
    object: "list",
    data: models.map((id) => ({ id, object: "model", created: 0, owned_by: ownedBy })),
  }, 200);
}

/**
 * The include_usage round trip for chat streams on paths `isChat` accepts; the stripped usage
 * chunk is mapped with `mapUsage` (the vendor's own usage fields).
 */
export function includeUsageExactness(
  isChat: (path: string) => boolean,
  mapUsage: (raw: unknown) => MappedUsage | null,
): UsageExactness {
  return {
    prepareRequest(path, body) {
      if (!isChat(path)) return { body, restore: false };
      const prepared = ensureIncludeUsage(body);
      return { body: prepared.body, restore: prepared.added };
    },
    restoreResponse() {
      const stripper = new UsageChunkStripper();
      const transform = new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          const out = stripper.push(chunk);
          if (out.length) controller.enqueue(out);
        },
        flush: (controller) => {
          const out = stripper.end();
          if (out.length) controller.enqueue(out);
        },
      });
      const result = (): MeterResult => {
        const mapped = mapUsage(stripper.rawUsage);
        return {
          usage: mapped?.usage ?? null,
          promptTokens: mapped?.promptTokens ?? 0,
          model: stripper.model,
          serviceTier: stripper.serviceTier,
          complete: stripper.sawDone,
        };
      };
      return { transform, result };
    },
  };
}

/** The OpenAI meter for a response; the stream flag comes from the response's content type. */
export function openAIMeter(context: MeterContext): Meter {
  return createOpenAIMeter({
    path: context.path,
    stream: (context.contentType ?? "").includes("text/event-stream"),
    contentType: context.contentType,
  });
}
