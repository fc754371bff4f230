/**
 * Routing by what a URL names besides the model, with the official SDKs:
 * - Azure: a channel declares `--deployment name=model`; the hub sees the map in the agent's
 *   capabilities, routes `/openai/deployments/{name}/…` (and the v1 shape's `body.model`) only to
 *   channels with that deployment, and prices the request by the mapped model (`AzureOpenAI`).
 * - Vertex: each channel serves the location it is configured for; the hub routes
 *   `projects/{p}/locations/{l}/…` only to channels serving `{l}`, and the agent rewrites the
 *   project to its service account's (`@google/genai`, `vertexai: true`).
 */
import assert from "node:assert/strict";
import { GoogleGenAI } from "@google/genai";
import { AzureOpenAI, InternalServerError } from "openai";
import { type FakeAzure, startFakeAzure } from "./fakes/azure.ts";
import { type FakeVertex, makeServiceAccount, startFakeVertex } from "./fakes/vertex.ts";
import {
  admin,
  agentCli,
  enrollAgent,
  type HubProc,
  runAgent,
  startHub,
  waitOnline,
} from "./support/cluster.ts";
import { type Proc, tempDir, waitFor } from "./support/process.ts";

const LIMITS = ["--rpm", "100000", "--tpm", "1000000000"];

interface Rig {
  hub: HubProc;
  agent: Proc;
  agentId: string;
  key: string;
  stop(): Promise<void>;
}

/** A hub and one agent with the given channels (CLI args each), upstreams, a user and a key. */
async function startRig(
  channels: (dir: string, tmp: string) => Promise<string[][]>,
  upstreams: Record<string, string>,
  closeFakes: () => Promise<void>,
): Promise<Rig> {
  const tmp = await tempDir("scope");
  let hub: HubProc | undefined;
  let agent: Proc | undefined;
  const stop = async () => {
    await agent?.stop();
    await hub?.proc.stop();
    await closeFakes();
    await tmp.remove();
  };
  try {
    hub = await startHub({ dir: tmp.path });
    const dir = `${tmp.path}/agent`;
    const setup = await enrollAgent(hub, dir);
    for (const args of await channels(dir, tmp.path)) {
      await agentCli(["channel", "add", ...args, ...LIMITS, "--dir", dir]);
    }
    agent = runAgent(dir, { AGENT_DEV_UPSTREAMS: JSON.stringify(upstreams) });
    await waitOnline(hub, setup.id);
    const user = await admin(hub, "POST", "/users", { name: "scope-client" });
    await admin(hub, "POST", `/users/${user.json.id}/credit`, { amount: "100" });
    const key = await admin(hub, "POST", "/keys", { userId: user.json.id });
    if (key.status !== 201) throw new Error(`key creation failed: ${JSON.stringify(key.json)}`);
    return { hub, agent, agentId: setup.id, key: key.json.key, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The hub's "request finished" line for the id the client saw. */
const finished = (rig: Rig, traceId: string | null) =>
  waitFor(
    () =>
      rig.hub.proc.lines.find((l) =>
        l.msg === "request finished" && (l.requestId === traceId || l.traceId === traceId)
      ),
    `request finished ${traceId}`,
  );

const doneLines = (rig: Rig) => rig.hub.proc.lines.filter((l) => l.msg === "request finished");

Deno.test("Azure: deployments declared by the channel route by name and price by model", async (t) => {
  const KEY = "azure-real-key-deployments-0001";
  const fake: FakeAzure = await startFakeAzure({
    keys: [KEY],
    deployments: { "my-gpt": "gpt-4o-2024-11-20", "my-embed": "text-embedding-3-small" },
  });
  const rig = await startRig(
    () =>
      Promise.resolve([[
        "--vendor",
        "azure",
        "--key",
        KEY,
        "--endpoint",
        "contoso-west",
        "--deployment",
        "my-gpt=gpt-4o",
        "--deployment",
        "my-embed=text-embedding-3-small",
      ]]),
    { "contoso-west.openai.azure.com": fake.url },
    () => fake.close(),
  );
  const az = (deployment: string) =>
    new AzureOpenAI({
      endpoint: `${rig.hub.url}/azure`,
      apiKey: rig.key,
      apiVersion: "2024-10-21",
      deployment,
      maxRetries: 0,
    });
  const messages = [{ role: "user" as const, content: "hello deployments" }];
  try {
    await t.step("the map reaches the hub in the agent's capabilities", async () => {
      const agent = (await admin(rig.hub, "GET", `/agents/${rig.agentId}`)).json;
      const channel = agent.capabilities.channels[0];
      assert.deepEqual(channel.deployments, {
        "my-gpt": "gpt-4o",
        "my-embed": "text-embedding-3-small",
      });
      assert.deepEqual(channel.models, []);
      const listed = await fetch(`${rig.hub.url}/azure/openai/models?api-version=2024-10-21`, {
        headers: { "api-key": rig.key },
      });
      const ids = (await listed.json()).data.map((m: { id: string }) => m.id);
      assert.deepEqual(ids, ["my-embed", "my-gpt"]);
    });

    await t.step("a declared deployment is served; priced by its model", async () => {
      const { data, response } = await az("my-gpt").chat.completions.create({
        model: "ignored",
        messages,
      }).withResponse();
      assert.equal(data.model, "gpt-4o-2024-11-20");
      assert.match(
        fake.requests.at(-1)!.path,
        /^\/openai\/deployments\/my-gpt\/chat\/completions\?/,
      );
      const line = await finished(rig, response.headers.get("x-request-id"));
      assert.equal(line.outcome, "complete");
      // No Azure price is published in the default table: the hub warns about the MAPPED model.
      const warned = await waitFor(
        () => rig.hub.proc.lines.find((l) => l.msg === "serving an unpriced model without charge"),
        "unpriced warning",
      );
      assert.deepEqual([warned.vendor, warned.model], ["azure", "gpt-4o"]);
      const emb = await az("my-embed").embeddings.create({ model: "x", input: "hi" });
      assert.equal(emb.model, "text-embedding-3-small");
    });

    await t.step("the v1 shape routes body.model by deployment name", async () => {
      const res = await fetch(`${rig.hub.url}/azure/openai/v1/chat/completions`, {
        method: "POST",
        headers: { "api-key": rig.key, "content-type": "application/json" },
        body: JSON.stringify({ model: "my-gpt", messages }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal((await res.json()).model, "gpt-4o-2024-11-20");
    });

    await t.step("an undeclared deployment is never dispatched (typed SDK error)", async () => {
      const before = fake.requests.length;
      await assert.rejects(
        az("other-deploy").chat.completions.create({ model: "gpt-4o", messages }),
        (e: unknown) => e instanceof InternalServerError && e.status === 503,
      );
      // The mapped model's name is not a deployment name either.
      await assert.rejects(
        az("gpt-4o").chat.completions.create({ model: "gpt-4o", messages }),
        (e: unknown) => e instanceof InternalServerError && e.status === 503,
      );
      assert.equal(fake.requests.length, before);
    });

    await t.step("malformed --deployment specs are refused by the CLI", async () => {
      for (const spec of ["no-equals", "=gpt-4o", "bad name=gpt-4o", "ok=bad model"]) {
        await assert.rejects(
          agentCli([
            "channel",
            "add",
            "--vendor",
            "azure",
            "--key",
            KEY,
            "--endpoint",
            "contoso-west",
            "--deployment",
            spec,
            "--dir",
            "/nonexistent/aqueduct-scope-test",
          ]),
          /malformed/,
          spec,
        );
      }
    });
  } finally {
    await rig.stop();
  }
});

Deno.test("Vertex: the hub routes each location only to channels serving it", async (t) => {
  const OWNER = "owner-proj";
  const sa = await makeServiceAccount(OWNER);
  const fake: FakeVertex = await startFakeVertex({ serviceAccount: sa });
  const rig = await startRig(
    async (_dir, tmp) => {
      const saFile = `${tmp}/sa.json`;
      await Deno.writeTextFile(saFile, sa.json, { mode: 0o600 });
      const channel = (id: string, location: string) => [
        "--vendor",
        "vertex",
        "--id",
        id,
        "--key",
        `@${saFile}`,
        "--endpoint",
        location,
        "--models",
        "gemini-3.5-flash",
      ];
      return [channel("vx-us", "us-central1"), channel("vx-eu", "europe-west4")];
    },
    {
      "us-central1-aiplatform.googleapis.com": fake.url,
      "europe-west4-aiplatform.googleapis.com": fake.url,
      "oauth2.googleapis.com": fake.url,
    },
    () => fake.close(),
  );
  const genai = (location: string) =>
    new GoogleGenAI({
      vertexai: true,
      project: "client-proj",
      location,
      httpOptions: { baseUrl: `${rig.hub.url}/vertex` },
      googleAuthOptions: {
        authClient: {
          getRequestHeaders: () =>
            Promise.resolve(new Headers({ authorization: `Bearer ${rig.key}` })),
        } as never,
      },
    });
  try {
    await t.step("each channel reports its location", async () => {
      const agent = (await admin(rig.hub, "GET", `/agents/${rig.agentId}`)).json;
      const locations = Object.fromEntries(
        agent.capabilities.channels.map((c: { id: string; locations: string[] }) => [
          c.id,
          c.locations,
        ]),
      );
      assert.deepEqual(locations, { "vx-us": ["us-central1"], "vx-eu": ["europe-west4"] });
    });

    for (const [location, channel] of [["europe-west4", "vx-eu"], ["us-central1", "vx-us"]]) {
      await t.step(`${location} is served by ${channel}, in the owner's project`, async () => {
        // Several requests: routing could pick either channel if it ignored the location.
        for (let i = 0; i < 6; i++) {
          const before = fake.requests.length;
          const lines = doneLines(rig).length;
          const res = await genai(location!).models.generateContent({
            model: "gemini-3.5-flash",
            contents: `hello ${location} ${i}`,
          });
          assert.ok(res.text);
          const seen = fake.requests.slice(before).find((r) => r.path.includes(":generate"))!;
          assert.ok(
            seen.path.startsWith(`/v1beta1/projects/${OWNER}/locations/${location}/`),
            seen.path,
          );
          const line = await waitFor(() => doneLines(rig)[lines], "request finished");
          assert.equal(line.channelId, channel);
          // Chosen by the hub, not found by failing over from an agent's refusal.
          assert.equal(line.attempts, 1);
        }
      });
    }

    await t.step("a location no channel serves: 503, nothing dispatched", async () => {
      const before = fake.requests.length;
      await assert.rejects(
        genai("asia-east1").models.generateContent({ model: "gemini-3.5-flash", contents: "hi" }),
        (e: unknown) => (e as { status?: number }).status === 503,
      );
      await assert.rejects(
        genai("global").models.generateContent({ model: "gemini-3.5-flash", contents: "hi" }),
        (e: unknown) => (e as { status?: number }).status === 503,
      );
      assert.equal(fake.requests.length, before);
    });
  } finally {
    await rig.stop();
  }
});
