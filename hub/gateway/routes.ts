/**
 * Mounts every registered vendor's routes twice: under the vendor's own prefix
 * (`/openai/v1/chat/completions`) and, where paths don't collide, at the root (`/v1/…`).
 * Errors thrown anywhere below are rendered by `renderGatewayError` in the vendor's envelope.
 */
import type { Context, Hono } from "hono";
import { DEFAULT_CATALOG, resolveCatalogModel } from "../../protocol/vendors/catalog.ts";
import type { VendorRoute, VendorSurface } from "../../protocol/vendors/types.ts";
import { offeredModels } from "../routing/select.ts";
import { dispatch, type DispatchDeps } from "./dispatch.ts";
import { GatewayError } from "./errors.ts";
import { authenticateSigV4, wantsSigV4 } from "./sigv4.ts";
import { mountRealtime } from "./realtime.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "req_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Adds vendor routes to `app` (both spellings of each path). */
export function mountGateway(
  app: Hono,
  vendors: readonly VendorSurface[],
  deps: DispatchDeps,
): void {
  mountRealtime(app, deps); // WebSocket upgrades, before the vendors' catch-all below
  // Root paths several vendors share (e.g. GET /v1/models) go to the vendor whose marker header
  // the request carries (e.g. anthropic-version), else to the first vendor that claimed the path.
  const root = new Map<string, { route: VendorRoute; vendor: VendorSurface }[]>();
  // A credential query parameter one vendor accepts is refused on the others' paths, so a key
  // there is never forwarded (or logged upstream) as an ordinary parameter.
  const queryCredentials = new Set(vendors.flatMap((v) => v.credentialQueryParams ?? []));
  const handle = (
    c: Context,
    vendor: VendorSurface,
    route: VendorRoute,
    deps: DispatchDeps,
    catalog?: Catalog,
  ) => handleRoute(c, vendor, route, deps, queryCredentials, catalog);
  // The unprefixed OpenAI-shaped JSON routes pick their vendor by the model (catalog.ts).
  const catalog: Catalog = {
    vendorNamed: (name) => vendors.find((v) => v.name === name),
    channels: () => liveChannels(deps),
  };
  for (const vendor of vendors) {
    for (const route of vendor.routes) {
      app.on(route.method, `/${vendor.name}${route.path}`, (c) => handle(c, vendor, route, deps));
      const key = `${route.method} ${route.path}`;
      root.set(key, [...(root.get(key) ?? []), { route, vendor }]);
    }
  }
  for (const claims of root.values()) {
    const { route } = claims[0]!;
    app.on(route.method, route.path, (c) => {
      const query = new URL(c.req.url).searchParams;
      const chosen = claims.find((x) =>
        (x.vendor.rootMarkerHeader && c.req.header(x.vendor.rootMarkerHeader)) ||
        x.vendor.credentialQueryParams?.some((name) =>
          query.has(name)
        )
      ) ??
        claims[0]!;
      const byModel = chosen.vendor.name === DEFAULT_CATALOG[0]!.vendor &&
        (chosen.route.model === "json" || chosen.route.serve === "models");
      return handle(c, chosen.vendor, chosen.route, deps, byModel ? catalog : undefined);
    });
  }
  // Unknown paths and wrong methods under a vendor's space still answer in its envelope.
  app.all("*", (c) => {
    const vendor = vendorForPath(vendors, c.req.path, (name) => c.req.header(name));
    if (!vendor) return c.notFound();
    c.set("vendor" as never, vendor as never);
    const path = stripPrefix(vendor, c.req.path);
    const known = vendor.routes.some((r) => matches(r.path, path));
    throw new GatewayError(
      known ? 405 : 404,
      "invalid_request_error",
      known
        ? `Method ${c.req.method} is not allowed for ${path}`
        : `Invalid URL (${c.req.method} ${path})`,
    );
  });
}

async function handleRoute(
  c: Context,
  vendor: VendorSurface,
  route: VendorRoute,
  deps: DispatchDeps,
  queryCredentials: ReadonlySet<string>,
  catalog?: Catalog,
): Promise<Response> {
  c.set("vendor" as never, vendor as never);
  // Our id is always fresh (usage records are keyed by it); a client's own id is kept for tracing
  // and is what the client gets back.
  const requestId = newRequestId();
  const given = c.req.header("x-request-id");
  const traceId = given && REQUEST_ID.test(given) ? given : requestId;
  c.set("requestId" as never, traceId as never);
  const url = new URL(c.req.url);
  for (const name of queryCredentials) {
    if (url.searchParams.has(name) && !vendor.credentialQueryParams?.includes(name)) {
      throw new GatewayError(
        401,
        "invalid_request_error",
        `API keys are not accepted in the URL query ("${name}"); send the key in a header.`,
        null,
        "invalid_api_key",
      );
    }
  }
  if (route.serve === "models") {
    await deps.auth.authenticate(vendor.clientCredential(c.req.raw.headers, url));
    // At the root, the list names every catalog vendor's models: the root serves them all.
    const names = catalog ? DEFAULT_CATALOG.map((e) => e.vendor) : [vendor.name];
    const models = [...new Set(names.flatMap((name) => offeredModels(deps.registry, name)))];
    const res = vendor.modelsResponse(models.sort());
    res.headers.set("x-request-id", traceId);
    return res;
  }
  const vendorUrl = new URL(url);
  vendorUrl.pathname = stripPrefix(vendor, url.pathname);
  if (route.model === "path" && !vendor.modelFromPath?.(vendorUrl.pathname)) {
    throw new GatewayError(
      404,
      "invalid_request_error",
      `Invalid URL (${c.req.method} ${vendorUrl.pathname})`,
    );
  }
  const refusal = vendor.rejectRequest?.(vendorUrl);
  if (refusal) throw GatewayError.fromVendor(refusal);
  const upstreamPath = vendor.upstreamPathFor?.(vendorUrl) ??
    vendorUrl.pathname + vendorUrl.search;
  const retarget = catalog && ((model: string) => catalogTarget(catalog, model, upstreamPath));
  // AWS-signed surfaces: the signature (and the body hash it covers) is verified before anything.
  if (vendor.sigV4 && wantsSigV4(c.req.raw.headers)) {
    const { key, request } = await authenticateSigV4(
      {
        vault: deps.awsCredentials,
        auth: deps.auth,
        clock: deps.clock,
        maxRequestBytes: deps.limits.maxRequestBytes,
      },
      vendor.sigV4.service,
      c.req.raw,
    );
    return await dispatch(deps, vendor, route, request, upstreamPath, {
      requestId,
      traceId,
      retarget,
    }, key);
  }
  return await dispatch(deps, vendor, route, c.req.raw, upstreamPath, {
    requestId,
    traceId,
    retarget,
  });
}

interface Catalog {
  vendorNamed(name: string): VendorSurface | undefined;
  channels(): Iterable<{ vendor: string; models: string[] }>;
}

function* liveChannels(deps: DispatchDeps) {
  for (const session of deps.registry.sessions()) {
    if (!session.closed) yield* session.capabilities.channels;
  }
}

/** The vendor (and its path) serving `model` at an OpenAI root path, or OpenAI's 404. */
function catalogTarget(catalog: Catalog, model: string, path: string) {
  const target = resolveCatalogModel(model, path, catalog.channels());
  const vendor = target && catalog.vendorNamed(target.vendor);
  if (!target || !vendor) {
    throw new GatewayError(
      404,
      "invalid_request_error",
      `The model \`${model.slice(0, 200)}\` does not exist or you do not have access to it.`,
      null,
      "model_not_found",
    );
  }
  return { vendor, upstreamPath: target.path };
}

/** Renders a gateway error in the vendor's envelope, or returns undefined if it isn't one. */
export function renderGatewayError(c: Context, err: unknown): Response | undefined {
  if (!(err instanceof GatewayError)) return undefined;
  const vendor = c.get("vendor" as never) as VendorSurface | undefined;
  if (!vendor) return undefined;
  const res = vendor.errorResponse({
    status: err.status,
    type: err.type,
    code: err.code,
    message: err.message,
    param: err.param,
  });
  const requestId = c.get("requestId" as never) as string | undefined;
  if (requestId) res.headers.set("x-request-id", requestId);
  for (const [k, v] of Object.entries(err.headers)) res.headers.set(k, v);
  return res;
}

function vendorForPath(
  vendors: readonly VendorSurface[],
  path: string,
  header: (name: string) => string | undefined,
): VendorSurface | undefined {
  const rootOwners = vendors.filter((v) =>
    v.routes.some((r) => path.startsWith(r.path.split("/").slice(0, 2).join("/") + "/"))
  );
  return vendors.find((v) => path.startsWith(`/${v.name}/`)) ??
    rootOwners.find((v) => v.rootMarkerHeader && header(v.rootMarkerHeader)) ?? rootOwners[0];
}

function stripPrefix(vendor: VendorSurface, path: string): string {
  return path.startsWith(`/${vendor.name}/`) ? path.slice(vendor.name.length + 1) : path;
}

function matches(pattern: string, path: string): boolean {
  const a = pattern.split("/"), b = path.split("/");
  return a.length === b.length && a.every((seg, i) => seg.startsWith(":") || seg === b[i]);
}
