/**
 * AWS Bedrock Runtime: `POST /model/{modelId}/invoke | invoke-with-response-stream | converse |
 * converse-stream | count-tokens` on `https://bedrock-runtime.{region}.amazonaws.com`.
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/ — wire facts in
 * reference/vendor-wire.md §6. Served at the root and under `/bedrock`
 * (`new BedrockRuntimeClient({ endpoint: "https://hub/bedrock", … })`,
 * `new AnthropicBedrock({ baseURL: "https://hub/bedrock", … })`).
 *
 * Model ids arrive raw (`v1:0`, Anthropic's SDK) or encoded (`v1%3A0`, the AWS SDK); an ARN's `/`
 * arrives as `%2F`, so the path is matched raw (one segment) and decoded here. The routing model
 * is the id itself, or for an ARN its resource id (`…:inference-profile/us.anthropic.…` → the
 * profile id); the upstream path always names that id, encoded once, so the client's account id
 * never reaches the owner's account.
 *
 * Client credentials: an AWS SigV4 signature with the hub-issued access key (verified by
 * hub/gateway/sigv4.ts before anything else), or a Bedrock API key as `Authorization: Bearer`
 * (the virtual key). Channel credentials: `AKID:SECRET`, and the channel's `--endpoint` is the
 * AWS region; the agent signs each request itself (agent/upstream/aws_sign.ts).
 *
 * Errors: Bedrock's `x-amzn-ErrorType: <Type>:…` header and `{"message":…}` body, which both SDKs
 * turn into their typed exceptions. Streams: a frame that fails its CRCs (or cannot be read) is
 * never relayed; the agent ends the stream with a `modelStreamErrorException` message instead.
 */
import {
  type BedrockOperation,
  BedrockStreamWatcher,
  createBedrockMeter,
  mapBedrockUsage,
} from "../metering/bedrock.ts";
import { encodeMessage } from "../aws/eventstream.ts";
import { extractAnthropicModerationInput } from "./anthropic.ts";
import { bearerCredential, jsonResponse } from "./openai_compat.ts";
import type {
  ExtractedModerationContent,
  MeterResult,
  UpstreamChannel,
  VendorError,
  VendorRoute,
  VendorSurface,
} from "./types.ts";

export const BEDROCK_OPERATIONS = [
  "invoke",
  "invoke-with-response-stream",
  "converse",
  "converse-stream",
  "count-tokens",
] as const;

/** An AWS region (a bedrock channel's `endpoint`). */
export const AWS_REGION = /^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$/;
/** Plain model and inference-profile ids: `anthropic.claude-…-v1:0`, `us.anthropic.…`. */
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;
/** Bedrock ARNs naming a model or an inference profile. */
const MODEL_ARN =
  /^arn:aws(?:-[a-z]+)*:bedrock:[a-z0-9-]+:(?:\d{12})?:(?:foundation-model|inference-profile|application-inference-profile|provisioned-model|custom-model)\/([A-Za-z0-9._:-]{1,200})$/;

/** Channel key: an AWS access key id and its secret access key, joined by `:`. */
const CHANNEL_KEY = /^([A-Z0-9]{16,128}):([A-Za-z0-9/+=]{16,128})$/;

export interface BedrockPath {
  /** The id the client named (decoded): a model id, profile id or ARN. */
  modelId: string;
  /** What the hub routes on and the agent sends: the id, or an ARN's resource id. */
  model: string;
  operation: (typeof BEDROCK_OPERATIONS)[number];
}

/** Parses `/model/{modelId}/{operation}` (raw wire path, query allowed); null otherwise. */
export function parseBedrockPath(path: string): BedrockPath | null {
  const q = path.indexOf("?");
  const m = /^\/model\/([^/]+)\/([a-z-]+)$/.exec(q === -1 ? path : path.slice(0, q));
  if (!m) return null;
  const operation = m[2] as BedrockPath["operation"];
  if (!BEDROCK_OPERATIONS.includes(operation)) return null;
  let modelId: string;
  try {
    modelId = decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
  const arn = MODEL_ARN.exec(modelId);
  const model = arn ? arn[1]! : modelId;
  if (!MODEL_ID.test(model)) return null;
  return { modelId, model, operation };
}

/** The origin of a region's Bedrock Runtime endpoint. */
export function bedrockRegionOrigin(region: string): string {
  if (!AWS_REGION.test(region)) throw new TypeError(`bad AWS region "${region}"`);
  return `https://bedrock-runtime.${region}.amazonaws.com`;
}

function bedrockOrigin(channel: UpstreamChannel): string {
  if (channel.endpoint === undefined || !AWS_REGION.test(channel.endpoint)) {
    throw new TypeError("a bedrock channel needs --endpoint <AWS region> (e.g. us-east-1)");
  }
  return bedrockRegionOrigin(channel.endpoint);
}

/** Splits a channel key `AKID:SECRET`; throws a message without the secret. */
export function parseBedrockChannelKey(key: string): { accessKeyId: string; secret: string } {
  const m = CHANNEL_KEY.exec(key.trim());
  if (!m) {
    throw new TypeError(
      "a bedrock channel key is <access key id>:<secret access key> (e.g. AKIA…:wJal…)",
    );
  }
  return { accessKeyId: m[1]!, secret: m[2]! };
}

/** AWS error types by HTTP status, for errors the hub itself answers. */
const TYPE_BY_STATUS: Record<number, string> = {
  400: "ValidationException",
  401: "UnrecognizedClientException",
  403: "AccessDeniedException",
  404: "ResourceNotFoundException",
  405: "UnknownOperationException",
  408: "ModelTimeoutException",
  413: "ValidationException",
  424: "ModelErrorException",
  429: "ThrottlingException",
  500: "InternalServerException",
  502: "InternalServerException",
  503: "ServiceUnavailableException",
  504: "ModelTimeoutException",
};

/** Bedrock's error answer: `x-amzn-ErrorType` names the type, the body is `{"message"}`. */
export function bedrockErrorResponse(error: VendorError, headers?: HeadersInit): Response {
  const type = error.code && /^[A-Z][A-Za-z]+Exception$/.test(error.code)
    ? error.code
    : TYPE_BY_STATUS[error.status] ??
      (error.status >= 500 ? "InternalServerException" : "ValidationException");
  // AWS answers an unknown or invalid credential with 403, whatever the cause.
  const status = error.status === 401 ? 403 : error.status;
  const res = jsonResponse({ message: error.message }, status, headers);
  res.headers.set(
    "x-amzn-ErrorType",
    `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
  );
  return res;
}

/** The message that ends a stream whose upstream frames could not be trusted. */
export function bedrockStreamErrorFrame(message: string): Uint8Array {
  return encodeMessage({
    headers: {
      ":message-type": "exception",
      ":exception-type": "modelStreamErrorException",
      ":content-type": "application/json",
    },
    payload: JSON.stringify({ message }),
  });
}

const isStreamOperation = (op: string | undefined) =>
  op === "converse-stream" || op === "invoke-with-response-stream";

/** Text parts of a Converse request (`system[].text`, `messages[].content[].text`). */
function extractConverseModerationInput(body: unknown): ExtractedModerationContent {
  const out: ExtractedModerationContent = { texts: [], images: [], truncated: false };
  const b = body as { system?: unknown; messages?: unknown } | null;
  const blocks = (v: unknown) => (Array.isArray(v) ? v : []);
  for (const s of blocks(b?.system)) if (typeof s?.text === "string") out.texts.push(s.text);
  for (const m of blocks(b?.messages)) {
    for (const c of blocks(m?.content)) if (typeof c?.text === "string") out.texts.push(c.text);
  }
  return out;
}

/**
 * The agent relays a stream frame by frame: only frames whose CRCs and payloads check out reach
 * the hub; a malformed frame ends the stream with an exception message in Bedrock's framing.
 */
function streamRelay(): {
  transform: TransformStream<Uint8Array, Uint8Array>;
  result(): MeterResult;
} {
  const watcher = new BedrockStreamWatcher();
  let passthrough = false;
  let seenFirst = false;
  const fail = (ctl: TransformStreamDefaultController<Uint8Array>) => {
    ctl.enqueue(bedrockStreamErrorFrame(
      `The model's response stream was malformed (${watcher.failed}); the response is incomplete.`,
    ));
    ctl.terminate();
  };
  return {
    transform: new TransformStream({
      transform(chunk, ctl) {
        // An error answer is JSON, not an event stream: relay it as is (never billed).
        if (!seenFirst && chunk.length > 0) [seenFirst, passthrough] = [true, chunk[0] === 0x7b];
        if (passthrough) return ctl.enqueue(chunk);
        const valid = watcher.push(chunk);
        if (valid.length > 0) ctl.enqueue(valid);
        if (watcher.malformed) fail(ctl);
      },
      flush(ctl) {
        if (passthrough) return;
        watcher.end();
        if (watcher.malformed) fail(ctl);
      },
    }),
    result(): MeterResult {
      if (passthrough || !watcher.usage) {
        return { usage: null, promptTokens: 0, complete: false };
      }
      return {
        ...mapBedrockUsage(watcher.usage),
        complete: watcher.completed && watcher.failed === null,
      };
    },
  };
}

const routes: VendorRoute[] = BEDROCK_OPERATIONS.map((op): VendorRoute => ({
  method: "POST",
  path: `/model/:modelId/${op}`,
  model: "path",
}));

export const bedrock: VendorSurface = {
  name: "bedrock",
  // Never called as is: the host follows the channel's region (upstreamOriginFor).
  upstreamOrigin: "https://bedrock-runtime.us-east-1.amazonaws.com",
  upstreamOriginFor: bedrockOrigin,
  // Per channel (`bedrock-runtime.<region>.amazonaws.com:443`), added by the agent.
  hosts: [],
  upstreamPathPrefixes: ["/model/"],
  routes,
  credentialHeaders: [
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
  ],
  sigV4: { service: "bedrock" },

  clientCredential: (headers) =>
    headers.get("authorization")?.startsWith("AWS4-") ? null : bearerCredential(headers),

  modelFromPath: (path) => parseBedrockPath(path)?.model ?? null,

  upstreamPathFor(url) {
    const parsed = parseBedrockPath(url.pathname)!;
    return `/model/${encodeURIComponent(parsed.model)}/${parsed.operation}`;
  },

  applyCredential() {
    // Never called: the agent signs the whole request (sigV4, agent/upstream/aws_sign.ts).
    throw new Error("bedrock requests are signed with SigV4 by the agent");
  },

  validateKey(key) {
    parseBedrockChannelKey(key);
  },

  shouldRotateKey(status, bodyText) {
    // An unknown, revoked or mismatched key; not a throttle or a missing model access grant.
    return status === 403 &&
      /security token included in the request is invalid|signature we calculated does not match|UnrecognizedClient/i
        .test(bodyText);
  },

  createMeter(context) {
    const op = parseBedrockPath(context.path)?.operation;
    const metered: BedrockOperation | null = op === "count-tokens" || op === undefined ? null : op;
    return createBedrockMeter(metered, context);
  },

  usageExactness: {
    prepareRequest: (path, body) => ({
      body,
      restore: isStreamOperation(parseBedrockPath(path)?.operation),
    }),
    restoreResponse: streamRelay,
  },

  errorResponse: bedrockErrorResponse,

  moderationBlockedResponse: () =>
    bedrockErrorResponse({
      status: 400,
      type: "invalid_request_error",
      code: "ValidationException",
      message: "The request was blocked by content moderation (sensitive_words_detected).",
    }),

  moderationInput(path, body) {
    const op = parseBedrockPath(path)?.operation;
    if (op === "converse" || op === "converse-stream") return extractConverseModerationInput(body);
    // InvokeModel bodies are model-native; Claude's are Anthropic Messages bodies.
    return extractAnthropicModerationInput("/v1/messages", body);
  },

  modelsResponse: (models) =>
    jsonResponse({
      modelSummaries: models.map((modelId) => ({ modelId, providerName: "aqueduct" })),
    }, 200),
};
