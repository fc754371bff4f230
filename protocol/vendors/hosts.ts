/**
 * Official vendor API hosts: the only places an agent may send a vendor request. This one list,
 * derived from the vendor modules, feeds the agent's runtime check and its `--allow-net` flags
 * (source runs and release builds). Hosts that depend on the owner's account (Azure resource
 * names, Vertex/Bedrock regions) are added per channel when those vendors land.
 */
import { VENDORS } from "./registry.ts";

export const OFFICIAL_VENDOR_HOSTS: readonly string[] = [
  ...new Set(VENDORS.flatMap((v) => v.hosts)),
];
