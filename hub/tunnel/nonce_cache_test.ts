import assert from "node:assert/strict";
import { NonceCache } from "./nonce_cache.ts";

Deno.test("a nonce is accepted once, then refused until it expires", () => {
  const cache = new NonceCache(1000, 10);
  assert.equal(cache.claim("a", 0), true);
  assert.equal(cache.claim("a", 500), false);
  assert.equal(cache.claim("b", 500), true);
  assert.equal(cache.claim("a", 1000), true, "expired entries are forgotten");
  assert.equal(cache.claim("b", 1200), false);
});

Deno.test("the cache never grows past its bound", () => {
  const cache = new NonceCache(1_000_000, 100);
  for (let i = 0; i < 1000; i++) assert.equal(cache.claim(`n${i}`, i), true);
  assert.equal(cache.size, 100);
  assert.equal(cache.claim("n999", 1000), false, "the newest are kept");
});
