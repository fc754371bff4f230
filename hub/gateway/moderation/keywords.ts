/**
 * A moderator that blocks requests containing configured keywords or phrases.
 *
 * Matching is case-insensitive over NFKC-normalised text (so fullwidth "ＢＡＤ" or the ligature
 * "ﬁ" match "bad" / "fi"; invisible format characters are ignored). All keywords compile into
 * one RegExp, so a request is scanned once however many keywords there are: V8 runs a plain
 * alternation of 1000 literals over 1 MiB in ~10–50 ms, while per-keyword lookarounds or `\s+`
 * would be several times slower, hence the grouping and whitespace folding below.
 *
 * Scan bound: at most `maxScanChars` UTF-16 code units per request (default 1 Mi, about 1 MiB
 * of ASCII) are scanned, texts in order. Text past the bound is NOT scanned unless
 * `oversize: "block"` is set, which blocks any request longer than the bound instead.
 *
 * @module
 */
import { ALLOWED, type ModerationInput, type ModerationVerdict, type Moderator } from "./mod.ts";

/** Default bound on the text scanned per request, in UTF-16 code units. */
export const KEYWORD_SCAN_MAX_CHARS = 1 << 20;

/** Options for {@link KeywordModerator}. */
export interface KeywordModeratorOptions {
  /**
   * "substring" (default): a keyword matches anywhere. "word": only as a whole word, i.e. not
   * next to a letter, digit, mark or "_". Edges in scripts written without spaces (Han, kana,
   * Thai…) have no word boundaries to find, so those edges match as substrings in both modes.
   */
  match?: "substring" | "word";
  /** Bound on the text scanned per request (UTF-16 code units); default 1 Mi. */
  maxScanChars?: number;
  /** Past the bound: "truncate" (default) scans only the first part; "block" blocks. */
  oversize?: "truncate" | "block";
  /** Moderator name in verdicts and logs; default "keywords". */
  name?: string;
}

/**
 * The normal form keywords and texts are compared in: NFKC, lower case, and without format
 * characters (zero-width space, soft hyphen, bidi marks…), which are invisible and would
 * otherwise let "b\u200Bad" slip past "bad".
 */
export function normalizeForMatch(text: string): string {
  return text.normalize("NFKC").toLowerCase().replace(/\p{Cf}+/gu, "");
}

// Scripts written without spaces between words: a "whole word" there cannot be told apart.
const UNSPACED = String.raw`\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Thai}\p{sc=Lao}` +
  String.raw`\p{sc=Khmer}\p{sc=Myanmar}`;
// A word character whose neighbour makes a keyword edge "not a whole word" (v-flag set syntax).
const WORD = String.raw`[[\p{L}\p{N}\p{M}_]--[${UNSPACED}]]`;
const WORD_RE = new RegExp(`^${WORD}$`, "v");

/** Blocks a request when any of its texts contains one of the keywords. */
export class KeywordModerator implements Moderator {
  readonly name: string;
  /** The distinct normalised keywords, for startup logs. */
  readonly keywords: readonly string[];
  readonly #regex: RegExp | null;
  readonly #maxScanChars: number;
  readonly #blockOversize: boolean;
  readonly #collapseSpaces: boolean;

  constructor(keywords: readonly string[], options: KeywordModeratorOptions = {}) {
    this.name = options.name ?? "keywords";
    this.#maxScanChars = options.maxScanChars ?? KEYWORD_SCAN_MAX_CHARS;
    this.#blockOversize = options.oversize === "block";
    const normalized = keywords.map((k) => collapseSpaces(normalizeForMatch(k)).trim());
    this.keywords = [...new Set(normalized.filter((k) => k !== ""))];
    // Any whitespace run in the text should match a keyword's space. A `\s+` in the RegExp would
    // do that, but any variable-length part makes V8 scan ~5x slower; collapsing runs in the text
    // costs less, and only phrases need it.
    this.#collapseSpaces = this.keywords.some((k) => k.includes(" "));
    this.#regex = compile(this.keywords, options.match === "word");
  }

  /** The first keyword found (normalised), or null; scans within the bound only. */
  find(texts: readonly string[]): string | null {
    if (this.#regex === null) return null;
    let budget = this.#maxScanChars;
    for (const text of texts) {
      if (budget <= 0) break;
      // Cut before normalising so the work done is bounded by the budget, not the input.
      const part = text.length > budget ? text.slice(0, budget) : text;
      budget -= part.length;
      const normalized = normalizeForMatch(part);
      const match = this.#regex.exec(
        this.#collapseSpaces ? collapseSpaces(normalized) : normalized,
      );
      if (match) return match[0];
    }
    return null;
  }

  check(input: ModerationInput, _signal: AbortSignal): Promise<ModerationVerdict> {
    if (this.#blockOversize) {
      let total = 0;
      for (const text of input.texts) total += text.length;
      if (total > this.#maxScanChars) {
        return Promise.resolve(this.#block(`text longer than ${this.#maxScanChars} chars`));
      }
    }
    const found = this.find(input.texts);
    // The match is the normalised keyword itself, never surrounding user text: fine for logs.
    return Promise.resolve(found === null ? ALLOWED : this.#block(`keyword "${found}"`));
  }

  #block(reason: string): ModerationVerdict {
    return { allowed: false, moderator: this.name, reason };
  }
}

/**
 * One RegExp for all keywords. In word mode, keywords are grouped by which edges need a boundary
 * check, so each lookaround is written once per group rather than once per keyword.
 */
function compile(keywords: readonly string[], wholeWords: boolean): RegExp | null {
  if (keywords.length === 0) return null;
  const groups = new Map<string, string[]>();
  for (const keyword of keywords) {
    const start = wholeWords && WORD_RE.test(String.fromCodePoint(keyword.codePointAt(0)!));
    const end = wholeWords && WORD_RE.test(lastCodePoint(keyword));
    const key = `${start ? "<" : ""}${end ? ">" : ""}`;
    const group = groups.get(key) ?? [];
    group.push(escapeRegExp(keyword));
    groups.set(key, group);
  }
  const alternatives = [...groups].map(([key, group]) =>
    (key.includes("<") ? `(?<!${WORD})` : "") + `(?:${group.join("|")})` +
    (key.includes(">") ? `(?!${WORD})` : "")
  );
  return new RegExp(alternatives.join("|"), "v");
}

function collapseSpaces(text: string): string {
  return text.replace(/\s+/g, " ");
}

function escapeRegExp(text: string): string {
  // Only syntax characters and "/" may be escaped outside a class under the u/v flags;
  // escaping anything else (e.g. "-") is itself a SyntaxError there.
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, (c) => `\\${c}`);
}

function lastCodePoint(text: string): string {
  const chars = Array.from(text.slice(-2));
  return chars[chars.length - 1] ?? "";
}

/**
 * A KeywordModerator from a config value (env `HUB_MODERATION_KEYWORDS`): either a JSON array of
 * strings (needed for keywords that contain commas) or a comma-separated list. Fullwidth commas
 * separate too, since NFKC folds them to ",". Returns null when no keyword is configured;
 * throws on a malformed JSON array so a typo fails at startup instead of disabling moderation.
 */
export function keywordModeratorFromConfig(
  value: string | undefined,
  options: KeywordModeratorOptions = {},
): KeywordModerator | null {
  const text = (value ?? "").normalize("NFKC").trim();
  if (text === "") return null;
  let keywords: string[];
  if (text.startsWith("[")) {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed) || !parsed.every((k) => typeof k === "string")) {
      throw new TypeError("moderation keywords: expected a JSON array of strings");
    }
    keywords = parsed;
  } else {
    keywords = text.split(",");
  }
  const moderator = new KeywordModerator(keywords, options);
  return moderator.keywords.length === 0 ? null : moderator;
}
