/**
 * The per-agent settlement ledger as a hash chain (pure; DESIGN §4, tunnel-trust §3).
 *
 * Canonical entry bytes (`canonicalBytes`), version 1: a sequence of 25 fields, each encoded as
 * `u32be(byteLength) ‖ UTF-8 bytes`, in this fixed order:
 *   "aqueduct/ledger-entry/v1" (domain label), agentId, seq, requestId, vendor, model,
 *   usage.<f> for each f of USAGE_FIELDS (11, in that order), priceVersion, official,
 *   userCharge, agentPayout, completedAtMs, settledAtMs, prevHash.
 * Integers are written in decimal (ECMAScript Number#toString for usage counts, which may be
 * fractional, e.g. audioSeconds); amounts are the exact decimal strings as given; hashes are
 * lowercase hex. `hash = hex(SHA-256(canonical))`; seq 1 has `prevHash` = 64 zeros.
 *
 * Checkpoint (C2SP signed-note style): body lines `aqueduct/ledger/<agentId>`, `<seq>`,
 * `<hash hex>`, `official <dec>`, `userCharge <dec>`, `agentPayout <dec>`, each ending in "\n";
 * then a blank line and signature lines `— <role> base64(keyHash4 ‖ Ed25519(body))`, role
 * `agent` or `hub`, keyHash4 = SHA-256(role ‖ "\n" ‖ 0x01 ‖ raw public key)[0..4].
 */
import { Buffer } from "node:buffer";
import { sha256, timingSafeEqual, toHex } from "./encoding.ts";
import { parsePublicKey, type Signer, type Verifier } from "./identity.ts";
import { type Usage, USAGE_FIELDS } from "./usage.ts";

export const ENTRY_LABEL = "aqueduct/ledger-entry/v1";
export const GENESIS_HASH = "0".repeat(64);
const ORIGIN_PREFIX = "aqueduct/ledger/";

export interface LedgerEntry {
  agentId: string;
  seq: number;
  requestId: string;
  vendor: string;
  model: string;
  usage: Usage;
  priceVersion: number;
  official: string;
  userCharge: string;
  agentPayout: string;
  completedAtMs: number;
  settledAtMs: number;
  prevHash: string;
  hash: string;
}
/** What a caller supplies; the chain fills in seq, prevHash and hash. */
export type EntryFields = Omit<LedgerEntry, "seq" | "prevHash" | "hash">;
export interface Totals {
  official: string;
  userCharge: string;
  agentPayout: string;
}
export interface ChainHead {
  agentId: string;
  seq: number;
  hash: string;
  totals: Totals;
}
export type VerifyResult = { ok: true; head: ChainHead } | {
  ok: false;
  firstBadSeq: number;
  reason: string;
};

const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const HEX64 = /^[0-9a-f]{64}$/;
const ZERO: Totals = { official: "0.00", userCharge: "0.00", agentPayout: "0.00" };

/** Why `e` is malformed (types, ranges, formats), or null. */
export function entryProblem(e: Omit<LedgerEntry, "hash"> & { hash?: string }): string | null {
  const isInt = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  for (const k of ["agentId", "requestId", "vendor", "model"] as const) {
    if (typeof e[k] !== "string" || e[k] === "") return `${k} must be a non-empty string`;
  }
  for (const k of ["seq", "priceVersion", "completedAtMs", "settledAtMs"] as const) {
    if (!isInt(e[k])) return `${k} must be a non-negative safe integer`;
  }
  if (e.seq < 1) return "seq must start at 1";
  for (const k of ["official", "userCharge", "agentPayout"] as const) {
    if (typeof e[k] !== "string" || !DECIMAL.test(e[k])) return `${k} must be a decimal string`;
  }
  if (typeof e.usage !== "object" || e.usage === null) return "usage must be an object";
  const extra = Object.keys(e.usage).find((k) => !(USAGE_FIELDS as readonly string[]).includes(k));
  if (extra) return `usage.${extra} is not a usage field`;
  for (const f of USAGE_FIELDS) {
    const v = e.usage[f];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return `usage.${f} must be >= 0`;
  }
  if (typeof e.prevHash !== "string" || !HEX64.test(e.prevHash)) return "prevHash must be hex";
  if (e.hash !== undefined && !HEX64.test(e.hash)) return "hash must be 64 lowercase hex";
  return null;
}

export function canonicalBytes(e: Omit<LedgerEntry, "hash">): Uint8Array<ArrayBuffer> {
  const problem = entryProblem(e);
  if (problem) throw new TypeError(`Invalid ledger entry (seq ${e.seq}): ${problem}`);
  const fields = [ENTRY_LABEL, e.agentId, String(e.seq), e.requestId, e.vendor, e.model];
  for (const f of USAGE_FIELDS) fields.push(String(e.usage[f]));
  fields.push(String(e.priceVersion), e.official, e.userCharge, e.agentPayout);
  fields.push(String(e.completedAtMs), String(e.settledAtMs), e.prevHash);
  const parts = fields.map((s) => new TextEncoder().encode(s));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

export async function entryHash(e: Omit<LedgerEntry, "hash">): Promise<string> {
  return toHex(await sha256(canonicalBytes(e)));
}

/** The entry that follows `prev` (or the first one when `prev` is null). */
export async function appendEntry(
  prev: LedgerEntry | null,
  fields: EntryFields,
): Promise<LedgerEntry> {
  if (prev && prev.agentId !== fields.agentId) throw new TypeError("agentId differs from chain");
  const usage = Object.fromEntries(USAGE_FIELDS.map((f) => [f, fields.usage[f]])) as unknown;
  const { agentId, requestId, vendor, model, priceVersion, official, userCharge } = fields;
  const { agentPayout, completedAtMs, settledAtMs } = fields;
  const seq = prev ? prev.seq + 1 : 1, prevHash = prev ? prev.hash : GENESIS_HASH;
  const body = { agentId, seq, requestId, vendor, model, usage: usage as Usage, priceVersion };
  Object.assign(body, { official, userCharge, agentPayout, completedAtMs, settledAtMs, prevHash });
  const full = body as Omit<LedgerEntry, "hash">;
  return { ...full, hash: await entryHash(full) };
}

/** Exact sum of decimal strings, rendered with trailing zeros trimmed (at least 2 decimals). */
export function addDecimal(a: string, b: string): string {
  const parse = (s: string) => {
    if (!DECIMAL.test(s)) throw new TypeError(`Not a decimal string: "${s}"`);
    const [int, frac = ""] = s.replace("-", "").split(".");
    return { v: BigInt(int! + frac) * (s.startsWith("-") ? -1n : 1n), scale: frac.length };
  };
  const x = parse(a), y = parse(b), scale = Math.max(x.scale, y.scale, 2);
  const sum = x.v * 10n ** BigInt(scale - x.scale) + y.v * 10n ** BigInt(scale - y.scale);
  const digits = (sum < 0n ? -sum : sum).toString().padStart(scale + 1, "0");
  const frac = digits.slice(-scale).replace(/0+$/, "").padEnd(2, "0");
  return `${sum < 0n ? "-" : ""}${digits.slice(0, -scale)}.${frac}`;
}

export function addTotals(t: Totals, e: Totals): Totals {
  return {
    official: addDecimal(t.official, e.official),
    userCharge: addDecimal(t.userCharge, e.userCharge),
    agentPayout: addDecimal(t.agentPayout, e.agentPayout),
  };
}

/**
 * Checks a chain: gapless seqs, one agent, links, hashes, field formats. From seq 1, or — given
 * `from`, a head already trusted — the entries that follow it (a page of a longer chain).
 */
export async function verifyChain(
  entries: readonly LedgerEntry[],
  from?: ChainHead,
): Promise<VerifyResult> {
  let head: ChainHead = from ?? {
    agentId: entries[0]?.agentId ?? "",
    seq: 0,
    hash: GENESIS_HASH,
    totals: ZERO,
  };
  for (const e of entries) {
    const want = head.seq + 1;
    const bad = (reason: string): VerifyResult => ({ ok: false, firstBadSeq: want, reason });
    if (e.seq !== want) return bad(`expected seq ${want}, found ${e.seq}`);
    if (e.agentId !== head.agentId) return bad("agentId differs from the chain's");
    const problem = entryProblem(e);
    if (problem) return bad(problem);
    if (e.prevHash !== head.hash) return bad("prevHash does not match the previous entry's hash");
    if ((await entryHash(e)) !== e.hash) return bad("the entry's contents do not match its hash");
    head = { agentId: e.agentId, seq: e.seq, hash: e.hash, totals: addTotals(head.totals, e) };
  }
  return { ok: true, head };
}

/**
 * First seq in 1..headSeq where the two sides' hashes differ, or null if they agree on headSeq.
 * Relies on the chain property (agreement at k implies agreement on 1..k): one comparison at
 * the head, then a binary search; at most ⌈log2 headSeq⌉ + 1 comparisons.
 */
export async function firstDivergence(
  localHashAt: (seq: number) => Promise<string | null>,
  remoteHashAt: (seq: number) => Promise<string | null>,
  headSeq: number,
): Promise<number | null> {
  const same = async (seq: number) => {
    const [a, b] = await Promise.all([localHashAt(seq), remoteHashAt(seq)]);
    return a !== null && a === b;
  };
  if (headSeq < 1 || await same(headSeq)) return null;
  let lo = 0, hi = headSeq; // agree at lo (0 = genesis), differ at hi
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (await same(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}

export type Role = "agent" | "hub";

export function checkpointBody(h: ChainHead): string {
  if (!h.agentId || /[\n\r\s]/.test(h.agentId)) throw new TypeError("agentId unfit for a note");
  const t = h.totals;
  return `${ORIGIN_PREFIX}${h.agentId}\n${h.seq}\n${h.hash}\nofficial ${t.official}\n` +
    `userCharge ${t.userCharge}\nagentPayout ${t.agentPayout}\n`;
}

function parseBody(body: string): ChainHead | null {
  const m = body.match(
    /^aqueduct\/ledger\/(\S+)\n(0|[1-9]\d*)\n([0-9a-f]{64})\nofficial (\S+)\nuserCharge (\S+)\nagentPayout (\S+)\n$/,
  );
  if (!m || ![m[4], m[5], m[6]].every((d) => DECIMAL.test(d!))) return null;
  const head = {
    agentId: m[1]!,
    seq: Number(m[2]),
    hash: m[3]!,
    totals: { official: m[4]!, userCharge: m[5]!, agentPayout: m[6]! },
  };
  return Number.isSafeInteger(head.seq) && checkpointBody(head) === body ? head : null;
}

async function keyHash(role: Role, publicKey: string): Promise<Uint8Array<ArrayBuffer>> {
  const raw = parsePublicKey(publicKey);
  const name = new TextEncoder().encode(`${role}\n\x01`);
  const data = new Uint8Array(name.length + raw.length);
  data.set(name), data.set(raw, name.length);
  return (await sha256(data)).slice(0, 4);
}

function splitNote(note: string): { body: string; sigs: string[] } | null {
  const at = note.indexOf("\n\n");
  if (at < 0 || !note.endsWith("\n")) return null;
  return { body: note.slice(0, at + 1), sigs: note.slice(at + 2, -1).split("\n") };
}

/** Adds (or replaces) `role`'s signature; `headOrNote` is a head to start a new note. */
export async function signCheckpoint(
  headOrNote: ChainHead | string,
  role: Role,
  signer: Signer,
): Promise<string> {
  const split = typeof headOrNote === "string"
    ? splitNote(headOrNote)
    : { body: checkpointBody(headOrNote), sigs: [] };
  if (!split || !parseBody(split.body)) throw new TypeError("Cannot sign: malformed checkpoint");
  const sig = await signer.sign(new TextEncoder().encode(split.body));
  const blob = Buffer.concat([await keyHash(role, signer.publicKey), sig]).toString("base64");
  const sigs = split.sigs.filter((l) => l !== "" && !l.startsWith(`— ${role} `));
  return `${split.body}\n${[...sigs, `— ${role} ${blob}`].join("\n")}\n`;
}

/** Valid only if every supplied verifier has a good signature under its role. */
export async function verifyCheckpoint(
  note: string,
  verifiers: Partial<Record<Role, Verifier>>,
): Promise<{ ok: true; head: ChainHead } | { ok: false; reason: string }> {
  const split = splitNote(note);
  const head = split && parseBody(split.body);
  if (!split || !head) return { ok: false, reason: "malformed checkpoint" };
  const roles = Object.keys(verifiers) as Role[];
  if (roles.length === 0) return { ok: false, reason: "no verifiers given" };
  const body = new TextEncoder().encode(split.body);
  for (const role of roles) {
    const v = verifiers[role]!;
    const want = await keyHash(role, v.publicKey);
    let good = false;
    for (const line of split.sigs.filter((l) => l.startsWith(`— ${role} `))) {
      const blob = new Uint8Array(Buffer.from(line.slice(role.length + 3), "base64"));
      if (blob.length !== 68 || !timingSafeEqual(blob.subarray(0, 4), want)) continue;
      if (await v.verify(blob.slice(4), body)) good = true;
    }
    if (!good) return { ok: false, reason: `no valid ${role} signature` };
  }
  return { ok: true, head };
}
