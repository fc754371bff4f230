import assert from "node:assert/strict";
import { emptyUsage, type Usage } from "../usage.ts";
import { mapOpenAIUsage, openAISurface } from "./openai_usage.ts";

const u = (fields: Partial<Usage>): Usage => ({ ...emptyUsage(), ...fields });

Deno.test("openai: surfaces from OpenAI and Azure paths", () => {
  const table: [string, string][] = [
    ["/v1/chat/completions", "chat"],
    ["/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", "chat"],
    ["/openai/v1/chat/completions", "chat"],
    ["/v1/completions", "chat"],
    ["/v1/responses", "responses"],
    ["/openai/responses?api-version=2025-04-01-preview", "responses"],
    ["/v1/responses/resp_123", "other"],
    ["/v1/embeddings", "embeddings"],
    ["/v1/images/generations", "images"],
    ["/v1/images/edits", "images"],
    ["/v1/audio/speech", "speech"],
    ["/v1/audio/transcriptions", "transcription"],
    ["/openai/deployments/whisper/audio/translations?api-version=x", "transcription"],
    ["/v1/models", "other"],
  ];
  for (const [path, surface] of table) assert.equal(openAISurface(path), surface, path);
});

Deno.test("openai: usage mapping table, every surface", () => {
  const table: [string, Parameters<typeof mapOpenAIUsage>[1], unknown, Usage, number][] = [
    [
      "chat: cached + reasoning",
      "chat",
      {
        prompt_tokens: 2006,
        completion_tokens: 300,
        total_tokens: 2306,
        prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
        completion_tokens_details: {
          reasoning_tokens: 192,
          audio_tokens: 0,
          accepted_prediction_tokens: 0,
          rejected_prediction_tokens: 0,
        },
      },
      u({ inputTokens: 86, cachedInputTokens: 1920, outputTokens: 300, reasoningTokens: 192 }),
      2006,
    ],
    [
      "chat: cache writes",
      "chat",
      {
        prompt_tokens: 5000,
        completion_tokens: 10,
        prompt_tokens_details: { cached_tokens: 1000, cache_write_tokens: 2000 },
      },
      u({ inputTokens: 2000, cachedInputTokens: 1000, cacheWrite5mTokens: 2000, outputTokens: 10 }),
      5000,
    ],
    [
      "chat: audio in and out",
      "chat",
      {
        prompt_tokens: 100,
        completion_tokens: 500,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 80 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 450 },
      },
      u({ inputTokens: 100, audioInputTokens: 80, outputTokens: 500, audioOutputTokens: 450 }),
      100,
    ],
    ["embeddings", "embeddings", { prompt_tokens: 8, total_tokens: 8 }, u({ inputTokens: 8 }), 8],
    [
      "responses",
      "responses",
      {
        input_tokens: 1500,
        input_tokens_details: { cached_tokens: 1024, cache_write_tokens: 0 },
        output_tokens: 700,
        output_tokens_details: { reasoning_tokens: 512 },
        total_tokens: 2200,
      },
      u({ inputTokens: 476, cachedInputTokens: 1024, outputTokens: 700, reasoningTokens: 512 }),
      1500,
    ],
    [
      "images",
      "images",
      {
        input_tokens: 50,
        input_tokens_details: { text_tokens: 40, image_tokens: 10 },
        output_tokens: 4160,
        total_tokens: 4210,
      },
      u({ inputTokens: 50, imageInputTokens: 10, outputTokens: 4160, imageOutputTokens: 4160 }),
      50,
    ],
    [
      "transcription tokens",
      "transcription",
      {
        type: "tokens",
        input_tokens: 120,
        input_token_details: { text_tokens: 20, audio_tokens: 100 },
        output_tokens: 30,
        total_tokens: 150,
      },
      u({ inputTokens: 120, audioInputTokens: 100, outputTokens: 30 }),
      120,
    ],
    [
      "transcription duration",
      "transcription",
      { type: "duration", seconds: 12.3 },
      u({
        audioSeconds: 13,
      }),
      0,
    ],
    [
      "speech (sse)",
      "speech",
      { input_tokens: 10, output_tokens: 200, total_tokens: 210 },
      u({
        inputTokens: 10,
        outputTokens: 200,
        audioOutputTokens: 200,
      }),
      10,
    ],
    [
      "realtime response.done",
      "realtime",
      {
        total_tokens: 420,
        input_tokens: 300,
        output_tokens: 120,
        input_token_details: {
          text_tokens: 100,
          audio_tokens: 200,
          image_tokens: 0,
          cached_tokens: 64,
          cached_tokens_details: { text_tokens: 64, audio_tokens: 0, image_tokens: 0 },
        },
        output_token_details: { text_tokens: 20, audio_tokens: 100 },
      },
      u({
        inputTokens: 236,
        cachedInputTokens: 64,
        audioInputTokens: 200,
        outputTokens: 120,
        audioOutputTokens: 100,
      }),
      300,
    ],
    [
      "defensive: wrong types are 0",
      "chat",
      {
        prompt_tokens: "12",
        completion_tokens: null,
        prompt_tokens_details: "x",
        completion_tokens_details: [1],
      },
      u({}),
      0,
    ],
    [
      "defensive: cached > prompt clamps",
      "chat",
      {
        prompt_tokens: 5,
        completion_tokens: -3,
        prompt_tokens_details: { cached_tokens: 9 },
      },
      u({ cachedInputTokens: 9 }),
      5,
    ],
  ];
  for (const [name, surface, raw, usage, promptTokens] of table) {
    assert.deepEqual(mapOpenAIUsage(raw, surface), { usage, promptTokens }, name);
  }
  for (const raw of [null, undefined, 3, "x", [1]]) assert.equal(mapOpenAIUsage(raw, "chat"), null);
});
