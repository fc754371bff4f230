/**
 * Byte-level, string-aware scanners over the members of a JSON object, used to find `usage`
 * (and a few scalars) without parsing whole bodies, and to edit a single member in place.
 *
 * They work on UTF-8 bytes: every structural character is ASCII and no byte of a multi-byte
 * sequence is below 0x80, so scanning bytes is exact. Inside a string `"` only ever appears
 * escaped (after an odd run of backslashes), and outside strings it never follows a backslash,
 * so strings are skipped in either direction with native `indexOf`/`lastIndexOf`. Both scanners
 * assume well-formed JSON and give up (return false) at the first sign of a cut: they never throw.
 */

const QUOTE = 0x22, BSLASH = 0x5c, COLON = 0x3a, COMMA = 0x2c;
const LBRACE = 0x7b, RBRACE = 0x7d, LBRACKET = 0x5b, RBRACKET = 0x5d;
const decoder = new TextDecoder();

/** Whether `c` is JSON insignificant whitespace. */
export function isJsonWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isScalarByte(c: number | undefined): boolean {
  return c !== undefined && !isJsonWs(c) && c !== QUOTE && c !== COLON && c !== COMMA &&
    c !== LBRACE && c !== RBRACE && c !== LBRACKET && c !== RBRACKET;
}

/**
 * Called once per member found: the key is `[keyStart, keyEnd)` (quotes included), the value
 * `[valueStart, valueEnd)`; `depth` is 1 for members of the outermost object. Return true to stop.
 */
export type MemberVisitor = (
  depth: number,
  keyStart: number,
  keyEnd: number,
  valueStart: number,
  valueEnd: number,
) => boolean;

/** Index of the quote opening the string whose closing quote is at `close`, or -1 if before `start`. */
function openQuote(b: Uint8Array, close: number, start: number): number {
  let j = close - 1;
  for (;;) {
    if (j < start) return -1; // lastIndexOf would wrap around on a negative index
    j = b.lastIndexOf(QUOTE, j);
    if (j < start) return -1;
    let k = j - 1;
    while (k >= start && b[k] === BSLASH) k--;
    if (k < start) return -1; // the backslash run may go on before the window: undecidable
    if (((j - 1 - k) & 1) === 0) return j;
    j--;
  }
}

/** Index of the quote closing the string opened at `open`, or -1 if not before `end`. */
function closeQuote(b: Uint8Array, open: number, end: number): number {
  let j = open + 1;
  for (;;) {
    j = b.indexOf(QUOTE, j);
    if (j === -1 || j >= end) return -1;
    let k = j - 1;
    while (b[k] === BSLASH) k--;
    if (((j - 1 - k) & 1) === 0) return j;
    j++;
  }
}

const MAX_DEPTH = 15;
// Scratch state per depth for the backward scan (synchronous, so shared; not re-entrant).
const vStart = new Int32Array(MAX_DEPTH + 1);
const vEnd = new Int32Array(MAX_DEPTH + 1);
const sawColon = new Uint8Array(MAX_DEPTH + 1);

/**
 * Visits members of the object ending at the last non-whitespace byte of `b[start, end)` (which
 * must be `}`), last member first, down to `maxDepth` levels deep (≤ 15). Works on a tail window
 * whose beginning is cut anywhere: scanning stops (false) when it reaches the window start.
 * Returns true iff the visitor stopped the scan. Must not be called from inside a visitor.
 */
export function scanMembersBackward(
  b: Uint8Array,
  start: number,
  end: number,
  maxDepth: number,
  visit: MemberVisitor,
): boolean {
  maxDepth = Math.min(maxDepth, MAX_DEPTH);
  let i = end - 1;
  while (i >= start && isJsonWs(b[i])) i--;
  if (i < start || b[i] !== RBRACE) return false;
  let depth = 1;
  sawColon[1] = 0;
  for (i--; i >= start; i--) {
    const c = b[i]!;
    if (c === QUOTE) {
      const j = openQuote(b, i, start);
      if (j === -1) return false;
      if (depth <= maxDepth) {
        if (sawColon[depth] === 1) {
          sawColon[depth] = 0;
          if (visit(depth, j, i + 1, vStart[depth]!, vEnd[depth]!)) return true;
        } else {
          vStart[depth] = j;
          vEnd[depth] = i + 1;
        }
      }
      i = j;
    } else if (c === RBRACE || c === RBRACKET) {
      if (depth <= maxDepth) vEnd[depth] = i + 1;
      depth++;
      if (depth <= maxDepth) sawColon[depth] = 0;
    } else if (c === LBRACE || c === LBRACKET) {
      depth--;
      if (depth === 0) return false;
      if (depth <= maxDepth) vStart[depth] = i;
    } else if (c === COLON) {
      if (depth <= maxDepth) sawColon[depth] = 1;
    } else if (c !== COMMA && !isJsonWs(c)) {
      const e = i + 1;
      while (i > start && isScalarByte(b[i - 1])) i--;
      if (i === start) return false; // the scalar may be cut by the window start
      if (depth <= maxDepth) {
        vStart[depth] = i;
        vEnd[depth] = e;
      }
    }
  }
  return false;
}

/**
 * Visits the members of the outermost object starting at the first non-whitespace byte of
 * `b[start, end)`, first member first (depth is always 1). Works on a head window cut anywhere:
 * stops (false) at the window end. Returns true iff the visitor stopped the scan.
 */
export function scanMembersForward(
  b: Uint8Array,
  start: number,
  end: number,
  visit: MemberVisitor,
): boolean {
  let i = start;
  while (i < end && isJsonWs(b[i])) i++;
  if (i >= end || b[i] !== LBRACE) return false;
  // state: 0 expecting a key, 1 expecting ':', 2 expecting a value, 3 inside a nested value
  let depth = 1, state = 0, ks = 0, ke = 0, vs = 0;
  for (i++; i < end; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      const j = closeQuote(b, i, end);
      if (j === -1) return false;
      if (depth === 1 && state === 0) {
        ks = i;
        ke = j + 1;
        state = 1;
      } else if (depth === 1 && state === 2) {
        if (visit(1, ks, ke, i, j + 1)) return true;
        state = 0;
      }
      i = j;
    } else if (c === LBRACE || c === LBRACKET) {
      if (depth === 1 && state === 2) {
        vs = i;
        state = 3;
      }
      depth++;
    } else if (c === RBRACE || c === RBRACKET) {
      if (--depth === 0) return false;
      if (depth === 1 && state === 3) {
        if (visit(1, ks, ke, vs, i + 1)) return true;
        state = 0;
      }
    } else if (c === COLON) {
      if (depth === 1 && state === 1) state = 2;
    } else if (c !== COMMA && !isJsonWs(c)) {
      const s = i;
      while (i + 1 < end && isScalarByte(b[i + 1])) i++;
      if (i + 1 >= end) return false; // the scalar may be cut by the window end
      if (depth === 1 && state === 2) {
        if (visit(1, ks, ke, s, i + 1)) return true;
        state = 0;
      }
    }
  }
  return false;
}

/** Whether the key bytes `[keyStart, keyEnd)` (quotes included) spell the ASCII `key`. */
export function keyEquals(b: Uint8Array, keyStart: number, keyEnd: number, key: string): boolean {
  if (keyEnd - keyStart !== key.length + 2) return false;
  for (let i = 0; i < key.length; i++) if (b[keyStart + 1 + i] !== key.charCodeAt(i)) return false;
  return true;
}

/** Where a member sits: key start (its opening quote) and value bounds. */
export interface MemberSpan {
  keyStart: number;
  valueStart: number;
  valueEnd: number;
}

/** The last top-level member named `key` in the object in `b[start, end)`, or null. */
export function findTopLevelMember(
  b: Uint8Array,
  start: number,
  end: number,
  key: string,
): MemberSpan | null {
  let span: MemberSpan | null = null;
  scanMembersBackward(b, start, end, 1, (_d, ks, ke, vs, ve) => {
    if (!keyEquals(b, ks, ke, key)) return false;
    span = { keyStart: ks, valueStart: vs, valueEnd: ve };
    return true;
  });
  return span;
}

/** `JSON.parse` of the bytes `b[start, end)`, or undefined if they are not valid JSON. */
export function parseJsonSlice(b: Uint8Array, start: number, end: number): unknown {
  try {
    return JSON.parse(decoder.decode(b.subarray(start, end)));
  } catch {
    return undefined;
  }
}

/**
 * The byte range to cut to remove the member `[keyStart, valueEnd)` from the object
 * `b[start, end)` with its comma: `,"k":v` when it has a predecessor, else `"k":v,` (or just the
 * member when alone); whitespace around the comma goes too.
 */
export function memberCut(
  b: Uint8Array,
  start: number,
  keyStart: number,
  valueEnd: number,
  end: number,
): [number, number] {
  let p = keyStart - 1;
  while (p > start && isJsonWs(b[p])) p--;
  if (b[p] === COMMA) return [p, valueEnd]; // `,"usage":null`
  let q = valueEnd;
  while (q < end && isJsonWs(b[q])) q++;
  if (b[q] !== COMMA) return [keyStart, valueEnd]; // the only member
  q++;
  while (q < end && isJsonWs(b[q])) q++;
  return [keyStart, q]; // `"usage":null,` (first member)
}
