/**
 * Reading the hub's usage records from the admin API by the id a client saw (`x-request-id`),
 * and the stream-vs-plain comparison every vendor surface must pass.
 */
import assert from "node:assert/strict";
import { admin, type HubProc } from "./cluster.ts";
import { waitFor } from "./process.ts";

// deno-lint-ignore no-explicit-any -- a usage record as the admin API returns it (JSON)
export type UsageRow = Record<string, any>;

/**
 * The usage record of the request the client saw as `traceId`, or null when the hub logged it as
 * not complete (a stream whose end raced the client's close); it must also be listed by key.
 */
export async function usageRecordOf(
  hub: HubProc,
  traceId: string | null,
): Promise<UsageRow | null> {
  const line = await waitFor(
    () =>
      hub.proc.lines.find((l) =>
        l.msg === "request finished" && (l.requestId === traceId || l.traceId === traceId)
      ),
    `request finished ${traceId}`,
  );
  if (line.outcome !== "complete") return null;
  const record = await waitFor(async () => {
    const res = await admin(hub, "GET", `/usage/${line.requestId}`);
    return res.status === 200 ? res.json : undefined;
  }, `usage of ${line.requestId}`);
  const listed = await admin(hub, "GET", `/usage?keyId=${record.keyId}&limit=1000`);
  assert.equal(listed.status, 200);
  const rows: UsageRow[] = Array.isArray(listed.json)
    ? listed.json
    : listed.json.records ?? listed.json.usage ?? listed.json.data;
  assert.deepEqual(rows.find((r) => r.requestId === line.requestId), record, "listed by key");
  return record;
}

/** Sends `send()` until the hub records a completed request; returns its answer and record. */
export async function recordedUsage<R extends { headers: Headers }>(
  hub: HubProc,
  send: () => Promise<R>,
): Promise<{ res: R; record: UsageRow }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const res = await send();
    const record = await usageRecordOf(hub, res.headers.get("x-request-id"));
    if (record) return { res, record };
  }
  throw new Error("the hub never recorded the request as complete");
}

/** A streamed and a plain request of the same body were recorded identically. */
export function assertSameUsage(plain: UsageRow, streamed: UsageRow, what: string): void {
  assert.notEqual(plain.requestId, streamed.requestId);
  for (const field of ["vendor", "model", "promptTokens", "serviceTier", "usage"]) {
    assert.deepEqual(streamed[field], plain[field], `${what}: ${field} equal stream vs plain`);
  }
  assert.ok(plain.usage.outputTokens > 0, `${what}: output tokens counted`);
}
