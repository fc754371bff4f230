/**
 * The model catalog: which vendor serves a model sent to the hub's unprefixed OpenAI-shaped
 * routes (`POST /v1/chat/completions`, `/v1/embeddings`), so `new OpenAI({ baseURL: hub/v1 })`
 * reaches DeepSeek with `deepseek-chat` and DashScope with `qwen-plus`. Explicit prefixes
 * (`/openai`, `/deepseek`, `/dashscope`) never consult it.
 *
 * A model's vendor, first match wins:
 * 1. a connected agent's channel of an OpenAI-shaped vendor declares the model (`--models`);
 *    OpenAI first when several do (the root is its surface);
 * 2. the default catalog below (name patterns per vendor);
 * 3. an OpenAI channel that declares no model list (it may serve anything);
 * 4. none: the caller answers OpenAI's 404 `model_not_found`.
 * Each vendor also says where the OpenAI operation lives in its own API (`pathFor`); a vendor
 * without the operation is skipped (DeepSeek has no embeddings).
 *
 * Also here: the model behind a deployment name (Azure's `--deployment name=model`), read from
 * what channels declare, for pricing.
 * @module
 */
import type { ChannelCapability } from "../capabilities.ts";

/** A vendor that speaks OpenAI's wire format on its own paths. */
export interface CatalogVendor {
  vendor: string;
  /** Model names this vendor serves when no connected channel says otherwise. */
  models: RegExp;
  /** This vendor's path (+ query) for an OpenAI root path (+ query); null: not served. */
  pathFor(openAIPath: string): string | null;
}

const splitQuery = (path: string): [string, string] => {
  const q = path.indexOf("?");
  return q === -1 ? [path, ""] : [path.slice(0, q), path.slice(q)];
};

/** Maps OpenAI's `/v1/<operation>` paths to a vendor's own, keeping the query. */
function pathTable(table: Record<string, string>): (path: string) => string | null {
  return (path) => {
    const [pathname, query] = splitQuery(path);
    const mapped = Object.hasOwn(table, pathname) ? table[pathname]! : null;
    return mapped === null ? null : mapped + query;
  };
}

/** The default catalog, in precedence order. */
export const DEFAULT_CATALOG: readonly CatalogVendor[] = [
  {
    vendor: "openai",
    models:
      /^(?:gpt-|chatgpt-|o[1-9](?:$|-)|text-embedding-(?:3|ada)|dall-e-|tts-|whisper-|omni-moderation-|text-moderation-|davinci-|babbage-|computer-use-|codex-)/,
    pathFor: (path) => path,
  },
  {
    vendor: "deepseek",
    models: /^deepseek-/,
    pathFor: pathTable({ "/v1/chat/completions": "/chat/completions" }),
  },
  {
    vendor: "dashscope",
    models: /^(?:qwen|qwq-|qvq-|text-embedding-v\d)/,
    pathFor: pathTable({
      "/v1/chat/completions": "/compatible-mode/v1/chat/completions",
      "/v1/embeddings": "/compatible-mode/v1/embeddings",
    }),
  },
];

/** Where a model sent to an OpenAI root path goes. */
export interface CatalogTarget {
  vendor: string;
  /** The vendor's own path (+ query) for the request. */
  path: string;
}

/**
 * The vendor for `model` on the OpenAI root path `path` (+ query), given the channels connected
 * agents declare; null when no vendor serves it (see the module comment for the order).
 */
export function resolveCatalogModel(
  model: string,
  path: string,
  channels: Iterable<Pick<ChannelCapability, "vendor" | "models">>,
  catalog: readonly CatalogVendor[] = DEFAULT_CATALOG,
): CatalogTarget | null {
  const serving = catalog.flatMap((entry) => {
    const mapped = entry.pathFor(path);
    return mapped === null ? [] : [{ entry, path: mapped }];
  });
  if (serving.length === 0) return null;
  const declared = new Set<string>();
  let openEnded = false;
  for (const ch of channels) {
    if (ch.models.includes(model)) declared.add(ch.vendor);
    if (ch.vendor === serving[0]!.entry.vendor && ch.models.length === 0) openEnded = true;
  }
  const pick = serving.find((s) => declared.has(s.entry.vendor)) ??
    serving.find((s) => s.entry.models.test(model)) ??
    (openEnded ? serving[0] : undefined);
  return pick ? { vendor: pick.entry.vendor, path: pick.path } : null;
}

/**
 * The model a channel of `vendor` runs behind the deployment name `name` (the first declaration
 * found), or undefined when no channel maps it.
 */
export function modelBehindDeployment(
  vendor: string,
  name: string,
  channels: Iterable<Pick<ChannelCapability, "vendor" | "deployments">>,
): string | undefined {
  for (const ch of channels) {
    if (ch.vendor !== vendor || !ch.deployments) continue;
    if (Object.hasOwn(ch.deployments, name)) return ch.deployments[name];
  }
  return undefined;
}

/** The models a channel serves for routing: its model list plus its deployment names. */
export function routableModels(ch: Pick<ChannelCapability, "models" | "deployments">): string[] {
  if (!ch.deployments) return ch.models;
  const names = Object.keys(ch.deployments);
  return names.length === 0 ? ch.models : [...new Set([...ch.models, ...names])];
}
