/**
 * Property tests of `MultipartFieldSniffer` on seeded random bodies against `formData()`, and a
 * 50 MB upload streamed in 64 KiB chunks.
 * Replay a run: `SNIFF_SEED=<seed> deno test -A protocol/sniff/multipart_field_fuzz_test.ts`
 */
import assert from "node:assert/strict";
import { MultipartFieldSniffer } from "./multipart_field.ts";
import {
  everySplit,
  int,
  pick,
  referenceMultipart,
  sniffMultipart,
  testRandom,
  utf8,
} from "./testing.ts";

type Rng = () => number;
const FIELDS = ["model", "language", "prompt", "file", "modèl"];
const NAMES = [...FIELDS, "temperature", "MODEL", "timestamp_granularities[]"];
const BCHARS = [..."0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "];
interface Part {
  name: string;
  value: string | Uint8Array;
  filename?: string;
}

function genBoundary(r: Rng): string {
  if (r() < 0.3) return "----formdata-undici-0" + int(r, 1e9); // the OpenAI SDK's shape
  const b = Array.from({ length: 1 + int(r, 70) }, () => pick(r, BCHARS)).join("");
  return b.endsWith(" ") ? b.slice(0, -1) + "x" : b;
}

/** Text that may look like the start of a delimiter but never contains a whole one. */
function genText(r: Rng, boundary: string): string {
  const pieces = [..."az é😀\r\n", "😀", "\r\n", "--", "\r\n--", boundary, `--${boundary}`];
  const near = () => `\r\n--${boundary.slice(0, int(r, boundary.length))}`;
  const text = Array.from({ length: int(r, 8) }, () => r() < 0.2 ? near() : pick(r, pieces)).join(
    "",
  );
  const delimiter = `\r\n--${boundary}`;
  const safe = text.replaceAll(delimiter, `\r\n-x-${boundary}`); // nor at the start of a part:
  return safe.startsWith(delimiter.slice(2)) ? `x${safe}` : safe;
}

function genPart(r: Rng, boundary: string): Part {
  const name = pick(r, NAMES);
  if (r() > 0.25) return { name, value: genText(r, boundary) };
  const bytes = utf8(genText(r, boundary) + String.fromCharCode(int(r, 256)));
  return { name, value: bytes, filename: pick(r, ["a.wav", "", "clip one.mp3"]) };
}

/** Serializes like browsers and SDKs do, with the liberties RFC 7578 allows (and Deno takes). */
function serialize(r: Rng, parts: Part[], boundary: string): Uint8Array {
  const out: Uint8Array[] = [utf8(r() < 0.1 ? "preamble\r\n" : "")];
  for (const p of parts) {
    const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(p.name) && r() < 0.5;
    const header = pick(r, ["Content-Disposition", "content-disposition", "CONTENT-DISPOSITION"]);
    const file = p.filename === undefined
      ? ""
      : `; filename="${p.filename}"\r\nContent-Type: audio/wav`;
    const params = `${pick(r, ["", " "])}name=${token ? p.name : `"${p.name}"`}${file}`;
    out.push(
      utf8(`--${boundary}${r() < 0.1 ? " \t" : ""}\r\n${header}: form-data;${params}\r\n\r\n`),
    );
    out.push(typeof p.value === "string" ? utf8(p.value) : p.value, utf8("\r\n"));
  }
  out.push(utf8(`--${boundary}--${pick(r, ["", "\r\n", "\r\nepilogue\r\n"])}`));
  const body = new Uint8Array(out.reduce((n, p) => n + p.length, 0));
  out.reduce((at, p) => (body.set(p, at), at + p.length), 0);
  return body;
}

const quoted = (r: Rng, b: string) => /^[0-9A-Za-z'+_\-.]+$/.test(b) && r() < 0.5 ? b : `"${b}"`;

Deno.test("multipart fuzz: every split of random bodies matches formData()", async () => {
  const r = testRandom("multipart random bodies");
  let files = 0, conflicts = 0;
  for (let n = 0; n < 250; n++) {
    const boundary = genBoundary(r), ct = `multipart/form-data; boundary=${quoted(r, boundary)}`;
    const parts = Array.from({ length: int(r, 5) }, () => genPart(r, boundary));
    const body = serialize(r, parts, boundary), want = await referenceMultipart(ct, FIELDS, body);
    const label = `${ct}\n${JSON.stringify(new TextDecoder().decode(body))}`;
    assert.equal(want.error, false, label);
    files += parts.some((p) => p.filename !== undefined && FIELDS.includes(p.name)) ? 1 : 0;
    conflicts += Object.values(want.error ? {} : want.fields).some((f) => f.conflict) ? 1 : 0;
    for (const chunks of everySplit(body)) {
      assert.deepEqual(sniffMultipart(ct, FIELDS, chunks), want, label);
    }
  }
  assert.ok(files > 10 && conflicts > 10, `vacuous run: ${files} files, ${conflicts} conflicts`);
});

/** model, a 50 MB file part (random bytes with delimiter look-alikes), or file then model. */
function bigBody(r: Rng, boundary: string, modelFirst: boolean): Uint8Array {
  const model =
    `--${boundary}\r\ncontent-disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n`;
  const file =
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n`;
  const head = utf8((modelFirst ? model : "") + file);
  const tail = utf8(`\r\n${modelFirst ? "" : model}--${boundary}--\r\n`);
  const fileEnd = head.length + 50 * 2 ** 20, body = new Uint8Array(fileEnd + tail.length);
  body.set(head);
  body.set(tail, fileEnd);
  const block = crypto.getRandomValues(new Uint8Array(65536));
  for (let at = head.length; at < fileEnd; at += 65536) {
    body.set(block.subarray(0, fileEnd - at), at);
  }
  // Delimiter prefixes in the file, many across the ends of chunks; none is completed.
  const near = utf8(`\r\n--${boundary.slice(0, -1)}`);
  for (let at = 65536 - int(r, near.length); at + near.length < fileEnd; at += 65536 + int(r, 9)) {
    body.set(near, at);
    body[at + near.length] = 0;
  }
  return body;
}

Deno.test("multipart fuzz: a 50 MB file part in 64 KiB chunks, model before and after it", () => {
  const r = testRandom("multipart 50 MB");
  const boundary = "----formdata-undici-0" + int(r, 1e12);
  for (const modelFirst of [true, false]) {
    const body = bigBody(r, boundary, modelFirst);
    const s = new MultipartFieldSniffer(`multipart/form-data; boundary=${boundary}`, [
      "model",
      "file",
    ]);
    let readyAt = -1;
    for (let at = 0; at < body.length; at += 65536) {
      s.push(body.subarray(at, at + 65536));
      if (s.ready && readyAt < 0) readyAt = at;
    }
    assert.equal(readyAt, modelFirst ? 0 : body.length - (body.length % 65536 || 65536));
    assert.equal(s.done, false);
    s.end();
    const got = [s.error, s.get("model"), s.has("file"), s.get("file"), s.conflict("model")];
    assert.deepEqual(got, [undefined, "gpt-4o-transcribe", true, undefined, false]);
  }
});
