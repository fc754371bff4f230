/**
 * Pre-dispatch moderation: a chain of pluggable {@link Moderator}s that sees the text and image
 * parts of a request before the gateway routes it to an agent.
 *
 * Zero cost when disabled — the contract with the gateway: a chain built from no moderators has
 * `enabled === false`, and the gateway must then skip moderation entirely, i.e. not extract
 * texts/images, not build a {@link ModerationInput}, and not call {@link ModerationChain.check}.
 * Only when `enabled` is true does the gateway pay for extraction (see `protocol/vendors/openai_moderation.ts`).
 *
 * @module
 */

export type { ModerationImage, ModerationInput } from "../../../protocol/moderation.ts";
import type { ModerationInput } from "../../../protocol/moderation.ts";

/**
 * The outcome of a check. `reason` is for logs only: it may quote user content or keywords, so
 * it is never echoed to the client (the client gets a fixed body, see the vendor module).
 */
export type ModerationVerdict =
  | { allowed: true }
  | { allowed: false; moderator: string; reason: string };

/** One moderation step. `check` should honour `signal` (aborted when the client goes away). */
export interface Moderator {
  readonly name: string;
  check(input: ModerationInput, signal: AbortSignal): Promise<ModerationVerdict>;
}

/** The shared "allowed" verdict (frozen so no moderator can turn it into a block by mistake). */
export const ALLOWED: ModerationVerdict = Object.freeze({ allowed: true });

/** Reason given when a moderator throws and the chain fails closed. */
export const MODERATOR_ERROR_REASON = "moderator error";
/** Reason given when the request's own signal was aborted mid-check. */
export const ABORTED_REASON = "aborted";

/** Options for {@link ModerationChain}. */
export interface ModerationChainOptions {
  /**
   * What a moderator that throws means. false (default, fail-closed): block the request with
   * reason "moderator error". true (fail-open): skip that moderator and go on with the next.
   */
  failOpen?: boolean;
  /**
   * Told about every moderator that threw, in either mode, so the caller can log it: in
   * fail-open mode the verdict alone would not show that a moderator was skipped.
   */
  onError?: (moderator: string, error: unknown) => void;
}

/** Runs moderators in order; the first block wins and later moderators are not asked. */
export class ModerationChain {
  readonly #moderators: readonly Moderator[];
  readonly #failOpen: boolean;
  readonly #onError: ((moderator: string, error: unknown) => void) | undefined;

  constructor(moderators: readonly Moderator[], options: ModerationChainOptions = {}) {
    // Copied so a caller mutating its array later cannot change a live chain.
    this.#moderators = [...moderators];
    this.#failOpen = options.failOpen ?? false;
    this.#onError = options.onError;
  }

  /** False for an empty chain: the gateway then skips extraction and checking altogether. */
  get enabled(): boolean {
    return this.#moderators.length > 0;
  }

  /** Names of the moderators, in the order they run (for startup logs). */
  get names(): string[] {
    return this.#moderators.map((m) => m.name);
  }

  /**
   * Asks each moderator in turn. A request whose `signal` is aborted is always blocked (reason
   * "aborted"), even in fail-open mode: nobody is waiting for it, and an abort must never be
   * mistaken for a moderator failure that fail-open would let through.
   */
  async check(input: ModerationInput, signal: AbortSignal): Promise<ModerationVerdict> {
    for (const moderator of this.#moderators) {
      if (signal.aborted) return blocked(moderator.name, ABORTED_REASON);
      let verdict: ModerationVerdict;
      try {
        verdict = await moderator.check(input, signal);
      } catch (error) {
        this.#onError?.(moderator.name, error);
        if (signal.aborted) return blocked(moderator.name, ABORTED_REASON);
        if (this.#failOpen) continue;
        return blocked(moderator.name, MODERATOR_ERROR_REASON);
      }
      if (!verdict.allowed) return verdict;
    }
    return ALLOWED;
  }
}

function blocked(moderator: string, reason: string): ModerationVerdict {
  return { allowed: false, moderator, reason };
}
