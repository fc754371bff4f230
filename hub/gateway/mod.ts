/** Builds the client-facing gateway from configuration: auth, moderation chain, vendor routes. */
import type { Hono } from "hono";
import type { Clock } from "../../protocol/clock.ts";
import { vendorNamed, VENDORS } from "../../protocol/vendors/registry.ts";
import type { Logger } from "../../runtime/log.ts";
import type { HubConfig } from "../config.ts";
import type { HubStore } from "../store/mod.ts";
import type { SessionRegistry } from "../tunnel/registry.ts";
import { KeyAuthenticator } from "./auth.ts";
import type { DispatchDeps } from "./dispatch.ts";
import { internalJsonCall } from "./internal_call.ts";
import { keywordModeratorFromConfig } from "./moderation/keywords.ts";
import { LlmModerator } from "./moderation/llm.ts";
import { ModerationChain, type Moderator } from "./moderation/mod.ts";
import { mountGateway } from "./routes.ts";
import type { Limiter } from "../limits/mod.ts";
import type { BreakerBoard } from "../routing/breaker.ts";
import type { PayoutTable } from "../routing/grades.ts";
import type { StatsBoard } from "../routing/stats.ts";

export interface GatewayWiring {
  store: HubStore;
  registry: SessionRegistry;
  clock: Clock;
  log: Logger;
  config: Pick<HubConfig, "gateway" | "moderation">;
  routing: RoutingState;
  limiter: Limiter;
  /** Holds and settles request costs; absent: nothing is billed. */
  biller?: DispatchDeps["biller"];
  onUsage?: DispatchDeps["onUsage"];
  /** Hub-issued AWS credentials for SigV4 clients (Bedrock). */
  awsCredentials?: DispatchDeps["awsCredentials"];
}

/** In-memory routing knowledge shared by the gateway (decisions) and the admin API (views). */
export interface RoutingState {
  stats: StatsBoard;
  breakers: BreakerBoard;
  payoutTable: PayoutTable;
}

export function mountVendorGateway(app: Hono, w: GatewayWiring): DispatchDeps {
  const log = w.log.with({ component: "gateway" });
  const moderators: Moderator[] = [];
  const keywords = keywordModeratorFromConfig(w.config.moderation.keywords);
  if (keywords) moderators.push(keywords);
  const openai = vendorNamed("openai");
  if (w.config.moderation.model && openai) {
    moderators.push(
      new LlmModerator({
        model: w.config.moderation.model,
        call: internalJsonCall(
          w.registry,
          openai,
          "/v1/moderations",
          w.config.gateway.streamIdleTimeoutMs,
        ),
        timeoutMs: 10_000,
        failOpen: w.config.moderation.failOpen,
        onFailure: (reason) => log.warn("LLM moderator failed", { reason }),
      }),
    );
  }
  const deps: DispatchDeps = {
    registry: w.registry,
    auth: new KeyAuthenticator(w.store, w.clock),
    moderation: new ModerationChain(moderators, {
      failOpen: w.config.moderation.failOpen,
      onError: (moderator, error) =>
        log.error("moderator error", { moderator, error: String(error) }),
    }),
    clock: w.clock,
    log,
    limits: w.config.gateway,
    ...w.routing,
    limiter: w.limiter,
    biller: w.biller,
    onUsage: w.onUsage,
    awsCredentials: w.awsCredentials,
  };
  mountGateway(app, VENDORS, deps);
  return deps;
}
