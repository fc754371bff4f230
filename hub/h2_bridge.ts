/**
 * The HTTP/2 listener (`HUB_H2_LISTEN`) in its own process. Deno 2.9.6's `node:http2` can abort
 * the whole process on an nghttp2 assertion when a client sends GOAWAY at an unlucky moment
 * (denoland/deno#36788, `find_stream_on_goaway_func`; reproduced here with the AWS SDK's default
 * handler under load, about 1 run in 10) — no JavaScript can catch it. A client must never be
 * able to take the hub down, so the listener runs as this child process: it bridges each HTTP/2
 * stream to the hub's loopback HTTP/1.1 listener (`node:http`, which keeps the client's
 * `:authority` as `Host`, what SigV4 verification signs over), and the hub restarts it if it
 * dies. An abort costs the streams in flight on the bridge; the hub and its tunnels carry on.
 *
 *   deno run --allow-net --allow-read hub/h2_bridge.ts --listen HOST:PORT --target-port N
 *     [--cert PEM_FILE --key PEM_FILE]
 *
 * Prints one JSON line `{"msg":"h2 bridge listening","url":…}` on stdout once it accepts.
 */
import http from "node:http";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { serveHttp2 } from "./h2_listener.ts";

/** Request headers that describe the client's hop, not the request (dropped on the bridge). */
const HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "te"]);

/** Forwards `req` to the hub's loopback listener, keeping its authority as `Host`. */
export function forwardToHub(req: Request, targetPort: number): Promise<Response> {
  const url = new URL(req.url);
  const headers: Record<string, string> = { host: url.host };
  req.headers.forEach((value, name) => {
    if (!HOP_HEADERS.has(name) && name !== "host") headers[name] = value;
  });
  return new Promise((resolve, reject) => {
    const upstream = http.request({
      host: "127.0.0.1",
      port: targetPort,
      method: req.method,
      path: url.pathname + url.search,
      headers,
      signal: req.signal,
    }, (res) => {
      const out = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined || HOP_HEADERS.has(name)) continue;
        for (const v of Array.isArray(value) ? value : [value]) out.append(name, v);
      }
      const nullBody = res.statusCode === 204 || res.statusCode === 304 || req.method === "HEAD";
      resolve(
        new Response(nullBody ? null : Readable.toWeb(res) as ReadableStream<Uint8Array>, {
          status: res.statusCode ?? 502,
          headers: out,
        }),
      );
    });
    upstream.on("error", reject);
    if (req.body) Readable.fromWeb(req.body as never).pipe(upstream);
    else upstream.end();
  });
}

/** The command that runs this bridge from source (the hub spawns it). */
export function bridgeCommand(
  options: { listen: string; targetPort: number; tls?: { certPath: string; keyPath: string } },
): string[] {
  const self = fileURLToPath(import.meta.url);
  return [
    "run",
    "--allow-net",
    "--allow-read",
    self,
    "--listen",
    options.listen,
    "--target-port",
    String(options.targetPort),
    ...(options.tls ? ["--cert", options.tls.certPath, "--key", options.tls.keyPath] : []),
  ];
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: string[]): Promise<void> {
  const listen = argValue(args, "--listen"), target = Number(argValue(args, "--target-port"));
  const certPath = argValue(args, "--cert"), keyPath = argValue(args, "--key");
  const colon = listen?.lastIndexOf(":") ?? -1;
  if (!listen || colon < 0 || !Number.isInteger(target) || target <= 0) {
    throw new TypeError(
      "usage: h2_bridge.ts --listen HOST:PORT --target-port N [--cert F --key F]",
    );
  }
  const hostname = listen.slice(0, colon).replace(/^\[|\]$/g, "") || "0.0.0.0";
  const tls = certPath && keyPath
    ? { cert: await Deno.readTextFile(certPath), key: await Deno.readTextFile(keyPath) }
    : undefined;
  const listener = await serveHttp2(
    { hostname, port: Number(listen.slice(colon + 1)), tls },
    (req) => forwardToHub(req, target),
    (e) => console.error(JSON.stringify({ msg: "http/2 bridge error", error: String(e) })),
  );
  console.log(JSON.stringify({ msg: "h2 bridge listening", url: listener.url }));
  const stop = () => listener.close().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

if (import.meta.main) {
  main(Deno.args).catch((e) => {
    console.error(`h2_bridge: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  });
}

export interface SupervisedBridge {
  /** The bridge's public URL (`http(s)://host:port` of `HUB_H2_LISTEN`). */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the bridge process and keeps it running: an unexpected exit (the nghttp2 abort) is
 * logged and the bridge restarted on the same address, after a short backoff that grows while
 * it keeps dying. Resolves once the first bridge accepts connections.
 */
export async function superviseBridge(
  options: {
    listen: { hostname: string; port: number };
    targetPort: number;
    tls?: { certPath: string; keyPath: string };
    log: { info(msg: string, f?: object): void; error(msg: string, f?: object): void };
  },
): Promise<SupervisedBridge> {
  const host = options.listen.hostname.includes(":")
    ? `[${options.listen.hostname}]`
    : options.listen.hostname;
  let closing = false, child: Deno.ChildProcess | undefined, url = "";
  const start = async (port: number): Promise<string> => {
    child = new Deno.Command(Deno.execPath(), {
      args: bridgeCommand({ ...options, listen: `${host}:${port}` }),
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await lines.read();
      if (done) throw new Error("the http/2 bridge exited before listening");
      buffered += value;
      const line = buffered.split("\n").find((l) => l.includes('"h2 bridge listening"'));
      if (line) {
        lines.releaseLock();
        child.stdout.cancel().catch(() => {});
        options.log.info("http/2 bridge started", { pid: child.pid });
        return String(JSON.parse(line).url);
      }
    }
  };
  const watch = async (port: number) => {
    for (let backoffMs = 100; !closing;) {
      const status = await child!.status;
      if (closing) return;
      options.log.error("http/2 bridge exited; restarting", { code: status.code, backoffMs });
      await new Promise((r) => setTimeout(r, backoffMs));
      if (closing) return;
      try {
        await start(port);
        backoffMs = 100;
      } catch (e) {
        options.log.error("http/2 bridge restart failed", { error: String(e) });
        backoffMs = Math.min(backoffMs * 2, 10_000);
      }
    }
  };
  url = await start(options.listen.port);
  // Restarts reuse the port it got (HUB_H2_LISTEN may ask for port 0).
  const port = Number(new URL(url).port);
  const watching = watch(port);
  return {
    url,
    async close() {
      closing = true;
      try {
        child?.kill("SIGTERM");
      } catch { /* already gone */ }
      await child?.status;
      await watching;
    },
  };
}
