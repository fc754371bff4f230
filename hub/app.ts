/** The hub's HTTP surface (everything except the WebSocket tunnel path). */
import { Hono } from "hono";
import { errorMessage, type Logger } from "../runtime/log.ts";
import { type AdminDeps, adminRoutes } from "./admin/routes.ts";
import { usageRoutes } from "./admin/usage.ts";
import { ledgerRoutes } from "./admin/ledger.ts";
import { userRoutes } from "./admin/users.ts";
import type { HubConfig } from "./config.ts";
import { type GatewayWiring, mountVendorGateway } from "./gateway/mod.ts";
import { keyStatusRoutes } from "./gateway/key_status.ts";
import { renderGatewayError } from "./gateway/routes.ts";
import { errorBody, HttpError } from "./http.ts";
import type { Metrics } from "./metrics.ts";

export interface AppDeps extends AdminDeps {
  metrics: Metrics;
  log: Logger;
  config: Pick<HubConfig, "gateway" | "moderation">;
  routing: GatewayWiring["routing"];
  limiter: GatewayWiring["limiter"];
  onUsage?: GatewayWiring["onUsage"];
  biller?: GatewayWiring["biller"];
  awsCredentials?: GatewayWiring["awsCredentials"];
}

export function hubApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ ok: true, agentsOnline: deps.registry.size }));
  app.get(
    "/metrics",
    (c) => c.text(deps.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4" }),
  );
  const admin = adminRoutes(deps);
  admin.route("/", userRoutes(deps));
  admin.route("/", usageRoutes(deps));
  admin.route("/", ledgerRoutes(deps));
  app.route("/admin", admin);
  // Before the vendor routes: their catch-all would claim `/v1/dashboard/…` and `/api/…`.
  app.route("/", keyStatusRoutes(deps));
  mountVendorGateway(app, deps);
  app.notFound((c) =>
    c.json(errorBody("not_found", `No route for ${c.req.method} ${c.req.path}`), 404)
  );
  app.onError((err, c) => {
    const vendorError = renderGatewayError(c, err);
    if (vendorError) return vendorError;
    if (err instanceof HttpError) {
      return c.json(errorBody(err.type, err.message), err.status as 400);
    }
    deps.log.error("unhandled error", { path: c.req.path, error: errorMessage(err) });
    return c.json(errorBody("internal_error", "Internal error"), 500);
  });
  return app;
}
