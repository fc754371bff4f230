/**
 * Deterministic content for the fake OpenAI upstream: request hashing, ids, a simple tokenizer,
 * the `[[directive:N]]` controls, generated assistant text (streamable piece by piece, never
 * materialised unless asked), usage objects and embedding vectors.
 */
import { createHash } from "node:crypto";

export function sha256Hex(...parts: (string | Uint8Array)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** JSON with object keys sorted, so re-serialised (key-reordered) bodies hash the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** mulberry32: tiny, fast, deterministic. */
export class Rng {
  #s: number;
  constructor(seedHex: string, label = "") {
    this.#s = parseInt(sha256Hex(seedHex, label).slice(0, 8), 16) >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function alnumId(seedHex: string, label: string, len: number): string {
  const rng = new Rng(seedHex, label);
  let s = "";
  while (s.length < len) s += ALNUM[rng.int(ALNUM.length)];
  return s;
}

export function hexId(seedHex: string, label: string, len: number): string {
  let s = "";
  for (let i = 0; s.length < len; i++) s += sha256Hex(seedHex, label, String(i));
  return s.slice(0, len);
}

/** A fixed unix timestamp derived from the request hash (never the clock). */
export function createdAt(seedHex: string): number {
  return 1_735_689_600 + (parseInt(seedHex.slice(8, 16), 16) % 31_536_000);
}

/** Word runs count one token each, every punctuation character one token. */
export function countTokens(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 32) {
      inWord = false;
    } else if (
      (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 ||
      c >= 128
    ) {
      if (!inWord) n++;
      inWord = true;
    } else {
      n++;
      inWord = false;
    }
  }
  return n;
}

export interface Directives {
  words?: number;
  bytes?: number;
  delayMs?: number;
  status?: number;
  cutAfter?: number;
  eofAfter?: number;
}

const DIRECTIVE = /\[\[(words|bytes|delay|status|cut|eof):(\d+)\]\]/g;

/**
 * Extracts `[[words:N]]`, `[[bytes:N]]`, `[[delay:MS]]`, `[[status:CODE]]`, `[[cut:N]]` (drop
 * the connection after N stream frames) and `[[eof:N]]` (end the body cleanly after N frames).
 */
export function parseDirectives(text: string): { directives: Directives; clean: string } {
  const d: Directives = {};
  for (const m of text.matchAll(DIRECTIVE)) {
    const n = Number(m[2]);
    if (m[1] === "words") d.words = Math.min(n, 1_000_000);
    else if (m[1] === "bytes") d.bytes = Math.min(n, 1 << 30);
    else if (m[1] === "delay") d.delayMs = Math.min(n, 600_000);
    else if (m[1] === "status") d.status = n;
    else if (m[1] === "cut") d.cutAfter = n;
    else d.eofAfter = n;
  }
  // Only a prefix is ever echoed: keep this O(prefix) for 50 MB prompts.
  const head = text.length > 4096 ? text.slice(0, 4096) : text;
  return { directives: d, clean: head.replace(DIRECTIVE, " ").replace(/\s+/g, " ").trim() };
}

const VOCAB = (
  "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar " +
  "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu river stone cloud ember " +
  "maple orbit prism quartz signal vector lantern harbor meadow canyon glacier falcon thunder " +
  "willow copper silver marble garden beacon compass journey horizon"
).split(" ");

/** Generated assistant text: streamable pieces plus an exact token count. */
export interface Content {
  pieces(): Generator<string>;
  text(): string;
  tokens: number;
  truncated: boolean;
}

const PIECE_BYTES = 16384;
const utf8Length = (s: string) => new TextEncoder().encode(s).length;

/**
 * "<head> <control text>" (head "Echo:") then N deterministic words (default 8–24, `[[words:N]]`), one word per
 * piece; or with `[[bytes:N]]` exactly N bytes (ASCII filler after the head) in 16 KiB pieces.
 * Every piece after the first starts or ends at whitespace, so per-piece token counts add up.
 */
export function makeContent(
  seedHex: string,
  control: string,
  d: Directives,
  head = "Echo:",
): Content {
  const echo = parseDirectives(control).clean.slice(0, 200).trim();
  if (d.bytes !== undefined) return bytesContent(seedHex, head, echo, d.bytes);
  const n = d.words ?? 8 + (parseInt(seedHex.slice(16, 18), 16) % 17);
  const echoWords = echo ? echo.split(" ") : [];
  function* pieces(): Generator<string> {
    yield head;
    for (const w of echoWords) yield ` ${w}`;
    const rng = new Rng(seedHex, "words");
    for (let i = 0; i < n; i++) yield ` ${VOCAB[rng.int(VOCAB.length)]}${i === n - 1 ? "." : ""}`;
  }
  let tokens = 0;
  for (const p of pieces()) tokens += countTokens(p);
  return { pieces, text: () => [...pieces()].join(""), tokens, truncated: false };
}

function bytesContent(seedHex: string, label: string, echo: string, total: number): Content {
  const head = echo ? `${label} ${echo} ` : `${label} `;
  const headBytes = utf8Length(head);
  const rng = new Rng(seedHex, "block");
  let block = "";
  while (block.length < PIECE_BYTES - 16) block += `${VOCAB[rng.int(VOCAB.length)]} `;
  block = block.padEnd(PIECE_BYTES, " ");
  if (total <= headBytes) {
    const only = head.slice(0, total);
    return {
      pieces: function* () {
        if (only) yield only;
      },
      text: () => only,
      tokens: countTokens(only),
      truncated: false,
    };
  }
  const k = Math.floor((total - headBytes) / PIECE_BYTES);
  const tail = block.slice(0, (total - headBytes) % PIECE_BYTES);
  function* pieces(): Generator<string> {
    yield head;
    for (let i = 0; i < k; i++) yield block;
    if (tail) yield tail;
  }
  const tokens = countTokens(head) + k * countTokens(block) + countTokens(tail);
  return { pieces, text: () => [...pieces()].join(""), tokens, truncated: false };
}

/** Truncates content at a token budget (max_tokens / max_output_tokens), like a real model. */
export function limitContent(content: Content, maxTokens: number | undefined): Content {
  if (maxTokens === undefined || content.tokens <= maxTokens) return content;
  const kept: string[] = [];
  let tokens = 0;
  for (const p of content.pieces()) {
    const t = countTokens(p);
    if (tokens + t > maxTokens) break;
    kept.push(p);
    tokens += t;
  }
  return {
    pieces: function* () {
      yield* kept;
    },
    text: () => kept.join(""),
    tokens,
    truncated: true,
  };
}

/** o-series, gpt-5 and anything "reason"-named think before answering. */
export function isReasoningModel(model: string): boolean {
  return /^o\d/.test(model) || model.includes("reason") || model.includes("gpt-5");
}

export function reasoningTokens(seedHex: string, model: string): number {
  return isReasoningModel(model) ? 64 * (1 + (parseInt(seedHex.slice(18, 20), 16) % 8)) : 0;
}

/** OpenAI caches prompts of ≥ 1024 tokens; here: half the prompt, floored to 64. */
export function cachedTokens(promptTokens: number): number {
  return promptTokens >= 1024 ? Math.floor(Math.floor(promptTokens / 2) / 64) * 64 : 0;
}

export interface Prompt {
  tokens: number;
  /** The last user message's text: echoed back and read for directives. */
  control: string;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

/** Text of a message content: a string or an array of text / input_text / output_text parts. */
export function textOf(content: unknown): { text: string; images: number } {
  if (typeof content === "string") return { text: content, images: 0 };
  if (!Array.isArray(content)) return { text: "", images: 0 };
  const texts: string[] = [];
  let images = 0;
  for (const part of content) {
    if (typeof part === "string") texts.push(part);
    else if (isObj(part) && typeof part.text === "string") texts.push(part.text);
    else if (isObj(part) && /image/.test(String(part.type))) images++;
  }
  return { text: texts.join("\n"), images };
}

/** Chat-style prompt size: 3 per message + content tokens + 85 per image + 3 priming. */
function messagesPrompt(messages: unknown[], extra: unknown[]): Prompt {
  let tokens = 3;
  let control = "";
  for (const m of messages) {
    if (!isObj(m)) continue;
    const c = textOf(m.content ?? m.output);
    tokens += 3 + countTokens(c.text) + 85 * c.images;
    if (m.role === "user") control = c.text;
  }
  for (const e of extra) if (e !== undefined) tokens += countTokens(JSON.stringify(e));
  return { tokens, control };
}

export function chatPrompt(body: Json): Prompt {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  return messagesPrompt(messages, [body.tools, body.response_format]);
}

export function responsesPrompt(body: Json): Prompt {
  const input = typeof body.input === "string"
    ? [{ role: "user", content: body.input }]
    : Array.isArray(body.input)
    ? body.input
    : [];
  const system = typeof body.instructions === "string"
    ? [{ role: "system", content: body.instructions }]
    : [];
  return messagesPrompt([...system, ...input], [body.tools, body.text]);
}

export function completionsPrompt(body: Json): Prompt {
  const p = body.prompt;
  const list = Array.isArray(p) ? p : [p ?? ""];
  let tokens = 0;
  let control = "";
  for (const item of list) {
    if (typeof item === "number") tokens++;
    else if (Array.isArray(item)) tokens += item.length;
    else tokens += countTokens(String(item)), control = String(item);
  }
  return { tokens, control };
}

export function chatUsage(prompt: number, visible: number, reasoning: number) {
  return {
    prompt_tokens: prompt,
    completion_tokens: visible + reasoning,
    total_tokens: prompt + visible + reasoning,
    prompt_tokens_details: { cached_tokens: cachedTokens(prompt), audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: reasoning,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

export function responsesUsage(prompt: number, visible: number, reasoning: number) {
  return {
    input_tokens: prompt,
    input_tokens_details: { cached_tokens: cachedTokens(prompt) },
    output_tokens: visible + reasoning,
    output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: prompt + visible + reasoning,
  };
}

/**
 * A unit-length vector that depends only on (model, input), as float32 values. `json` holds the
 * shortest decimal that round-trips to the same float32, as OpenAI prints them.
 */
export function embeddingVector(model: string, input: string, dims: number) {
  const rng = new Rng(sha256Hex(model, "\0", input), "embedding");
  const raw = Array.from({ length: dims }, () => rng.next() + rng.next() + rng.next() - 1.5);
  const norm = Math.sqrt(raw.reduce((s, v) => s + v * v, 0)) || 1;
  const f32 = Float32Array.from(raw, (v) => v / norm);
  const json = Array.from(f32, (f) => {
    for (let p = 1; p < 9; p++) {
      const s = Number(f.toPrecision(p));
      if (Math.fround(s) === f) return s;
    }
    return Number(f.toPrecision(9));
  });
  const bytes = new Uint8Array(dims * 4);
  const view = new DataView(bytes.buffer);
  f32.forEach((f, i) => view.setFloat32(i * 4, f, true));
  return { f32, json, bytes };
}

/** Deterministic binary payload (image / audio bytes) starting with a format magic, in pieces. */
export function* binaryChunks(
  seedHex: string,
  label: string,
  magic: number[],
  size: number,
  pieceBytes = 16384,
): Generator<Uint8Array> {
  const rng = new Rng(seedHex, label);
  const block = Uint8Array.from({ length: pieceBytes }, () => rng.int(256));
  size = Math.max(size, magic.length);
  for (let i = 0; i < size; i += pieceBytes) {
    const piece = block.subarray(0, Math.min(pieceBytes, size - i));
    if (i > 0) yield piece;
    else {
      const first = piece.slice();
      first.set(magic.slice(0, first.length));
      yield first;
    }
  }
}

export function binaryPayload(seedHex: string, label: string, magic: number[], size: number) {
  const out = new Uint8Array(Math.max(size, magic.length));
  let at = 0;
  for (const c of binaryChunks(seedHex, label, magic, size)) out.set(c, at), at += c.length;
  return out;
}
