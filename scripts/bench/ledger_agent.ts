/**
 * Agent side of `deno task bench ledger`: SETTLED frames verified and committed per second by the
 * real `SettlementChecker` over a real `AgentLedger` (log fdatasync'd, then SQLite WAL
 * synchronous=FULL, per batch of appends), frames arriving back to back as they would off the
 * tunnel, against the same with each frame sent only after the previous ack (every append its own
 * two syncs: the baseline). Its two halves alone, for the split: `verifySettlement` (re-price +
 * hash, no I/O) and one awaited `AgentLedger.append` at a time. Latency: frame in → its ack.
 */
import { systemClock } from "../../protocol/clock.ts";
import type { ControlFrame, Frame } from "../../protocol/frames.ts";
import { createLogger } from "../../runtime/log.ts";
import { AgentLedger } from "../../agent/ledger/mod.ts";
import { honestFrames } from "../../agent/ledger/_test_frames.ts";
import {
  type OwnUsage,
  SettlementChecker,
  UsageBook,
  verifySettlement,
} from "../../agent/ledger/verify.ts";

const AGENT = "agt_bench0000000000000000";

export type AgentPart = "verify" | "append" | "verify+commit, 1 at a time" | "verify+commit";

export interface AgentRun {
  part: AgentPart;
  count: number;
  perSec: number;
  latenciesMs: Float64Array;
}

/** Three ledgers in one temp dir, one per part, so each part continues its own chain. */
export class AgentBench {
  #round = 0;
  private constructor(
    readonly dir: string,
    readonly ledgers: Record<AgentPart, AgentLedger>,
  ) {}

  static async open(): Promise<AgentBench> {
    const dir = await Deno.makeTempDir({ prefix: "aq_bench_agent_ledger_" });
    const open = (name: string) => AgentLedger.open(`${dir}/${name}`, { agentId: AGENT });
    return new AgentBench(dir, {
      verify: await open("verify"),
      append: await open("append"),
      "verify+commit, 1 at a time": await open("commit1"),
      "verify+commit": await open("commit"),
    });
  }

  async run(part: AgentPart, count: number): Promise<AgentRun> {
    const ledger = this.ledgers[part];
    const tag = `${part}-${this.#round++}`;
    const last = ledger.head().seq === 0 ? null : ledger.entriesFrom(ledger.head().seq, 1)[0]!;
    const work = await honestFrames(AGENT, last, count, tag);
    const latenciesMs = new Float64Array(count);
    const t0 = performance.now();
    if (part === "verify") {
      let head = ledger.head();
      for (const [i, { frame, own }] of work.entries()) {
        const start = performance.now();
        const v = await verifySettlement(frame, own, head, AGENT);
        if (!v.ok) throw new Error(`bench frame disputed: ${v.reason}`);
        head = { ...head, seq: frame.seq, hash: frame.hash };
        latenciesMs[i] = performance.now() - start;
      }
    } else if (part === "append") {
      for (const [i, { frame }] of work.entries()) {
        const start = performance.now();
        const {
          type: _t,
          zoneMultiplier: _z,
          payoutRatio: _p,
          seq: _s,
          prevHash: _h,
          hash: _x,
          ...f
        } = frame;
        await ledger.append(f);
        latenciesMs[i] = performance.now() - start;
      }
    } else {
      await this.#checked(ledger, work, latenciesMs, part === "verify+commit, 1 at a time");
    }
    const seconds = (performance.now() - t0) / 1000;
    return { part, count, perSec: count / seconds, latenciesMs };
  }

  /** Frames handed to the checker back to back (or each after the previous ack); done when all are acked. */
  async #checked(
    ledger: AgentLedger,
    work: { frame: Frame<"settled">; own: OwnUsage }[],
    latenciesMs: Float64Array,
    oneAtATime: boolean,
  ): Promise<void> {
    const book = new UsageBook(systemClock, work.length + 1);
    for (const { frame, own } of work) book.put(frame.requestId, own);
    const log = createLogger({ service: "bench", level: "error", write: () => {} });
    const checker = new SettlementChecker({ ledger, book, agentId: AGENT, log });
    const sentAt = new Map<string, number>();
    let acked = 0;
    const { promise: done, resolve, reject } = Promise.withResolvers<void>();
    const reply = (f: ControlFrame) => {
      if (f.type !== "settle_ack") {
        return reject(new Error(`bench frame disputed: ${JSON.stringify(f)}`));
      }
      latenciesMs[acked++] = performance.now() - sentAt.get(f.requestId)!;
      if (acked === work.length) resolve();
    };
    for (const { frame } of work) {
      sentAt.set(frame.requestId, performance.now());
      const answered = checker.onSettled(frame, reply);
      if (oneAtATime) await answered;
    }
    await done;
    checker.close();
  }

  async close(): Promise<void> {
    for (const l of Object.values(this.ledgers)) await l.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}
