/**
 * HTTP facts shared by hub and agent: which headers describe one hop of a connection (and so are
 * never forwarded through the tunnel), and byte helpers for bodies.
 */

/** Hop-by-hop and framing headers (RFC 9110 §7.6.1), plus those the next hop recomputes. */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "upgrade",
  "proxy-authorization",
  "content-length",
]);

/** One buffer holding `chunks` in order (`size` = their total length). */
export function concatBytes(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
