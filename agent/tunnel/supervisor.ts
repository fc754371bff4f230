/**
 * Keeps the agent connected: dial, run a connection, and on any end wait a full-jitter backoff and
 * dial again. The backoff resets only after a session stayed up for a stable period. A session
 * fenced by a newer one (another process with the same identity) stops the agent instead of
 * fighting it for the slot.
 */
import type { Capabilities } from "../../protocol/capabilities.ts";
import type { Clock } from "../../protocol/clock.ts";
import { CloseCode, describeClose } from "../../protocol/close_codes.ts";
import type { Signer, Verifier } from "../../protocol/identity.ts";
import { LIMITS } from "../../protocol/limits.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import { type BackoffPolicy, fullJitterDelayMs } from "./backoff.ts";
import { type StreamHost, TunnelConnection } from "./connection.ts";
import { dialHub, HubCertificatePinError } from "./dial.ts";

export interface SupervisorOptions {
  /** Full tunnel URL, e.g. `wss://hub.example:8443/tunnel/connect`. */
  tunnelUrl: string;
  certFingerprints: string[];
  agentId: string;
  identity: Signer;
  hubKey: Verifier;
  capabilities: () => Capabilities;
  backoff: BackoffPolicy & { stableAfterMs: number };
  clock: Clock;
  random: () => number;
  log: Logger;
  /** How request streams are served (vendor calls). */
  streams?: StreamHost;
}

/** Why the supervisor stopped for good. */
export type StopReason = { kind: "shutdown" } | { kind: "superseded"; reason: string };

export class TunnelSupervisor {
  readonly #stop = new AbortController();
  #connection?: TunnelConnection;
  #stopReason?: StopReason;

  constructor(readonly options: SupervisorOptions) {}

  get connection(): TunnelConnection | undefined {
    return this.#connection;
  }

  /** Runs until `shutdown()` or until fenced; resolves with the reason. */
  async run(): Promise<StopReason> {
    const { log, backoff, random } = this.options;
    let attempt = 0;
    while (!this.#stopReason) {
      const end = await this.#connectOnce();
      if (this.#stopReason) break;
      if (end?.code === CloseCode.superseded) {
        log.error("another agent process took over this identity; stopping", {
          reason: end.reason,
        });
        this.#stopReason = { kind: "superseded", reason: end.reason };
        break;
      }
      if (end?.welcomed && end.sessionMs >= backoff.stableAfterMs) attempt = 0;
      const delayMs = fullJitterDelayMs(attempt++, backoff, random);
      log.info("reconnecting", {
        attempt,
        delayMs,
        lastClose: end ? describeClose(end.code) : "dial failed",
      });
      await sleep(delayMs, this.#stop.signal);
    }
    return this.#stopReason!;
  }

  /** Pushes changed channels to the hub (if connected; the next HELLO carries them anyway). */
  updateCapabilities(): void {
    this.#connection?.updateCapabilities(this.options.capabilities());
  }

  /** Graceful stop: says goodbye and closes the live session. */
  shutdown(): void {
    this.#stopReason ??= { kind: "shutdown" };
    this.#stop.abort();
    this.#connection?.close(CloseCode.shutdown, "agent shutting down");
  }

  async #connectOnce() {
    const o = this.options;
    let socket;
    try {
      socket = await dialHub(o.tunnelUrl, {
        certFingerprints: o.certFingerprints,
        connectTimeoutMs: LIMITS.dialTimeoutMs,
        signal: this.#stop.signal,
      });
    } catch (e) {
      if (this.#stopReason) return undefined;
      const level = e instanceof HubCertificatePinError ? "error" : "warn";
      o.log[level]("cannot reach hub", { url: o.tunnelUrl, error: errorMessage(e) });
      return undefined;
    }
    const connection = new TunnelConnection({
      socket,
      agentId: o.agentId,
      identity: o.identity,
      hubKey: o.hubKey,
      capabilities: o.capabilities(),
      clock: o.clock,
      log: o.log,
      streams: o.streams,
      probe: async (token) => {
        const probeUrl = o.tunnelUrl.replace(/\/tunnel\/connect$/, `/tunnel/probe/${token}`);
        const socket = await dialHub(probeUrl, {
          certFingerprints: o.certFingerprints,
          connectTimeoutMs: LIMITS.dialTimeoutMs,
        });
        socket.close();
      },
    });
    this.#connection = connection;
    if (this.#stopReason) connection.close(CloseCode.shutdown, "agent shutting down");
    const end = await connection.done;
    this.#connection = undefined;
    o.log.info("tunnel closed", {
      code: end.code,
      close: describeClose(end.code),
      reason: end.reason,
    });
    return end;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
