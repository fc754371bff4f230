/**
 * `deno task dev`: a hub (SQLite under ./data/dev) and one enrolled agent, wired together and
 * running until Ctrl-C — the quickest way to see the tunnel work. Prints ready-to-paste admin
 * calls. Both processes are the real CLIs (`hub serve`, `agent run`), started as the tasks do.
 */
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const dataDir = `${root}data/dev`;
const agentDir = `${dataDir}/agent`;
const port = Deno.env.get("DEV_PORT") ?? "8080";
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
    body: body && JSON.stringify(body),
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
    (await admin("POST", "/agents", { name: "dev-agent", publicKey: agentPublicKey, tier: 0 }))
      .id as string;
  await output([...agentTask, "set-id", agentId, "--dir", agentDir]);
}
const agent = new Deno.Command(deno, { args: [...agentTask, "run", "--dir", agentDir], cwd: root })
  .spawn();

console.log(`
Aqueduct dev: hub ${url}  ·  agent ${agentId}  ·  admin token ${adminToken}

  curl -s -H 'authorization: Bearer ${adminToken}' ${url}/admin/agents
  curl -s -H 'authorization: Bearer ${adminToken}' -X POST ${url}/admin/agents/${agentId}/echo -d '{"payload":"hello"}'

Ctrl-C stops both.`);

const stop = () => {
  agent.kill("SIGTERM");
  hub.kill("SIGTERM");
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
await Promise.all([agent.status, hub.status]);
