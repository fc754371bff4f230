/**
 * Checks around `deno task bench gateway`: the official OpenAI SDK must get the same answer
 * directly and through the hub before anything is timed (and the headers it sends become the load
 * generator's), and the JSON line records which code was measured — hub and agent are edited
 * concurrently, so a figure without its commit means little.
 */
import OpenAI from "openai";
import { VENDOR_KEY } from "./gateway_stack.ts";
import { PROJECT_DIR } from "./proc.ts";

/**
 * One SDK call to each side (non-stream and stream) must give the same text; returns the request
 * headers the SDK sent (minus host, auth and length), which the load generator then replays.
 */
export async function sdkCheck(
  fakeUrl: string,
  hubUrl: string,
  key: string,
  small: OpenAI.ChatCompletionCreateParamsNonStreaming,
) {
  const headers: Record<string, string> = {};
  const recording: typeof fetch = (input, init) => {
    if (Object.keys(headers).length === 0) {
      new Headers(init?.headers).forEach((v, k) => headers[k] = v);
    }
    return fetch(input, init);
  };
  const direct = new OpenAI({
    apiKey: VENDOR_KEY,
    baseURL: `${fakeUrl}/v1`,
    maxRetries: 0,
    fetch: recording,
  });
  const viaHub = new OpenAI({ apiKey: key, baseURL: `${hubUrl}/v1`, maxRetries: 0 });
  const texts: string[] = [];
  for (const client of [direct, viaHub]) {
    const done = await client.chat.completions.create(small);
    let streamed = "";
    const stream = await client.chat.completions.create({ ...small, stream: true });
    for await (const c of stream) {
      streamed += c.choices[0]?.delta.content ?? "";
    }
    if (streamed !== done.choices[0]?.message.content) throw new Error("SDK: stream ≠ non-stream");
    texts.push(streamed);
  }
  if (texts[0] !== texts[1]) throw new Error(`SDK: hub answered ${texts[1]}, vendor ${texts[0]}`);
  for (const h of ["host", "authorization", "content-length"]) delete headers[h];
  return headers;
}

/** The commit measured, and whether hub/agent/protocol code had uncommitted edits. */
export async function codeState() {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args, cwd: PROJECT_DIR, stderr: "null" }).output()
      .catch(() => undefined);
    return out?.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  };
  const commit = await git("rev-parse", "--short", "HEAD");
  const dirty = await git("status", "--porcelain", "--", "hub", "agent", "protocol", "runtime");
  return {
    commit: commit ?? "unknown",
    uncommittedRuntimeFiles: dirty?.split("\n").filter(Boolean).length ?? null,
  };
}
