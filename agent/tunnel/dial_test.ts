import assert from "node:assert/strict";
import {
  dialHub,
  HubCertificatePinError,
  normalizeFingerprint,
  type TunnelSocket,
} from "./dial.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures

interface CertPair {
  cert: string;
  key: string;
  /** "sha256:AB:CD:…" as printed by openssl. */
  fp: string;
}

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function makeCert(dir: string, name: string): Promise<CertPair> {
  // Self-signed leaf, CA:FALSE, SAN IP:127.0.0.1 + DNS:localhost (what a hub would present).
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-addext",
    "keyUsage=critical,digitalSignature",
    "-addext",
    "extendedKeyUsage=serverAuth",
  ], dir);
  const printed = await run(
    "openssl",
    ["x509", "-in", `${name}.pem`, "-noout", "-fingerprint", "-sha256"],
    dir,
  );
  const m = printed.match(/Fingerprint=([0-9A-F:]+)/i);
  assert.ok(m, `unexpected openssl output: ${printed}`);
  return {
    cert: await Deno.readTextFile(`${dir}/${name}.pem`),
    key: await Deno.readTextFile(`${dir}/${name}.key`),
    fp: `sha256:${m[1]!.toUpperCase()}`,
  };
}

/** Generates the hub cert and an unrelated "rogue" cert in a temp dir, removed afterwards. */
async function withCerts(fn: (hub: CertPair, rogue: CertPair) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dial_test_" });
  try {
    const hub = await makeCert(dir, "hub");
    const rogue = await makeCert(dir, "rogue");
    assert.notEqual(hub.fp, rogue.fp);
    await fn(hub, rogue);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A second fingerprint that matches nothing (stands in for the backup pin). */
const BOGUS_PIN = "sha256:" + Array(32).fill("AB").join(":");

/** Deno.serve WebSocket echo server (optionally TLS). */
function echoServer(tlsCert?: CertPair): { port: number; shutdown: () => Promise<void> } {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    ...(tlsCert ? { cert: tlsCert.cert, key: tlsCert.key } : {}),
  }, (req) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("websocket only", { status: 426 });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  return { port: server.addr.port, shutdown: () => server.shutdown() };
}

/** Pull-style reader over message events. */
function inbox(sock: TunnelSocket): () => Promise<unknown> {
  const queue: unknown[] = [];
  const waiters: ((v: unknown) => void)[] = [];
  sock.addEventListener("message", (ev) => {
    const w = waiters.shift();
    if (w) w(ev.data);
    else queue.push(ev.data);
  });
  return () =>
    queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r));
}

/** Runs the close handshake and waits for the close event. */
function closeAndWait(sock: TunnelSocket): Promise<{ code: number; reason: string }> {
  const p = new Promise<{ code: number; reason: string }>((resolve) =>
    sock.addEventListener("close", (ev) => resolve({ code: ev.code, reason: ev.reason }))
  );
  sock.close(1000, "done");
  return p;
}

async function echoRoundTrip(sock: TunnelSocket, binarySize: number): Promise<void> {
  assert.equal(sock.readyState, 1, "dialHub must resolve only once OPEN");
  assert.equal(sock.binaryType, "arraybuffer");
  const next = inbox(sock);

  sock.send("hello hub ✓");
  assert.equal(await next(), "hello hub ✓");

  const payload = new Uint8Array(binarySize);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
  sock.send(payload);
  const got = await next();
  assert.ok(got instanceof ArrayBuffer, `binary should arrive as ArrayBuffer, got ${typeof got}`);
  assert.deepEqual(new Uint8Array(got), payload);

  const closed = await closeAndWait(sock);
  assert.equal(closed.code, 1000);
}

/**
 * Raw TLS listener (Deno.listenTls) that accepts ONE connection, completes the TLS handshake
 * and counts application bytes until the client closes (or, once a full HTTP request head has
 * arrived, closes itself so the client's dial fails fast).
 */
function countingTlsServer(cert: CertPair) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: cert.cert,
    key: cert.key,
  });
  const result = (async () => {
    const conn = await listener.accept();
    listener.close();
    let handshakeDone = false;
    let bytes = 0;
    let text = "";
    try {
      await conn.handshake();
      handshakeDone = true;
      const buf = new Uint8Array(16 * 1024);
      const dec = new TextDecoder();
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        bytes += n;
        text += dec.decode(buf.subarray(0, n), { stream: true });
        if (text.includes("\r\n\r\n")) break;
      }
    } catch {
      // reset / EOF without close_notify: the count so far is what matters
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    return { accepted: true, handshakeDone, bytes, text };
  })();
  return { port: (listener.addr as Deno.NetAddr).port, result };
}

/** Plain TCP listener that accepts one connection and never answers (no TLS, no HTTP). */
function silentTcpServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = Promise.withResolvers<void>();
  /** Resolves when the client closed its side: proves the dial released the socket. */
  const clientGone = (async () => {
    const conn = await listener.accept();
    listener.close();
    accepted.resolve();
    const buf = new Uint8Array(4096);
    let bytes = 0;
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        bytes += n;
      }
    } catch { /* reset counts as gone */ }
    conn.close();
    return bytes;
  })();
  return { port: (listener.addr as Deno.NetAddr).port, accepted: accepted.promise, clientGone };
}

// ---------------------------------------------------------------------------------------------
// 1. ws:// (npm:ws over a node socket with TCP_NODELAY)

Deno.test("dialHub ws://: text and binary echo over a no-delay socket", async () => {
  const srv = echoServer();
  try {
    const sock = await dialHub(`ws://127.0.0.1:${srv.port}/tunnel`, { connectTimeoutMs: 5000 });
    assert.ok(!(sock instanceof WebSocket), "ws:// uses npm:ws (Deno's client leaves Nagle on)");
    await echoRoundTrip(sock, 64 * 1024);
  } finally {
    await srv.shutdown();
  }
});

Deno.test("dialHub ws://: pins on a plaintext URL and malformed input are TypeErrors", async () => {
  await assert.rejects(
    dialHub("ws://127.0.0.1:1/", { connectTimeoutMs: 1000, certFingerprints: [BOGUS_PIN] }),
    TypeError,
  );
  await assert.rejects(
    dialHub("wss://127.0.0.1:1/", { connectTimeoutMs: 1000, certFingerprints: ["nope"] }),
    TypeError,
  );
  await assert.rejects(dialHub("https://127.0.0.1:1/", { connectTimeoutMs: 1000 }), TypeError);
  await assert.rejects(dialHub("not a url", { connectTimeoutMs: 1000 }), TypeError);
  await assert.rejects(dialHub("ws://127.0.0.1:1/", { connectTimeoutMs: 0 }), TypeError);
});

Deno.test("dialHub ws://: non-101 response rejects with the HTTP status", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("go away", { status: 403 }),
  );
  try {
    await assert.rejects(
      dialHub(`ws://127.0.0.1:${server.addr.port}/`, { connectTimeoutMs: 5000 }),
      (err: Error) => {
        assert.match(err.message, /closed before open \(close code \d+\).*403/);
        return true;
      },
    );
  } finally {
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------------------------
// 2. wss:// pinned (node:tls + npm:ws over the verified socket)

Deno.test("dialHub wss:// pinned: correct pin (+ bogus backup) → text and 200 KiB binary echo", async () => {
  await withCerts(async (hub) => {
    const srv = echoServer(hub);
    try {
      // Backup pin first, in the lowercase bare-hex form: any match in the set is accepted.
      const currentPin = hub.fp.slice(7).replaceAll(":", "").toLowerCase();
      const sock = await dialHub(`wss://127.0.0.1:${srv.port}/tunnel`, {
        connectTimeoutMs: 5000,
        certFingerprints: [BOGUS_PIN, currentPin],
      });
      assert.ok(!(sock instanceof WebSocket), "pinned wss:// must use the node:tls + npm:ws path");
      await echoRoundTrip(sock, 200 * 1024);
    } finally {
      await srv.shutdown();
    }
  });
});

Deno.test("dialHub wss:// pinned: non-101 response rejects with the HTTP status", async () => {
  await withCerts(async (hub) => {
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {}, cert: hub.cert, key: hub.key },
      () => new Response("go away", { status: 403 }),
    );
    try {
      await assert.rejects(
        dialHub(`wss://127.0.0.1:${server.addr.port}/`, {
          connectTimeoutMs: 5000,
          certFingerprints: [hub.fp],
        }),
        (err: Error) => {
          assert.ok(!(err instanceof HubCertificatePinError));
          assert.match(err.message, /closed before open \(close code 1006\).*403/);
          return true;
        },
      );
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("dialHub wss:// without pins uses the system roots: self-signed hub is rejected", async () => {
  await withCerts(async (hub) => {
    const srv = echoServer(hub);
    try {
      await assert.rejects(
        dialHub(`wss://127.0.0.1:${srv.port}/`, { connectTimeoutMs: 5000 }),
        /self-signed certificate|invalid peer certificate|UnknownIssuer/,
      );
    } finally {
      await srv.shutdown();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Pin mismatch: no application byte reaches the wrong server

Deno.test("dialHub wss:// pin mismatch: HubCertificatePinError and the rogue receives 0 bytes", async () => {
  await withCerts(async (hub, rogue) => {
    const srv = countingTlsServer(rogue);
    const err = await dialHub(`wss://127.0.0.1:${srv.port}/tunnel?token=SECRET`, {
      connectTimeoutMs: 5000,
      certFingerprints: [hub.fp, BOGUS_PIN],
    }).then(
      () => assert.fail("dial to the rogue must not succeed"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HubCertificatePinError, `got ${err}`);
    assert.equal(err.name, "HubCertificatePinError");
    assert.equal(err.presented, rogue.fp);
    assert.deepEqual(err.expected, [hub.fp, BOGUS_PIN]);
    assert.ok(err.message.includes(rogue.fp), err.message);

    const seen = await srv.result;
    assert.equal(seen.accepted, true, "rogue must have accepted the connection");
    assert.equal(seen.handshakeDone, true, "TLS must have completed (test is not vacuous)");
    assert.equal(seen.bytes, 0, `rogue received application bytes: ${JSON.stringify(seen.text)}`);
  });
});

Deno.test("dialHub wss:// canary: with the correct pin the counting server DOES see the upgrade request", async () => {
  await withCerts(async (hub) => {
    const srv = countingTlsServer(hub);
    // The counting server closes after the request head, so the dial fails (no 101): expected.
    // It also accepts exactly ONE connection and then stops listening: the upgrade request showing
    // up on that connection proves npm:ws used the pinned socket rather than dialing its own.
    await assert.rejects(
      dialHub(`wss://127.0.0.1:${srv.port}/tunnel`, {
        connectTimeoutMs: 5000,
        certFingerprints: [hub.fp],
      }),
      (e: Error) => !(e instanceof HubCertificatePinError) && /closed before open/.test(e.message),
    );
    const seen = await srv.result;
    assert.equal(seen.handshakeDone, true);
    assert.ok(seen.bytes > 0, "counter must see bytes when the pin matches");
    assert.match(seen.text, /^GET \/tunnel HTTP\/1\.1\r\n/);
    assert.match(seen.text, /\r\nupgrade: websocket\r\n/i);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. normalizeFingerprint

Deno.test("normalizeFingerprint: accepted and rejected forms", () => {
  const hex = "5c18b41a9da83f4f240ffbf7d5483b3f7bc0122f5fcfc83cbe5badae65bf33a2";
  const want =
    "sha256:5C:18:B4:1A:9D:A8:3F:4F:24:0F:FB:F7:D5:48:3B:3F:7B:C0:12:2F:5F:CF:C8:3C:BE:5B:AD:AE:65:BF:33:A2";
  const colon = hex.toUpperCase().match(/../g)!.join(":");
  const accepted: [string, string][] = [
    [want, want],
    [colon, want],
    [colon.toLowerCase(), want],
    [`sha256:${colon.toLowerCase()}`, want],
    [`SHA256:${colon}`, want],
    [hex, want],
    [hex.toUpperCase(), want],
    [`sha256:${hex}`, want],
  ];
  for (const [input, out] of accepted) {
    assert.equal(normalizeFingerprint(input), out, `input ${input}`);
  }
  const rejected: unknown[] = [
    "",
    "sha256:",
    hex.slice(2), // 31 bytes
    hex + "00", // 33 bytes
    colon.slice(3), // 31 pairs
    `${colon}:00`, // 33 pairs
    hex.replace("5c", "zz"), // non-hex
    colon.replace(":", ""), // partial colons
    colon.replaceAll(":", "-"), // other separator
    colon.replaceAll(":", " "),
    ` ${hex}`, // surrounding whitespace
    `${hex}\n`,
    `sha1:${hex}`,
    `sha512:${hex}`,
    "sha256:" + "AB:".repeat(19) + "AB", // SHA-1 length
    "XBi0Gp2oP08kD/v31Ug7P3vAEi9fz8g8vlutrmW/M6I=", // base64 of the same digest
    `sha256//${hex}`,
    undefined,
    42,
  ];
  for (const input of rejected) {
    assert.throws(
      () => normalizeFingerprint(input as string),
      TypeError,
      `should reject ${JSON.stringify(input)}`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// 5. Timeout and abort leave nothing open

Deno.test("dialHub wss:// pinned: connect timeout against a listener that never answers TLS", async () => {
  const srv = silentTcpServer();
  const t0 = performance.now();
  await assert.rejects(
    dialHub(`wss://127.0.0.1:${srv.port}/`, {
      connectTimeoutMs: 300,
      certFingerprints: [BOGUS_PIN],
    }),
    (e: Error) => {
      assert.equal(e.name, "TimeoutError");
      assert.match(e.message, /timed out after 300 ms .*TLS handshake/);
      return true;
    },
  );
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 290 && elapsed < 2000, `elapsed ${elapsed} ms`);
  await srv.clientGone; // the dial closed its socket
});

Deno.test("dialHub wss:// pinned: abort signal rejects and releases the socket", async () => {
  const srv = silentTcpServer();
  const ac = new AbortController();
  const dial = dialHub(`wss://127.0.0.1:${srv.port}/`, {
    connectTimeoutMs: 60_000,
    certFingerprints: [BOGUS_PIN],
    signal: ac.signal,
  });
  await srv.accepted;
  ac.abort(new Error("agent shutting down"));
  await assert.rejects(dial, (e: Error) => {
    assert.equal(e.name, "AbortError");
    assert.match(e.message, /aborted/);
    assert.equal((e.cause as Error).message, "agent shutting down");
    return true;
  });
  await srv.clientGone;
});

Deno.test("dialHub ws://: connect timeout and abort against a silent listener", async () => {
  const a = silentTcpServer();
  await assert.rejects(
    dialHub(`ws://127.0.0.1:${a.port}/`, { connectTimeoutMs: 200 }),
    (e: Error) => e.name === "TimeoutError" && /WebSocket handshake/.test(e.message),
  );
  assert.ok((await a.clientGone) > 0, "the server saw the (unanswered) upgrade request");

  const b = silentTcpServer();
  const ac = new AbortController();
  const dial = dialHub(`ws://127.0.0.1:${b.port}/`, {
    connectTimeoutMs: 60_000,
    signal: ac.signal,
  });
  await b.accepted;
  ac.abort();
  await assert.rejects(dial, (e: Error) => e.name === "AbortError");
  await b.clientGone;
});

Deno.test("dialHub: an already-aborted signal rejects without connecting", async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    dialHub("wss://127.0.0.1:1/", {
      connectTimeoutMs: 1000,
      certFingerprints: [BOGUS_PIN],
      signal: ac.signal,
    }),
    (e: Error) => e.name === "AbortError",
  );
});
