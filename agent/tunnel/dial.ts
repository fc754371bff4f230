/**
 * Dialing the hub: opens the agent → hub WebSocket that carries the reverse tunnel.
 *
 * All paths run npm:ws over a node socket with TCP_NODELAY (Deno's native WebSocket client leaves
 * Nagle on, which delayed the agent's small trailing frames by ~40 ms):
 * - `ws://`                      → `node:net` (no TLS; pins are a config error).
 * - `wss://` without pins        → `node:tls` with the system roots.
 * - `wss://` with pins           → `node:tls` with chain verification off; the SHA-256 certificate
 *   fingerprint pin set IS the trust decision. The pin is checked right after `secureConnect`,
 *   before a single application byte is written; on a match, npm:ws runs the WebSocket protocol
 *   over that same, already-verified socket (via `createConnection`). No second connection is
 *   opened, so there is no check-then-reconnect (TOCTOU) gap.
 *
 * Deno's native TLS APIs expose no peer certificate (see docs reference "deno-on-these-machines"
 * §4 and "tunnel-trust" §2), which is why the pinned path goes through node:tls.
 *
 * @module
 */

// @ts-types="@types/ws"
import WebSocket from "ws";
import tls from "node:tls";
import net, { isIP } from "node:net";

/** The subset of the WHATWG WebSocket API the tunnel uses (npm:ws and Deno's WebSocket both fit). */
export interface TunnelSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: string; // set to "arraybuffer" by dialHub
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "message", fn: (ev: { data: unknown }) => void): void;
  addEventListener(type: "close", fn: (ev: { code: number; reason: string }) => void): void;
  addEventListener(type: "error", fn: (ev: unknown) => void): void;
}

export interface DialOptions {
  /** SHA-256 certificate fingerprints (current + backup); any match is accepted. Only for wss://. */
  certFingerprints?: string[];
  /** Budget for the whole dial (TCP + TLS + WebSocket handshake), in milliseconds. */
  connectTimeoutMs: number;
  signal?: AbortSignal;
}

/** The hub presented a certificate whose SHA-256 fingerprint is not in the pin set. */
export class HubCertificatePinError extends Error {
  /** Normalized fingerprint of the certificate the server presented ("(none)" if it sent none). */
  presented: string;
  /** The normalized pin set. */
  expected: string[];
  constructor(presented: string, expected: string[]) {
    super(
      `hub certificate pin mismatch: server presented ${presented}, ` +
        `expected one of [${expected.join(", ")}]`,
    );
    this.name = "HubCertificatePinError";
    this.presented = presented;
    this.expected = [...expected];
  }
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const HEX_PAIRS = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){31}$/;

/**
 * Normalizes a SHA-256 certificate fingerprint to `sha256:AB:CD:…` (uppercase, colon-separated).
 * Accepts `sha256:AB:CD…`, `AB:CD…` (32 pairs) and `abcd…` (64 hex digits, optionally with the
 * `sha256:` prefix), hex in either case. Anything else (whitespace, other lengths, other hash
 * names, base64, partial colons) throws a TypeError.
 */
export function normalizeFingerprint(fp: string): string {
  if (typeof fp !== "string") throw new TypeError("certificate fingerprint must be a string");
  const body = fp.toLowerCase().startsWith("sha256:") ? fp.slice(7) : fp;
  let hex: string;
  if (HEX64.test(body)) hex = body;
  else if (HEX_PAIRS.test(body)) hex = body.replaceAll(":", "");
  else {
    throw new TypeError(
      `invalid SHA-256 certificate fingerprint ${JSON.stringify(fp)} ` +
        `(expected "sha256:AB:CD:…", "AB:CD:…" or 64 hex digits)`,
    );
  }
  return "sha256:" + hex.toUpperCase().match(/../g)!.join(":");
}

/** Resolves once the socket is OPEN (binaryType = "arraybuffer"); rejects on any failure. */
export async function dialHub(url: string, options: DialOptions): Promise<TunnelSocket> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`dialHub: invalid URL ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(`dialHub: URL must be ws:// or wss://, got ${parsed.protocol}//`);
  }
  const { connectTimeoutMs, signal } = options;
  if (
    typeof connectTimeoutMs !== "number" || !Number.isFinite(connectTimeoutMs) ||
    connectTimeoutMs <= 0
  ) {
    throw new TypeError(`dialHub: connectTimeoutMs must be a positive number`);
  }
  const pins = [...new Set((options.certFingerprints ?? []).map(normalizeFingerprint))];
  if (parsed.protocol === "ws:" && pins.length > 0) {
    throw new TypeError(
      "dialHub: certificate fingerprints given for a plaintext ws:// URL (pinning needs wss://)",
    );
  }
  const target = redact(parsed);
  if (signal?.aborted) throw abortError(target, signal);
  // Every path runs npm:ws over a node socket with TCP_NODELAY: Deno's native WebSocket client
  // leaves Nagle on, which held the agent's small trailing frames back ~40 ms (measured).
  return await dialNode(parsed, target, pins, connectTimeoutMs, signal);
}

// ---------------------------------------------------------------------------------------------

/** URL for error messages, without credentials or query string. */
function redact(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

function abortError(target: string, signal: AbortSignal): Error {
  const err = new Error(`dialHub: dial to ${target} aborted`, { cause: signal.reason });
  err.name = "AbortError";
  return err;
}

function timeoutError(target: string, ms: number, phase: string): Error {
  const err = new Error(`dialHub: timed out after ${ms} ms connecting to ${target} (${phase})`);
  err.name = "TimeoutError";
  return err;
}

function errorText(ev: unknown): string {
  if (ev && typeof ev === "object") {
    const e = ev as { message?: unknown; error?: unknown };
    if (typeof e.message === "string" && e.message) return e.message;
    if (e.error instanceof Error) return e.error.message;
  }
  return "";
}

/**
 * Shared plumbing: a one-shot settle, a timer and an abort listener, all torn down on settle.
 * `onFail` must release every resource the dial holds.
 */
function deadline<T>(
  target: string,
  ms: number,
  signal: AbortSignal | undefined,
  phase: () => string,
  onFail: () => void,
) {
  let resolveFn!: (v: T) => void;
  let rejectFn!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolveFn = res;
    rejectFn = rej;
  });
  let settled = false;
  const cleanup = () => {
    settled = true;
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  };
  const fail = (err: unknown) => {
    if (settled) return;
    cleanup();
    onFail();
    rejectFn(err);
  };
  const ok = (v: T) => {
    if (settled) return;
    cleanup();
    resolveFn(v);
  };
  const onAbort = () => fail(abortError(target, signal!));
  const timer = setTimeout(() => fail(timeoutError(target, ms, phase())), ms);
  signal?.addEventListener("abort", onAbort, { once: true });
  return { promise, ok, fail, isSettled: () => settled };
}

async function dialNode(
  u: URL,
  target: string,
  pins: string[],
  ms: number,
  signal: AbortSignal | undefined,
): Promise<TunnelSocket> {
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const secure = u.protocol === "wss:";
  const port = u.port ? Number(u.port) : secure ? 443 : 80;
  let phase = secure ? "TCP/TLS handshake" : "TCP connect";
  let ws: WebSocket | undefined;

  // With pins, chain verification is deliberately off: the fingerprint pin below is the trust
  // decision (the hub typically presents a self-signed certificate). Without pins, the system
  // roots decide as usual.
  const sock = secure
    ? tls.connect({
      host,
      port,
      servername: isIP(host) ? undefined : host,
      rejectUnauthorized: pins.length === 0,
    })
    : net.connect({ host, port });
  sock.setNoDelay(true);
  const d = deadline<TunnelSocket>(target, ms, signal, () => phase, () => {
    sock.off("secureConnect", onSecure);
    if (ws) ws.terminate();
    sock.destroy();
  });
  const onSockError = (err: Error) => {
    d.fail(new Error(`dialHub: ${phase} with ${target} failed: ${err.message}`, { cause: err }));
  };
  const onSockClose = () => {
    d.fail(new Error(`dialHub: ${target} closed the connection during the ${phase}`));
  };
  const onSecure = () => {
    sock.off("close", onSockClose);
    if (pins.length === 0) {
      phase = "WebSocket handshake";
      return handOver();
    }
    let presented = "(none)";
    const fp = (sock as tls.TLSSocket).getPeerCertificate()?.fingerprint256;
    if (typeof fp === "string" && fp) {
      try {
        presented = normalizeFingerprint(fp);
      } catch {
        presented = fp;
      }
    }
    if (!pins.includes(presented)) {
      // Nothing has been written to the socket yet; tear it down without sending a byte.
      d.fail(new HubCertificatePinError(presented, pins));
      return;
    }
    phase = "WebSocket handshake";
    handOver();
  };

  const handOver = () => {
    let lastError = "";
    let handedOut = false;
    const w = new WebSocket(u.href, {
      // Hand npm:ws (and the node:http client under it) the socket verified above; it must not
      // open a connection of its own.
      createConnection: (() => {
        if (handedOut) throw new Error("dialHub: refusing to open a second connection");
        handedOut = true;
        return sock;
      }) as unknown as WebSocket.ClientOptions["createConnection"],
      perMessageDeflate: false,
      followRedirects: false,
    });
    ws = w;
    w.binaryType = "arraybuffer";
    // ws is an EventEmitter: an 'error' without listeners would throw. Callers may not listen.
    w.on("error", () => {});
    const onOpen = () => {
      detach();
      sock.off("error", onSockError);
      d.ok(w as unknown as TunnelSocket);
    };
    const onError = (ev: WebSocket.ErrorEvent) => {
      lastError = errorText(ev);
    };
    const onClose = (ev: WebSocket.CloseEvent) => {
      detach();
      d.fail(
        new Error(
          `dialHub: connection to ${target} closed before open (close code ${ev.code}` +
            `${ev.reason ? `, reason ${JSON.stringify(ev.reason)}` : ""})` +
            `${lastError ? `: ${lastError}` : ""}`,
        ),
      );
    };
    const detach = () => {
      w.removeEventListener("open", onOpen);
      w.removeEventListener("error", onError);
      w.removeEventListener("close", onClose);
    };
    w.addEventListener("open", onOpen);
    w.addEventListener("error", onError);
    w.addEventListener("close", onClose);
  };

  sock.once(secure ? "secureConnect" : "connect", onSecure);
  sock.on("error", onSockError);
  sock.once("close", onSockClose);
  return await d.promise;
}
