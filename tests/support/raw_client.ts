/**
 * A hand-driven tunnel client for adversarial tests: it speaks the wire protocol frame by frame,
 * so a test can replay, forge or corrupt any step of the handshake.
 */
import { FEATURES } from "../../protocol/capabilities.ts";
import { toBase64Url } from "../../protocol/encoding.ts";
import {
  type ControlFrame,
  decodeControl,
  encodeControl,
  type Frame,
  PROTOCOL_VERSION,
} from "../../protocol/frames.ts";
import { newNonce, transcript } from "../../protocol/handshake.ts";
import type { Signer } from "../../protocol/identity.ts";
import { waitFor } from "./process.ts";

export class RawClient {
  readonly frames: ControlFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  #read = 0;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.closed = new Promise((resolve) =>
      ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }))
    );
    ws.addEventListener("message", (e) => {
      if (typeof e.data === "string") this.frames.push(decodeControl(e.data));
    });
  }

  static async connect(hubUrl: string): Promise<RawClient> {
    const ws = new WebSocket(hubUrl.replace(/^http/, "ws") + "/tunnel/connect");
    ws.binaryType = "arraybuffer";
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error("raw client could not connect")), {
        once: true,
      });
    });
    return new RawClient(ws);
  }

  send(data: ControlFrame | string | Uint8Array<ArrayBuffer>): void {
    this.#ws.send(
      typeof data === "object" && !(data instanceof Uint8Array) ? encodeControl(data) : data,
    );
  }

  /** The next control frame from the hub (in order). */
  async next(): Promise<ControlFrame> {
    const frame = await waitFor(() => this.frames[this.#read], "next frame from the hub", 10_000);
    this.#read++;
    return frame;
  }

  close(): void {
    this.#ws.close();
  }
}

export interface AgentIdentity {
  agentId: string;
  signer: Signer;
}

/** A HELLO as a real agent would send it (fresh nonce, current time). */
export function hello(
  agent: AgentIdentity,
  overrides: Partial<Frame<"hello">> = {},
): Frame<"hello"> {
  return {
    type: "hello",
    v: PROTOCOL_VERSION,
    agentId: agent.agentId,
    keyId: agent.signer.keyId,
    agentNonce: newNonce(),
    timestampMs: Date.now(),
    capabilities: { agentVersion: "raw", channels: [], features: [...FEATURES] },
    ...overrides,
  };
}

/** The AUTH answering `challenge` for `hello`, signed by `signer`. */
export async function auth(
  hello: Frame<"hello">,
  challenge: Frame<"challenge">,
  signer: Signer,
): Promise<Frame<"auth">> {
  const bytes = transcript("agent", {
    agentId: hello.agentId,
    keyId: hello.keyId,
    hubKeyId: challenge.hubKeyId,
    agentNonce: hello.agentNonce,
    hubNonce: challenge.hubNonce,
    timestampMs: challenge.timestampMs,
  });
  return {
    type: "auth",
    hubNonce: challenge.hubNonce,
    signature: toBase64Url(await signer.sign(bytes)),
  };
}
