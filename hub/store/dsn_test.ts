import assert from "node:assert/strict";
import { parseStoreDsn, redactDsn } from "./dsn.ts";
import { openStore } from "./mod.ts";

Deno.test("parseStoreDsn reads sqlite paths and :memory:", () => {
  assert.deepEqual(parseStoreDsn("sqlite:./data/hub.db"), {
    kind: "sqlite",
    path: "./data/hub.db",
  });
  assert.deepEqual(parseStoreDsn("sqlite:/var/lib/hub.db"), {
    kind: "sqlite",
    path: "/var/lib/hub.db",
  });
  assert.deepEqual(parseStoreDsn("sqlite::memory:"), { kind: "sqlite", path: ":memory:" });
  assert.throws(() => parseStoreDsn("sqlite:"), TypeError);
});

Deno.test("parseStoreDsn reads mysql URLs, decoding user and password", () => {
  assert.deepEqual(parseStoreDsn("mysql://hub:p%40ss%2Fw@db.internal:3307/aqueduct"), {
    kind: "mysql",
    host: "db.internal",
    port: 3307,
    user: "hub",
    password: "p@ss/w",
    database: "aqueduct",
  });
  assert.deepEqual(parseStoreDsn("mysql://root@127.0.0.1/test"), {
    kind: "mysql",
    host: "127.0.0.1",
    port: 3306,
    user: "root",
    password: "",
    database: "test",
  });
});

Deno.test("unsupported and malformed DSNs are TypeErrors that never show the password", () => {
  assert.throws(() => parseStoreDsn("postgres://u:hunter2@h/db"), {
    name: "TypeError",
    message: 'Cannot open store: unsupported DSN scheme "postgres:" (expected sqlite: or mysql://)',
  });
  for (
    const dsn of [
      "mysql://u:hunter2@h:3306",
      "mysql://u:hunter2@h:3306/db?ssl=1",
      "mysql://u:hunter2@h:99999/db",
    ]
  ) {
    assert.throws(() => parseStoreDsn(dsn), (e) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.ok(!e.message.includes("hunter2"), e.message);
      assert.match(e.message, /^Cannot open store: /);
      return true;
    });
  }
});

Deno.test("openStore rejects an unsupported scheme with a TypeError", async () => {
  await assert.rejects(openStore("postgres://u@h/db"), TypeError);
});

Deno.test("a failed mysql connection names the server but not the password", async () => {
  await assert.rejects(openStore("mysql://root:hunter2@127.0.0.1:1/nope"), (e) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /^Cannot open store mysql:\/\/root@127\.0\.0\.1:1\/nope: /);
    assert.ok(!e.message.includes("hunter2"), e.message);
    return true;
  });
});

Deno.test("redactDsn hides passwords, even with unencoded @ or / in them", () => {
  assert.equal(redactDsn("mysql://u:secret@h:3306/db"), "mysql://u:***@h:3306/db");
  assert.equal(redactDsn("mysql://u:se@c/ret@h/db"), "mysql://u:***@h/db");
  assert.equal(redactDsn("mysql://root@127.0.0.1:3306/test"), "mysql://root@127.0.0.1:3306/test");
  assert.equal(redactDsn("sqlite:./data/hub.db"), "sqlite:./data/hub.db");
});
