/**
 * What the hub and the agent need to know about one vendor surface. Each vendor is one module
 * implementing this; central code never names a vendor.
 */
import type { ModerationImage } from "../moderation.ts";
import type { Usage } from "../usage.ts";

/** Text and images found in a request; `truncated` when the extraction bound was hit. */
export interface ExtractedModerationContent {
  texts: string[];
  images: ModerationImage[];
  truncated: boolean;
}

/**
 * How the hub learns the model (and whether to expect a body) for one route. `path`: a JSON body,
 * with the model in the URL path (read by the vendor's `modelFromPath`).
 */
export type ModelSource = "json" | "multipart" | "none" | "path";

export interface VendorRoute {
  method: "GET" | "POST" | "DELETE";
  /** Vendor path, e.g. `/v1/chat/completions`; `*` matches one path segment. */
  path: string;
  model: ModelSource;
  /** Answered by the hub itself instead of an agent (e.g. the model list). */
  serve?: "models";
}

/** What a meter reports at the end of a response. */
export interface MeterResult {
  usage: Usage | null;
  promptTokens: number;
  model?: string;
  serviceTier?: string;
  /** The vendor signalled a complete response. */
  complete: boolean;
}

/** Sees response bytes as they pass; never holds the whole body. */
export interface Meter {
  push(chunk: Uint8Array): void;
  end(): MeterResult;
}

export interface MeterContext {
  path: string;
  status: number;
  contentType: string | null;
  /** The response headers, for vendors that report usage there (Bedrock InvokeModel). */
  headers?: Headers;
}

/** An error in the vendor's own envelope, so the client SDK raises its own typed exception. */
export interface VendorError {
  status: number;
  type: string;
  code: string | null;
  message: string;
  param?: string | null;
}

/** Rewrites the agent makes so usage is exact, undone on the response (see metering/include_usage.ts). */
export interface UsageExactness {
  /** Returns the body to send upstream and whether the response must be restored. */
  prepareRequest(path: string, body: Uint8Array): { body: Uint8Array; restore: boolean };
  /** A transform that restores the response the client would have got; it also meters. */
  restoreResponse(): { transform: TransformStream<Uint8Array, Uint8Array>; result(): MeterResult };
}

/** What a vendor may read from an agent channel to choose its upstream origin. */
export interface UpstreamChannel {
  /** Owner-specific endpoint name (e.g. a per-resource host label); validated by the vendor. */
  endpoint?: string;
}

/**
 * Agent: `fetch` for a vendor's own credential exchange (e.g. an OAuth token endpoint). Only
 * `https://` URLs on the vendor's `hosts` are allowed; AGENT_DEV_UPSTREAMS redirects them in tests.
 */
export type CredentialFetch = (url: string, init: RequestInit) => Promise<Response>;

export interface VendorSurface {
  /** Name in frames, channels and logs, e.g. "openai". */
  readonly name: string;
  /** Official API origin the agent calls; no configurable base URL exists. */
  readonly upstreamOrigin: string;
  /**
   * Agent: the API origin for one channel when the vendor's host depends on the owner's account
   * (a per-resource host). Throws when the channel lacks a valid `endpoint`. When present it
   * replaces `upstreamOrigin`, and its host joins the agent's `--allow-net` per channel.
   * `path` (the upstream path + query, when known): vendors whose host also depends on the request
   * (e.g. Vertex's location) check it against the channel and throw on a mismatch.
   */
  upstreamOriginFor?(channel: UpstreamChannel, path?: string): string;
  /** `host:port` entries for the agent's `--allow-net`. */
  readonly hosts: readonly string[];
  /** Upstream path prefixes the agent may call. */
  readonly upstreamPathPrefixes: readonly string[];
  /**
   * A request header only this vendor's clients send (e.g. `anthropic-version`): picks this vendor
   * for root paths that several vendors share.
   */
  readonly rootMarkerHeader?: string;
  /** Routes the hub serves for this vendor (vendor paths, without the hub's vendor prefix). */
  readonly routes: readonly VendorRoute[];
  /** Hub: the credential a client presented (headers, or the URL when the vendor allows it). */
  clientCredential(headers: Headers, url?: URL): string | null;
  /** Query parameters that may carry a client credential (e.g. `key`); other vendors refuse them. */
  readonly credentialQueryParams?: readonly string[];
  /**
   * Hub: the model named by a vendor path (no hub prefix, query allowed) for `model: "path"`
   * routes; null when the path names no model or no method this vendor serves (then 404).
   */
  modelFromPath?(path: string): string | null;
  /**
   * Hub: the path + query to forward for a vendor URL (no hub prefix), e.g. without the
   * credential query parameter. Default: path and query unchanged.
   */
  upstreamPathFor?(url: URL): string;
  /** Request headers that carry client credentials (stripped before forwarding). */
  readonly credentialHeaders: readonly string[];
  /**
   * Both sides: requests are signed with AWS SigV4 for this signing name. The hub verifies a
   * client's signature with the key's hub-issued AWS credential (hub/gateway/sigv4.ts); the agent
   * signs upstream requests itself with the channel key `AKID:SECRET` in the channel's region
   * (its `endpoint`), instead of calling `applyCredential` (agent/upstream/aws_sign.ts).
   */
  readonly sigV4?: { service: string };
  /** Agent: put the real credential on the upstream request. */
  applyCredential(headers: Headers, key: string): void;
  /**
   * Agent: an asynchronous credential (e.g. an OAuth access token minted from the channel key and
   * cached). When present the agent awaits it instead of calling `applyCredential`: it sets the
   * returned headers (after removing `credentialHeaders`) and, when `path` is returned, calls that
   * path instead (re-checked like any upstream path). Throws when no credential can be had; the
   * message must never contain the key.
   */
  credentialFor?(
    request: { key: string; path: string },
    fetcher: CredentialFetch,
    nowMs: number,
  ): Promise<{ headers: Record<string, string>; path?: string }>;
  /** `agent channel add`: throws (a message without the key) when a key cannot be this vendor's. */
  validateKey?(key: string): void;
  /** Agent: does this upstream answer mean "this key is unusable, try the next one"? */
  shouldRotateKey(status: number, bodyText: string): boolean;
  /** Both sides: a usage meter for one response. */
  createMeter(context: MeterContext): Meter;
  /** Agent: optional request/response rewrite that makes streamed usage exact. */
  readonly usageExactness?: UsageExactness;
  /** The vendor's error envelope. */
  errorResponse(error: VendorError, headers?: HeadersInit): Response;
  /**
   * Hub: a request the vendor would refuse outright (e.g. a required query parameter missing),
   * answered before anything is dispatched; null when the request may go on.
   */
  rejectRequest?(url: URL): VendorError | null;
  /**
   * Hub: the location a request names (e.g. Vertex's `locations/{l}`, path + query); only
   * channels that declare it in `locations` serve the request. Null: no location constraint.
   */
  requestLocation?(path: string): string | null;
  /** Agent: the locations a channel serves, reported to the hub (e.g. its `endpoint`). */
  channelLocations?(channel: UpstreamChannel): string[];
  /** The answer to a request the moderation chain blocked. */
  moderationBlockedResponse(): Response;
  /** Hub: the text and image parts of a parsed request body, for moderation. */
  moderationInput?(path: string, body: unknown): ExtractedModerationContent;
  /** Hub: the vendor's model-list answer for the models online agents offer. */
  modelsResponse(models: string[]): Response;
}
