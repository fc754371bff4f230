import assert from "node:assert/strict";
import { fromBase64Url, toBase64Url } from "./encoding.ts";
import { PROTOCOL_VERSION } from "./frames.ts";
import {
  newNonce,
  signatureBytes,
  transcript,
  TRANSCRIPT_LABEL,
  type TranscriptFields,
  withinSkew,
} from "./handshake.ts";
import { generateIdentity, verifierFor } from "./identity.ts";
import { LIMITS } from "./limits.ts";

const BASE: TranscriptFields = {
  agentId: "agent-1",
  keyId: "0123456789abcdef",
  hubKeyId: "fedcba9876543210",
  agentNonce: "A".repeat(43),
  hubNonce: "B".repeat(43),
  timestampMs: 1_700_000_000_000,
};

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("transcript is the documented line format", () => {
  assert.equal(
    text(transcript("hub", BASE)),
    [
      TRANSCRIPT_LABEL,
      "role=hub",
      `version=${PROTOCOL_VERSION}`,
      "agent_id=agent-1",
      "key_id=0123456789abcdef",
      "hub_key_id=fedcba9876543210",
      `agent_nonce=${"A".repeat(43)}`,
      `hub_nonce=${"B".repeat(43)}`,
      "timestamp_ms=1700000000000",
      "",
    ].join("\n"),
  );
  // Deterministic: same inputs, same bytes.
  assert.deepEqual(transcript("agent", { ...BASE }), transcript("agent", BASE));
});

Deno.test("transcript differs by role and by every single field", () => {
  const variants = new Map<string, Uint8Array>();
  const add = (label: string, bytes: Uint8Array) => {
    const key = text(bytes);
    for (const [other, seen] of variants) {
      assert.notEqual(key, text(seen), `${label} and ${other} give the same transcript`);
    }
    variants.set(label, bytes);
  };
  for (const role of ["hub", "agent"] as const) {
    add(`${role}`, transcript(role, BASE));
    const changed: { [K in keyof TranscriptFields]: TranscriptFields[K] } = {
      agentId: "agent-2",
      keyId: "0123456789abcdee",
      hubKeyId: "fedcba9876543211",
      agentNonce: "A".repeat(42) + "B",
      hubNonce: "B".repeat(42) + "A",
      timestampMs: BASE.timestampMs + 1,
    };
    // Every field of TranscriptFields is covered (a new field needs a line here).
    assert.deepEqual(Object.keys(changed).sort(), Object.keys(BASE).sort());
    for (const key of Object.keys(changed) as (keyof TranscriptFields)[]) {
      add(`${role}/${key}`, transcript(role, { ...BASE, [key]: changed[key] }));
    }
    // Values moved between fields must not give the same bytes either.
    add(
      `${role}/nonces swapped`,
      transcript(role, { ...BASE, agentNonce: BASE.hubNonce, hubNonce: BASE.agentNonce }),
    );
    add(
      `${role}/key ids swapped`,
      transcript(role, { ...BASE, keyId: BASE.hubKeyId, hubKeyId: BASE.keyId }),
    );
  }
  assert.equal(variants.size, 2 * 9);
});

Deno.test("transcript throws when a field contains a newline or carriage return", () => {
  for (const key of ["agentId", "keyId", "hubKeyId", "agentNonce", "hubNonce"] as const) {
    for (const bad of ["\n", "\r", "x\ntimestamp_ms=0", "x\r\n", "\nx"]) {
      assert.throws(
        () => transcript("agent", { ...BASE, [key]: BASE[key] + bad }),
        (e: unknown) => e instanceof TypeError && /newline/.test(e.message),
        `${key} + ${JSON.stringify(bad)}`,
      );
    }
  }
});

Deno.test("withinSkew accepts exactly ±5 min and rejects one ms beyond", () => {
  const now = 1_700_000_000_000;
  const skew = LIMITS.handshakeClockSkewMs;
  assert.equal(skew, 5 * 60_000);
  assert.equal(withinSkew(now, now), true);
  assert.equal(withinSkew(now + skew, now), true);
  assert.equal(withinSkew(now - skew, now), true);
  assert.equal(withinSkew(now + skew + 1, now), false);
  assert.equal(withinSkew(now - skew - 1, now), false);
  // Symmetric in its arguments.
  assert.equal(withinSkew(now, now + skew), true);
  assert.equal(withinSkew(now, now - skew - 1), false);
  // Garbage never passes.
  assert.equal(withinSkew(NaN, now), false);
  assert.equal(withinSkew(now, NaN), false);
  assert.equal(withinSkew(Infinity, now), false);
});

Deno.test("newNonce is 43 chars of base64url (32 bytes) and unique over 1,000 draws", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const nonce = newNonce();
    assert.match(nonce, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(fromBase64Url(nonce).length, LIMITS.nonceBytes);
    seen.add(nonce);
  }
  assert.equal(seen.size, 1000);
});

Deno.test("signatureBytes decodes base64url and yields empty bytes for garbage", () => {
  const bytes = new Uint8Array(64).map((_, i) => i);
  assert.deepEqual(signatureBytes(toBase64Url(bytes)), bytes);
  for (const garbage of ["!", "a+b/", "AAAA==", "A", "AB", " AAAA", "AAAA\n", "é", "\u0000"]) {
    const out = signatureBytes(garbage);
    assert.ok(out instanceof Uint8Array);
    assert.equal(out.length, 0, JSON.stringify(garbage));
  }
  assert.equal(signatureBytes("").length, 0);
});

Deno.test("a signature made for role hub does not verify as role agent (nor vice versa)", async () => {
  const { signer } = await generateIdentity();
  const verifier = await verifierFor(signer.publicKey);
  const fields = { ...BASE, keyId: signer.keyId };
  const hubSig = await signer.sign(transcript("hub", fields));
  const agentSig = await signer.sign(transcript("agent", fields));

  assert.equal(await verifier.verify(hubSig, transcript("hub", fields)), true);
  assert.equal(await verifier.verify(hubSig, transcript("agent", fields)), false);
  assert.equal(await verifier.verify(agentSig, transcript("agent", fields)), true);
  assert.equal(await verifier.verify(agentSig, transcript("hub", fields)), false);

  // Over the wire: the base64url text decodes back to a signature that still verifies.
  const wire = signatureBytes(toBase64Url(hubSig));
  assert.equal(await verifier.verify(wire, transcript("hub", fields)), true);
  // A different nonce (a replay into another session) does not verify.
  const replay = transcript("hub", { ...fields, hubNonce: newNonce() });
  assert.equal(await verifier.verify(hubSig, replay), false);
  // A garbage signature decodes to empty bytes, which never verify.
  assert.equal(await verifier.verify(signatureBytes("garbage!"), transcript("hub", fields)), false);
});
