import assert from "node:assert/strict";
import { DEFAULT_POLICY, parsePolicy, type Policy, POLICY_LIST_MAX } from "./policy.ts";

Deno.test("parsePolicy accepts every policy shape and normalises it", () => {
  const cases: [string, unknown, Policy][] = [
    ["null is auto", null, { type: "auto" }],
    ["undefined is auto", undefined, { type: "auto" }],
    ["auto", { type: "auto" }, { type: "auto" }],
    ["JSON text", '{"type":"grade","minGrade":"A"}', { type: "grade", minGrade: "A" }],
    ["JSON text null", "null", { type: "auto" }],
    ["grade", { type: "grade", minGrade: "S" }, { type: "grade", minGrade: "S" }],
    ["cheapest bare", { type: "cheapest" }, { type: "cheapest", minGrade: null }],
    ["cheapest null grade", { type: "cheapest", minGrade: null }, {
      type: "cheapest",
      minGrade: null,
    }],
    ["cheapest graded", { type: "cheapest", minGrade: "B" }, { type: "cheapest", minGrade: "B" }],
    ["pinned agents", { type: "pinned", agents: ["agt_a", "agt_b", "agt_a"] }, {
      type: "pinned",
      agents: ["agt_a", "agt_b"],
      channels: [],
    }],
    ["pinned channels", { type: "pinned", channels: ["agt_a/main"] }, {
      type: "pinned",
      agents: [],
      channels: ["agt_a/main"],
    }],
    ["pinned both", { type: "pinned", agents: ["agt_b"], channels: ["agt_a/x"] }, {
      type: "pinned",
      agents: ["agt_b"],
      channels: ["agt_a/x"],
    }],
  ];
  for (const [name, input, expected] of cases) {
    assert.deepEqual(parsePolicy(input), expected, name);
  }
  assert.equal(parsePolicy(null), DEFAULT_POLICY);
  assert.ok(Object.isFrozen(parsePolicy({ type: "pinned", agents: ["a"] })));
});

Deno.test("parsePolicy rejects invalid policies with an admin-readable TypeError", () => {
  const long = "x".repeat(201);
  const cases: [unknown, RegExp][] = [
    ["{nope", /not valid JSON/],
    [42, /expected an object/],
    [[{ type: "auto" }], /expected an object/],
    [true, /expected an object/],
    [{}, /"type" must be one of pinned, grade, auto, cheapest/],
    [{ type: "fastest" }, /"type" must be one of/],
    [{ type: 3 }, /"type" must be one of/],
    [{ type: "auto", minGrade: "A" }, /unknown field "minGrade" for type "auto"/],
    [{ type: "grade" }, /type "grade" needs "minGrade"/],
    [{ type: "grade", minGrad: "A" }, /unknown field "minGrad"/],
    [{ type: "grade", minGrade: "D" }, /"minGrade" must be one of S, A, B, C/],
    [{ type: "grade", minGrade: "a" }, /"minGrade" must be one of/],
    [{ type: "grade", minGrade: null }, /"minGrade" must be one of/],
    [{ type: "cheapest", minGrade: 1 }, /"minGrade" must be one of/],
    [{ type: "pinned" }, /needs at least one entry in "agents" or "channels"/],
    [{ type: "pinned", agents: [], channels: [] }, /needs at least one entry/],
    [{ type: "pinned", agents: "agt_a" }, /"agents" must be an array of strings/],
    [{ type: "pinned", agents: [1] }, /every entry of "agents" must be a non-empty string/],
    [{ type: "pinned", agents: [""] }, /non-empty string/],
    [{ type: "pinned", agents: [long] }, /at most 200 characters/],
    [{ type: "pinned", channels: ["agt_a"] }, /channel "agt_a" must be "agentId\/channelId"/],
    [{ type: "pinned", channels: ["/main"] }, /must be "agentId\/channelId"/],
    [{ type: "pinned", channels: ["agt_a/"] }, /must be "agentId\/channelId"/],
    [{ type: "pinned", channels: ["a/b/c"] }, /must be "agentId\/channelId"/],
    [
      { type: "pinned", agents: Array.from({ length: POLICY_LIST_MAX + 1 }, (_, i) => `a${i}`) },
      /"agents" has 1001 entries; at most 1000/,
    ],
    [{ type: "pinned", agents: ["a"], extra: 1 }, /unknown field "extra" for type "pinned"/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parsePolicy(input), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${JSON.stringify(input)?.slice(0, 60)} → TypeError`);
      assert.match(e.message, message);
      assert.match(e.message, /^Invalid routing policy: /);
      return true;
    });
  }
});
