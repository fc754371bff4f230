/**
 * Official vendor API hosts: the only places an agent may send a vendor request. This one list
 * feeds the agent's runtime check and its `--allow-net` flags (source runs and release builds).
 * Hosts that depend on the owner's account (Azure resource names, Vertex/Bedrock regions) are
 * added per channel when those vendors land; until then only the fixed hosts are listed.
 */
export const OFFICIAL_VENDOR_HOSTS: readonly string[] = [
  "api.openai.com:443",
  "api.anthropic.com:443",
  "generativelanguage.googleapis.com:443",
  "aiplatform.googleapis.com:443",
  "oauth2.googleapis.com:443",
  "api.deepseek.com:443",
  "dashscope.aliyuncs.com:443",
  "dashscope-intl.aliyuncs.com:443",
];
