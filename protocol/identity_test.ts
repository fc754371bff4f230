import assert from "node:assert/strict";
import { fromBase64Url, sha256, toBase64Url, toHex } from "./encoding.ts";
import {
  generateIdentity,
  keyIdOf,
  keyIdOfPublicKey,
  parsePublicKey,
  signerFromPem,
  verifierFor,
} from "./identity.ts";

const data = new TextEncoder().encode("aqueduct transcript bytes");

function flipped(bytes: Uint8Array<ArrayBuffer>, index: number): Uint8Array<ArrayBuffer> {
  const out = bytes.slice();
  out[index]! ^= 0x01;
  return out;
}

Deno.test("generateIdentity: a signature verifies with verifierFor(publicKey)", async () => {
  const { pem, signer } = await generateIdentity();
  assert.match(
    pem,
    /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PRIVATE KEY-----\n$/,
  );
  assert.match(signer.publicKey, /^ed25519:[A-Za-z0-9_-]{43}$/);

  const signature = await signer.sign(data);
  assert.equal(signature.length, 64);
  const verifier = await verifierFor(signer.publicKey);
  assert.equal(verifier.publicKey, signer.publicKey);
  assert.equal(verifier.keyId, signer.keyId);
  assert.equal(await verifier.verify(signature, data), true);
  // Ed25519 is deterministic: the same key signs the same bytes the same way.
  assert.deepEqual(await signer.sign(data), signature);
});

Deno.test("verify rejects tampered data, tampered signatures and another key", async () => {
  const { signer } = await generateIdentity();
  const verifier = await verifierFor(signer.publicKey);
  const signature = await signer.sign(data);

  for (const i of [0, 10, data.length - 1]) {
    assert.equal(await verifier.verify(signature, flipped(data, i)), false, `data byte ${i}`);
  }
  assert.equal(await verifier.verify(signature, data.slice(0, -1)), false, "truncated data");
  assert.equal(await verifier.verify(signature, new Uint8Array(0)), false, "empty data");
  for (const i of [0, 31, 32, 63]) {
    assert.equal(await verifier.verify(flipped(signature, i), data), false, `signature byte ${i}`);
  }

  const other = await generateIdentity();
  assert.notEqual(other.signer.publicKey, signer.publicKey);
  assert.notEqual(other.signer.keyId, signer.keyId);
  assert.equal(await verifier.verify(await other.signer.sign(data), data), false, "other key");
});

Deno.test("verify returns false (does not throw) for wrong-length signatures", async () => {
  const { signer } = await generateIdentity();
  const verifier = await verifierFor(signer.publicKey);
  const signature = await signer.sign(data);
  for (const length of [0, 1, 63, 65, 128]) {
    const wrong = new Uint8Array(length);
    wrong.set(signature.subarray(0, Math.min(length, 64)));
    assert.equal(await verifier.verify(wrong, data), false, `length ${length}`);
  }
});

Deno.test("PEM round trip: signerFromPem(pem) has the same publicKey and keyId", async () => {
  const { pem, signer } = await generateIdentity();
  const loaded = await signerFromPem(pem);
  assert.equal(loaded.publicKey, signer.publicKey);
  assert.equal(loaded.keyId, signer.keyId);
  // The loaded key signs what the original's verifier accepts.
  const verifier = await verifierFor(signer.publicKey);
  assert.equal(await verifier.verify(await loaded.sign(data), data), true);
  // Surrounding text and CRLF line ends are tolerated, as in a hand-edited file.
  const crlf = `# agent key\r\n${pem.replaceAll("\n", "\r\n")}trailing\r\n`;
  assert.equal((await signerFromPem(crlf)).publicKey, signer.publicKey);
});

Deno.test("signerFromPem rejects text without a PKCS#8 block", async () => {
  await assert.rejects(() => signerFromPem(""), TypeError);
  await assert.rejects(
    () => signerFromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
    TypeError,
  );
});

async function run(cmd: string, args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out.stdout;
}

Deno.test("openssl reads the PEM and derives the same public key (and vice versa)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aqueduct-identity-" });
  try {
    // Our PEM → openssl: the SPKI DER ends with the raw 32-byte public key.
    const { pem, signer } = await generateIdentity();
    const keyPath = `${dir}/key.pem`;
    await Deno.writeTextFile(keyPath, pem, { mode: 0o600 });
    const spki = await run("openssl", ["pkey", "-in", keyPath, "-pubout", "-outform", "DER"]);
    assert.equal(spki.length, 44, "Ed25519 SPKI is 12 bytes of prefix + 32 bytes of key");
    assert.deepEqual(Array.from(spki.subarray(-32)), Array.from(parsePublicKey(signer.publicKey)));

    // openssl's PEM → us: the same public key as openssl derives.
    const opensslKeyPath = `${dir}/openssl.pem`;
    await run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", opensslKeyPath]);
    const loaded = await signerFromPem(await Deno.readTextFile(opensslKeyPath));
    const opensslSpki = await run("openssl", [
      "pkey",
      "-in",
      opensslKeyPath,
      "-pubout",
      "-outform",
      "DER",
    ]);
    assert.equal(loaded.publicKey, "ed25519:" + toBase64Url(opensslSpki.subarray(-32)));
    const verifier = await verifierFor(loaded.publicKey);
    assert.equal(await verifier.verify(await loaded.sign(data), data), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parsePublicKey rejects a missing prefix, bad base64url and wrong lengths", () => {
  const raw = new Uint8Array(32).fill(7);
  const good = "ed25519:" + toBase64Url(raw);
  assert.deepEqual(parsePublicKey(good), raw);

  const bad: [string, RegExp][] = [
    [toBase64Url(raw), /expected "ed25519:<base64url>"/],
    ["", /expected/],
    ["ED25519:" + toBase64Url(raw), /expected/],
    ["x25519:" + toBase64Url(raw), /expected/],
    [" " + good, /expected/],
    ["ed25519:" + btoa(String.fromCharCode(...raw)), /not base64url/], // standard alphabet, padded
    ["ed25519:" + toBase64Url(raw) + "=", /not base64url/],
    ["ed25519:" + toBase64Url(raw).slice(0, -1) + "B", /not base64url/], // non-canonical tail bits
    ["ed25519:" + toBase64Url(raw) + "\n", /not base64url/],
    ["ed25519:" + toBase64Url(raw).replace("B", "+"), /not base64url/],
    ["ed25519:", /0 bytes, expected 32/],
    ["ed25519:" + toBase64Url(new Uint8Array(31)), /31 bytes/],
    ["ed25519:" + toBase64Url(new Uint8Array(33)), /33 bytes/],
    ["ed25519:" + toBase64Url(new Uint8Array(64)), /64 bytes/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parsePublicKey(text), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${JSON.stringify(text)}: ${e}`);
      assert.match(e.message, message, JSON.stringify(text));
      return true;
    });
  }
});

Deno.test("verifierFor rejects malformed public keys", async () => {
  await assert.rejects(() => verifierFor("ed25519:AAAA"), TypeError);
  await assert.rejects(() => verifierFor("rsa:AAAA"), TypeError);
});

Deno.test("keyId is 16 hex chars: the first 8 bytes of SHA-256 of the raw key, stable", async () => {
  const { pem, signer } = await generateIdentity();
  assert.match(signer.keyId, /^[0-9a-f]{16}$/);
  const raw = parsePublicKey(signer.publicKey);
  assert.equal(signer.keyId, toHex((await sha256(raw)).subarray(0, 8)));
  assert.equal(await keyIdOf(raw), signer.keyId);
  assert.equal(await keyIdOfPublicKey(signer.publicKey), signer.keyId);
  assert.equal((await signerFromPem(pem)).keyId, signer.keyId);
  assert.equal((await verifierFor(signer.publicKey)).keyId, signer.keyId);

  // A fixed key has a fixed id (guards against the derivation changing).
  const zero = "ed25519:" + toBase64Url(new Uint8Array(32));
  assert.equal(await keyIdOfPublicKey(zero), "66687aadf862bd77");
  assert.deepEqual(fromBase64Url(zero.slice(8)), new Uint8Array(32));
});
