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
    const parser = new ResponseParser(reply);
    for (;;) {
      const n = await this.conn.read(this.#buf);
      if (n === null) throw new Error("connection closed by the server");
      const now = performance.now();
      const got = parser.push(this.#buf.subarray(0, n));
      if (got > 0 && (stamps || reply.bodyReads.length === 0)) reply.bodyReads.push(now);
      if (parser.done) return reply;
    }
  }
}

/** Incremental HTTP/1.1 response parser (one response; no trailers, no pipelining). */
class ResponseParser {
  done = false;
  #data = new Uint8Array(0);
  #state: "head" | "length" | "size" | "chunk" | "crlf" = "head";
  #left = 0;

  constructor(readonly reply: Reply) {}

  /** Consumes `bytes`; returns how many body payload bytes they completed. */
  push(bytes: Uint8Array): number {
    let data = this.#data.length ? concat(this.#data, bytes) : bytes;
    let got = 0;
    while (!this.done) {
      if (this.#state === "head") {
        const end = indexOf(data, CRLF2);
        if (end < 0) break;
        const head = decoder.decode(data.subarray(0, end)).split("\r\n");
        this.reply.status = Number(head[0]!.split(" ")[1]);
        let length = -1;
        for (const line of head.slice(1)) {
          const colon = line.indexOf(":");
          if (line.slice(0, colon).toLowerCase() === "content-length") {
            length = Number(line.slice(colon + 1));
          }
        }
        data = data.subarray(end + 4);
        this.#state = length >= 0 ? "length" : "size";
        this.#left = length;
        if (length === 0) this.done = true;
      } else if (this.#state === "length" || this.#state === "chunk") {
        if (data.length === 0) break;
        const take = Math.min(this.#left, data.length);
        keepTail(this.reply, data.subarray(0, take));
        got += take;
        this.#left -= take;
        data = data.subarray(take);
        if (this.#left === 0) {
          if (this.#state === "length") this.done = true;
          else this.#state = "crlf";
        }
      } else if (this.#state === "crlf") {
        if (data.length < 2) break;
        data = data.subarray(2);
        this.#state = "size";
      } else {
        const eol = indexOf(data, [13, 10]);
        if (eol < 0) break;
        const size = parseInt(decoder.decode(data.subarray(0, eol)), 16);
        if (!Number.isFinite(size)) throw new Error("bad chunk size line");
        if (size === 0) {
          if (data.length < eol + 4) break; // "0\r\n\r\n"
          data = data.subarray(eol + 4);
          this.done = true;
        } else {
          data = data.subarray(eol + 2);
          this.#state = "chunk";
          this.#left = size;
        }
      }
    }
    if (this.done && data.length > 0) throw new Error("unexpected bytes after the response");
    this.#data = data.length ? data.slice() : new Uint8Array(0);
    this.reply.bodyBytes += got;
    return got;
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
