/**
 * OpenAI Realtime through the hub: `GET /v1/realtime?model=…` (and `/openai/v1/realtime`; Azure's
 * `/azure/openai/v1/realtime?model=<deployment>`) with a WebSocket upgrade. The same admission as every request (virtual key, the key's and user's
 * limits, a billing hold, routing with failover before the upstream socket opens); then one tunnel
 * stream carries the session's messages both ways (protocol/realtime_wire.ts) and its end settles
 * the summed `response.done` usage through the usual accounting.
 *
 * - Auth: `Authorization: Bearer aq-…` (the SDK), Azure's `api-key`, or the browser-style subprotocol
 *   `openai-insecure-api-key.aq-…`; the server answers with the subprotocol `realtime` when
 *   offered. Neither the key nor any subprotocol reaches the agent.
 * - The client is upgraded only once the agent's upstream socket is open. What the hub refuses
 *   (bad key, limits, no capacity) is told as OpenAI does on a socket it accepted: an `error`
 *   event, then close 3000 with `<type>.<code>` as the reason — the SDK raises it as an
 *   `OpenAIRealtimeError` carrying `error.code`. An upstream that refuses the upgrade with HTTP is
 *   relayed as that HTTP answer.
 */
import type { Context, Hono } from "hono";
import { RealtimeMeter } from "../../protocol/metering/realtime.ts";
import { REALTIME_UPGRADE_HEADER, REALTIME_UPGRADE_VALUE } from "../../protocol/realtime_wire.ts";
import { modelBehindDeployment } from "../../protocol/vendors/catalog.ts";
import { vendorNamed } from "../../protocol/vendors/registry.ts";
import type { VendorSurface } from "../../protocol/vendors/types.ts";
import { errorMessage } from "../../runtime/log.ts";
import type { BillingHold } from "../billing/biller.ts";
import { finish, usageContext } from "./accounting.ts";
import { runAttempts } from "./attempts.ts";
import { chargeOwners, type DispatchDeps, forwardHeaders } from "./dispatch.ts";
import { GatewayError } from "./errors.ts";
import { estimateTokens } from "./limits.ts";
import { ClientPipe, realtimeErrorEvent, relay } from "./realtime_relay.ts";
import { newRequestId } from "./routes.ts";

/**
 * Where each vendor's realtime socket is served, the upstream path it maps to, and which query
 * parameter names the model (or Azure deployment).
 */
export interface RealtimeSurface {
  vendor: string;
  paths: readonly string[];
  upstream: string;
  modelParam: "model" | "deployment";
}
export const REALTIME_SURFACES: readonly RealtimeSurface[] = [
  {
    vendor: "openai",
    paths: ["/v1/realtime", "/openai/v1/realtime"],
    upstream: "/v1/realtime",
    modelParam: "model",
  },
  // Azure's GA shape (what `OpenAIRealtimeWS.azure` opens in openai ≥ 7): `?model=<deployment>`.
  {
    vendor: "azure",
    paths: ["/azure/openai/v1/realtime"],
    upstream: "/openai/v1/realtime",
    modelParam: "model",
  },
  // Azure's preview shape (openai 6.x `AzureOpenAI` clients, the captured SDK request):
  // `/openai/realtime?api-version=…&deployment=…`; api-version is required as on Azure.
  {
    vendor: "azure",
    paths: ["/azure/openai/realtime"],
    upstream: "/openai/realtime",
    modelParam: "deployment",
  },
];
/** The subprotocol prefix browsers use to carry the key (they cannot set headers). */
const KEY_PROTOCOL = "openai-insecure-api-key.";
/** Tokens a session is assumed to use up front (limits and the billing hold); settled to usage. */
const SESSION_TOKENS_ESTIMATE = 4096;
/** Close code OpenAI uses after an `error` event on a refused session. */
const REFUSED_CLOSE_CODE = 3000;

/** Also never forwarded on an upgrade (besides what HTTP requests drop): the client's handshake
 * (the agent opens its own socket) and a key in `api-key` on the OpenAI path. */
const HANDSHAKE_HEADERS: ReadonlySet<string> = new Set([
  "api-key",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
]);

export function mountRealtime(app: Hono, deps: DispatchDeps): void {
  for (const surface of REALTIME_SURFACES) {
    const vendor = vendorNamed(surface.vendor);
    if (!vendor) continue;
    for (const path of surface.paths) {
      app.get(path, (c) => handleRealtime(c, deps, vendor, surface));
    }
  }
}

async function handleRealtime(
  c: Context,
  deps: DispatchDeps,
  vendor: VendorSurface,
  surface: RealtimeSurface,
): Promise<Response> {
  c.set("vendor" as never, vendor as never);
  const requestId = newRequestId();
  const given = c.req.header("x-request-id");
  const traceId = given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : requestId;
  c.set("requestId" as never, traceId as never);
  const req = c.req.raw;
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new GatewayError(
      400,
      "invalid_request_error",
      "The Realtime API is served over WebSocket: connect to wss://…/v1/realtime?model=… " +
        "with an Upgrade: websocket request.",
      null,
      "websocket_required",
    );
  }
  const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",")
    .map((p) => p.trim()).filter(Boolean);
  try {
    return await admit(deps, vendor, req, offered, surface, { requestId, traceId });
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    deps.log.info("realtime session refused", {
      requestId,
      vendor: vendor.name,
      status: e.status,
      code: e.code,
    });
    return refuseOnSocket(req, offered, e, traceId);
  }
}

async function admit(
  deps: DispatchDeps,
  vendor: VendorSurface,
  req: Request,
  offered: string[],
  surface: RealtimeSurface,
  ids: { requestId: string; traceId: string },
): Promise<Response> {
  const { requestId, traceId } = ids;
  const started = deps.clock.monoMs();
  const url = new URL(req.url);
  const secret = vendor.clientCredential(req.headers, url) ??
    offered.find((p) => p.startsWith(KEY_PROTOCOL))?.slice(KEY_PROTOCOL.length) ?? null;
  const key = await deps.auth.authenticate(secret);
  // The vendor's own refusals of the upstream URL (Azure: no api-version outside /openai/v1).
  const refused = vendor.rejectRequest?.(new URL(surface.upstream + url.search, url));
  if (refused) throw GatewayError.fromVendor(refused);
  const param = surface.modelParam;
  const model = url.searchParams.get(param);
  if (!model || model.length > 200) {
    throw new GatewayError(
      400,
      "invalid_request_error",
      model ? `The ${param} name is too long.` : `Missing required parameter: '${param}'.`,
      param,
      model ? "invalid_value" : "missing_required_parameter",
    );
  }
  const log = deps.log.with({
    requestId,
    traceId: traceId === requestId ? undefined : traceId,
    keyId: key.id,
    vendor: vendor.name,
    model,
    realtime: true,
  });

  const tokens = estimateTokens(0, SESSION_TOKENS_ESTIMATE);
  const { reservation: keyReservation, releaseSlots: releaseSlot } = await chargeOwners(
    deps.limiter,
    key,
    tokens,
  );
  const releaseOwners = () =>
    Promise.all([deps.limiter.release(keyReservation), releaseSlot?.()]).catch(() => {});
  let hold: BillingHold | null = null;
  try {
    // An Azure deployment is priced by the model a channel maps it to (as on the HTTP path).
    const channels = [...deps.registry.sessions()].filter((x) => !x.closed)
      .flatMap((x) => x.capabilities.channels);
    const priceModel = modelBehindDeployment(vendor.name, model, channels) ?? model;
    hold = await deps.biller?.reserve(key, vendor.name, priceModel, {
      inputTokens: tokens / 2,
      outputTokens: tokens / 2,
    }, requestId) ?? null;
  } catch (e) {
    await releaseOwners();
    throw e;
  }

  const headers = {
    ...forwardHeaders(req.headers, vendor, HANDSHAKE_HEADERS),
    [REALTIME_UPGRADE_HEADER]: REALTIME_UPGRADE_VALUE, // what makes the agent open a relay
  };
  const meter = new RealtimeMeter();
  const hub = { ttfbMs: -1, bytes: 0 };
  const abort = new AbortController();
  let pipe = new ClientPipe();
  let attempt;
  try {
    attempt = await runAttempts(deps, {
      vendor,
      model,
      policy: key.policy,
      tokens,
      log,
      body: null, // nothing sent before the upgrade, so every choice can be tried
      open: async (choice) => {
        if (hold) await deps.biller?.dispatchedTo(hold, choice.agentId); // what a CLAIM checks
        pipe = new ClientPipe();
        return choice.session.openStream({
          vendor: vendor.name,
          channelId: choice.channelId,
          method: "GET",
          path: surface.upstream + url.search,
          headers,
          requestId,
          estimatedTokens: tokens,
          body: pipe.stream,
          signal: abort.signal,
          idleTimeoutMs: 0, // a quiet session is fine; the tunnel's heartbeat catches a dead agent
          onResponseChunk: (chunk) => {
            if (hub.ttfbMs < 0) hub.ttfbMs = deps.clock.monoMs() - started;
            hub.bytes += chunk.length;
          },
        });
      },
    });
  } catch (e) {
    await releaseOwners();
    if (hold) {
      await deps.biller!.release(hold).catch((err) =>
        log.error("billing hold release failed", { error: errorMessage(err) })
      );
    }
    throw e;
  }
  const { response, choice } = attempt;
  const context = usageContext(key, choice);
  response.end.then((end) =>
    finish(deps, log, {
      end,
      hubMeter: meter.end(),
      requestId,
      vendor: vendor.name,
      model,
      context,
      status: response.status,
      attempts: attempt.attempts,
      responseBytes: hub.bytes,
      ttfbMs: hub.ttfbMs,
      // Not a generation time: a session's length would read as a very slow channel in the
      // routing stats (throughput = tokens / duration). The session's own log line has it.
      durationMs: Number.NaN,
      reservations: [keyReservation, attempt.channelReservation],
      releaseSlot,
      hold,
    })
  ).catch((e) => log.error("usage accounting failed", { error: errorMessage(e) }));

  if (response.status !== 101) {
    // The vendor refused the upgrade over HTTP: the client sees exactly that answer.
    pipe.end();
    const out = new Headers(response.headers);
    out.set("x-request-id", traceId);
    return new Response(response.body, { status: response.status, headers: out });
  }
  const { socket, response: upgraded } = upgrade(req, offered);
  relay({ socket, pipe, body: response.body, meter, log, abort: () => abort.abort() })
    .then((counts) =>
      log.info("realtime session ended", {
        ...counts,
        responses: meter.responses,
        durationMs: Math.round(deps.clock.monoMs() - started),
      })
    )
    .catch((e) => log.error("realtime relay failed", { error: errorMessage(e) }));
  return withRequestId(upgraded, traceId);
}

/** Accepts the socket only to say why the session is refused, as OpenAI does, then closes it. */
function refuseOnSocket(
  req: Request,
  offered: string[],
  error: GatewayError,
  traceId: string,
): Response {
  const { socket, response } = upgrade(req, offered);
  socket.addEventListener("open", () => {
    socket.send(realtimeErrorEvent({
      type: error.type,
      code: error.code,
      message: error.message,
      param: error.param,
    }));
    socket.close(REFUSED_CLOSE_CODE, `${error.type}.${error.code ?? "error"}`.slice(0, 123));
  });
  return withRequestId(response, traceId);
}

/**
 * Upgrades, answering with the subprotocol `realtime` when the client offered it. Set by hand:
 * Deno's own `protocol` option splits the offer on ", " only, and `ws` clients join with ",".
 */
function upgrade(req: Request, offered: string[]): { socket: WebSocket; response: Response } {
  const upgraded = Deno.upgradeWebSocket(req);
  if (offered.includes("realtime")) {
    upgraded.response.headers.set("sec-websocket-protocol", "realtime");
  }
  return upgraded;
}

function withRequestId(response: Response, traceId: string): Response {
  try {
    response.headers.set("x-request-id", traceId);
  } catch {
    // Some runtimes hand back immutable upgrade headers; the id is in the hub's logs anyway.
  }
  return response;
}
