/**
 * `wss://` with a pinned hub certificate, with real processes: the locked agent connects through
 * the pin; pointed at a server with another certificate it refuses before sending a single byte.
 */
import assert from "node:assert/strict";
import { admin, enrollAgent, runAgent, startHub, waitOnline } from "./support/cluster.ts";
import { tempDir, waitFor } from "./support/process.ts";

async function openssl(args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A self-signed CA:FALSE leaf for 127.0.0.1 and its pin (`sha256:AB:…`). */
async function makeCert(dir: string, name: string) {
  // deno-fmt-ignore
  await openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-addext", "basicConstraints=critical,CA:FALSE",
    "-addext", "extendedKeyUsage=serverAuth",
  ], dir);
  const fp = await openssl(
    ["x509", "-in", `${name}.pem`, "-noout", "-fingerprint", "-sha256"],
    dir,
  );
  return {
    certPath: `${dir}/${name}.pem`,
    pem: await Deno.readTextFile(`${dir}/${name}.pem`),
    key: await Deno.readTextFile(`${dir}/${name}.key`),
    keyPath: `${dir}/${name}.key`,
    pin: "sha256:" + fp.trim().split("=")[1],
  };
}

/** A TLS listener with its own certificate that counts every application byte it receives. */
function countingServer(cert: { pem: string; key: string }) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: cert.pem,
    key: cert.key,
  });
  const stats = { accepted: 0, handshakes: 0, bytes: 0 };
  const conns = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const conn of listener) {
      stats.accepted++;
      const done = (async () => {
        const buf = new Uint8Array(4096);
        try {
          await conn.handshake();
          stats.handshakes++;
          for (let n; (n = await conn.read(buf)) !== null;) stats.bytes += n;
        } catch { /* the client hung up during TLS: expected for a refused pin */ }
        try {
          conn.close();
        } catch { /* already closed */ }
      })();
      conns.add(done);
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    stats,
    async close() {
      listener.close();
      await loop;
      await Promise.all(conns);
    },
  };
}

Deno.test("wss:// hub: pinned agent connects; a server with another certificate gets 0 bytes", async () => {
  const tmp = await tempDir("tls");
  const hubCert = await makeCert(tmp.path, "hub-tls");
  const rogueCert = await makeCert(tmp.path, "rogue-tls");
  const hub = await startHub({
    dir: tmp.path,
    env: { HUB_TLS_CERT: hubCert.certPath, HUB_TLS_KEY: hubCert.keyPath },
    caPem: hubCert.pem,
  });
  const rogue = countingServer(rogueCert);
  const agents = [];
  try {
    assert.match(hub.url, /^https:\/\/127\.0\.0\.1:/);
    const bogusBackup = "sha256:" + Array(32).fill("00").join(":");

    // Pinned to the hub's certificate (a backup pin beside it): the locked agent connects over wss.
    const good = await enrollAgent(hub, `${tmp.path}/good`, {
      fingerprints: [bogusBackup, hubCert.pin],
    });
    agents.push(runAgent(good.dir));
    await waitOnline(hub, good.id);
    const echo = await admin(hub, "POST", `/agents/${good.id}/echo`, { payload: "over tls" });
    assert.equal(echo.json.payload, "over tls");

    // Same pin, but the address answers with another certificate: refused before any byte.
    const fooled = await enrollAgent(hub, `${tmp.path}/fooled`, {
      hubUrl: `https://127.0.0.1:${rogue.port}`,
      fingerprints: [hubCert.pin],
    });
    const fooledProc = runAgent(fooled.dir);
    agents.push(fooledProc);
    const refusal = await fooledProc.waitForLine(
      (l) => l.msg === "cannot reach hub" && /pin mismatch/.test(String(l.error)),
      "pin mismatch refusal",
    );
    assert.match(
      String(refusal.error),
      new RegExp(rogueCert.pin.slice(7, 30)),
      "names the presented fingerprint",
    );
    await waitFor(() => rogue.stats.handshakes >= 2, "the rogue saw at least two redials");
    await fooledProc.stop();
    assert.ok(rogue.stats.accepted >= 2, "the rogue was reached (the test is not vacuous)");
    assert.equal(rogue.stats.bytes, 0, "no HTTP upgrade, no HELLO: not one application byte");
    assert.ok(
      !hub.proc.lines.some((l) => l.agentId === fooled.id && /handshake/.test(String(l.msg))),
    );
  } finally {
    for (const a of agents) await a.stop();
    await rogue.close();
    hub.client?.close();
    await hub.proc.stop();
    await tmp.remove();
  }
});
