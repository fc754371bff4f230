/**
 * A TCP proxy between an agent and the hub that can lose chosen tunnel frames and cut the
 * connection — a bad network staged deterministically (no hooks in the hub or the agent).
 * Plain HTTP passes through untouched; on a `/tunnel/connect` connection the WebSocket frames are
 * parsed (RFC 6455: the hub's unmasked, the agent's masked) and a text frame whose JSON `type`
 * `drop` selects is not forwarded; `rewrite` may replace the text of the hub's frames (e.g. to
 * play an older hub); `seen` lists every control frame's type in order.
 */

export type Direction = "toAgent" | "toHub";

interface Link {
  client: Deno.Conn;
  server: Deno.Conn;
}

export class TunnelTap {
  /** Decides which control frames are lost; null forwards everything. */
  drop: ((dir: Direction, type: string) => boolean) | null = null;
  readonly dropped: { dir: Direction; type: string }[] = [];
  /** Replaces a hub → agent control frame's JSON text (return it unchanged to keep it). */
  rewrite: ((text: string) => string) | null = null;
  /** Every control frame that passed, in order. */
  readonly seen: { dir: Direction; type: string }[] = [];
  readonly #links = new Set<Link>();
  readonly #pumps = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;

  private constructor(
    private readonly listener: Deno.TcpListener,
    private readonly target: { hostname: string; port: number },
  ) {
    this.#accepting = this.#accept();
  }

  static start(target: { hostname: string; port: number }): TunnelTap {
    return new TunnelTap(Deno.listen({ hostname: "127.0.0.1", port: 0 }), target);
  }

  get url(): string {
    return `http://127.0.0.1:${this.listener.addr.port}`;
  }

  /** Drops every open connection at once (both sides see the TCP connection vanish). */
  cut(): void {
    for (const l of this.#links) {
      for (const c of [l.client, l.server]) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    }
    this.#links.clear();
  }

  async close(): Promise<void> {
    this.listener.close();
    this.cut();
    await this.#accepting.catch(() => {});
    await Promise.allSettled([...this.#pumps]);
  }

  async #accept(): Promise<void> {
    for await (const client of this.listener) {
      let server: Deno.Conn;
      try {
        server = await Deno.connect(this.target);
      } catch {
        client.close();
        continue;
      }
      const link = { client, server };
      this.#links.add(link);
      const pump = Promise.all([
        this.#pump(link, client, server, "toHub"),
        this.#pump(link, server, client, "toAgent"),
      ]).then(() => {}, () => {});
      this.#pumps.add(pump);
      pump.finally(() => this.#pumps.delete(pump));
    }
  }

  async #pump(
    link: Link,
    from: Deno.Conn,
    to: Deno.Conn,
    dir: Direction,
  ): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0);
    let mode: "http" | "ws" | "raw" = "http";
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(chunk);
        if (n === null) break;
        buf = concat(buf, chunk.subarray(0, n));
        if (mode === "http") {
          const end = indexOf(buf, CRLF2);
          if (end < 0) continue;
          const head = new TextDecoder().decode(buf.subarray(0, end));
          const ws = dir === "toHub"
            ? head.startsWith("GET /tunnel/connect")
            : head.startsWith("HTTP/1.1 101");
          await writeAll(to, buf.subarray(0, end + 4));
          buf = buf.subarray(end + 4);
          mode = ws ? "ws" : "raw";
        }
        if (mode === "raw") {
          await writeAll(to, buf);
          buf = new Uint8Array(0);
          continue;
        }
        for (;;) {
          const frame = parseFrame(buf);
          if (!frame) break;
          const bytes = buf.subarray(0, frame.length);
          buf = buf.subarray(frame.length);
          const type = frame.text ? typeOf(frame.text) : null;
          if (type && this.drop?.(dir, type)) {
            this.dropped.push({ dir, type });
            continue;
          }
          if (type) this.seen.push({ dir, type });
          if (type && dir === "toAgent" && this.rewrite) {
            await writeAll(to, textFrame(this.rewrite(frame.text!)));
            continue;
          }
          await writeAll(to, bytes);
        }
      }
    } catch { /* a side closed */ }
    for (const c of [link.client, link.server]) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    this.#links.delete(link);
  }
}

const CRLF2 = new TextEncoder().encode("\r\n\r\n");

function typeOf(text: string): string | null {
  try {
    const v = JSON.parse(text);
    return typeof v?.type === "string" ? v.type : null;
  } catch {
    return null;
  }
}

/** One complete WebSocket frame at the start of `b`: its length and, for text, the payload. */
function parseFrame(b: Uint8Array): { length: number; text: string | null } | null {
  if (b.length < 2) return null;
  const opcode = b[0]! & 0x0f, masked = (b[1]! & 0x80) !== 0;
  let len = b[1]! & 0x7f, at = 2;
  if (len === 126) {
    if (b.length < 4) return null;
    len = (b[2]! << 8) | b[3]!, at = 4;
  } else if (len === 127) {
    if (b.length < 10) return null;
    len = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0)), at = 10;
  }
  const maskAt = at;
  if (masked) at += 4;
  if (b.length < at + len) return null;
  if (opcode !== 1) return { length: at + len, text: null };
  const payload = b.slice(at, at + len);
  if (masked) { for (let i = 0; i < payload.length; i++) payload[i]! ^= b[maskAt + (i % 4)]!; }
  return { length: at + len, text: new TextDecoder().decode(payload) };
}

/** An unmasked (server → client) WebSocket text frame. */
function textFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const n = payload.length;
  const head = n < 126
    ? new Uint8Array([0x81, n])
    : n < 65536
    ? new Uint8Array([0x81, 126, n >> 8, n & 0xff])
    : (() => {
      const h = new Uint8Array(10);
      h[0] = 0x81, h[1] = 127;
      new DataView(h.buffer).setBigUint64(2, BigInt(n));
      return h;
    })();
  return concat(head, payload);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a), out.set(b, a.length);
  return out;
}

function indexOf(h: Uint8Array, n: Uint8Array): number {
  outer: for (let i = 0; i + n.length <= h.length; i++) {
    for (let j = 0; j < n.length; j++) if (h[i + j] !== n[j]) continue outer;
    return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let at = 0;
  while (at < data.length) at += await conn.write(data.subarray(at));
}
