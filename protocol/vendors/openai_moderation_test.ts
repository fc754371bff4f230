import assert from "node:assert/strict";
import {
  EXTRACT_IMAGES_MAX,
  EXTRACT_TEXT_MAX_CHARS,
  extractOpenAIModerationInput,
} from "./openai_moderation.ts";
import type { ExtractedModerationContent } from "./types.ts";

const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const nothing: ExtractedModerationContent = { texts: [], images: [], truncated: false };
const only = (texts: string[], images: ExtractedModerationContent["images"] = []) => ({
  texts,
  images,
  truncated: false,
});

const cases: [name: string, path: string, body: unknown, expected: ExtractedModerationContent][] = [
  ["chat: string contents of every role", "/v1/chat/completions", {
    model: "gpt-4o",
    messages: [
      { role: "system", content: "You are terse." },
      { role: "developer", content: "Answer in French." },
      { role: "user", content: "Hello" },
      { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function" }] },
      { role: "tool", tool_call_id: "c1", content: "42" },
    ],
    stream: true,
  }, only(["You are terse.", "Answer in French.", "Hello", "42"])],
  [
    "chat: multi-part content with data and https images",
    "/v1/chat/completions",
    {
      model: "gpt-4o",
      messages: [{
        role: "user",
        content: [
          { type: "text", text: "What is in these?" },
          { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}`, detail: "low" } },
          { type: "image_url", image_url: { url: "https://example.com/cat.jpg" } },
          { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } },
          { type: "text", text: "Be brief." },
        ],
      }],
    },
    only(["What is in these?", "Be brief."], [
      { kind: "data", mediaType: "image/png", base64: PNG },
      { kind: "url", url: "https://example.com/cat.jpg" },
    ]),
  ],
  ["legacy completions: prompt string + suffix", "/v1/completions", {
    model: "gpt-3.5-turbo-instruct",
    prompt: "Once upon",
    suffix: "the end",
  }, only(["Once upon", "the end"])],
  ["legacy completions: prompt array and token arrays", "/v1/completions?x=1", {
    prompt: ["one", "two", [1, 2, 3]],
  }, only(["one", "two"])],
  ["responses: string input + instructions", "/v1/responses", {
    model: "gpt-4.1",
    instructions: "Talk like a pirate.",
    input: "Are semicolons optional?",
  }, only(["Talk like a pirate.", "Are semicolons optional?"])],
  [
    "responses: items with input_text, input_image (url, data, file_id)",
    "/v1/responses",
    {
      model: "gpt-4.1",
      input: [
        { role: "user", content: "first turn" },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "reply" }] },
        {
          role: "user",
          content: [
            { type: "input_text", text: "describe" },
            { type: "input_image", image_url: "https://example.com/a.png" },
            { type: "input_image", image_url: `data:image/jpeg;base64,${PNG}` },
            { type: "input_image", file_id: "file-123" },
          ],
        },
        { type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
        { type: "function_call_output", call_id: "c1", output: "tool said hi" },
      ],
    },
    only(["first turn", "reply", "describe", "tool said hi"], [
      { kind: "url", url: "https://example.com/a.png" },
      { kind: "data", mediaType: "image/jpeg", base64: PNG },
    ]),
  ],
  [
    "embeddings: string",
    "/v1/embeddings",
    { model: "text-embedding-3-small", input: "hi" },
    only(["hi"]),
  ],
  ["embeddings: strings and token arrays", "/embeddings", {
    input: ["a", [1, 2], 3, "b"],
  }, only(["a", "b"])],
  ["embeddings: one token array", "/v1/embeddings", { input: [101, 102] }, nothing],
  ["images/generations: prompt", "/v1/images/generations", {
    model: "gpt-image-1",
    prompt: "a cat",
    size: "1024x1024",
  }, only(["a cat"])],
  ["audio/speech: input + instructions", "/v1/audio/speech", {
    model: "gpt-4o-mini-tts",
    voice: "alloy",
    input: "Say this",
    instructions: "cheerfully",
  }, only(["Say this", "cheerfully"])],
  ["moderations: never moderated", "/v1/moderations", { input: "anything at all" }, nothing],
  ["unknown endpoint", "/v1/files", { purpose: "batch" }, nothing],
  [
    "trailing slash",
    "/v1/chat/completions/",
    { messages: [{ role: "user", content: "x" }] },
    only(["x"]),
  ],
  ["non-base64 data URL stays a URL", "/v1/chat/completions", {
    messages: [{
      role: "user",
      content: [{ type: "image_url", image_url: "data:image/svg+xml,%3Csvg%3E" }],
    }],
  }, only([], [{ kind: "url", url: "data:image/svg+xml,%3Csvg%3E" }])],
];

for (const [name, path, body, expected] of cases) {
  Deno.test(`extract ${name}`, () => {
    assert.deepEqual(extractOpenAIModerationInput(path, body), expected);
  });
}

Deno.test("odd JSON never throws", () => {
  const odd: unknown[] = [
    null,
    42,
    "str",
    [],
    { messages: "nope" },
    {
      messages: [null, 1, "x", [], { content: 5 }, {
        content: [null, 7, { type: "text", text: 9 }],
      }],
    },
    { messages: [{ content: [{ type: "image_url", image_url: null }, { type: "image_url" }] }] },
    { input: { nested: true }, instructions: ["x"] },
    { input: [null, { content: null }, { type: "input_image", image_url: 3 }, "loose string"] },
    { prompt: { a: 1 } },
  ];
  for (
    const path of ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings"]
  ) {
    for (const body of odd) assert.deepEqual(extractOpenAIModerationInput(path, body).images, []);
  }
});

Deno.test("extracted text and images are bounded, and truncation is reported", () => {
  const big = "x".repeat(EXTRACT_TEXT_MAX_CHARS - 10);
  const out = extractOpenAIModerationInput("/v1/embeddings", {
    input: [big, "0123456789ABC", "late"],
  });
  assert.deepEqual(out.texts.map((t) => t.length), [big.length, 10]);
  assert.equal(out.truncated, true);
  const images = Array.from({ length: EXTRACT_IMAGES_MAX + 3 }, (_, i) => ({
    type: "image_url",
    image_url: { url: `https://example.com/${i}.png` },
  }));
  const many = extractOpenAIModerationInput("/v1/chat/completions", {
    messages: [{ role: "user", content: images }],
  });
  assert.equal(many.images.length, EXTRACT_IMAGES_MAX);
  assert.equal(many.truncated, true);
});
