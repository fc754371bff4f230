import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { USAGE_FIELDS } from "../../protocol/usage.ts";
import { snakeCase, USAGE_COLUMNS, USAGE_FIELD_COLUMNS } from "./_usage.ts";
import { openStore } from "./mod.ts";

Deno.test("usage fields map to snake_case columns", () => {
  assert.equal(snakeCase("cacheWrite5mTokens"), "cache_write_5m_tokens");
  assert.equal(snakeCase("cacheWrite1hTokens"), "cache_write_1h_tokens");
  assert.equal(snakeCase("audioSeconds"), "audio_seconds");
  assert.equal(new Set(USAGE_FIELD_COLUMNS).size, USAGE_FIELDS.length);
  for (const c of USAGE_FIELD_COLUMNS) assert.match(c, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
});

Deno.test("the migrated usage_records table has every column the store writes, and its indexes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aq_usage_" });
  try {
    await (await openStore(`sqlite:${dir}/hub.db`)).close();
    const db = new DatabaseSync(`${dir}/hub.db`, { readOnly: true });
    try {
      const columns = db.prepare("PRAGMA table_info(usage_records)").all().map((c) => c.name);
      // A usage field added without a migration that adds its column fails here, by name.
      assert.deepEqual(USAGE_COLUMNS.filter((c) => !columns.includes(c)), []);
      const indexes = db.prepare("PRAGMA index_list(usage_records)").all().map((i) => i.name);
      for (const [name, first] of [["key", "key_id"], ["user", "user_id"], ["agent", "agent_id"]]) {
        const cols = db.prepare(`PRAGMA index_info(usage_records_${name})`).all().map((c) =>
          c.name
        );
        assert.ok(indexes.includes(`usage_records_${name}`));
        assert.deepEqual(cols, [first, "completed_at_ms"]);
      }
    } finally {
      db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
