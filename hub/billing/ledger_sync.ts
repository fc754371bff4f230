/**
 * The hub's side of ledger synchronisation with each agent (issue #5 items 6–8, DESIGN §4).
 *
 * Frames (protocol/frames.ts) on a session, per agent in arrival order:
 * - RECONCILE {head} (agent, at connect, after each catch-up batch, or when asked with
 *   RECONCILE_REQUEST every `HUB_RECONCILE_INTERVAL_MS`). The hub first re-hashes its own chain
 *   from the last mutually signed checkpoint to its head (an entry edited in the hub's database
 *   is found here, by seq), then compares heads: equal → RECONCILE_REPLY equal; the agent behind
 *   with a matching prefix → up to `batch` SETTLED frames (the stored entries with their pricing
 *   inputs) then RECONCILE_REPLY catching_up {more}; hashes that differ → a k-ary search over
 *   LEDGER_HASHES_REQUEST/LEDGER_HASHES round trips (a hash at seq k commits to 1..k, so each
 *   probe compares a whole prefix) narrows to the first divergent seq, never below the last
 *   checkpoint; it is stored (`GET /admin/ledger/divergences`) and logged as an alert.
 * - CLAIM (agent, after catch-up): a completion the agent measured but never saw settled. Policy:
 *   refused unless the request was dispatched to this agent (dispatch record) and holds a
 *   reservation; a request already settled is refused as a replay (nothing booked twice).
 *   Otherwise the agent is paid its payout on ITS measured usage, capped at the hold (the
 *   request's worst case); the user is charged (capped at the hold and the balance) only if the
 *   hub saw the response complete and delivered it (dispatch marked delivered) — else the hold
 *   is released and the platform bears the payout (postings still sum to zero). Answered with
 *   the entry's SETTLED, then CLAIM_RESULT. The delivered mark is written once the client has
 *   the last byte, so a hub killed before that commit (or an agent killed after counting but
 *   before RESPONSE_END) leaves a response the client got but the hub cannot prove it sent: it
 *   is settled as undelivered (the platform pays; tests/ledger_crash_test.ts allows this only
 *   for requests in flight or not yet booked at a crash). The dispatch record is durable before
 *   the REQUEST leaves (`Biller.dispatchedTo` is awaited), so every claimable completion has one.
 * - CHECKPOINT {note} (agent, every K entries): verified with the agent's enrolled key, checked
 *   against the hub's own chain (hash and totals at that seq), countersigned with the hub
 *   identity key, stored, and returned in CHECKPOINT_REPLY.
 * @module
 */
import {
  type ChainHead,
  GENESIS_HASH,
  signCheckpoint,
  type Totals,
  verifyChain,
  verifyCheckpoint,
} from "../../protocol/chain.ts";
import type { Clock } from "../../protocol/clock.ts";
import type { ControlFrame, Frame } from "../../protocol/frames.ts";
import { type Signer, verifierFor } from "../../protocol/identity.ts";
import { parseUsd } from "../../protocol/money.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { DivergenceRecord, HubStore } from "../store/mod.ts";
import { dispatchProblem } from "../store/_ledger_sync.ts";
import type { Biller } from "./biller.ts";

/** The part of an agent session ledger sync uses. */
export interface SyncSession {
  readonly agentId: string;
  readonly closed: boolean;
  send(frame: ControlFrame): void;
}

export interface LedgerSyncOptions {
  store: HubStore;
  biller: Biller;
  identity: Signer;
  clock: Clock;
  log: Logger;
  /** SETTLED frames per catch-up batch (default 100). */
  batch?: number;
  /** How long to wait for the agent's LEDGER_HASHES (default 10 s). */
  hashTimeoutMs?: number;
}

/** Probes per round trip of the divergence search (a k-ary search: ⌈log16 n⌉ round trips). */
const PROBES = 15;
/** A verified stretch of the hub's chain is re-used for this long (a catch-up loop), then redone. */
const VERIFIED_TTL_MS = 30_000;
/** A claimed completion must lie this close to its dispatch (the hold's lifetime). */
const CLAIM_WINDOW_MS = 60 * 60_000;
const ZERO: Totals = { official: "0.00", userCharge: "0.00", agentPayout: "0.00" };

interface PendingHashes {
  resolve: (hashes: string[]) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface SessionState {
  queue: Promise<unknown>;
  /** The next RECONCILE re-hashes the whole stretch (at connect, and when the hub asked). */
  fullCheck: boolean;
  nextReq: number;
  pending: Map<number, PendingHashes>;
}

type Anchor = { seq: number; hash: string; totals: Totals };

export class LedgerSync {
  readonly #states = new WeakMap<SyncSession, SessionState>();
  readonly #verified = new Map<string, Anchor & { atMs: number }>();
  readonly #batch: number;

  constructor(private readonly o: LedgerSyncOptions) {
    this.#batch = o.batch ?? 100;
  }

  /** Handles one ledger-sync frame from `session`; returns false for a frame that is not one. */
  onFrame(session: SyncSession, frame: ControlFrame): boolean {
    const state = this.#state(session);
    const run = (what: string, fn: () => Promise<void>) => {
      state.queue = state.queue.then(fn).catch((e) =>
        this.o.log.error(`ledger sync: ${what} failed`, {
          agentId: session.agentId,
          error: errorMessage(e),
        })
      );
    };
    switch (frame.type) {
      case "ledger_hashes": {
        const p = state.pending.get(frame.reqId);
        if (p) {
          state.pending.delete(frame.reqId);
          clearTimeout(p.timer);
          p.resolve(frame.hashes);
        }
        return true;
      }
      case "reconcile":
        run("reconcile", () => this.#reconcile(session, frame));
        return true;
      case "claim":
        run("claim", () => this.#claim(session, frame));
        return true;
      case "checkpoint":
        run("checkpoint", () => this.#checkpoint(session, frame));
        return true;
      default:
        return false;
    }
  }

  /** Asks the agent for its head (periodic reconciliation). */
  requestReconcile(session: SyncSession): void {
    if (session.closed) return;
    this.#state(session).fullCheck = true;
    session.send({ type: "reconcile_request" });
  }

  /** Fails the session's outstanding hash requests. */
  onClosed(session: SyncSession): void {
    const state = this.#states.get(session);
    if (!state) return;
    for (const p of state.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error("agent session closed"));
    }
    state.pending.clear();
  }

  #state(session: SyncSession): SessionState {
    let s = this.#states.get(session);
    if (!s) {
      s = { queue: Promise.resolve(), fullCheck: true, nextReq: 0, pending: new Map() };
      this.#states.set(session, s);
    }
    return s;
  }

  // -------------------------------------------------------------------------------------------
  // Reconciliation and catch-up
  // -------------------------------------------------------------------------------------------

  async #reconcile(session: SyncSession, a: Frame<"reconcile">): Promise<void> {
    const { store, log } = this.o;
    const agentId = session.agentId;
    const reply = (f: Omit<Frame<"reconcile_reply">, "type" | "seq" | "hash">, h: ChainHead) =>
      session.send({ type: "reconcile_reply", seq: h.seq, hash: h.hash, ...f });
    const hubHead = await store.ledgerHead(agentId) ??
      { agentId, seq: 0, hash: GENESIS_HASH, totals: ZERO };
    const cp = await store.ledgerSync.lastCheckpoint(agentId);
    const floor: Anchor = cp ?? { seq: 0, hash: GENESIS_HASH, totals: ZERO };
    const diverged = async (d: Omit<DivergenceRecord, "agentId" | "detectedAtMs">) => {
      await this.#diverge({ ...d, agentId, detectedAtMs: this.o.clock.nowMs() });
      reply({ status: "diverged", sent: 0, more: false, divergentSeq: d.seq }, hubHead);
    };

    // 1. The hub's own chain, from the last agreed checkpoint to its head (all of it at connect
    // and on the periodic check; within a catch-up loop only what was added since).
    const state = this.#state(session), full = state.fullCheck;
    state.fullCheck = false;
    const own = await this.#verifyHub(agentId, floor, hubHead, full);
    if (!own.ok) {
      return await diverged({
        seq: own.seq,
        kind: own.kind,
        detail: own.reason,
        hubHash: own.hash,
        agentHash: null,
      });
    }
    // 2. History below a mutually signed checkpoint cannot be rewritten or lost.
    if (a.seq < floor.seq) {
      return await diverged({
        seq: a.seq + 1,
        kind: "agent_below_checkpoint",
        detail: `agent head ${a.seq} is below the signed checkpoint at seq ${floor.seq}`,
        hubHash: null,
        agentHash: a.hash,
      });
    }
    // 3. Do the common prefixes agree? (One hash at min(heads) decides; a search pinpoints.)
    const m = Math.min(a.seq, hubHead.seq);
    const agentAt = async (seq: number) =>
      seq === a.seq ? a.hash : (await this.#ask(session, [seq]))[0]!;
    if (m > floor.seq) {
      const [hubHash, agentHash] = [await store.ledgerHashAt(agentId, m), await agentAt(m)];
      if (hubHash !== agentHash) {
        const seq = await this.#firstDivergent(session, floor.seq, m);
        const [h, g] = [
          await store.ledgerHashAt(agentId, seq),
          (await this.#ask(session, [seq]))[0],
        ];
        return await diverged({
          seq,
          kind: "hash_mismatch",
          detail: `hub and agent entries differ from seq ${seq} (agreed up to ${seq - 1})`,
          hubHash: h,
          agentHash: g || null,
        });
      }
    } else if (floor.seq > 0 && (await agentAt(floor.seq)) !== floor.hash) {
      return await diverged({
        seq: floor.seq,
        kind: "checkpoint_mismatch",
        detail: `agent's entry at the signed checkpoint seq ${floor.seq} differs`,
        hubHash: floor.hash,
        agentHash: await agentAt(floor.seq),
      });
    }
    if (a.seq > hubHead.seq) {
      await this.#diverge({
        agentId,
        seq: hubHead.seq + 1,
        kind: "agent_ahead",
        detail: `agent holds entries up to seq ${a.seq}, the hub only up to ${hubHead.seq}`,
        hubHash: null,
        agentHash: a.hash,
        detectedAtMs: this.o.clock.nowMs(),
      });
      return reply(
        { status: "agent_ahead", sent: 0, more: false, divergentSeq: hubHead.seq + 1 },
        hubHead,
      );
    }
    if (a.seq === hubHead.seq) {
      if (!sameTotals(a, hubHead.totals)) {
        return await diverged({
          seq: a.seq,
          kind: "totals_mismatch",
          detail: "same head hash but different running totals",
          hubHash: hubHead.hash,
          agentHash: a.hash,
        });
      }
      log.debug("ledger heads agree", { agentId, seq: a.seq });
      return reply({ status: "equal", sent: 0, more: false }, hubHead);
    }
    // 4. Catch-up: the next batch after the agent's head, in order.
    const entries = await store.ledgerEntries(agentId, a.seq + 1, this.#batch);
    const inputs = await store.ledgerSync.pricingInputs(agentId, entries.map((e) => e.requestId));
    for (const e of entries) {
      const i = inputs.get(e.requestId);
      if (!i) {
        log.warn("no pricing inputs kept for an entry; the agent will dispute it", { seq: e.seq });
      }
      session.send({
        type: "settled",
        ...e,
        usage: { ...e.usage },
        zoneMultiplier: i?.zoneMultiplier ?? "0",
        payoutRatio: i?.payoutRatio ?? "0",
      });
    }
    const last = entries.at(-1)?.seq ?? a.seq;
    log.info("agent catching up", { agentId, from: a.seq + 1, to: last, hubSeq: hubHead.seq });
    reply({ status: "catching_up", sent: entries.length, more: last < hubHead.seq }, hubHead);
  }

  /**
   * Re-hashes the hub's entries after `floor` up to `head` (links, hashes, gapless seqs, and the
   * head row's hash and totals). Unless `full`, a stretch verified in the last 30 s is not
   * redone (the follow-up RECONCILEs of one catch-up loop).
   */
  async #verifyHub(
    agentId: string,
    floor: Anchor,
    head: ChainHead,
    full: boolean,
  ): Promise<
    | { ok: true; at: Anchor }
    | { ok: false; seq: number; kind: string; reason: string; hash: string | null }
  > {
    const now = this.o.clock.nowMs();
    const cached = full ? undefined : this.#verified.get(agentId);
    let at: Anchor = cached && cached.atMs > now - VERIFIED_TTL_MS && cached.seq >= floor.seq &&
        cached.seq <= head.seq
      ? cached
      : floor;
    const start = at;
    const walked = await this.#walk(agentId, at, head.seq);
    if (!walked.ok) return { ...walked, kind: "hub_entry_corrupt" };
    at = walked.at;
    if (at.seq !== head.seq || at.hash !== head.hash || !sameTotals(at.totals, head.totals)) {
      return {
        ok: false,
        seq: head.seq,
        kind: "hub_head_corrupt",
        reason: `head row (seq ${head.seq}) disagrees with the entries (seq ${at.seq})`,
        hash: head.hash,
      };
    }
    if (at.seq > start.seq || !cached) this.#verified.set(agentId, { ...at, atMs: now });
    return { ok: true, at };
  }

  /**
   * First seq in (lo, hi] where hub and agent differ, given they agree at lo and differ at hi:
   * each round trip asks the agent for up to 15 evenly spaced hashes.
   */
  async #firstDivergent(session: SyncSession, lo: number, hi: number): Promise<number> {
    while (hi - lo > 1) {
      const span = hi - lo - 1, n = Math.min(PROBES, span);
      const probes = [
        ...new Set(
          Array.from({ length: n }, (_, i) => lo + 1 + Math.floor(((i + 1) * span) / (n + 1))),
        ),
      ].filter((s) => s > lo && s < hi);
      if (probes.length === 0) break;
      const theirs = await this.#ask(session, probes);
      let next = { lo: probes.at(-1)!, hi };
      for (const [i, seq] of probes.entries()) {
        const mine = await this.o.store.ledgerHashAt(session.agentId, seq);
        if (mine === null || mine !== theirs[i]) {
          next = { lo: i === 0 ? lo : probes[i - 1]!, hi: seq };
          break;
        }
      }
      ({ lo, hi } = next);
    }
    return hi;
  }

  #ask(session: SyncSession, seqs: number[]): Promise<string[]> {
    const state = this.#state(session);
    const reqId = ++state.nextReq;
    const timeoutMs = this.o.hashTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        state.pending.delete(reqId);
        reject(new Error(`no LEDGER_HASHES within ${timeoutMs} ms`));
      }, timeoutMs);
      state.pending.set(reqId, { resolve, reject, timer });
      session.send({ type: "ledger_hashes_request", reqId, seqs });
    });
  }

  async #diverge(d: DivergenceRecord): Promise<void> {
    const fresh = await this.o.store.ledgerSync.recordDivergence(d);
    // An alert each time it is first seen; a known one is logged at warn on each reconcile.
    const log = fresh ? this.o.log.error : this.o.log.warn;
    log.call(this.o.log, "ALERT ledger divergence", {
      agentId: d.agentId,
      seq: d.seq,
      kind: d.kind,
      detail: d.detail,
      hubHash: d.hubHash,
      agentHash: d.agentHash,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Claims
  // -------------------------------------------------------------------------------------------

  async #claim(session: SyncSession, c: Frame<"claim">): Promise<void> {
    const { store, biller, clock, log } = this.o;
    const agentId = session.agentId, now = clock.nowMs();
    const result = (outcome: "settled" | "rejected", reason: string, seq?: number) =>
      session.send({ type: "claim_result", requestId: c.requestId, outcome, reason, seq });
    const refuse = async (reason: string) => {
      log.warn("claim refused", { agentId, requestId: c.requestId, reason });
      await store.ledgerSync.recordClaimRejection({
        requestId: c.requestId,
        agentId,
        reason,
        usage: c.usage,
        nowMs: now,
      });
      result("rejected", reason);
    };
    const dispatches = await store.ledgerSync.dispatches(c.requestId);
    const problem = dispatchProblem(dispatches, agentId);
    if (problem) return await refuse(problem);
    const d = dispatches.find((r) => r.agentId === agentId)!;
    if (d.vendor !== c.vendor) {
      return await refuse(`vendor ${c.vendor} is not the dispatched ${d.vendor}`);
    }
    if (Math.abs(c.completedAtMs - d.dispatchedAtMs) > CLAIM_WINDOW_MS) {
      return await refuse("completion time is too far from the dispatch");
    }
    const hold = await store.getReservation(c.requestId);
    if (!hold) return await refuse("unknown request: no reservation");
    let amounts;
    try {
      amounts = biller.claimAmounts({ ...d, agentId }, c, parseUsd(hold.amount));
    } catch (e) {
      return await refuse(`cannot price the claim: ${errorMessage(e)}`);
    }
    const out = await store.ledgerSync.settleClaim({
      reservationId: c.requestId,
      entry: amounts.entry,
      userChargeIfDelivered: amounts.userChargeIfDelivered,
      agentPayout: amounts.agentPayout,
      usage: amounts.usage,
      zoneMultiplier: amounts.zoneMultiplier,
      payoutRatio: amounts.payoutRatio,
      nowMs: now,
    });
    if (out.outcome === "rejected") return await refuse(out.reason);
    if (out.outcome === "replay") {
      log.warn("claim replay refused: nothing settled twice", {
        agentId,
        requestId: c.requestId,
        reason: out.reason,
      });
      return result("rejected", out.reason, out.entry?.seq);
    }
    log.info("claim settled", {
      agentId,
      requestId: c.requestId,
      seq: out.entry.seq,
      delivered: out.delivered,
      userCharge: out.entry.userCharge,
      agentPayout: out.entry.agentPayout,
    });
    biller.sendSettled(out.entry, amounts.zoneMultiplier, amounts.payoutRatio);
    result(
      "settled",
      out.delivered ? "response delivered: user charged" : "not delivered: platform pays",
      out.entry.seq,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Checkpoints
  // -------------------------------------------------------------------------------------------

  async #checkpoint(session: SyncSession, f: Frame<"checkpoint">): Promise<void> {
    const { store, identity, clock, log } = this.o;
    const agentId = session.agentId;
    const refuse = (seq: number, reason: string) => {
      log.warn("checkpoint refused", { agentId, seq, reason });
      session.send({ type: "checkpoint_reply", seq, reason });
    };
    const agent = await store.getAgent(agentId);
    if (!agent) return refuse(0, "unknown agent");
    const checked = await verifyCheckpoint(f.note, { agent: await verifierFor(agent.publicKey) });
    if (!checked.ok) return refuse(0, checked.reason);
    const head = checked.head;
    if (head.agentId !== agentId) return refuse(head.seq, "checkpoint names another agent");
    const mine = await this.#headAt(agentId, head.seq);
    if (!mine.ok) return refuse(head.seq, mine.reason);
    if (mine.at.hash !== head.hash || !sameTotals(mine.at.totals, head.totals)) {
      return refuse(head.seq, "checkpoint does not match the hub's ledger at this seq");
    }
    const note = await signCheckpoint(f.note, "hub", identity);
    await store.ledgerSync.addCheckpoint({ ...head, note, createdAtMs: clock.nowMs() });
    log.info("checkpoint countersigned", { agentId, seq: head.seq });
    session.send({ type: "checkpoint_reply", seq: head.seq, note });
  }

  /** The hub's verified head at `seq` (re-hashed from the nearest checkpoint at or below it). */
  async #headAt(
    agentId: string,
    seq: number,
  ): Promise<{ ok: true; at: Anchor } | { ok: false; reason: string }> {
    const cps = await this.o.store.ledgerSync.checkpoints(agentId, 1000);
    const base: Anchor = cps.find((c) => c.seq <= seq) ??
      { seq: 0, hash: GENESIS_HASH, totals: ZERO };
    const walked = await this.#walk(agentId, base, seq);
    if (!walked.ok) {
      return { ok: false, reason: `the hub's own entry at seq ${walked.seq} does not verify` };
    }
    if (walked.at.seq < seq) {
      return { ok: false, reason: `the hub has no entry at seq ${walked.at.seq + 1}` };
    }
    return walked;
  }

  /**
   * Re-hashes the hub's stored chain of `agentId` from `from` (trusted) up to seq `to`, page by
   * page; stops early where the stored entries end.
   */
  async #walk(
    agentId: string,
    from: Anchor,
    to: number,
  ): Promise<
    { ok: true; at: Anchor } | { ok: false; seq: number; reason: string; hash: string | null }
  > {
    let at: ChainHead = { agentId, ...from };
    while (at.seq < to) {
      const page = (await this.o.store.ledgerEntries(agentId, at.seq + 1, 1000))
        .slice(0, to - at.seq);
      if (page.length === 0) break;
      const v = await verifyChain(page, at);
      if (!v.ok) {
        const hash = page[v.firstBadSeq - at.seq - 1]?.hash ?? null;
        return { ok: false, seq: v.firstBadSeq, reason: v.reason, hash };
      }
      at = v.head;
    }
    return { ok: true, at: { seq: at.seq, hash: at.hash, totals: at.totals } };
  }
}

/** Running totals compared as amounts (the same sum may be written with other trailing zeros). */
function sameTotals(a: Totals, b: Totals): boolean {
  return parseUsd(a.official) === parseUsd(b.official) &&
    parseUsd(a.userCharge) === parseUsd(b.userCharge) &&
    parseUsd(a.agentPayout) === parseUsd(b.agentPayout);
}
