/**
 * A fake of Vertex AI (reference/vendor-wire.md §5) plus Google's OAuth token endpoint, on one
 * port (AGENT_DEV_UPSTREAMS maps both `{location}-aiplatform.googleapis.com` and
 * `oauth2.googleapis.com` here):
 * - `POST /token`: the service-account JWT-bearer grant. The RS256 assertion is VERIFIED with the
 *   SA's public key (iss, aud, scope, iat/exp checked); a fresh `ya29.…` token is issued.
 * - `POST /{v1,v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{m}:{generateContent,
 *   streamGenerateContent,countTokens,predict}` and `…/publishers/anthropic/models/{m}:{rawPredict,
 *   streamRawPredict}` (and `count-tokens:rawPredict`): `Authorization: Bearer <issued token>`
 *   required and `{p}` must be the SA's project. Content comes from the Gemini and Anthropic fakes
 *   (started inside, reached over loopback), so answers are the same deterministic bytes: Gemini
 *   calls go to `/{v1beta,v1}/models/{m}:{method}`; Claude bodies get `model` back from the path
 *   and lose `anthropic_version`, which becomes the `anthropic-version` header.
 * `makeServiceAccount()` generates the SA (an RSA key pair made at test time).
 */
import { startFakeAnthropic } from "./anthropic.ts";
import { startFakeGemini } from "./gemini.ts";
import {
  CLOUD_PLATFORM_SCOPE,
  GOOGLE_TOKEN_URL,
  pemBody,
} from "../../protocol/vendors/vertex_auth.ts";

export interface TestServiceAccount {
  /** The SA JSON key file content (what the channel key is). */
  json: string;
  clientEmail: string;
  projectId: string;
  publicKey: CryptoKey;
}

/** A fresh service account (RSA-2048 key pair, PKCS#8 PEM private key) for `projectId`. */
export async function makeServiceAccount(projectId: string): Promise<TestServiceAccount> {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const b64 = btoa(String.fromCharCode(...der)).replace(/(.{64})/g, "$1\n");
  const pem = `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
  const clientEmail = `hub-test@${projectId}.iam.gserviceaccount.com`;
  const json = JSON.stringify(
    {
      type: "service_account",
      project_id: projectId,
      private_key_id: "0123456789abcdef0123456789abcdef01234567",
      private_key: pem,
      client_email: clientEmail,
      client_id: "100000000000000000001",
      auth_uri: "https://accounts.google.com/o/oauth2/auth",
      token_uri: GOOGLE_TOKEN_URL,
    },
    null,
    2,
  );
  return { json, clientEmail, projectId, publicKey: pair.publicKey };
}

export interface FakeVertexTokenRequest {
  ok: boolean;
  why?: string;
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
}

export interface FakeVertexRequest {
  path: string;
  headers: Record<string, string>;
  status?: number;
  publisher?: string;
  model?: string;
  method?: string;
  /** The body as sent upstream by the caller. */
  body?: string;
}

export interface FakeVertex {
  url: string;
  tokenRequests: FakeVertexTokenRequest[];
  requests: FakeVertexRequest[];
  /** A valid access token without an exchange (for direct calls from a test). */
  issueToken(): string;
  close(): Promise<void>;
}

const INNER_KEY = "inner-fake-key";
const JSON_TYPE = "application/json; charset=UTF-8";
const ANTHROPIC_VERSIONS: Record<string, string> = {
  "vertex-2023-10-16": "2023-06-01",
  "2023-06-01": "2023-06-01",
  "2026-10-21": "2026-10-21",
};

function googleError(status: number, statusName: string, message: string): Response {
  return new Response(
    JSON.stringify({ error: { code: status, message, status: statusName } }, null, 2) + "\n",
    { status, headers: { "content-type": JSON_TYPE } },
  );
}

export async function startFakeVertex(
  options: { serviceAccount: TestServiceAccount; tokenTtlS?: number },
): Promise<FakeVertex> {
  const sa = options.serviceAccount;
  const gemini = await startFakeGemini({ keys: [INNER_KEY] });
  const anthropic = await startFakeAnthropic({ keys: [INNER_KEY] });
  const tokens = new Map<string, number>(); // token → expiry (ms)
  const tokenRequests: FakeVertexTokenRequest[] = [];
  const requests: FakeVertexRequest[] = [];
  const ttl = options.tokenTtlS ?? 3599;
  const issueToken = () => {
    const token = `ya29.fake-${crypto.randomUUID()}`;
    tokens.set(token, Date.now() + ttl * 1000);
    return token;
  };

  async function token(req: Request): Promise<Response> {
    const rec: FakeVertexTokenRequest = { ok: false };
    tokenRequests.push(rec);
    const refuse = (why: string) => {
      rec.why = why;
      return new Response(
        JSON.stringify({ error: "invalid_grant", error_description: why }),
        { status: 400, headers: { "content-type": "application/json; charset=utf-8" } },
      );
    };
    const form = new URLSearchParams(await req.text());
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return refuse("Invalid grant_type.");
    }
    const parts = (form.get("assertion") ?? "").split(".");
    if (parts.length !== 3) return refuse("Invalid JWT.");
    const decode = (s: string) => pemBody(s.replace(/-/g, "+").replace(/_/g, "/"));
    let header: Record<string, unknown>, claims: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(decode(parts[0]!)));
      claims = JSON.parse(new TextDecoder().decode(decode(parts[1]!)));
    } catch {
      return refuse("Invalid JWT.");
    }
    rec.header = header;
    rec.claims = claims;
    if (header.alg !== "RS256") return refuse("Invalid JWT: alg.");
    const valid = await crypto.subtle.verify(
      "RSASSA-PKCS1-v1_5",
      sa.publicKey,
      decode(parts[2]!),
      new TextEncoder().encode(`${parts[0]}.${parts[1]}`),
    );
    if (!valid) return refuse("Invalid JWT Signature.");
    const now = Math.floor(Date.now() / 1000);
    const iat = claims.iat as number, exp = claims.exp as number;
    if (claims.iss !== sa.clientEmail) return refuse("Invalid JWT: iss.");
    if (claims.aud !== GOOGLE_TOKEN_URL) return refuse("Invalid JWT: aud.");
    if (!String(claims.scope ?? "").split(" ").includes(CLOUD_PLATFORM_SCOPE)) {
      return refuse("Invalid JWT: scope.");
    }
    if (!Number.isInteger(iat) || !Number.isInteger(exp) || exp - iat > 3600 || exp <= iat) {
      return refuse("Invalid JWT: Token must be a short-lived token (60 minutes).");
    }
    if (iat > now + 60 || exp < now) {
      return refuse(
        "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
      );
    }
    rec.ok = true;
    return new Response(
      JSON.stringify({ access_token: issueToken(), expires_in: ttl, token_type: "Bearer" }),
      { status: 200, headers: { "content-type": "application/json; charset=utf-8" } },
    );
  }

  async function model(req: Request, url: URL): Promise<Response> {
    const rec: FakeVertexRequest = {
      path: url.pathname + url.search,
      headers: Object.fromEntries(req.headers),
    };
    requests.push(rec);
    const done = (res: Response) => (rec.status = res.status, res);
    const m =
      /^\/(v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/(google|anthropic)\/models\/([^/:]+):([A-Za-z]+)$/
        .exec(decodeURIComponent(url.pathname));
    if (!m || req.method !== "POST") {
      return done(googleError(404, "NOT_FOUND", `Not found: ${req.method} ${url.pathname}`));
    }
    const [, version, project, , publisher, modelId, method] = m as unknown as string[];
    Object.assign(rec, { publisher, model: modelId, method });
    const bearer = req.headers.get("authorization")?.match(/^Bearer (\S+)$/)?.[1];
    const expiry = bearer ? tokens.get(bearer) : undefined;
    if (expiry === undefined || expiry < Date.now()) {
      return done(googleError(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
      ));
    }
    if (project !== sa.projectId) {
      return done(googleError(
        403,
        "PERMISSION_DENIED",
        `Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/${project}' (or it may not exist).`,
      ));
    }
    const body = await req.text();
    rec.body = body;
    let inner: Response;
    if (publisher === "google") {
      if (method === "predict") return done(predict(body));
      if (!["generateContent", "streamGenerateContent", "countTokens"].includes(method!)) {
        return done(googleError(404, "NOT_FOUND", `Method ${method} not found`));
      }
      inner = await fetch(
        `${gemini.url}/${
          version === "v1" ? "v1" : "v1beta"
        }/models/${modelId}:${method}${url.search}`,
        {
          method: "POST",
          headers: { "x-goog-api-key": INNER_KEY, "content-type": "application/json" },
          body,
        },
      );
    } else {
      if (method !== "rawPredict" && method !== "streamRawPredict") {
        return done(googleError(404, "NOT_FOUND", `Method ${method} not found`));
      }
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(body);
      } catch {
        return done(googleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received."));
      }
      const { anthropic_version: given, ...rest } = parsed;
      const version = ANTHROPIC_VERSIONS[String(given)];
      if (!version) {
        return done(googleError(400, "INVALID_ARGUMENT", "anthropic_version: invalid or missing"));
      }
      const count = modelId === "count-tokens";
      inner = await fetch(`${anthropic.url}/v1/messages${count ? "/count_tokens" : ""}`, {
        method: "POST",
        headers: {
          "x-api-key": INNER_KEY,
          "anthropic-version": version,
          "content-type": "application/json",
        },
        body: JSON.stringify(count ? rest : { model: modelId, ...rest }),
      });
    }
    const headers = new Headers();
    for (const name of ["content-type", "x-goog-request-id", "request-id"]) {
      const value = inner.headers.get(name);
      if (value !== null) headers.set(name, value);
    }
    return done(new Response(inner.body, { status: inner.status, headers }));
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    return url.pathname === "/token" && req.method === "POST" ? token(req) : model(req, url);
  });
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    tokenRequests,
    requests,
    issueToken,
    close: () =>
      closing ??= (async () => {
        await server.shutdown();
        await gemini.close();
        await anthropic.close();
      })(),
  };
}

/** Text embeddings (`:predict` with `{instances:[{content}]}`), deterministic and tiny. */
function predict(body: string): Response {
  let instances: unknown[] = [];
  try {
    const parsed = JSON.parse(body);
    if (Array.isArray(parsed?.instances)) instances = parsed.instances;
  } catch {
    return googleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
  }
  let characters = 0;
  const predictions = instances.map((instance) => {
    const text = String((instance as { content?: unknown })?.content ?? "");
    characters += text.length;
    const values = Array.from({ length: 8 }, (_, i) => ((text.length + i) % 7) / 7);
    return {
      embeddings: {
        values,
        statistics: { truncated: false, token_count: Math.ceil(text.length / 4) },
      },
    };
  });
  return new Response(
    JSON.stringify({ predictions, metadata: { billableCharacterCount: characters } }),
    { status: 200, headers: { "content-type": JSON_TYPE } },
  );
}
