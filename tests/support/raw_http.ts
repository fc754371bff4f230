/**
 * One HTTP/1.1 request over a plain TCP socket with the request target sent exactly as given:
 * `fetch` normalizes `..`, `%2e%2e` and friends before sending, which hides what a hostile client
 * can really put on the wire.
 */
export interface RawHttpResponse {
  status: number;
  headers: Headers;
  body: string;
}

export async function rawHttp(
  hubUrl: string,
  method: string,
  target: string,
  headers: Record<string, string>,
  body = "",
): Promise<RawHttpResponse> {
  const url = new URL(hubUrl);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    const bytes = new TextEncoder().encode(body);
    const lines = [
      `${method} ${target} HTTP/1.1`,
      `host: ${url.host}`,
      "connection: close",
      `content-length: ${bytes.length}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    const head = new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
    const out = new Uint8Array(head.length + bytes.length);
    out.set(head);
    out.set(bytes, head.length);
    for (let sent = 0; sent < out.length;) sent += await conn.write(out.subarray(sent));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16384);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(
      chunks.reduce((a, b) => {
        const c = new Uint8Array(a.length + b.length);
        c.set(a);
        c.set(b, a.length);
        return c;
      }, new Uint8Array()),
    );
    const split = text.indexOf("\r\n\r\n");
    const [statusLine, ...headerLines] = text.slice(0, split).split("\r\n");
    const parsed = new Headers();
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      parsed.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    let rest = text.slice(split + 4);
    if (parsed.get("transfer-encoding")?.includes("chunked")) rest = unchunk(rest);
    return { status: Number(statusLine!.split(" ")[1]), headers: parsed, body: rest };
  } finally {
    try {
      conn.close();
    } catch { /* already closed by the peer */ }
  }
}

function unchunk(text: string): string {
  let out = "", i = 0;
  for (;;) {
    const eol = text.indexOf("\r\n", i);
    const size = parseInt(text.slice(i, eol), 16);
    if (!size) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
}
