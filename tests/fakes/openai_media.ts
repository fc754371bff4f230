/**
 * Media endpoints of the fake OpenAI upstream: image generation/edits, speech (binary or SSE),
 * transcriptions and translations (multipart).
 */
import { Buffer } from "node:buffer";
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";
import { type Handler, isObj, missing, SSE } from "./openai_endpoints.ts";

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const AUDIO: Record<string, [string, number[]]> = {
  mp3: ["audio/mpeg", [0x49, 0x44, 0x33, 0x04, 0, 0, 0, 0, 0, 0, 0xff, 0xf3]],
  opus: ["audio/opus", [0x4f, 0x67, 0x67, 0x53]],
  aac: ["audio/aac", [0xff, 0xf1]],
  flac: ["audio/flac", [0x66, 0x4c, 0x61, 0x43]],
  wav: ["audio/wav", [0x52, 0x49, 0x46, 0x46]],
  pcm: ["audio/pcm", []],
};

const IMAGE_TOKENS: Record<string, number> = { low: 272, medium: 1056, high: 4160 };

export const images: Handler = (ctx) => {
  const { body, seed, model, form } = ctx;
  const prompt = body.prompt;
  if (typeof prompt !== "string") throw missing("prompt");
  const d = ctx.control(prompt);
  const inputImages = form ? form.getAll("image").concat(form.getAll("image[]")) : [];
  if (form && inputImages.length === 0) throw missing("image");
  const n = Math.max(1, Number(body.n ?? 1) || 1);
  const gpt = model.startsWith("gpt-image");
  const data = [];
  for (let i = 0; i < n; i++) {
    const bytes = C.binaryPayload(seed, `image${i}`, PNG, d.bytes ?? 1024);
    if (!gpt && body.response_format !== "b64_json") {
      data.push({ url: `https://fake-openai.invalid/images/${C.hexId(seed, `img${i}`, 24)}.png` });
    } else data.push({ b64_json: Buffer.from(bytes).toString("base64") });
    if (model === "dall-e-3") Object.assign(data[i]!, { revised_prompt: `A picture of ${prompt}` });
  }
  if (!gpt) return ctx.json({ created: ctx.created, data });
  const quality = typeof body.quality === "string" && body.quality in IMAGE_TOKENS
    ? body.quality
    : "high";
  const size = typeof body.size === "string" && body.size !== "auto" ? body.size : "1024x1024";
  const perImage = Math.round(IMAGE_TOKENS[quality]! * (size === "1024x1024" ? 1 : 1.5));
  const textTokens = C.countTokens(prompt);
  const imageTokens = 323 * inputImages.length;
  return ctx.json({
    created: ctx.created,
    background: "opaque",
    data,
    output_format: "png",
    quality,
    size,
    usage: {
      input_tokens: textTokens + imageTokens,
      input_tokens_details: { text_tokens: textTokens, image_tokens: imageTokens },
      output_tokens: perImage * n,
      total_tokens: textTokens + imageTokens + perImage * n,
    },
  });
};

export const speech: Handler = (ctx) => {
  const { body, seed } = ctx;
  if (typeof body.input !== "string") throw missing("input");
  if (typeof body.voice !== "string" && !isObj(body.voice)) throw missing("voice");
  const d = ctx.control(body.input);
  const format = typeof body.response_format === "string" ? body.response_format : "mp3";
  const [type, magic] = AUDIO[format] ?? AUDIO.mp3!;
  const clean = C.parseDirectives(body.input).clean;
  const size = d.bytes ?? Math.max(2048, new TextEncoder().encode(clean).length * 400);
  const chunks = C.binaryChunks(seed, "audio", magic, size);
  if (body.stream_format !== "sse") return ctx.stream(chunks, type);
  const input = C.countTokens(clean) + C.countTokens(String(body.instructions ?? ""));
  const output = Math.ceil(size / 1024);
  return ctx.stream(
    (function* () {
      for (const c of chunks) {
        yield S.sseData({ type: "speech.audio.delta", audio: Buffer.from(c).toString("base64") });
      }
      yield S.sseData({
        type: "speech.audio.done",
        usage: { input_tokens: input, output_tokens: output, total_tokens: input + output },
      });
    })(),
    SSE,
  );
};

export function transcriptions(task: "transcribe" | "translate"): Handler {
  return (ctx) => {
    const { body, seed, model, form } = ctx;
    const file = form?.get("file");
    if (!(file instanceof File)) throw missing("file");
    const prompt = typeof body.prompt === "string" ? body.prompt : "";
    const d = ctx.control(prompt);
    const seconds = Math.max(1, Math.ceil(file.size / 32000));
    const content = C.makeContent(seed, `${file.name} (${file.size} bytes)`, {
      words: Math.min(6 + seconds, 400),
      bytes: d.bytes,
    }, task === "transcribe" ? "Transcript of" : "Translation of");
    const text = content.text();
    const whisper = model.startsWith("whisper");
    const audioTokens = Math.ceil(file.size / 3200);
    const textTokens = C.countTokens(prompt);
    const usage = whisper ? { type: "duration", seconds } : {
      type: "tokens",
      input_tokens: audioTokens + textTokens,
      input_token_details: { text_tokens: textTokens, audio_tokens: audioTokens },
      output_tokens: content.tokens,
      total_tokens: audioTokens + textTokens + content.tokens,
    };
    const format = body.response_format ?? "json";
    if (format === "text") return ctx.text(`${text}\n`, "text/plain; charset=utf-8");
    if (format === "srt" || format === "vtt") {
      const cue = `00:00:00${format === "srt" ? "," : "."}000 --> 00:00:${
        String(Math.min(seconds, 59)).padStart(2, "0")
      }${format === "srt" ? "," : "."}000`;
      return ctx.text(
        format === "srt" ? `1\n${cue}\n${text}\n\n` : `WEBVTT\n\n${cue}\n${text}\n\n`,
        "text/plain; charset=utf-8",
      );
    }
    if (task === "translate") return ctx.json({ text });
    if (body.stream === "true" && !whisper) {
      return ctx.stream(
        (function* () {
          for (const delta of content.pieces()) {
            yield S.sseData({ type: "transcript.text.delta", delta });
          }
          yield S.sseData({ type: "transcript.text.done", text, usage });
        })(),
        SSE,
      );
    }
    if (format === "verbose_json") {
      return ctx.json({
        task,
        language: "english",
        duration: seconds,
        text,
        segments: [{
          id: 0,
          seek: 0,
          start: 0,
          end: seconds,
          text,
          tokens: [],
          temperature: 0,
          avg_logprob: -0.25,
          compression_ratio: 1.2,
          no_speech_prob: 0.01,
        }],
        usage,
      });
    }
    return ctx.json({ text, usage });
  };
}
