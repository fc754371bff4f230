/**
 * The one canonical path from a vendor route to an agent: authenticate → read the model →
 * moderate → pick a channel → open a tunnel stream → stream the answer back unchanged, metering
 * it on the side. Vendor knowledge comes only from the `VendorSurface`.
 */
import type { Clock } from "../../protocol/clock.ts";
import { emptyUsage, type UsageRecord } from "../../protocol/usage.ts";
import type {
  Meter,
  MeterResult,
  VendorRoute,
  VendorSurface,
} from "../../protocol/vendors/types.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import { selectCandidates } from "../routing/select.ts";
import type { UsageContext } from "../store/mod.ts";
import type { SessionRegistry } from "../tunnel/registry.ts";
import { type StreamEnd, StreamFailedError } from "../tunnel/hub_stream.ts";
import { SessionUnavailableError } from "../tunnel/session.ts";
import type { KeyAuthenticator } from "./auth.ts";
import { GatewayError } from "./errors.ts";
import type { ModerationChain } from "./moderation/mod.ts";
import { sniffRequest } from "./request_body.ts";

export interface GatewayLimits {
  maxRequestBytes: number;
  streamIdleTimeoutMs: number;
}

export interface DispatchDeps {
  registry: SessionRegistry;
  auth: KeyAuthenticator;
  moderation: ModerationChain;
  clock: Clock;
  log: Logger;
  limits: GatewayLimits;
  /** Called once per finished request with what was metered (billing consumes it). */
  onUsage?: (
    record: UsageRecord,
    context: { keyId: string; userId: string; agentId: string },
  ) => void;
}

/** Client headers never forwarded: hop-by-hop, ours, or describing the client's connection. */
const DROP = new Set([
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "upgrade",
  "content-length",
  "accept-encoding",
  "cookie",
  "x-request-id",
  "forwarded",
  "x-forwarded-for",
]);

export async function dispatch(
  deps: DispatchDeps,
  vendor: VendorSurface,
  route: VendorRoute,
  req: Request,
  upstreamPath: string,
  ids: { requestId: string; traceId: string },
): Promise<Response> {
  const { requestId, traceId } = ids;
  const started = deps.clock.monoMs();
  const key = await deps.auth.authenticate(vendor.clientCredential(req.headers));
  const sniffed = await sniffRequest(req, route.model, {
    maxBytes: deps.limits.maxRequestBytes,
    readAll: deps.moderation.enabled && route.model === "json",
  });
  const log = deps.log.with({
    requestId,
    traceId: traceId === requestId ? undefined : traceId,
    keyId: key.id,
    vendor: vendor.name,
    model: sniffed.model,
  });

  if (deps.moderation.enabled && sniffed.bytes && vendor.moderationInput) {
    const input = vendor.moderationInput(
      upstreamPath,
      JSON.parse(new TextDecoder().decode(sniffed.bytes)),
    );
    // Text past the extraction bound was not looked at: refuse rather than wave it through.
    const verdict = input.truncated
      ? { allowed: false as const, moderator: "gateway", reason: "request too large to moderate" }
      : await deps.moderation.check(
        {
          requestId,
          vendor: vendor.name,
          model: sniffed.model,
          texts: input.texts,
          images: input.images,
        },
        req.signal,
      );
    if (!verdict.allowed) {
      await sniffed.body?.cancel();
      log.warn("request blocked by moderation", {
        moderator: verdict.moderator,
        reason: verdict.reason,
      });
      return vendor.moderationBlockedResponse();
    }
  }

  const candidates = selectCandidates(deps.registry, vendor.name, sniffed.model);
  const choice = candidates[0];
  if (!choice) {
    await sniffed.body?.cancel();
    throw new GatewayError(
      503,
      "service_unavailable",
      `No capacity is available for model ${sniffed.model} right now; retry shortly.`,
      null,
      "no_capacity",
    );
  }
  const headers: Record<string, string> = {};
  req.headers.forEach((value, name) => {
    if (!DROP.has(name) && !vendor.credentialHeaders.includes(name)) headers[name] = value;
  });

  // The meter needs the response head (status, content type); chunks only flow after it.
  const hub: { meter?: Meter } = {};
  let responseBytes = 0;
  let ttfbMs = -1;
  let response;
  try {
    response = await choice.session.openStream({
      vendor: vendor.name,
      channelId: choice.channelId,
      method: req.method as "GET",
      path: upstreamPath,
      headers,
      requestId,
      body: sniffed.body,
      signal: req.signal,
      idleTimeoutMs: deps.limits.streamIdleTimeoutMs,
      onResponseChunk: (chunk) => {
        if (ttfbMs < 0) ttfbMs = deps.clock.monoMs() - started;
        responseBytes += chunk.length;
        hub.meter?.push(chunk);
      },
    });
  } catch (e) {
    if (e instanceof StreamFailedError || e instanceof SessionUnavailableError) {
      log.warn("dispatch failed before the response", {
        agentId: choice.session.agentId,
        error: e.message,
      });
      throw new GatewayError(
        502,
        "upstream_error",
        "The upstream provider could not be reached; retry shortly.",
        null,
        "upstream_unavailable",
      );
    }
    throw e;
  }
  const meter = hub.meter = vendor.createMeter({
    path: upstreamPath,
    status: response.status,
    contentType: response.headers["content-type"] ?? null,
  });
  const context = {
    keyId: key.id,
    userId: key.userId,
    agentId: choice.session.agentId,
    channelId: choice.channelId,
  };
  response.end.then((end) =>
    finish(deps, log, {
      end,
      hubMeter: meter.end(),
      requestId,
      vendor: vendor.name,
      model: sniffed.model,
      context,
      status: response.status,
      responseBytes,
      ttfbMs,
      durationMs: deps.clock.monoMs() - started,
    })
  ).catch((e) => log.error("usage accounting failed", { error: errorMessage(e) }));

  const out = new Headers(response.headers);
  const upstreamId = out.get("x-request-id");
  if (upstreamId) out.set("x-upstream-request-id", upstreamId);
  out.set("x-request-id", traceId);
  return new Response(response.body, { status: response.status, headers: out });
}

interface Finished {
  end: StreamEnd;
  hubMeter: MeterResult;
  requestId: string;
  vendor: string;
  model: string;
  context: UsageContext;
  status: number;
  responseBytes: number;
  ttfbMs: number;
  durationMs: number;
}

/** Logs the request and hands the usage to billing. The agent's count is authoritative for streams whose client did not ask for usage (the hub never saw it); a disagreement is logged. */
function finish(deps: DispatchDeps, log: Logger, f: Finished): void {
  const agent = f.end.kind === "complete" ? f.end.frame : undefined;
  const usage = agent?.usage ?? f.hubMeter.usage;
  const mismatch = agent?.usage && f.hubMeter.usage &&
    JSON.stringify(agent.usage) !== JSON.stringify(f.hubMeter.usage);
  if (mismatch) log.warn("hub and agent usage differ", { agentId: f.context.agentId });
  log.info("request finished", {
    agentId: f.context.agentId,
    status: f.status,
    outcome: f.end.kind === "complete" ? "complete" : `aborted by ${f.end.by}`,
    responseBytes: f.responseBytes,
    ttfbMs: Math.round(f.ttfbMs * 1000) / 1000,
    durationMs: Math.round(f.durationMs * 1000) / 1000,
    inputTokens: usage?.inputTokens,
    cachedInputTokens: usage?.cachedInputTokens,
    outputTokens: usage?.outputTokens,
    keyRotations: agent?.keyRotations,
  });
  if (!agent || !usage) return;
  deps.onUsage?.({
    requestId: f.requestId,
    vendor: f.vendor,
    model: agent.model ?? f.hubMeter.model ?? f.model,
    promptTokens: agent.promptTokens ?? f.hubMeter.promptTokens,
    serviceTier: agent.serviceTier ?? f.hubMeter.serviceTier,
    completedAtMs: deps.clock.nowMs(),
    usage: { ...emptyUsage(), ...usage },
  }, f.context);
}
