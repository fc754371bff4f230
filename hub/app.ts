/** The hub's HTTP surface (everything except the WebSocket tunnel path). */
import { Hono } from "hono";
import { errorMessage, type Logger } from "../runtime/log.ts";
import { type AdminDeps, adminRoutes } from "./admin/routes.ts";
import { errorBody, HttpError } from "./http.ts";
import type { Metrics } from "./metrics.ts";

export interface AppDeps extends AdminDeps {
  metrics: Metrics;
  log: Logger;
}

export function hubApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ ok: true, agentsOnline: deps.registry.size }));
  app.get(
    "/metrics",
    (c) => c.text(deps.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4" }),
  );
  app.route("/admin", adminRoutes(deps));
  app.notFound((c) =>
    c.json(errorBody("not_found", `No route for ${c.req.method} ${c.req.path}`), 404)
  );
  app.onError((err, c) => {
    if (err instanceof HttpError) {
      return c.json(errorBody(err.type, err.message), err.status as 400);
    }
    deps.log.error("unhandled error", { path: c.req.path, error: errorMessage(err) });
    return c.json(errorBody("internal_error", "Internal error"), 500);
  });
  return app;
}
