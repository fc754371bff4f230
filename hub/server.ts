/**
 * Starts a hub: store, identity, tunnel endpoint and HTTP app on one listener. Used by `hub serve`,
 * the tests and the benchmarks alike.
 */
import { CloseCode } from "../protocol/close_codes.ts";
import { type Clock, systemClock } from "../protocol/clock.ts";
import type { Signer } from "../protocol/identity.ts";
import { createLogger, errorMessage, type Logger } from "../runtime/log.ts";
import { hubApp } from "./app.ts";
import type { HubConfig } from "./config.ts";
import { loadOrCreateIdentity } from "./identity_file.ts";
import { superviseBridge, type SupervisedBridge } from "./h2_bridge.ts";
import {
  AwsCredentialVault,
  credentialsKeyFromIdentity,
  parseCredentialsKey,
} from "./gateway/sigv4_credentials.ts";
import { Metrics } from "./metrics.ts";
import { type HubStore, openStore, redactDsn } from "./store/mod.ts";
import { TunnelEndpoint } from "./tunnel/endpoint.ts";
import {
  createRedisClient,
  type Limiter,
  MemoryLimiter,
  RedisLimiter,
  ResilientLimiter,
} from "./limits/mod.ts";
import { BreakerBoard } from "./routing/breaker.ts";
import { DEFAULT_PAYOUT_RATIOS } from "./routing/grades.ts";
import { StatsBoard } from "./routing/stats.ts";
import { UsageWriter } from "./billing/usage_writer.ts";
import { Biller } from "./billing/biller.ts";
import { LedgerSync } from "./billing/ledger_sync.ts";
import { broadcastPrices, PriceBook, tunnelPrices } from "./billing/prices.ts";

export const TUNNEL_PATH = "/tunnel/connect";
export const PROBE_PATH = "/tunnel/probe/";

export interface RunningHub {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  identity: Signer;
  store: HubStore;
  tunnel: TunnelEndpoint;
  close(): Promise<void>;
}

export async function startHub(
  config: HubConfig,
  options: { clock?: Clock; log?: Logger } = {},
): Promise<RunningHub> {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? createLogger({ service: "hub", level: config.logLevel });
  const identity = await loadOrCreateIdentity(config.identityKeyPath, log);
  const store = await openStore(config.db);
  // Published price versions (seeds the built-in ones; follows versions other hubs publish).
  const pricesLog = log.with({ component: "prices" });
  const prices = await PriceBook.open({ store, clock, log: pricesLog }).catch(async (e) => {
    await store.close();
    throw e;
  });
  const metrics = new Metrics();
  const tunnel = new TunnelEndpoint({
    egress: config.egress,
    store,
    identity,
    clock,
    timing: config.timing,
    log,
    metrics,
    prices: tunnelPrices(prices, pricesLog),
    // Late-bound: the ledger sync needs the biller, which needs the registry.
    ledgerSync: {
      onFrame: (session, frame) => ledgerSync.onFrame(session, frame),
      onClosed: (session) => ledgerSync.onClosed(session),
    },
  });
  broadcastPrices(prices, () => tunnel.registry.sessions());
  const routing = {
    stats: new StatsBoard(),
    breakers: new BreakerBoard({ cooldownMs: config.breakerCooldownMs }),
    payoutTable: DEFAULT_PAYOUT_RATIOS,
  };
  const limiter = createLimiter(config, clock, log);
  const usageWriter = new UsageWriter(store, log.with({ component: "usage" }));
  const billingLog = log.with({ component: "billing" });
  const biller = new Biller({
    store,
    clock,
    log: billingLog,
    stats: routing.stats,
    payoutTable: routing.payoutTable,
    unpriced: config.billing.unpriced,
    prices: () => prices.current().table,
    ledgerSync: store.ledgerSync,
    sessionOf: (agentId) => tunnel.registry.get(agentId),
  });
  const ledgerSync = new LedgerSync({
    store,
    biller,
    identity,
    clock,
    log: log.with({ component: "ledger-sync" }),
  });
  // Periodic reconciliation: every connected agent compares heads (also done at each connect).
  const reconciler = setInterval(() => {
    for (const session of tunnel.registry.sessions()) ledgerSync.requestReconcile(session);
  }, config.ledgerSync?.reconcileIntervalMs ?? 10 * 60_000);
  // Holds whose request never finished (a crashed hub, a lost stream) go back to the balance.
  const sweeper = setInterval(() => {
    store.releaseExpired(clock.nowMs()).then(
      (n) => n > 0 && billingLog.warn("released expired billing holds", { count: n }),
      (e) => billingLog.error("releasing expired holds failed", { error: errorMessage(e) }),
    );
  }, 60_000);
  const awsCredentials = await AwsCredentialVault.create(
    store,
    clock,
    config.credentialsKey
      ? parseCredentialsKey(config.credentialsKey)
      : await credentialsKeyFromIdentity(identity),
  );
  const app = hubApp({
    awsCredentials,
    routing,
    limiter,
    store,
    registry: tunnel.registry,
    clock,
    adminToken: config.adminToken,
    metrics,
    log,
    config,
    // Usage is kept per request for billing, written in batches (see usage_writer.ts).
    onUsage: (record, context) => usageWriter.add({ record, context }),
    biller,
    prices,
  });

  const tls = config.tls
    ? {
      cert: await Deno.readTextFile(config.tls.certPath),
      key: await Deno.readTextFile(config.tls.keyPath),
    }
    : {};
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: config.listen.hostname,
    port: config.listen.port,
    ...tls,
    onListen: resolve,
  }, (req, info) => {
    const path = new URL(req.url).pathname;
    const remote = (info.remoteAddr as Deno.NetAddr).hostname;
    if (path === TUNNEL_PATH) return tunnel.handle(req, remote);
    if (path.startsWith(PROBE_PATH)) {
      return tunnel.handleProbe(req, path.slice(PROBE_PATH.length), remote);
    }
    return app.fetch(req);
  });
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `${config.tls ? "https" : "http"}://${host}:${addr.port}`;
  log.info("hub listening", { url, db: redactDsn(config.db), hubKey: identity.publicKey });
  // The AWS SDK's default HTTP/2 transport needs a server that survives its early GOAWAY:
  // node:http2 in a supervised child process (it can abort), bridged to a loopback listener.
  let h2Target: Deno.HttpServer<Deno.NetAddr> | undefined, h2: SupervisedBridge | undefined;
  if (config.h2Listen) {
    h2Target = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => app.fetch(req),
    );
    h2 = await superviseBridge({
      listen: config.h2Listen,
      targetPort: h2Target.addr.port,
      tls: config.tls,
      log: log.with({ component: "h2" }),
    });
    log.info("hub http/2 listening", { url: h2.url });
  }

  let closed = false;
  return {
    url,
    identity,
    store,
    tunnel,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      await h2?.close();
      await h2Target?.shutdown();
      clearInterval(reconciler);
      prices.close();
      await tunnel.closeAll(CloseCode.shutdown, "hub shutting down");
      await server.shutdown();
      await usageWriter.flush();
      await limiter.close();
      await store.close();
    },
  };
}

/**
 * In-memory limits for a single hub; with HUB_REDIS, limits shared by every hub process, falling
 * back to local limits (or open / closed, per HUB_LIMITS_FAIL_MODE) while Redis is unreachable.
 */
function createLimiter(config: HubConfig, clock: Clock, log: Logger): Limiter {
  if (!config.redis) return new MemoryLimiter({ clock });
  const client = createRedisClient(config.redis, {
    onError: (e) => log.debug("redis connection error", { error: e.message }),
  });
  return new ResilientLimiter({
    primary: new RedisLimiter(client),
    failMode: config.limits.failMode,
    localScale: config.limits.localScale,
    // Generous: a Redis round trip is ~50 µs, but a busy event loop under a burst is not; a
    // too-tight timeout flips every hub to local limits exactly when sharing matters most.
    timeoutMs: 500,
    onStateChange: (state) =>
      log.warn(
        state.degraded ? "shared limits unavailable; using fallback" : "shared limits restored",
        {
          reason: state.reason,
          failMode: config.limits.failMode,
        },
      ),
  });
}
