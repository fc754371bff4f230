/**
 * Azure OpenAI: OpenAI's API on per-resource hosts (`https://{resource}.openai.azure.com`).
 * https://learn.microsoft.com/azure/ai-foundry/openai/reference — wire facts in
 * reference/vendor-wire.md §2. Served under the hub's `/azure` prefix
 * (`new AzureOpenAI({ endpoint: "https://hub/azure", … })`).
 *
 * Two URL shapes:
 * - deployment-scoped, `/openai/deployments/{deployment}/chat/completions?api-version=…` (and
 *   completions, embeddings, images, audio): Azure routes by the URL, so the hub does too — the
 *   deployment name is the routing model. A channel declares its deployments with
 *   `--deployment name=model` (reported to the hub in its capabilities; routed by name, priced by
 *   the model, see catalog.ts) or lists bare names in `--models` (then priced by the name).
 *   Not yet: serving one client deployment name from differently named ones.
 * - `/openai/responses?api-version=…` and the v1 API, `/openai/v1/…` (no api-version): the
 *   deployment name is `body.model`.
 * Credentials: `api-key` or `Authorization: Bearer`; the agent always sends its key as `api-key`.
 * The upstream host comes from the channel's `endpoint` (the resource name).
 * Streams: the first chunk may be `{"choices":[],"model":"","prompt_filter_results":[…]}`; the
 * OpenAI meter skips the empty model and finds the usage chunk by `usage != null`.
 *
 * `api-version` is required outside `/openai/v1`: the hub answers a request without it in Azure's
 * envelope ({@link azureMissingApiVersion}) and dispatches nothing.
 * Realtime (WebSocket, relayed by hub/gateway/realtime.ts): `/openai/v1/realtime?model=<deployment>`
 * and the preview `/openai/realtime?api-version=…&deployment=…`.
 * Not yet: batch and files, Entra (`azureADTokenProvider`) channel credentials.
 */
import { mapOpenAIUsage } from "../metering/openai.ts";
import {
  extractOpenAIModerationInput,
  openAIModerationBlockedResponse,
} from "./openai_moderation.ts";
import {
  bearerCredential,
  includeUsageExactness,
  jsonResponse,
  openAIMeter,
  openAIModelsResponse,
} from "./openai_compat.ts";
import type { UpstreamChannel, VendorError, VendorRoute, VendorSurface } from "./types.ts";

/** A channel's `endpoint`: the Azure resource name (the host's first label). */
export const AZURE_RESOURCE = /^[a-z0-9-]{2,64}$/;

/** Deployment-scoped operations whose model is the deployment in the URL (JSON bodies). */
const DEPLOYMENT_OPERATIONS = [
  "chat/completions",
  "completions",
  "embeddings",
  "images/generations",
  "audio/speech",
];
/** Deployment-scoped multipart uploads: the model is the form's `model` field. */
const DEPLOYMENT_UPLOADS = ["audio/transcriptions", "audio/translations"];
/** The v1 API: model (the deployment name) in the body. */
const V1_JSON = [
  "chat/completions",
  "completions",
  "embeddings",
  "responses",
  "images/generations",
  "audio/speech",
];
const V1_MULTIPART = ["audio/transcriptions", "audio/translations"];

/** Azure deployment names: letters, digits, `-`, `_`, `.`; up to 64 characters. */
const DEPLOYMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const pathOf = (path: string) => {
  const q = path.indexOf("?");
  return q === -1 ? path : path.slice(0, q);
};

/** The deployment of `/openai/deployments/{deployment}/{operation}`, or null for other paths. */
export function azureDeploymentFromPath(path: string): string | null {
  const m = /^\/openai\/deployments\/([^/]+)\/(.+)$/.exec(pathOf(path));
  if (!m || !DEPLOYMENT_OPERATIONS.includes(m[2]!)) return null;
  let deployment: string;
  try {
    deployment = decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
  return DEPLOYMENT_NAME.test(deployment) ? deployment : null;
}

/** The origin of the channel's Azure resource; throws when `endpoint` is missing or malformed. */
export function azureOrigin(channel: UpstreamChannel): string {
  const resource = channel.endpoint;
  if (resource === undefined || !AZURE_RESOURCE.test(resource)) {
    throw new TypeError(
      "an azure channel needs --endpoint <resource name> (the <resource> of " +
        "https://<resource>.openai.azure.com)",
    );
  }
  return `https://${resource}.openai.azure.com`;
}

/** Whether a path needs `?api-version=` (everything outside `/openai/v1`). */
export function azureNeedsApiVersion(path: string): boolean {
  return !pathOf(path).startsWith("/openai/v1/");
}

/** Azure's answer to a request without `api-version` (Azure REST API guidelines). */
export function azureMissingApiVersion(): VendorError {
  return {
    status: 400,
    type: "invalid_request_error",
    code: "MissingApiVersionParameter",
    message: "The api-version query parameter (?api-version=) is required for all requests.",
  };
}

/** Azure's `{"error":{"code","message"}}` envelope (plus OpenAI's `type`/`param` when known). */
export function azureErrorResponse(error: VendorError, headers?: HeadersInit): Response {
  const inner: Record<string, unknown> = {
    code: error.code ?? String(error.status),
    message: error.message,
  };
  if (error.type) inner.type = error.type;
  if (error.param) inner.param = error.param;
  return jsonResponse({ error: inner }, error.status, headers);
}

const routes: VendorRoute[] = [
  ...DEPLOYMENT_OPERATIONS.map((op): VendorRoute => ({
    method: "POST",
    path: `/openai/deployments/:deployment/${op}`,
    model: "path",
  })),
  ...DEPLOYMENT_UPLOADS.map((op): VendorRoute => ({
    method: "POST",
    path: `/openai/deployments/:deployment/${op}`,
    model: "multipart",
  })),
  { method: "POST", path: "/openai/responses", model: "json" },
  { method: "GET", path: "/openai/models", model: "none", serve: "models" },
  ...V1_JSON.map((op): VendorRoute => ({
    method: "POST",
    path: `/openai/v1/${op}`,
    model: "json",
  })),
  ...V1_MULTIPART.map((op): VendorRoute => ({
    method: "POST",
    path: `/openai/v1/${op}`,
    model: "multipart",
  })),
  { method: "GET", path: "/openai/v1/models", model: "none", serve: "models" },
];

export const azure: VendorSurface = {
  name: "azure",
  rejectRequest: (url) =>
    azureNeedsApiVersion(url.pathname) && !url.searchParams.get("api-version")
      ? azureMissingApiVersion()
      : null,
  // Never called as is: every channel has its own resource host (upstreamOriginFor).
  upstreamOrigin: "https://openai.azure.com",
  upstreamOriginFor: azureOrigin,
  // Per channel (`<resource>.openai.azure.com:443`), added by the agent from its channels.
  hosts: [],
  upstreamPathPrefixes: [
    "/openai/deployments/",
    "/openai/v1/",
    "/openai/responses",
    "/openai/realtime",
  ],
  routes,
  credentialHeaders: ["api-key", "authorization"],

  clientCredential(headers) {
    return headers.get("api-key")?.trim() || bearerCredential(headers);
  },

  modelFromPath: azureDeploymentFromPath,

  applyCredential(headers, key) {
    headers.delete("authorization");
    headers.set("api-key", key);
  },

  shouldRotateKey(status) {
    // 401 "Access denied due to invalid subscription key…". Azure's 429s are rate limits of the
    // deployment (retry later), not an exhausted key.
    return status === 401;
  },

  createMeter: openAIMeter,

  usageExactness: includeUsageExactness(
    (path) => /^\/openai\/(?:deployments\/[^/]+|v1)\/chat\/completions$/.test(pathOf(path)),
    (raw) => mapOpenAIUsage(raw, "chat"),
  ),

  errorResponse: azureErrorResponse,
  moderationBlockedResponse: openAIModerationBlockedResponse,
  moderationInput: extractOpenAIModerationInput,
  modelsResponse: (models) => openAIModelsResponse(models, "azure"),
};
