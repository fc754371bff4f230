/**
 * The one canonical path from a vendor route to an agent: authenticate → read the model →
 * moderate → charge the key's limits → pick channels by the key's policy → open a tunnel stream,
 * failing over before the first response byte → stream the answer back unchanged, metering it on
 * the side. Vendor knowledge comes only from the `VendorSurface`.
 */
import type { Clock } from "../../protocol/clock.ts";
import { HOP_BY_HOP_HEADERS } from "../../protocol/http.ts";
import type { Meter, VendorRoute, VendorSurface } from "../../protocol/vendors/types.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { Limiter, Reservation } from "../limits/mod.ts";
import type { BreakerBoard } from "../routing/breaker.ts";
import type { PayoutTable } from "../routing/grades.ts";
import type { StatsBoard } from "../routing/stats.ts";
import type { KeyWithUser } from "../store/mod.ts";
import type { AwsCredentialVault } from "./sigv4_credentials.ts";
import type { SessionRegistry } from "../tunnel/registry.ts";
import type { KeyAuthenticator } from "./auth.ts";
import { type AccountingDeps, finish, usageContext } from "./accounting.ts";
import { runAttempts } from "./attempts.ts";
import type { BillingHold } from "../billing/biller.ts";
import { GatewayError } from "./errors.ts";
import { estimateTokens, limitRules, parseKeyLimits } from "./limits.ts";
import type { ModerationChain } from "./moderation/mod.ts";
import { sniffRequest } from "./request_body.ts";
import { modelBehindDeployment } from "../../protocol/vendors/catalog.ts";

export interface GatewayLimits {
  maxRequestBytes: number;
  streamIdleTimeoutMs: number;
  /** Bodies up to this size are kept so a failed attempt can be replayed on the next channel. */
  replayBytesMax: number;
}

export interface DispatchDeps extends AccountingDeps {
  registry: SessionRegistry;
  auth: KeyAuthenticator;
  moderation: ModerationChain;
  clock: Clock;
  log: Logger;
  limits: GatewayLimits;
  stats: StatsBoard;
  breakers: BreakerBoard;
  payoutTable: PayoutTable;
  limiter: Limiter;
  /** Hub-issued AWS credentials, for SigV4-signed surfaces (Bedrock); absent: Bearer only. */
  awsCredentials?: AwsCredentialVault;
}

/** A slot outlives the longest plausible request; a crashed hub's slots expire after it. */
const SLOT_TTL_MS = 15 * 60_000;

/** Ids of one request, and what its route learned about where it may go. */
export interface DispatchIds {
  requestId: string;
  traceId: string;
  /**
   * Root routes several vendors share: the vendor (and its path) for the body's model, or a
   * GatewayError (e.g. 404 `model_not_found`). See protocol/vendors/catalog.ts.
   */
  retarget?: (model: string) => { vendor: VendorSurface; upstreamPath: string };
}

export async function dispatch(
  deps: DispatchDeps,
  vendor: VendorSurface,
  route: VendorRoute,
  req: Request,
  upstreamPath: string,
  ids: DispatchIds,
  /** A key the caller already authenticated (e.g. by an AWS SigV4 signature). */
  authenticated?: KeyWithUser,
): Promise<Response> {
  const { requestId, traceId } = ids;
  const started = deps.clock.monoMs();
  const key = authenticated ??
    await deps.auth.authenticate(vendor.clientCredential(req.headers, new URL(req.url)));
  const moderating = deps.moderation.enabled &&
    (route.model === "json" || (route.model === "path" && vendor.moderationInput !== undefined));
  const sniffed = await sniffRequest(req, route.model, {
    maxBytes: deps.limits.maxRequestBytes,
    bufferBytesMax: moderating ? deps.limits.maxRequestBytes : deps.limits.replayBytesMax,
    modelFromQuery: route.model === "path" ? vendor.modelFromPath?.(upstreamPath) ?? null : null,
  });
  if (ids.retarget) {
    try {
      ({ vendor, upstreamPath } = ids.retarget(sniffed.model));
    } catch (e) {
      await sniffed.body?.cancel().catch(() => {});
      throw e;
    }
  }
  const scope = routingScope(deps, vendor, upstreamPath, sniffed.model);
  const log = deps.log.with({
    requestId,
    traceId: traceId === requestId ? undefined : traceId,
    keyId: key.id,
    vendor: vendor.name,
    model: sniffed.model,
  });
  const abandon = async (error: GatewayError) => {
    await sniffed.body?.cancel().catch(() => {});
    throw error;
  };

  if (moderating && sniffed.bytes && vendor.moderationInput) {
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
      log.warn("request blocked by moderation", {
        moderator: verdict.moderator,
        reason: verdict.reason,
      });
      await sniffed.body?.cancel();
      return vendor.moderationBlockedResponse();
    }
  }

  // The key's and its user's own limits, before any channel is touched.
  const tokens = estimateTokens(sniffed.size, sniffed.maxOutputTokens);
  const charged = await chargeOwners(deps.limiter, key, tokens).catch(abandon);
  const { reservation: keyReservation, releaseSlots: releaseSlot } = charged;
  const releaseOwners = () =>
    Promise.all([deps.limiter.release(keyReservation), releaseSlot?.()]).catch(() => {});

  // The worst-case cost is held on the user's balance before any channel is touched.
  const inputTokens = Math.ceil(sniffed.size / 4);
  let hold: BillingHold | null = null;
  try {
    hold = await deps.biller?.reserve(key, vendor.name, scope.priceModel, {
      inputTokens,
      outputTokens: tokens - inputTokens,
    }, requestId) ?? null;
  } catch (e) {
    await releaseOwners();
    if (e instanceof GatewayError) await abandon(e);
    throw e;
  }

  const hub: { meter?: Meter; ttfbMs: number; bytes: number } = { ttfbMs: -1, bytes: 0 };
  let attempt;
  try {
    attempt = await runAttempts(deps, {
      vendor,
      model: sniffed.model,
      location: scope.location,
      policy: key.policy,
      tokens,
      log,
      open: async (choice, body) => {
        if (hold) await deps.biller?.dispatchedTo(hold, choice.agentId); // what a CLAIM checks
        return choice.session.openStream({
          vendor: vendor.name,
          channelId: choice.channelId,
          method: req.method as "GET",
          path: upstreamPath,
          headers: forwardHeaders(req.headers, vendor),
          requestId,
          estimatedTokens: tokens,
          body,
          signal: req.signal,
          idleTimeoutMs: deps.limits.streamIdleTimeoutMs,
          onResponseChunk: (chunk) => {
            if (hub.ttfbMs < 0) hub.ttfbMs = deps.clock.monoMs() - started;
            hub.bytes += chunk.length;
            hub.meter?.push(chunk);
          },
        });
      },
      body: sniffed.bytes ?? sniffed.body,
    });
  } catch (e) {
    await releaseOwners();
    if (hold) {
      await deps.biller!.release(hold).catch((err) =>
        log.error("billing hold release failed", { error: errorMessage(err) })
      );
    }
    if (e instanceof GatewayError) await abandon(e);
    throw e;
  }
  const { response, choice } = attempt;
  const meter = hub.meter = vendor.createMeter({
    path: upstreamPath,
    status: response.status,
    contentType: response.headers["content-type"] ?? null,
    headers: new Headers(response.headers),
  });
  const context = usageContext(key, choice);
  response.end.then((end) =>
    finish(deps, log, {
      end,
      hubMeter: meter.end(),
      requestId,
      vendor: vendor.name,
      model: scope.priceModel, // when the vendor's answer names no model
      context,
      status: response.status,
      attempts: attempt.attempts,
      responseBytes: hub.bytes,
      ttfbMs: hub.ttfbMs,
      durationMs: deps.clock.monoMs() - started,
      reservations: [keyReservation, attempt.channelReservation],
      releaseSlot,
      hold,
    })
  ).catch((e) => log.error("usage accounting failed", { error: errorMessage(e) }));

  const out = new Headers(response.headers);
  const upstreamId = out.get("x-request-id");
  if (upstreamId) out.set("x-upstream-request-id", upstreamId);
  out.set("x-request-id", traceId);
  return new Response(response.body, { status: response.status, headers: out });
}

/**
 * What the URL adds to routing: the location channels must serve (e.g. Vertex's
 * `locations/{l}`), and the model to price by (a deployment name's mapped model).
 */
function routingScope(deps: DispatchDeps, vendor: VendorSurface, path: string, model: string) {
  function* channels() {
    for (const s of deps.registry.sessions()) if (!s.closed) yield* s.capabilities.channels;
  }
  return {
    location: vendor.requestLocation?.(path) ?? undefined,
    priceModel: modelBehindDeployment(vendor.name, model, channels()) ?? model,
  };
}

/** Client headers never forwarded: hop-by-hop, ours, or describing the client's connection. */
const DROP = new Set([
  ...HOP_BY_HOP_HEADERS,
  "accept-encoding",
  "cookie",
  "x-request-id",
  "forwarded",
  "x-forwarded-for",
]);

/** The client's headers the vendor should see: not `DROP`, the vendor's credentials or `alsoDrop`. */
export function forwardHeaders(
  headers: Headers,
  vendor: VendorSurface,
  alsoDrop: ReadonlySet<string> = new Set(),
): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!DROP.has(name) && !alsoDrop.has(name) && !vendor.credentialHeaders.includes(name)) {
      out[name] = value;
    }
  });
  return out;
}

function rateLimited(
  unit: "requests" | "tokens",
  message: string,
  retryAfterMs: number,
): GatewayError {
  return new GatewayError(
    429,
    unit,
    `${message}. Please try again in ${Math.ceil(retryAfterMs / 1000)}s.`,
    null,
    "rate_limit_exceeded",
    {
      "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
      "retry-after-ms": String(Math.ceil(retryAfterMs)),
    },
  );
}

/**
 * Charges the key's and its user's limits (RPM/TPM all-or-nothing, then concurrency slots), or
 * throws the 429 to answer. On success, returns what to settle or give back later.
 */
export async function chargeOwners(
  limiter: Limiter,
  key: { id: string; limits: unknown; userId: string; user: { limits: unknown } },
  tokens: number,
): Promise<{ reservation: Reservation; releaseSlots: () => Promise<void> }> {
  const scopes = [
    { scope: `key:${key.id}`, who: "this key", limits: parseKeyLimits(key.limits) },
    { scope: `user:${key.userId}`, who: "this account", limits: parseKeyLimits(key.user.limits) },
  ];
  const releases: (() => Promise<void>)[] = [];
  const releaseSlots = async () => void await Promise.all(releases.map((r) => r()));
  for (const { scope, who, limits } of scopes) {
    if (!limits.concurrency) continue;
    const slot = await limiter.acquireSlot(`${scope}:streams`, limits.concurrency, SLOT_TTL_MS);
    if (!slot.allowed) {
      await releaseSlots();
      throw rateLimited(
        "requests",
        `Too many concurrent requests for ${who} (limit ${limits.concurrency})`,
        1000,
      );
    }
    releases.push(slot.release);
  }
  const decision = await limiter.acquire(
    scopes.flatMap((s) => limitRules(s.scope, s.limits, tokens)),
  );
  if (!decision.allowed) {
    await releaseSlots();
    const unit = decision.rule.key.endsWith(":tpm") ? "tokens" : "requests";
    const who = decision.rule.key.startsWith("user:") ? "this account" : "this key";
    throw rateLimited(
      unit,
      `Rate limit reached for ${who} on ${unit} per min (limit ${decision.rule.limit})`,
      decision.retryAfterMs,
    );
  }
  return { reservation: decision.reservation, releaseSlots };
}
