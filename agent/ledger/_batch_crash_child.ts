/**
 * Test helper (not a test) for batch_crash_test.ts: feeds SETTLED frames for the ledger in
 * `Deno.args[0]` to a real `SettlementChecker` back to back, 100 at a time (so appends share group
 * commits), forever, and prints each acknowledged seq. The parent SIGKILLs it at random moments.
 */
import type { ControlFrame } from "../../protocol/frames.ts";
import { systemClock } from "../../protocol/clock.ts";
import { createLogger } from "../../runtime/log.ts";
import { AgentLedger } from "./mod.ts";
import { honestFrames } from "./_test_frames.ts";
import { SettlementChecker, UsageBook } from "./verify.ts";

const AGENT = "agt_crash000000000000000";
const ledger = await AgentLedger.open(Deno.args[0]!, { agentId: AGENT });
const book = new UsageBook(systemClock);
const log = createLogger({ service: "crash-child", level: "error", write: () => {} });
const checker = new SettlementChecker({ ledger, book, agentId: AGENT, log });
const enc = new TextEncoder();
const reply = (f: ControlFrame) => {
  if (f.type !== "settle_ack") throw new Error(`unexpected reply ${JSON.stringify(f)}`);
  Deno.stdout.writeSync(enc.encode(`${f.seq}\n`));
};
for (let round = 0;; round++) {
  // Frames first (hashing is slow), so that once acks flow the child is verifying and writing.
  const head = ledger.head();
  const last = head.seq === 0 ? null : ledger.entriesFrom(head.seq, 1)[0]!;
  const frames = await honestFrames(AGENT, last, 2000, `${Date.now()}-${round}`);
  for (const { frame, own } of frames) book.put(frame.requestId, own);
  for (let at = 0; at < frames.length; at += 100) {
    await Promise.all(
      frames.slice(at, at + 100).map(({ frame }) => checker.onSettled(frame, reply)),
    );
  }
}
