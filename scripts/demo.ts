/**
 * `deno task demo`: a hub (SQLite under ./data/demo), one enrolled agent holding a "vendor key",
 * a local simulated OpenAI upstream behind it, and a user with credit and a virtual key — then a
 * copy-pasteable SDK and curl example. Runs until Ctrl-C. The hub and agent are the real CLIs
 * (`hub serve`, `agent run`), started as their tasks do.
 */
import { fileURLToPath } from "node:url";
import { startFakeOpenAI } from "../tests/fakes/openai.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const dataDir = Deno.env.get("DEMO_DIR") ?? `${root}data/demo`;
const agentDir = `${dataDir}/agent`;
const port = Deno.env.get("DEMO_PORT") ?? "8080";
const adminToken = Deno.env.get("HUB_ADMIN_TOKEN") ?? crypto.randomUUID();
const hubEnv = {
  HUB_LISTEN: `127.0.0.1:${port}`,
  HUB_DB: `sqlite:${dataDir}/hub.db`,
  HUB_IDENTITY_KEY: `${dataDir}/hub.key`,
  HUB_ADMIN_TOKEN: adminToken,
};
const deno = Deno.execPath();
const tasks = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks as Record<
  string,
  string
>;
const taskArgs = (name: string) => tasks[name]!.split(/\s+/).slice(1);

async function output(args: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(deno, { args, cwd: root, env, stderr: "inherit" }).output();
  if (!out.success) throw new Error(`deno ${args.slice(-3).join(" ")} failed`);
  return new TextDecoder().decode(out.stdout).trim();
}

await Deno.mkdir(dataDir, { recursive: true });
const hubKey =
  JSON.parse(await output([...taskArgs("hub").slice(0, -1), "identity"], hubEnv)).publicKey;
const hub = new Deno.Command(deno, {
  args: taskArgs("hub"),
  cwd: root,
  env: hubEnv,
  stderr: "piped",
}).spawn();
const hubLog = hub.stderr.pipeThrough(new TextDecoderStream()).getReader();
let url = "";
for (let buffered = ""; !url;) {
  const { value, done } = await hubLog.read();
  if (done) throw new Error("hub exited during start-up");
  buffered += value;
  url = buffered.match(/"msg":"hub listening","url":"([^"]+)"/)?.[1] ?? "";
  for (const line of value.split("\n")) if (line.includes('"level":"error"')) console.error(line);
}
(async () => { // keep draining the hub's log so it never blocks on a full pipe
  for (let r = await hubLog.read(); !r.done; r = await hubLog.read()) {
    await Deno.stderr.write(new TextEncoder().encode(r.value));
  }
})();

const admin = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return await res.json();
};

const agentTask = taskArgs("agent");
const agentPublicKey = await output([
  ...agentTask,
  "init",
  "--hub",
  url,
  "--hub-key",
  hubKey,
  "--dir",
  agentDir,
]);
const config = JSON.parse(await Deno.readTextFile(`${agentDir}/config.json`));
let agentId: string | undefined = config.agentId;
if (!agentId || !(await admin("GET", `/agents/${agentId}`)).id) {
  agentId =
    (await admin("POST", "/agents", { name: "demo-agent", publicKey: agentPublicKey, tier: 0 }))
      .id as string;
  await output([...agentTask, "set-id", agentId, "--dir", agentDir]);
}
// The simulated vendor: OpenAI's wire format, checking the agent's (fake) real key.
const vendorKey = "sk-demo-vendor-key";
const vendor = await startFakeOpenAI({ keys: [vendorKey], chunkDelayMs: 30 });
if (!(await output([...agentTask, "channel", "list", "--dir", agentDir]))) {
  await output([
    ...agentTask,
    "channel",
    "add",
    "--vendor",
    "openai",
    "--key",
    vendorKey,
    "--dir",
    agentDir,
  ]);
}
const agent = new Deno.Command(deno, {
  args: [...agentTask, "run", "--dir", agentDir],
  cwd: root,
  env: { AGENT_DEV_UPSTREAMS: JSON.stringify({ "api.openai.com": vendor.url }) },
}).spawn();

const user = await admin("POST", "/users", { name: "demo-user" });
await admin("POST", `/users/${user.id}/credit`, { amount: "25.00" });
const key = (await admin("POST", "/keys", { userId: user.id })).key as string;
for (let i = 0; i < 100 && !(await admin("GET", `/agents/${agentId}`)).online; i++) {
  await new Promise((r) => setTimeout(r, 100)); // a demo polls for its agent; tests wait on conditions
}

console.log(`
Aqueduct demo — hub ${url} · agent ${agentId} · simulated OpenAI at ${vendor.url}

  base URL   ${url}/v1        (also ${url}/openai/v1)
  API key    ${key}
  admin      Authorization: Bearer ${adminToken}

Official OpenAI SDK (save as demo.ts, run with: deno run -A demo.ts):

  import OpenAI from "npm:openai";
  const client = new OpenAI({ baseURL: "${url}/v1", apiKey: "${key}" });
  const stream = await client.chat.completions.create({
    model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "Hello!" }],
  });
  for await (const chunk of stream) Deno.stdout.write(new TextEncoder().encode(chunk.choices[0]?.delta.content ?? ""));

curl (streams):

  curl -N ${url}/v1/chat/completions -H 'authorization: Bearer ${key}' -H 'content-type: application/json' \\
    -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'

  curl -s -H 'authorization: Bearer ${adminToken}' ${url}/admin/agents

Ctrl-C stops everything.`);

const stop = () => {
  agent.kill("SIGTERM");
  hub.kill("SIGTERM");
  vendor.close();
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
await Promise.all([agent.status, hub.status]);
