/**
 * Vertex AI: Gemini (`publishers/google`) and Claude (`publishers/anthropic`) on Google Cloud.
 * https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest — wire facts in
 * reference/vendor-wire.md §5. Served under the hub's `/vertex` prefix:
 * `new GoogleGenAI({ vertexai: true, project, location, httpOptions: { baseUrl: "https://hub/vertex" } })`
 * and `new AnthropicVertex({ baseURL: "https://hub/vertex/v1", region, projectId })`.
 *
 * Paths: `/{v1,v1beta1}/projects/{project}/locations/{location}/publishers/{publisher}/models/
 * {model}:{method}` — google: `generateContent`, `streamGenerateContent`, `countTokens`,
 * `predict` (embeddings); anthropic: `rawPredict`, `streamRawPredict`, and
 * `count-tokens:rawPredict` (the model is then `body.model`). The model comes from the path.
 *
 * Client credential: the virtual key as `Authorization: Bearer` (give the SDKs an auth client
 * that returns it). Channel credential: the key is a service-account JSON (see vertex_auth.ts);
 * the agent mints and caches an OAuth access token and sends `Authorization: Bearer <token>`.
 * The client's `projects/{project}` is replaced by the SA's `project_id` (the owner's project).
 *
 * Location: the channel's `--endpoint` is the Vertex location it serves (`us-central1`,
 * `europe-west4`, `global`, `us`, `eu`); it picks the host (`{location}-aiplatform.googleapis.com`,
 * `aiplatform.googleapis.com` for `global`, `aiplatform.{us,eu}.rep.googleapis.com`), which joins
 * the agent's `--allow-net`. The channel reports its location to the hub (`channelLocations`), and
 * the hub routes `locations/{l}` only to channels serving `{l}` (`requestLocation`); an agent still
 * refuses a request for another location. A request for `global` goes to `global` channels only:
 * a regional request is never sent elsewhere (data residency), nor a `global` one rewritten.
 * Not yet: Express mode (`/v1beta1/publishers/…` with an API key), `:predict` metering, per-request
 * error envelopes (errors are Google's envelope for both publishers).
 */
import { createAnthropicMeter } from "../metering/anthropic.ts";
import { createGeminiMeter } from "../metering/gemini.ts";
import { extractAnthropicModerationInput } from "./anthropic.ts";
import { extractGeminiModerationInput, gemini } from "./gemini.ts";
import { bearerCredential } from "./openai_compat.ts";
import type {
  ExtractedModerationContent,
  UpstreamChannel,
  VendorRoute,
  VendorSurface,
} from "./types.ts";
import { AccessTokenCache, GCP_PROJECT, parseServiceAccount } from "./vertex_auth.ts";

/** A Vertex location (a channel's `endpoint`, and the path's `locations/{…}`). */
export const VERTEX_LOCATION = /^[a-z0-9-]{2,40}$/;

export const VERTEX_METHODS: Readonly<Record<string, readonly string[]>> = {
  google: ["generateContent", "streamGenerateContent", "countTokens", "predict"],
  anthropic: ["rawPredict", "streamRawPredict"],
};

/** Model ids: plain names (Claude's carry `@date`); nothing that could steer the path. */
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

export interface VertexPath {
  version: "v1" | "v1beta1";
  project: string;
  location: string;
  publisher: string;
  model: string;
  method: string;
  /** The path's query, with its `?` (or ""). */
  query: string;
}

/** Parses a Vertex publisher-model path (query allowed); null for anything else. */
export function parseVertexPath(path: string): VertexPath | null {
  const q = path.indexOf("?");
  const pathname = q === -1 ? path : path.slice(0, q);
  const m =
    /^\/(v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/([^/]+)\/models\/([^/]+)$/
      .exec(pathname);
  if (!m) return null;
  let project: string, location: string, publisher: string, segment: string;
  try {
    [project, location, publisher, segment] = [m[2]!, m[3]!, m[4]!, m[5]!].map(
      decodeURIComponent,
    ) as [
      string,
      string,
      string,
      string,
    ];
  } catch {
    return null;
  }
  const methods = VERTEX_METHODS[publisher];
  if (!methods || !GCP_PROJECT.test(project) || !VERTEX_LOCATION.test(location)) return null;
  const colon = segment.lastIndexOf(":");
  if (colon <= 0) return null;
  const method = segment.slice(colon + 1);
  const model = segment.slice(0, colon);
  if (!methods.includes(method) || !MODEL_ID.test(model)) return null;
  return {
    version: m[1] as "v1" | "v1beta1",
    project,
    location,
    publisher,
    model,
    method,
    query: q === -1 ? "" : path.slice(q),
  };
}

/** Claude's token count: `…/publishers/anthropic/models/count-tokens:rawPredict`. */
const isAnthropicCount = (p: VertexPath) =>
  p.publisher === "anthropic" && p.model === "count-tokens" && p.method === "rawPredict";

/** The model of a Vertex path; null for other paths and for Claude's `count-tokens`. */
export function vertexModelFromPath(path: string): string | null {
  const parsed = parseVertexPath(path);
  return parsed && !isAnthropicCount(parsed) ? parsed.model : null;
}

/** The API origin of a Vertex location. */
export function vertexLocationOrigin(location: string): string {
  if (!VERTEX_LOCATION.test(location)) throw new TypeError(`bad Vertex location "${location}"`);
  if (location === "global") return "https://aiplatform.googleapis.com";
  if (location === "us" || location === "eu") {
    return `https://aiplatform.${location}.rep.googleapis.com`;
  }
  return `https://${location}-aiplatform.googleapis.com`;
}

/**
 * The origin for a channel (its `endpoint` is the location it serves); with `path`, the path's
 * location must be that one.
 */
export function vertexOrigin(channel: UpstreamChannel, path?: string): string {
  const location = channel.endpoint;
  if (location === undefined || !VERTEX_LOCATION.test(location)) {
    throw new TypeError(
      "a vertex channel needs --endpoint <location> (e.g. us-central1, europe-west4 or global)",
    );
  }
  if (path !== undefined) {
    const parsed = parseVertexPath(path);
    if (parsed && parsed.location !== location) {
      throw new TypeError(
        `this channel serves location ${location}, not ${parsed.location}`,
      );
    }
  }
  return vertexLocationOrigin(location);
}

/** The meter's view of a Vertex path: Gemini's path as is, Claude's as `/v1/messages[…]`. */
function anthropicPathOf(p: VertexPath): string {
  return isAnthropicCount(p) ? "/v1/messages/count_tokens" : "/v1/messages";
}

const tokens = new AccessTokenCache();

const prefixOf = (publisher: string, version: string) =>
  `/${version}/projects/:project/locations/:location/publishers/${publisher}/models`;

const routes: VendorRoute[] = ["v1", "v1beta1"].flatMap((version): VendorRoute[] => [
  // Claude's count_tokens names no model in the path: the model is `body.model`.
  {
    method: "POST",
    path: `${prefixOf("anthropic", version)}/count-tokens:rawPredict`,
    model: "json",
  },
  { method: "POST", path: `${prefixOf("anthropic", version)}/:call`, model: "path" },
  { method: "POST", path: `${prefixOf("google", version)}/:call`, model: "path" },
]);

export const vertex: VendorSurface = {
  name: "vertex",
  // Never called as is: the host follows the channel's location (upstreamOriginFor).
  upstreamOrigin: "https://aiplatform.googleapis.com",
  upstreamOriginFor: vertexOrigin,
  // Google's OAuth token endpoint (credentialFor); the API hosts are added per channel.
  hosts: ["oauth2.googleapis.com:443"],
  upstreamPathPrefixes: ["/v1/projects/", "/v1beta1/projects/"],
  routes,
  credentialHeaders: ["authorization", "x-goog-api-key"],

  clientCredential: bearerCredential,

  modelFromPath: vertexModelFromPath,

  requestLocation: (path) => parseVertexPath(path)?.location ?? null,

  channelLocations: (channel) =>
    channel.endpoint !== undefined && VERTEX_LOCATION.test(channel.endpoint)
      ? [channel.endpoint]
      : [],

  applyCredential() {
    // Never called: the credential is an access token minted asynchronously (credentialFor).
    throw new Error("vertex credentials are minted asynchronously (credentialFor)");
  },

  async credentialFor({ key, path }, fetcher, nowMs) {
    const sa = parseServiceAccount(key);
    const token = await tokens.get(key, fetcher, nowMs);
    const parsed = parseVertexPath(path);
    if (!parsed) throw new TypeError("not a Vertex publisher-model path");
    // The owner's project, not whatever the client named.
    const rest = path.slice(path.indexOf("/locations/"));
    return {
      headers: { authorization: `Bearer ${token}` },
      path: `/${parsed.version}/projects/${sa.projectId}${rest}`,
    };
  },

  validateKey(key) {
    parseServiceAccount(key);
  },

  shouldRotateKey(status, bodyText) {
    if (status === 401) return true; // UNAUTHENTICATED: the SA's token is refused
    // The SA cannot use Vertex in its project (API off, billing off, no IAM role).
    return status === 403 &&
      /SERVICE_DISABLED|BILLING_DISABLED|CONSUMER_INVALID|IAM_PERMISSION_DENIED|aiplatform\.endpoints\.predict/i
        .test(bodyText);
  },

  createMeter(context) {
    const parsed = parseVertexPath(context.path);
    if (parsed?.publisher === "anthropic") {
      return createAnthropicMeter({
        path: anthropicPathOf(parsed),
        contentType: context.contentType,
      });
    }
    return createGeminiMeter({ path: context.path, contentType: context.contentType });
  },

  errorResponse: gemini.errorResponse,
  moderationBlockedResponse: gemini.moderationBlockedResponse,

  moderationInput(path, body): ExtractedModerationContent {
    const parsed = parseVertexPath(path);
    if (parsed?.publisher === "anthropic") {
      return extractAnthropicModerationInput(anthropicPathOf(parsed), body);
    }
    return extractGeminiModerationInput(path, body);
  },

  modelsResponse: gemini.modelsResponse,
};
