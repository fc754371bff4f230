/**
 * The agent calls only official vendor endpoints: the URL is the vendor's hard-coded origin plus
 * a checked path, never anything the hub (or a client) could steer elsewhere. Deno's `--allow-net`
 * lock is the second wall behind this one.
 */
import type {
  CredentialFetch,
  UpstreamChannel,
  VendorSurface,
} from "../../protocol/vendors/types.ts";

export class UpstreamRefusedError extends Error {
  override name = "UpstreamRefusedError";
}

/** Official host → local fake (tests only; the release build's permission flags make it inert). */
export type DevUpstreams = Record<string, string>;

/**
 * The origin `vendor` calls for `channel`: `upstreamOriginFor(channel)` when the vendor's host
 * depends on the owner's account (e.g. a per-resource host), else the fixed `upstreamOrigin`.
 * Throws `UpstreamRefusedError` when the channel lacks what the vendor needs (e.g. `endpoint`).
 */
export function upstreamOrigin(
  vendor: VendorSurface,
  channel?: UpstreamChannel,
  path?: string,
): string {
  if (!vendor.upstreamOriginFor) return vendor.upstreamOrigin;
  if (!channel) {
    throw new UpstreamRefusedError(`Refusing upstream for ${vendor.name}: the channel is unknown`);
  }
  let origin: string;
  try {
    origin = vendor.upstreamOriginFor(channel, path);
  } catch (e) {
    throw new UpstreamRefusedError(
      `Refusing upstream for ${vendor.name}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const url = new URL(origin);
  if (url.protocol !== "https:" || url.origin !== origin) {
    throw new UpstreamRefusedError(`Refusing upstream for ${vendor.name}: bad origin ${origin}`);
  }
  return origin;
}

/** `host:port` of the origin `vendor` calls for `channel` (for the agent's `--allow-net`). */
export function upstreamNetHost(vendor: VendorSurface, channel?: UpstreamChannel): string {
  const url = new URL(upstreamOrigin(vendor, channel));
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

/**
 * Builds the upstream URL for `path` (path + query as the vendor expects it), on the vendor's
 * origin for `channel` (see {@link upstreamOrigin}); AGENT_DEV_UPSTREAMS (`dev`) maps that
 * official host to a local fake.
 * Throws `UpstreamRefusedError` for anything that is not a plain path under the vendor's prefixes.
 */
export function upstreamUrl(
  vendor: VendorSurface,
  path: string,
  dev?: DevUpstreams,
  channel?: UpstreamChannel,
): URL {
  const refuse = (why: string): never => {
    throw new UpstreamRefusedError(`Refusing upstream path for ${vendor.name}: ${why}`);
  };
  if (!path.startsWith("/") || path.startsWith("//")) refuse("not an absolute path");
  // deno-lint-ignore no-control-regex -- control characters are exactly what we refuse
  if (/[\u0000-\u001f\u007f\\#\s]/.test(path)) {
    refuse("control characters, spaces, backslash or fragment");
  }
  const [pathname] = path.split("?", 1) as [string];
  for (const segment of pathname.split("/")) {
    const decoded = segment.replace(/%2e/gi, ".");
    if (decoded === "." || decoded === "..") refuse("dot segment");
  }
  if (!vendor.upstreamPathPrefixes.some((prefix) => pathname.startsWith(prefix))) {
    refuse(`path is outside ${vendor.upstreamPathPrefixes.join(", ")}`);
  }
  const officialOrigin = upstreamOrigin(vendor, channel, path);
  const origin = dev?.[new URL(officialOrigin).host] ?? officialOrigin;
  const url = new URL(origin + path);
  if (url.origin !== new URL(origin).origin) refuse("path changes the origin");
  return url;
}

/**
 * The `fetch` a vendor's `credentialFor` gets: `https://` URLs on the vendor's own `hosts` only
 * (e.g. Google's OAuth token endpoint), never redirected; AGENT_DEV_UPSTREAMS (`dev`) maps the
 * official host to a local fake.
 */
export function credentialFetch(vendor: VendorSurface, dev?: DevUpstreams): CredentialFetch {
  return (target, init) => {
    const url = new URL(target);
    const host = `${url.hostname}:${url.port || "443"}`;
    if (url.protocol !== "https:" || url.username || url.password || !vendor.hosts.includes(host)) {
      throw new UpstreamRefusedError(
        `Refusing credential request for ${vendor.name}: ${url.origin} is not an official host`,
      );
    }
    const mapped = dev?.[url.host];
    const final = mapped ? new URL(url.pathname + url.search, mapped) : url;
    return fetch(final, { ...init, redirect: "manual" });
  };
}
