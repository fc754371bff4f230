/**
 * One vendor call from the agent: official URL, real credential, and — before the first byte
 * reaches the hub — a switch to the channel's next key when the vendor rejects a key or says its
 * quota is gone. Request bodies are kept in memory only while they are small enough to replay.
 */
import type { Frame } from "../../protocol/frames.ts";
import { concatBytes, HOP_BY_HOP_HEADERS } from "../../protocol/http.ts";
import type { CredentialFetch, VendorSurface } from "../../protocol/vendors/types.ts";
import type { Logger } from "../../runtime/log.ts";
import type { Channel } from "../config.ts";
import { signAwsUpstream } from "./aws_sign.ts";
import { credentialFetch, type DevUpstreams, upstreamUrl } from "./whitelist.ts";

/** Bodies up to this size are buffered, so a rejected key can be retried with the next one. */
export const REPLAYABLE_BODY_BYTES_MAX = 8 * 1024 * 1024;

/** Request headers never forwarded upstream (hop-by-hop, or set by fetch/us). */
const DROP_HEADERS = new Set([...HOP_BY_HOP_HEADERS, "accept-encoding", "x-request-id"]);

/** Statuses whose body may say "this key is unusable" (the vendor module decides from the body). */
const KEY_PROBLEM_STATUSES = [400, 401, 402, 403, 429];

export interface UpstreamCall {
  response: Response;
  /** Keys tried and rejected before this response. */
  keyRotations: number;
  /** The request body was rewritten for exact usage; the response must be restored. */
  restore: boolean;
}

export interface CallOptions {
  vendor: VendorSurface;
  channel: Channel;
  dev?: DevUpstreams;
  signal: AbortSignal;
  log: Logger;
  /** Index of the key to try first (keys that failed recently are skipped by the caller). */
  firstKey?: number;
  onKeyRejected?: (index: number, status: number) => void;
}

export async function callUpstream(
  request: Frame<"request">,
  body: ReadableStream<Uint8Array> | null,
  options: CallOptions,
): Promise<UpstreamCall> {
  const { vendor, channel } = options;
  const url = upstreamUrl(vendor, request.path, options.dev, channel);
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    const lower = name.toLowerCase();
    if (!DROP_HEADERS.has(lower) && !vendor.credentialHeaders.includes(lower)) {
      headers.set(name, value);
    }
  }
  // Identity encoding: the hub streams bytes through unchanged and meters them as text.
  headers.set("accept-encoding", "identity");
  headers.set("x-request-id", request.requestId);

  let payload = await bufferIfSmall(body);
  let restore = false;
  if (payload instanceof Uint8Array && vendor.usageExactness) {
    ({ body: payload, restore } = vendor.usageExactness.prepareRequest(request.path, payload));
  }
  const replayable = payload === null || payload instanceof Uint8Array;
  const keys = channel.keys;
  let rotations = 0;
  let fetcher: CredentialFetch | undefined;
  for (let attempt = 0; attempt < keys.length; attempt++) {
    const index = ((options.firstKey ?? 0) + attempt) % keys.length;
    let target = url;
    if (vendor.sigV4) {
      // AWS: the whole request is signed with the channel's access key (aws_sign.ts).
      await signAwsUpstream({
        vendor,
        channel,
        key: keys[index]!,
        method: request.method,
        target,
        headers,
        body: payload,
        nowMs: Date.now(),
      });
    } else if (vendor.credentialFor) {
      // An asynchronous credential (e.g. an OAuth token minted from the key, cached by the vendor).
      let credential;
      try {
        credential = await vendor.credentialFor(
          { key: keys[index]!, path: request.path },
          fetcher ??= credentialFetch(vendor, options.dev),
          Date.now(),
        );
      } catch (e) {
        // Nothing was sent yet, so the next key can always be tried. The message never holds a key.
        if (attempt === keys.length - 1) throw e;
        options.onKeyRejected?.(index, 401);
        options.log.warn("no credential from a channel key; trying the next", {
          channel: channel.id,
          keyIndex: index,
          error: e instanceof Error ? e.message : String(e),
        });
        rotations++;
        continue;
      }
      for (const name of vendor.credentialHeaders) headers.delete(name);
      for (const [name, value] of Object.entries(credential.headers)) headers.set(name, value);
      if (credential.path !== undefined) {
        target = upstreamUrl(vendor, credential.path, options.dev, channel);
      }
    } else {
      vendor.applyCredential(headers, keys[index]!);
    }
    const response = await fetch(target, {
      method: request.method,
      headers,
      body: payload as BodyInit | null,
      signal: options.signal,
      redirect: "manual",
    });
    const last = attempt === keys.length - 1 || !replayable;
    if (last || !KEY_PROBLEM_STATUSES.includes(response.status)) {
      return { response, keyRotations: rotations, restore };
    }
    // Read the (small) error body to tell "bad key / no quota" from an ordinary rate limit.
    const text = await response.text();
    if (!vendor.shouldRotateKey(response.status, text)) {
      return { response: new Response(text, response), keyRotations: rotations, restore };
    }
    options.onKeyRejected?.(index, response.status);
    options.log.warn("vendor rejected a channel key; trying the next", {
      channel: channel.id,
      keyIndex: index,
      status: response.status,
    });
    rotations++;
  }
  throw new Error("unreachable: the key loop always returns");
}

/** Small bodies become bytes (replayable); large ones stream through (prefix + rest). */
async function bufferIfSmall(
  body: ReadableStream<Uint8Array> | null,
): Promise<Uint8Array | ReadableStream<Uint8Array> | null> {
  if (!body) return null;
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size > REPLAYABLE_BODY_BYTES_MAX) {
      // Too big to replay: stream what we have, then the rest as it arrives.
      return new ReadableStream<Uint8Array>({
        pull: async (controller) => {
          const next = chunks.shift();
          if (next) return controller.enqueue(next);
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      }, { highWaterMark: 0 });
    }
  }
  return size === 0 ? null : concatBytes(chunks, size);
}
