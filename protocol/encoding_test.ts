import assert from "node:assert/strict";
import { fromBase64Url, sha256, timingSafeEqual, toBase64Url, toHex } from "./encoding.ts";
import { seededRandom } from "./prng.ts";

/** Reference encoder: standard base64 via btoa, then the URL alphabet without padding. */
function reference(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

Deno.test("base64url round trips random byte strings of every length 0..100", () => {
  const r = seededRandom(20240601);
  for (let length = 0; length <= 100; length++) {
    for (let trial = 0; trial < 5; trial++) {
      const bytes = Uint8Array.from({ length }, () => Math.floor(r() * 256));
      const text = toBase64Url(bytes);
      assert.equal(text, reference(bytes), `length ${length}`);
      assert.match(text, /^[A-Za-z0-9_-]*$/);
      assert.equal(text.length, Math.ceil((length * 4) / 3));
      assert.deepEqual(fromBase64Url(text), bytes);
    }
  }
  // Both alphabet-specific characters appear.
  assert.equal(toBase64Url(new Uint8Array([0xfb, 0xff])), "-_8");
  assert.deepEqual(fromBase64Url("-_8"), new Uint8Array([0xfb, 0xff]));
});

Deno.test("toBase64Url and toHex honour a subarray's offset and length", () => {
  const whole = Uint8Array.from({ length: 16 }, (_, i) => i * 17);
  const view = whole.subarray(3, 9);
  assert.equal(toBase64Url(view), reference(whole.slice(3, 9)));
  assert.equal(toHex(view), "334455667788");
  assert.equal(toHex(new Uint8Array(0)), "");
  assert.equal(toHex(new Uint8Array([0, 1, 0xab, 0xff])), "0001abff");
});

Deno.test("fromBase64Url rejects invalid and non-canonical input", () => {
  const bad = [
    "A", // 6 bits: not a whole byte
    "AAAAA", // length 1 mod 4
    "AB", // one byte with nonzero padding bits (canonical is "AA")
    "AAB", // two bytes with nonzero padding bits (canonical is "AAA")
    "AA==", // padding
    "AAA=",
    "ab+/", // standard alphabet
    "ab/c",
    " AAAA",
    "AAAA ",
    "AA\nAA",
    "AAAA\n",
    "AA.A",
    "é",
    "AA\u0000A",
  ];
  for (const text of bad) {
    assert.throws(() => fromBase64Url(text), SyntaxError, JSON.stringify(text));
  }
  assert.deepEqual(fromBase64Url(""), new Uint8Array(0));
  assert.deepEqual(fromBase64Url("AA"), new Uint8Array([0]));
  assert.deepEqual(fromBase64Url("AAA"), new Uint8Array([0, 0]));
});

Deno.test("timingSafeEqual truth table, including different lengths", () => {
  const u = (...xs: number[]) => new Uint8Array(xs);
  const cases: [Uint8Array, Uint8Array, boolean][] = [
    [u(), u(), true],
    [u(1), u(1), true],
    [u(1, 2, 3), u(1, 2, 3), true],
    [u(1), u(2), false],
    [u(0), u(0x80), false],
    [u(1, 2, 3), u(1, 2, 4), false], // last byte
    [u(0, 2, 3), u(1, 2, 3), false], // first byte
    [u(), u(0), false], // different lengths
    [u(0), u(), false],
    [u(1, 2), u(1, 2, 3), false], // prefix
    [u(1, 2, 3), u(1, 2), false],
    [u(1, 2, 0), u(1, 2), false], // trailing zero is not ignored
  ];
  for (const [a, b, expected] of cases) {
    assert.equal(timingSafeEqual(a, b), expected, `${Array.from(a)} vs ${Array.from(b)}`);
    assert.equal(timingSafeEqual(b, a), expected, "symmetric");
  }
  // Views compare by content, not by buffer.
  const whole = u(9, 1, 2, 3, 9);
  assert.equal(timingSafeEqual(whole.subarray(1, 4), u(1, 2, 3)), true);
  assert.equal(timingSafeEqual(whole.subarray(0, 3), u(1, 2, 3)), false);
});

Deno.test("sha256 matches the FIPS 180-2 test vectors", async () => {
  assert.equal(
    toHex(await sha256("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    toHex(await sha256(new TextEncoder().encode("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    toHex(await sha256("")),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    toHex(await sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
  assert.equal((await sha256("abc")).length, 32);
});
