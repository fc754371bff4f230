import assert from "node:assert/strict";
import { LATEST_VERSION, MIGRATIONS, pendingMigrations } from "./migrations.ts";

Deno.test("migrations are numbered 1, 2, 3… with both dialects present", () => {
  MIGRATIONS.forEach((m, i) => {
    assert.equal(m.version, i + 1, `migration "${m.name}" is out of order`);
    assert.ok(m.sqlite.length > 0 && m.mysql.length > 0, `migration ${m.version} lacks a dialect`);
  });
  assert.equal(LATEST_VERSION, MIGRATIONS.length);
});

Deno.test("pendingMigrations returns only newer versions, oldest first", () => {
  assert.deepEqual(pendingMigrations(0), MIGRATIONS);
  assert.deepEqual(pendingMigrations(LATEST_VERSION), []);
});
