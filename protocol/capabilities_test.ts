import assert from "node:assert/strict";
import { decodeControl, encodeControl, FrameDecodeError } from "./frames.ts";
import { type Capabilities, peerUnderstands } from "./capabilities.ts";

const frame = (capabilities: Capabilities) =>
  JSON.stringify({ type: "capabilities", capabilities });

Deno.test("capabilities: deployments and locations survive the tunnel codec", () => {
  const capabilities: Capabilities = {
    agentVersion: "0.1.0",
    channels: [
      {
        id: "az",
        vendor: "azure",
        models: [],
        rpm: 0,
        tpm: 0,
        deployments: { "my-gpt": "gpt-4o" },
      },
      { id: "vx", vendor: "vertex", models: ["m"], rpm: 1, tpm: 2, locations: ["europe-west4"] },
      { id: "oa", vendor: "openai", models: [], rpm: 0, tpm: 0 },
    ],
  };
  const decoded = decodeControl(frame(capabilities));
  assert.deepEqual(decoded, { type: "capabilities", capabilities });
  assert.equal(decodeControl(encodeControl(decoded)).type, "capabilities");
});

Deno.test("capabilities: malformed deployments or locations are refused", () => {
  const base = { id: "c", vendor: "vertex", models: [], rpm: 0, tpm: 0 };
  for (
    const bad of [
      { ...base, locations: ["Europe West"] },
      { ...base, locations: "us-central1" },
      { ...base, deployments: { d: 5 } },
      { ...base, deployments: ["d=m"] },
    ]
  ) {
    assert.throws(
      () => decodeControl(frame({ agentVersion: "x", channels: [bad as never] })),
      FrameDecodeError,
      JSON.stringify(bad),
    );
  }
});

Deno.test("peerUnderstands: newer frame families only for peers that list them", () => {
  const current = ["prices", "ledger_sync"];
  const newer = [
    "prices",
    "reconcile",
    "reconcile_request",
    "ledger_hashes",
    "claim",
    "checkpoint",
  ];
  for (const type of newer.concat(["prices_get", "claim_result", "checkpoint_reply"])) {
    assert.equal(peerUnderstands(undefined, type), false, type);
    assert.equal(peerUnderstands([], type), false, type);
    assert.equal(peerUnderstands(current, type), true, type);
  }
  assert.equal(peerUnderstands(["prices"], "reconcile_request"), false);
  for (const type of ["hello", "welcome", "request", "settled", "settle_ack", "ping", "probe"]) {
    assert.equal(peerUnderstands(undefined, type), true, `${type} is first-release`);
  }
});
