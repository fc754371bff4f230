/**
 * Hub side of the handshake (see protocol/handshake.ts for the exchange). Pure decision logic:
 * it takes frames and returns what to send or why to close; the connection does the I/O.
 */
import type { Capabilities } from "../../protocol/capabilities.ts";
import type { Clock } from "../../protocol/clock.ts";
import { CloseCode } from "../../protocol/close_codes.ts";
import { toBase64Url } from "../../protocol/encoding.ts";
import { type ControlFrame, type Frame, PROTOCOL_VERSION } from "../../protocol/frames.ts";
import {
  newNonce,
  signatureBytes,
  transcript,
  type TranscriptFields,
  withinSkew,
} from "../../protocol/handshake.ts";
import { type Signer, type Verifier, verifierFor } from "../../protocol/identity.ts";
import type { AgentTier, HubStore } from "../store/mod.ts";
import type { NonceCache } from "./nonce_cache.ts";

export interface HandshakeDeps {
  store: HubStore;
  identity: Signer;
  nonces: NonceCache;
  clock: Clock;
  verifiers: VerifierCache;
}

export type HandshakeStep =
  | { kind: "send"; frame: ControlFrame }
  | { kind: "accept"; agentId: string; tier: AgentTier; capabilities: Capabilities }
  | { kind: "reject"; code: CloseCode; reason: string; agentId?: string };

/** One connection's handshake state: HELLO expected, then AUTH, then done. */
export class HubHandshake {
  #pending?: {
    fields: TranscriptFields;
    verifier: Verifier;
    capabilities: Capabilities;
    tier: AgentTier;
  };
  #done = false;

  constructor(readonly deps: HandshakeDeps) {}

  async step(frame: ControlFrame): Promise<HandshakeStep> {
    if (this.#done) return reject(CloseCode.unexpectedFrame, "handshake already finished");
    if (frame.type === "hello" && !this.#pending) return await this.#hello(frame);
    if (frame.type === "auth" && this.#pending) return await this.#auth(frame);
    this.#done = true;
    return reject(CloseCode.unexpectedFrame, `unexpected ${frame.type} frame during the handshake`);
  }

  async #hello(hello: Frame<"hello">): Promise<HandshakeStep> {
    const { clock, store, nonces, identity } = this.deps;
    const agentId = hello.agentId;
    if (hello.v !== PROTOCOL_VERSION) {
      return reject(
        CloseCode.unsupportedVersion,
        `protocol version ${hello.v} is not supported (hub speaks ${PROTOCOL_VERSION})`,
        agentId,
      );
    }
    const now = clock.nowMs();
    if (!withinSkew(hello.timestampMs, now)) {
      return reject(
        CloseCode.clockSkew,
        `agent clock is ${hello.timestampMs - now} ms off`,
        agentId,
      );
    }
    const agent = await store.getAgent(agentId);
    if (!agent || agent.disabled || agent.keyId !== hello.keyId) {
      // One answer for unknown id, disabled agent and wrong key: no enrolment oracle.
      return reject(CloseCode.unknownAgent, "unknown agent or key", agentId);
    }
    if (!nonces.claim(hello.agentNonce, now)) {
      return reject(CloseCode.replayedNonce, "agent nonce was already used", agentId);
    }
    const fields: TranscriptFields = {
      agentId,
      keyId: agent.keyId,
      hubKeyId: identity.keyId,
      agentNonce: hello.agentNonce,
      hubNonce: newNonce(),
      timestampMs: now,
    };
    this.#pending = {
      fields,
      verifier: await this.deps.verifiers.get(agent.publicKey),
      capabilities: hello.capabilities,
      tier: agent.tier,
    };
    const signature = toBase64Url(await identity.sign(transcript("hub", fields)));
    return {
      kind: "send",
      frame: {
        type: "challenge",
        hubNonce: fields.hubNonce,
        hubKeyId: identity.keyId,
        timestampMs: now,
        signature,
      },
    };
  }

  async #auth(auth: Frame<"auth">): Promise<HandshakeStep> {
    const { fields, verifier, capabilities, tier } = this.#pending!;
    this.#done = true;
    if (auth.hubNonce !== fields.hubNonce) {
      return reject(CloseCode.replayedNonce, "AUTH answers another challenge", fields.agentId);
    }
    const ok = await verifier.verify(signatureBytes(auth.signature), transcript("agent", fields));
    if (!ok) {
      return reject(CloseCode.badAgentSignature, "agent signature does not verify", fields.agentId);
    }
    return { kind: "accept", agentId: fields.agentId, tier, capabilities };
  }
}

function reject(code: CloseCode, reason: string, agentId?: string): HandshakeStep {
  return { kind: "reject", code, reason, agentId };
}

/** Imported agent keys, reused across handshakes (an import costs about as much as a verify). */
export class VerifierCache {
  readonly #byKey = new Map<string, Promise<Verifier>>();

  get(publicKey: string): Promise<Verifier> {
    let v = this.#byKey.get(publicKey);
    if (!v) {
      v = verifierFor(publicKey);
      this.#byKey.set(publicKey, v);
      v.catch(() => this.#byKey.delete(publicKey));
    }
    return v;
  }
}
