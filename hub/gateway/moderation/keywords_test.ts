import assert from "node:assert/strict";
import {
  KEYWORD_SCAN_MAX_CHARS,
  KeywordModerator,
  keywordModeratorFromConfig,
  normalizeForMatch,
} from "./keywords.ts";
import type { ModerationInput } from "./mod.ts";

const signal = new AbortController().signal;
const input = (...texts: string[]): ModerationInput => ({
  requestId: "r1",
  vendor: "openai",
  model: "gpt-4o",
  texts,
  images: [],
});

Deno.test("matching ignores case and folds NFKC (fullwidth, ligatures, ideographic space)", () => {
  const moderator = new KeywordModerator(["Bad  Word", "ﬁsh", "ＳＥＣＲＥＴ"]);
  assert.deepEqual(moderator.keywords, ["bad word", "fish", "secret"]);
  assert.equal(moderator.find(["this is a BAD WORD"]), "bad word");
  assert.equal(moderator.find(["ｂａｄ　ｗｏｒｄ"]), "bad word", "fullwidth letters and space");
  assert.equal(moderator.find(["bad \n\t word"]), "bad word", "any whitespace run matches");
  assert.equal(moderator.find(["FISH tank"]), "fish");
  assert.equal(moderator.find(["top secret"]), "secret");
  assert.equal(moderator.find(["nothing to see", "here"]), null);
  assert.equal(normalizeForMatch("Ａ①ﬁ"), "a1fi");
  assert.equal(moderator.find(["b\u200Bad\u00AD wo\u2060rd"]), "bad word", "invisible characters");
});

Deno.test("substring mode matches inside words; word mode only whole words", () => {
  const substring = new KeywordModerator(["ass"]);
  const word = new KeywordModerator(["ass"], { match: "word" });
  assert.equal(substring.find(["a classic"]), "ass");
  assert.equal(word.find(["a classic"]), null);
  assert.equal(word.find(["kiss my ass!"]), "ass");
  assert.equal(word.find(["ASS_"]), null, "underscore is a word character");
  assert.equal(
    word.find(["passé", "assé", "ass\u0301"]),
    null,
    "accents and marks are word characters",
  );
  assert.equal(word.find(["(ass)"]), "ass");
});

Deno.test("word mode still matches keywords in scripts written without spaces", () => {
  const word = new KeywordModerator(["坏词", "bad"], { match: "word" });
  assert.equal(word.find(["这是一个坏词句子"]), "坏词");
  assert.equal(word.find(["我觉得bad了"]), "bad", "Han neighbours are not word boundaries");
  assert.equal(word.find(["badly"]), null);
});

Deno.test("keywords with RegExp syntax are literal", () => {
  const moderator = new KeywordModerator([
    "a.b",
    "c++",
    "(x|y)",
    "[z]",
    "$1",
    "a-b",
    "x&&y",
    "/\\",
  ]);
  assert.equal(moderator.find(["axb c+ x y"]), null);
  for (const text of ["a.b", "c++", "(x|y)", "[z]", "$1", "a-b", "x&&y", "/\\"]) {
    assert.equal(moderator.find([`...${text}...`]), text);
  }
});

Deno.test("check gives a block verdict naming the keyword, or allows", async () => {
  const moderator = new KeywordModerator(["forbidden"], { name: "kw" });
  assert.deepEqual(await moderator.check(input("ok", "so FORBIDDEN"), signal), {
    allowed: false,
    moderator: "kw",
    reason: 'keyword "forbidden"',
  });
  assert.deepEqual(await moderator.check(input("fine"), signal), { allowed: true });
  assert.deepEqual(await new KeywordModerator([" ", ""]).check(input("x"), signal), {
    allowed: true,
  });
});

Deno.test("hundreds of keywords over a 1 MiB text scan quickly", () => {
  const keywords = Array.from(
    { length: 800 },
    (_, i) => `kw${i.toString(36)}zq${"x".repeat(i % 7)}`,
  );
  const moderator = new KeywordModerator(keywords, { match: "word" });
  const filler = "the quick brown fox jumps over the lazy dog 0123456789 ".repeat(20_000);
  const text = `${filler.slice(0, KEYWORD_SCAN_MAX_CHARS - 20)} ${keywords[777]}.`;
  const started = performance.now();
  assert.equal(moderator.find([text]), keywords[777]);
  const elapsed = performance.now() - started;
  // Typically ~10 ms; the bound only catches a pathological (per-position backtracking) regex.
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
});

Deno.test("text past the scan bound is not scanned, unless oversize is 'block'", async () => {
  const texts = ["a".repeat(90), "b".repeat(9) + " bad", "bad"];
  const truncating = new KeywordModerator(["bad"], { maxScanChars: 100 });
  assert.equal(truncating.find(texts), null, "the bound is shared across texts");
  assert.equal(truncating.find(["bad", ...texts]), "bad");
  const blocking = new KeywordModerator(["bad"], { maxScanChars: 100, oversize: "block" });
  assert.deepEqual(await blocking.check(input(...texts), signal), {
    allowed: false,
    moderator: "keywords",
    reason: "text longer than 100 chars",
  });
  assert.deepEqual(await blocking.check(input("short"), signal), { allowed: true });
});

Deno.test("the default bound is 1 Mi chars per request", () => {
  const moderator = new KeywordModerator(["needle"]);
  const huge = "x ".repeat(KEYWORD_SCAN_MAX_CHARS / 2);
  assert.equal(moderator.find([huge + "needle"]), null);
  assert.equal(moderator.find([huge.slice(0, -8) + "needle"]), "needle");
});

Deno.test("config: comma-separated list, JSON array, empty → null, bad JSON throws", () => {
  assert.equal(keywordModeratorFromConfig(undefined), null);
  assert.equal(keywordModeratorFromConfig("  "), null);
  assert.equal(keywordModeratorFromConfig(" , ,"), null);
  assert.equal(keywordModeratorFromConfig("[]"), null);
  assert.deepEqual(keywordModeratorFromConfig("foo, Bar Baz ,，qux")?.keywords, [
    "foo",
    "bar baz",
    "qux",
  ]);
  assert.deepEqual(keywordModeratorFromConfig('["a, b", "C"]')?.keywords, ["a, b", "c"]);
  assert.throws(() => keywordModeratorFromConfig('["a", 1]'), TypeError);
  assert.throws(() => keywordModeratorFromConfig("[oops"), SyntaxError);
  const word = keywordModeratorFromConfig("ass", { match: "word" });
  assert.equal(word?.find(["classic"]), null);
});
