import assert from "node:assert/strict";
import { modelBehindDeployment, resolveCatalogModel, routableModels } from "./catalog.ts";

const CHAT = "/v1/chat/completions";
const ch = (vendor: string, ...models: string[]) => ({ vendor, models });

Deno.test("catalog: declared channels first, then the default patterns, then open OpenAI", () => {
  const channels = [ch("openai", "gpt-4o"), ch("dashscope", "my-ft-model"), ch("deepseek")];
  const go = (model: string, path = CHAT, list = channels) =>
    resolveCatalogModel(model, path, list);
  assert.deepEqual(go("my-ft-model"), {
    vendor: "dashscope",
    path: "/compatible-mode/v1/chat/completions",
  });
  assert.deepEqual(go("deepseek-chat"), { vendor: "deepseek", path: "/chat/completions" });
  assert.deepEqual(go("qwen-plus", `${CHAT}?x=1`), {
    vendor: "dashscope",
    path: "/compatible-mode/v1/chat/completions?x=1",
  });
  assert.deepEqual(go("gpt-4.1"), { vendor: "openai", path: CHAT });
  assert.equal(go("no-such-model"), null);
  // An OpenAI channel with no model list may serve anything; declarations still win.
  const open = [...channels, ch("openai")];
  assert.deepEqual(go("no-such-model", CHAT, open), { vendor: "openai", path: CHAT });
  assert.equal(go("my-ft-model", CHAT, open)?.vendor, "dashscope");
  // Several vendors declare it: OpenAI (the root's owner) first.
  assert.equal(
    go("shared", CHAT, [ch("deepseek", "shared"), ch("openai", "shared")])?.vendor,
    "openai",
  );
  // A vendor without the operation is skipped.
  assert.equal(go("deepseek-chat", "/v1/embeddings"), null);
  assert.deepEqual(go("text-embedding-v4", "/v1/embeddings"), {
    vendor: "dashscope",
    path: "/compatible-mode/v1/embeddings",
  });
  assert.equal(go("deepseek-chat", "/v1/responses"), null);
  assert.equal(go("gpt-4o", "/v1/responses")?.vendor, "openai");
});

Deno.test("catalog: deployment names route and price by their model", () => {
  const az = { vendor: "azure", models: ["legacy-name"], deployments: { "my-gpt": "gpt-4o" } };
  assert.deepEqual(routableModels(az), ["legacy-name", "my-gpt"]);
  assert.deepEqual(routableModels({ models: [] }), []);
  assert.equal(modelBehindDeployment("azure", "my-gpt", [az]), "gpt-4o");
  assert.equal(modelBehindDeployment("azure", "legacy-name", [az]), undefined);
  assert.equal(modelBehindDeployment("openai", "my-gpt", [az]), undefined);
  assert.equal(modelBehindDeployment("azure", "constructor", [az]), undefined);
});
