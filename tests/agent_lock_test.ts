/**
 * The second wall: even code running inside the locked agent process cannot reach a host outside
 * the hub + official vendor list — Deno itself refuses (NotCapable).
 */
import assert from "node:assert/strict";
import { allowedNetHosts, lockedRunFlags } from "../agent/permissions.ts";
import { DENO, tempDir } from "./support/process.ts";

Deno.test("the locked agent's permission flags refuse non-whitelisted hosts", async () => {
  const tmp = await tempDir("lock");
  try {
    const probe = `${tmp.path}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `const out = {};
for (const url of Deno.args) {
  try { await fetch(url, { signal: AbortSignal.timeout(2000) }); out[url] = "reached"; }
  catch (e) { out[url] = e instanceof Deno.errors.NotCapable ? "NotCapable" : "other:" + e.name; }
}
console.log(JSON.stringify(out));`,
    );
    const hosts = allowedNetHosts("ws://127.0.0.1:8080/tunnel/connect");
    assert.ok(hosts.includes("api.openai.com:443") && hosts.includes("127.0.0.1:8080"));
    const targets = [
      "https://evil.example/",
      "http://127.0.0.1:8081/",
      "http://localhost:8080/",
      "http://10.0.0.1/",
      "https://api.openai.com.evil.example/",
    ];
    const out = await new Deno.Command(DENO, {
      args: ["run", ...lockedRunFlags(tmp.path, hosts), probe, ...targets],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    for (const url of targets) assert.equal(result[url], "NotCapable", url);
  } finally {
    await tmp.remove();
  }
});
