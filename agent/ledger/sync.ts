/**
 * The agent's side of ledger synchronisation (the hub's is hub/billing/ledger_sync.ts).
 *
 * On every new session: RECONCILE with the agent's head (and the newest checkpoint the hub has
 * not countersigned yet). The hub answers with SETTLED frames for entries the agent missed while
 * offline (each verified like a live one against the agent's durable own counts) and
 * RECONCILE_REPLY; while `more`, the agent asks again once the batch is processed. When heads are
 * equal, each own count still unsettled and older than `claimGraceMs` is sent as CLAIM (marked
 * `claimed`, so a payout capped at the hold is accepted); CLAIM_RESULT `rejected` marks it
 * rejected (kept for audit, never re-sent). LEDGER_HASHES_REQUEST is answered from the ledger
 * (the hub's divergence search). Every `checkpointEvery` entries the agent signs a checkpoint;
 * the hub's countersigned note is verified against the pinned hub key and stored.
 * @module
 */
import {
  addTotals,
  type ChainHead,
  GENESIS_HASH,
  type LedgerEntry,
  signCheckpoint,
  type Totals,
  verifyCheckpoint,
} from "../../protocol/chain.ts";
import type { Clock } from "../../protocol/clock.ts";
import type { ControlFrame, Frame } from "../../protocol/frames.ts";
import { type Signer, type Verifier, verifierFor } from "../../protocol/identity.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { AgentLedger } from "./mod.ts";
import type { OwnCountStore } from "./own_counts.ts";
import type { SettlementChecker } from "./verify.ts";

type Send = (frame: ControlFrame) => void;

export interface AgentLedgerSyncDeps {
  ledger: AgentLedger;
  checker: SettlementChecker;
  counts: OwnCountStore;
  identity: Signer;
  /** The hub identity key pinned at `agent init`. */
  hubKey: Verifier;
  clock: Clock;
  log: Logger;
  /** Sign a checkpoint every this many entries (0: never). */
  checkpointEvery: number;
  /** A completion is claimed only once it is this old (its settlement may still be coming). */
  claimGraceMs: number;
}

const ZERO: Totals = { official: "0.00", userCharge: "0.00", agentPayout: "0.00" };
/** CLAIM frames per pass (the rest go on the next reconciliation). */
const CLAIMS_PER_PASS = 200;

export class AgentLedgerSync {
  #send?: Send;
  #askedAtSeq = -1;
  readonly #claiming = new Set<string>();
  #self?: Promise<Verifier>;

  constructor(private readonly deps: AgentLedgerSyncDeps) {}

  /** A session opened (after WELCOME): compare heads, offer the pending checkpoint. */
  onOpen(send: Send): void {
    this.#send = send;
    this.#claiming.clear();
    this.#reconcile();
    const pending = this.deps.counts.checkpoints().filter((c) => !c.hubSigned).at(-1);
    if (pending) send({ type: "checkpoint", note: pending.note });
  }

  onClose(): void {
    this.#send = undefined;
  }

  /** After each appended entry (SettlementChecker's hook): a checkpoint every K entries. */
  onAppended(entry: LedgerEntry, reply: Send): void {
    const every = this.deps.checkpointEvery;
    if (every <= 0 || entry.seq % every !== 0) return;
    this.#headAt(entry.seq).then(async (head) => {
      const note = await signCheckpoint(head, "agent", this.deps.identity);
      this.deps.counts.saveCheckpoint({
        seq: head.seq,
        note,
        hubSigned: false,
        createdAtMs: this.deps.clock.nowMs(),
      });
      reply({ type: "checkpoint", note });
    }).catch((e) => this.deps.log.error("cannot sign a checkpoint", { error: errorMessage(e) }));
  }

  /**
   * The chain head at `seq` with its running totals (appends are pipelined, so the ledger's own
   * head may already be further): the last checkpoint below it plus the entries after.
   */
  async #headAt(seq: number): Promise<ChainHead> {
    const { ledger, counts } = this.deps;
    const agentId = ledger.head().agentId;
    let head: ChainHead = { agentId, seq: 0, hash: GENESIS_HASH, totals: ZERO };
    const below = counts.checkpoints().filter((c) => c.seq < seq).at(-1);
    if (below) {
      this.#self ??= verifierFor(this.deps.identity.publicKey);
      const v = await verifyCheckpoint(below.note, { agent: await this.#self });
      if (v.ok && ledger.hashAt(v.head.seq) === v.head.hash) head = v.head;
    }
    while (head.seq < seq) {
      const page = ledger.entriesFrom(head.seq + 1, Math.min(1000, seq - head.seq));
      if (page.length === 0) throw new Error(`no entry at seq ${head.seq + 1}`);
      for (const e of page) {
        head = { agentId, seq: e.seq, hash: e.hash, totals: addTotals(head.totals, e) };
      }
    }
    return head;
  }

  /** Handles a ledger-sync frame from the hub; false if `frame` is not one. */
  onFrame(frame: ControlFrame, send: Send): boolean {
    this.#send = send;
    switch (frame.type) {
      case "reconcile_request":
        this.#reconcile();
        return true;
      case "reconcile_reply":
        void this.#onReply(frame).catch((e) =>
          this.deps.log.error("ledger reconcile failed", { error: errorMessage(e) })
        );
        return true;
      case "ledger_hashes_request":
        send({
          type: "ledger_hashes",
          reqId: frame.reqId,
          hashes: frame.seqs.map((s) => this.deps.ledger.hashAt(s) ?? ""),
        });
        return true;
      case "claim_result":
        this.#onClaimResult(frame);
        return true;
      case "checkpoint_reply":
        void this.#onCheckpointReply(frame).catch((e) =>
          this.deps.log.error("checkpoint reply failed", { error: errorMessage(e) })
        );
        return true;
      default:
        return false;
    }
  }

  #reconcile(): void {
    const head = this.deps.ledger.head();
    this.#askedAtSeq = head.seq;
    this.#send?.({ type: "reconcile", seq: head.seq, hash: head.hash, ...head.totals });
  }

  async #onReply(r: Frame<"reconcile_reply">): Promise<void> {
    const { log, checker, ledger } = this.deps;
    switch (r.status) {
      case "equal":
        log.debug("ledger agrees with the hub", { seq: r.seq });
        return this.#claim();
      case "catching_up": {
        await checker.idle(); // the batch's SETTLED frames arrived before this reply
        const head = ledger.head();
        if (head.seq <= this.#askedAtSeq) {
          // No progress: a duplicate reply (two RECONCILEs crossed) is fine; otherwise stalled.
          if (head.seq >= r.seq) return;
          log.error("ledger catch-up stalled: the hub's entries do not verify", {
            seq: head.seq,
            hubSeq: r.seq,
          });
          return;
        }
        log.info("ledger caught up a batch", { seq: head.seq, hubSeq: r.seq, more: r.more });
        return this.#reconcile();
      }
      default:
        log.error("ALERT ledger diverges from the hub's", {
          status: r.status,
          divergentSeq: r.divergentSeq,
          hubSeq: r.seq,
          seq: ledger.head().seq,
        });
    }
  }

  /** Claims own counts the hub never settled (only after heads agree). */
  #claim(): void {
    const { counts, ledger, clock, log } = this.deps;
    const cutoff = clock.nowMs() - this.deps.claimGraceMs;
    let sent = 0;
    for (const c of counts.pending(1000)) {
      if (sent >= CLAIMS_PER_PASS || !this.#send) break;
      if (c.status === "rejected" || c.atMs > cutoff || this.#claiming.has(c.requestId)) continue;
      if (ledger.entryFor(c.requestId)) {
        counts.delete(c.requestId); // settled already (cannot normally happen: same commit)
        continue;
      }
      counts.setStatus(c.requestId, "claimed");
      this.#claiming.add(c.requestId);
      this.#send({
        type: "claim",
        requestId: c.requestId,
        vendor: c.vendor,
        model: c.model,
        usage: c.usage,
        promptTokens: c.promptTokens,
        serviceTier: c.serviceTier,
        completedAtMs: c.atMs,
      });
      sent++;
      log.info("claiming an unsettled completion", {
        requestId: c.requestId,
        endSent: c.endSent,
      });
    }
  }

  #onClaimResult(r: Frame<"claim_result">): void {
    this.#claiming.delete(r.requestId);
    if (r.outcome === "rejected") {
      this.deps.log.warn("claim rejected by the hub", { requestId: r.requestId, reason: r.reason });
      if (!this.deps.ledger.entryFor(r.requestId)) {
        this.deps.counts.setStatus(r.requestId, "rejected", r.reason);
      }
      return;
    }
    this.deps.log.info("claim settled", { requestId: r.requestId, seq: r.seq, reason: r.reason });
  }

  async #onCheckpointReply(r: Frame<"checkpoint_reply">): Promise<void> {
    const { log, counts, identity, hubKey, clock } = this.deps;
    if (!r.note) return log.warn("hub refused a checkpoint", { seq: r.seq, reason: r.reason });
    this.#self ??= verifierFor(identity.publicKey);
    const checked = await verifyCheckpoint(r.note, { agent: await this.#self, hub: hubKey });
    if (!checked.ok) {
      return log.error("ALERT hub countersignature on a checkpoint is invalid", {
        seq: r.seq,
        reason: checked.reason,
      });
    }
    const mine = counts.checkpoints().find((c) => c.seq === checked.head.seq);
    if (!mine || this.deps.ledger.hashAt(checked.head.seq) !== checked.head.hash) {
      return log.error("ALERT hub countersigned a checkpoint the agent did not sign", {
        seq: checked.head.seq,
      });
    }
    counts.saveCheckpoint({
      seq: checked.head.seq,
      note: r.note,
      hubSigned: true,
      createdAtMs: clock.nowMs(),
    });
    log.info("checkpoint countersigned by the hub", { seq: checked.head.seq });
  }
}
