/**
 * The agent calls only official vendor endpoints: the URL is the vendor's hard-coded origin plus
 * a checked path, never anything the hub (or a client) could steer elsewhere. Deno's `--allow-net`
 * lock is the second wall behind this one.
 */
import type { VendorSurface } from "../../protocol/vendors/types.ts";

export class UpstreamRefusedError extends Error {
  override name = "UpstreamRefusedError";
}

/** Official host → local fake (tests only; the release build's permission flags make it inert). */
export type DevUpstreams = Record<string, string>;

/**
 * Builds the upstream URL for `path` (path + query as the vendor expects it).
 * Throws `UpstreamRefusedError` for anything that is not a plain path under the vendor's prefixes.
 */
export function upstreamUrl(vendor: VendorSurface, path: string, dev?: DevUpstreams): URL {
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
  const official = new URL(vendor.upstreamOrigin);
  const origin = dev?.[official.host] ?? vendor.upstreamOrigin;
  const url = new URL(origin + path);
  if (url.origin !== new URL(origin).origin) refuse("path changes the origin");
  return url;
}
