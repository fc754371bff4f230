/**
 * Byte-level tables of the JSON grammar (RFC 8259) for the streaming sniffer in
 * `json_fields.ts`: lookups indexed by byte, so that its hot loops make no calls per byte.
 */

const byteSet = (chars: string) =>
  new Uint8Array(256).map((_, c) => chars.includes(String.fromCharCode(c)) ? 1 : 0);

/** 1 for the bytes that stop the string fast path: `"`, `\` and raw control characters. */
export const STR_STOP = new Uint8Array(256).map((_, c) =>
  c < 0x20 || c === 0x22 || c === 0x5c ? 1 : 0
);
/** 1 for the bytes that may follow `\` in a string, except `u`. */
export const ESCAPED = byteSet('"\\/bfnrt');
/** 1 for hexadecimal digits (of a `\uXXXX` escape). */
export const HEX_DIGIT = byteSet("0123456789abcdefABCDEF");
/** 1 for JSON whitespace. */
export const WS = byteSet(" \t\r\n");

// Number sub-states: after `-`, a leading `0`, integer digits, `.`, fraction digits, `e`, …
const N_MINUS = 0, N_ZERO = 1, N_INT = 2, N_DOT = 3, N_FRAC = 4, N_E = 5, N_ESIGN = 6, N_EXP = 7;
/** The number sub-state before the first byte of a number. */
export const N_START = 8;
/** Bit set of the number sub-states in which a number may end. */
export const N_FINAL = 1 << N_ZERO | 1 << N_INT | 1 << N_FRAC | 1 << N_EXP;

/** Per sub-state, the next one after `0`, `1`-`9`, `.`, `e`/`E`, `+`, `-`; -1: not a number. */
const NUM_RULES = [
  [N_ZERO, N_INT, -1, -1, -1, -1], // N_MINUS
  [-1, -1, N_DOT, N_E, -1, -1], // N_ZERO
  [N_INT, N_INT, N_DOT, N_E, -1, -1], // N_INT
  [N_FRAC, N_FRAC, -1, -1, -1, -1], // N_DOT
  [N_FRAC, N_FRAC, -1, N_E, -1, -1], // N_FRAC
  [N_EXP, N_EXP, -1, -1, N_ESIGN, N_ESIGN], // N_E
  [N_EXP, N_EXP, -1, -1, -1, -1], // N_ESIGN
  [N_EXP, N_EXP, -1, -1, -1, -1], // N_EXP
  [N_ZERO, N_INT, -1, -1, -1, N_MINUS], // N_START
];
const numClass = (c: number) =>
  ["0", "123456789", ".", "eE", "+", "-"].findIndex((set) => set.includes(String.fromCharCode(c)));
/** `NUM_NEXT[subState << 8 | byte]`: the next number sub-state, or -1 where the number ends. */
export const NUM_NEXT = Int8Array.from(
  { length: 9 << 8 },
  (_, x) => NUM_RULES[x >> 8]![numClass(x & 0xff)] ?? -1,
);
