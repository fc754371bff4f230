/**
 * Reads just enough of a client's request body to learn the model, then forwards the body as a
 * stream: the bytes already read first, the rest as it arrives. Nothing is re-encoded. When
 * moderation needs the whole request, the body is read completely (bounded) instead.
 */
import { JsonTopLevelSniffer } from "../../protocol/sniff/json_fields.ts";
import { MultipartFieldSniffer } from "../../protocol/sniff/multipart_field.ts";
import type { ModelSource } from "../../protocol/vendors/types.ts";
import { GatewayError } from "./errors.ts";
import { concatBytes } from "../../protocol/http.ts";

export interface SniffedRequest {
  model: string;
  /** The rest of a body too large to read whole, as a one-shot stream (else null). */
  body: ReadableStream<Uint8Array> | null;
  /** The whole body, when it was read completely (moderation; replay on failover). */
  bytes?: Uint8Array;
  /** Body size: exact when read whole, else what is known so far (or the declared length). */
  size: number;
  /** The request's output cap (`max_tokens` and friends), when it names one. */
  maxOutputTokens?: number;
}

interface Sniffer {
  push(chunk: Uint8Array): void;
  end(): void;
  readonly error?: string;
  /** The model as soon as it is known (routing), or undefined. */
  model(): unknown;
  /** A later duplicate changed the model: the request is ambiguous. */
  conflict(): boolean;
  maxOutputTokens(): number | undefined;
}

/** Body fields that cap the output (chat, legacy, responses). */
const OUTPUT_CAP_FIELDS = ["max_tokens", "max_completion_tokens", "max_output_tokens"];

function snifferFor(source: ModelSource, contentType: string, pathModel?: string | null): Sniffer {
  if (source === "multipart") {
    if (!contentType.toLowerCase().startsWith("multipart/form-data")) {
      throw new GatewayError(400, "invalid_request_error", "Expected a multipart/form-data body");
    }
    const s = new MultipartFieldSniffer(contentType, ["model"]);
    return {
      push: (c) => s.push(c),
      end: () => s.end(),
      get error() {
        return s.error;
      },
      model: () => s.get("model"),
      conflict: () => false,
      maxOutputTokens: () => undefined,
    };
  }
  if (source === "path") {
    // The body is JSON (checked as it passes); the model comes from the URL path.
    const s = new JsonTopLevelSniffer([]);
    return {
      push: (c) => s.push(c),
      end: () => s.end(),
      get error() {
        return s.error;
      },
      model: () => pathModel ?? "",
      conflict: () => false,
      maxOutputTokens: () => undefined,
    };
  }
  const s = new JsonTopLevelSniffer(["model", ...OUTPUT_CAP_FIELDS]);
  return {
    push: (c) => s.push(c),
    end: () => s.end(),
    get error() {
      return s.error;
    },
    model: () => s.getEarly("model"),
    conflict: () => s.conflict("model"),
    maxOutputTokens: () => {
      for (const f of OUTPUT_CAP_FIELDS) {
        const v = s.getEarly(f);
        if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
      }
      return undefined;
    },
  };
}

export async function sniffRequest(
  req: Request,
  source: ModelSource,
  options: {
    maxBytes: number;
    /** Bodies up to this size are read whole (replayable for failover, visible to moderation). */
    bufferBytesMax: number;
    /** The model when the body doesn't carry it (`none` and `path` sources). */
    modelFromQuery?: string | null;
  },
): Promise<SniffedRequest> {
  if (source === "none" || !req.body) {
    await req.body?.cancel();
    return { model: options.modelFromQuery ?? "", body: null, size: 0 };
  }
  const tooLarge = () =>
    new GatewayError(
      413,
      "invalid_request_error",
      `Request body is larger than ${options.maxBytes} bytes`,
    );
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > options.maxBytes) throw tooLarge();

  if (source === "path" && !options.modelFromQuery) {
    await req.body.cancel();
    throw new GatewayError(400, "invalid_request_error", "you must provide a model", "model");
  }
  const sniffer = snifferFor(source, req.headers.get("content-type") ?? "", options.modelFromQuery);
  const reader = req.body.getReader();
  const prefix: Uint8Array[] = [];
  let size = 0;
  let done = false;
  while (!done && (size <= options.bufferBytesMax || sniffer.model() === undefined)) {
    const next = await reader.read();
    if (next.done) {
      done = true;
      sniffer.end();
      break;
    }
    size += next.value.length;
    if (size > options.maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    sniffer.push(next.value);
    prefix.push(next.value);
    if (sniffer.error) break;
  }
  if (sniffer.error) {
    await reader.cancel().catch(() => {});
    throw new GatewayError(
      400,
      "invalid_request_error",
      `Could not parse the request body: ${sniffer.error}`,
    );
  }
  if (sniffer.conflict()) {
    throw new GatewayError(400, "invalid_request_error", "The body names more than one model");
  }
  const model = sniffer.model();
  if (typeof model !== "string" || model === "") {
    await reader.cancel().catch(() => {});
    throw new GatewayError(
      400,
      "invalid_request_error",
      "you must provide a model parameter",
      "model",
    );
  }
  const maxOutputTokens = sniffer.maxOutputTokens();
  if (done) {
    const bytes = concatBytes(prefix, size);
    return { model, body: null, bytes, size, maxOutputTokens };
  }
  // Forward what we have, then the rest, still watching size and a late duplicate model.
  const body = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      const head = prefix.shift();
      if (head) return controller.enqueue(head);
      const next = await reader.read();
      if (next.done) return controller.close();
      size += next.value.length;
      sniffer.push(next.value);
      if (size > options.maxBytes) return controller.error(tooLarge());
      if (sniffer.conflict()) {
        return controller.error(new Error("The body names more than one model"));
      }
      controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return { model, body, size: Math.max(size, declared), maxOutputTokens };
}

/** A stream over `bytes` in frame-sized views (no copies); null for an empty body. */
export function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> | null {
  if (bytes.length === 0) return null;
  let offset = 0;
  const slice = 64 * 1024;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + slice));
      offset += slice;
    },
  }, { highWaterMark: 0 });
}
