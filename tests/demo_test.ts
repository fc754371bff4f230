/**
 * `deno task demo` as a newcomer runs it: it comes up, prints a base URL and key that work with
 * the official SDK (streaming), and stops cleanly on Ctrl-C.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Proc, taskArgs, tempDir, waitFor } from "./support/process.ts";

Deno.test("deno task demo: the printed SDK settings stream a completion; Ctrl-C stops it", async () => {
  const tmp = await tempDir("demo");
  const demo = new Proc("demo", taskArgs("demo"), { env: { DEMO_PORT: "0", DEMO_DIR: tmp.path } });
  try {
    const out = () => demo.stdout.join("\n");
    await waitFor(() => out().includes("Ctrl-C stops everything."), "demo banner", 30_000).catch(
      (e) => {
        throw new Error(`${e.message}\n${out()}\n${demo.dump()}`);
      },
    );
    const baseURL = out().match(/base URL\s+(\S+)/)?.[1];
    const apiKey = out().match(/API key\s+(\S+)/)?.[1];
    assert.ok(baseURL && apiKey, out());
    const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      stream: true,
      messages: [{ role: "user", content: "Hello!" }],
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    assert.match(text, /^Echo: Hello!/);
    demo.kill("SIGINT");
    assert.equal(await demo.exited(15_000), 0);
  } finally {
    await demo.stop();
    await tmp.remove();
  }
});
