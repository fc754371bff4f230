/**
 * The load generator's HTTP/1.1 client for `deno task bench gateway`: one keep-alive TCP
 * connection (`Deno.connect`, TCP_NODELAY), one request in flight, hand-parsed responses
 * (Content-Length or chunked). It is deliberately thin — no Headers objects, no streams, one
 * reused read buffer — so the bench process spends as little CPU per request as it can and the
 * clock readings sit right next to the socket reads: a body "event" is time-stamped when the
 * `read()` that carried its bytes returns. Both sides of every comparison use this same client
 * and the same request bytes; only host, port and API key differ.
 */

const CRLF2 = [13, 10, 13, 10];
const decoder = new TextDecoder("latin1");
const encoder = new TextEncoder();

export interface Target {
  name: string;
  port: number;
  key: string;
}

/** The bytes of one POST (headers as the official SDK sends them, from `sdkHeaders`). */
export function requestBytes(
  target: Target,
  path: string,
  body: string,
  headers: Record<string, string>,
): Uint8Array {
  const payload = encoder.encode(body);
  const lines = [`POST ${path} HTTP/1.1`, `host: 127.0.0.1:${target.port}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  lines.push(`authorization: Bearer ${target.key}`, `content-length: ${payload.length}`, "", "");
  const head = encoder.encode(lines.join("\r\n"));
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

export interface Reply {
  status: number;
  /** Time when the request was written (performance.now() ms). */
  sentAt: number;
  /** Arrival time of each read that carried body bytes (first = first body byte). */
  bodyReads: number[];
  bodyBytes: number;
  /** The last ≤ 64 body bytes, to check the answer is complete. */
  tail: string;
}

export class Http1Conn {
  readonly #buf = new Uint8Array(65536);
  #pending = new Uint8Array(0);

  private constructor(readonly conn: Deno.TcpConn) {}

  static async open(port: number): Promise<Http1Conn> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new Http1Conn(conn);
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  /** Sends `request` and reads the whole response. `stamps`: keep every body read's time. */
  async roundTrip(request: Uint8Array, stamps = false): Promise<Reply> {
    const sentAt = performance.now();
    for (let off = 0; off < request.length;) off += await this.conn.write(request.subarray(off));
    const reply: Reply = { status: 0, sentAt, bodyReads: [], bodyBytes: 0, tail: "" };
    let headDone = false;
    let length = -1; // Content-Length, or -1 for chunked
    let chunkLeft = 0; // payload bytes left in the current chunk (chunked only)
    let data = this.#pending;
    for (;;) {
      if (data.length === 0 || (!headDone && indexOf(data, CRLF2) < 0)) {
        const n = await this.conn.read(this.#buf);
        if (n === null) throw new Error("connection closed by the server");
        data = concat(data, this.#buf.subarray(0, n));
      }
      const now = performance.now();
      if (!headDone) {
        const end = indexOf(data, CRLF2);
        if (end < 0) continue;
        const head = decoder.decode(data.subarray(0, end)).split("\r\n");
        reply.status = Number(head[0]!.split(" ")[1]);
        for (const line of head.slice(1)) {
          const colon = line.indexOf(":");
          const name = line.slice(0, colon).toLowerCase();
          if (name === "content-length") length = Number(line.slice(colon + 1));
        }
        headDone = true;
        data = data.slice(end + 4);
        if (length === 0) break;
        if (data.length === 0) continue;
      }
      let got = 0;
      if (length >= 0) {
        const take = Math.min(data.length, length - reply.bodyBytes);
        keepTail(reply, data.subarray(0, take));
        got = take;
        reply.bodyBytes += take;
        data = data.slice(take);
        if (got > 0 && (stamps || reply.bodyReads.length === 0)) reply.bodyReads.push(now);
        if (reply.bodyBytes === length) break;
        continue;
      }
      // chunked: consume what is complete; keep a partial size line for the next read
      let finished = false;
      while (data.length > 0) {
        if (chunkLeft > 0) {
          const take = Math.min(chunkLeft, data.length);
          keepTail(reply, data.subarray(0, take));
          got += take;
          chunkLeft -= take;
          data = data.subarray(take);
          if (chunkLeft === 0) chunkLeft = -2; // its CRLF follows
          continue;
        }
        if (chunkLeft === -2) {
          if (data.length < 2) break;
          data = data.subarray(2);
          chunkLeft = 0;
          continue;
        }
        const eol = indexOf(data, [13, 10]);
        if (eol < 0) break;
        const size = parseInt(decoder.decode(data.subarray(0, eol)), 16);
        if (size === 0) {
          if (data.length < eol + 4) break; // "0\r\n\r\n" (no trailers)
          data = data.subarray(eol + 4);
          finished = true;
          break;
        }
        chunkLeft = size;
        data = data.subarray(eol + 2);
      }
      data = data.slice();
      reply.bodyBytes += got;
      if (got > 0 && (stamps || reply.bodyReads.length === 0)) reply.bodyReads.push(now);
      if (finished) break;
      if (data.length > 0 && !finished) {
        // an incomplete size line or CRLF: the next read completes it
        const n = await this.conn.read(this.#buf);
        if (n === null) throw new Error("connection closed by the server");
        data = concat(data, this.#buf.subarray(0, n));
      }
    }
    this.#pending = data;
    return reply;
  }
}

function keepTail(reply: Reply, bytes: Uint8Array): void {
  if (bytes.length === 0) return;
  reply.tail = (reply.tail + decoder.decode(bytes.subarray(Math.max(0, bytes.length - 64))))
    .slice(-64);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOf(hay: Uint8Array, needle: number[]): number {
  const first = needle[0]!;
  for (let i = hay.indexOf(first); i >= 0 && i <= hay.length - needle.length;) {
    let ok = true;
    for (let j = 1; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) {
        ok = false;
        break;
      }
    }
    if (ok) return i;
    i = hay.indexOf(first, i + 1);
  }
  return -1;
}
