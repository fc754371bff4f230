/**
 * What every agent-side stream shares, whatever sits behind it (an HTTP vendor call,
 * agent_stream.ts; a Realtime WebSocket, agent/upstream/realtime.ts): the request body the hub
 * sends, acknowledged with CREDIT as it is consumed; the window for what goes back; ABORT; and
 * the one-time finish that closes the window and frees the stream id.
 */
import { SendWindow, StreamClosedError } from "../../protocol/flow.ts";
import type { Frame } from "../../protocol/frames.ts";
import { InboundBody } from "../../protocol/stream_body.ts";
import type { AgentStreamDeps } from "./agent_stream.ts";

export abstract class TunnelStream {
  protected readonly window: SendWindow;
  protected readonly requestBody: InboundBody;
  protected finished = false;

  constructor(readonly request: Frame<"request">, readonly deps: AgentStreamDeps) {
    this.window = new SendWindow(deps.budget);
    this.requestBody = new InboundBody({
      credit: (bytes, window) =>
        deps.control({ type: "credit", stream: request.stream, bytes, window }),
      onCancel: () => {},
    });
  }

  onBody(payload: Uint8Array, fin: boolean): boolean {
    return this.requestBody.push(payload, fin);
  }

  onCredit(frame: Frame<"credit">): boolean {
    return this.window.credit(frame.bytes, frame.window);
  }

  /** The hub aborted (client went away) or the session ended: stop the upstream at once. */
  abort(reason: string, tellHub = false): void {
    if (this.finished) return;
    if (tellHub) this.deps.control({ type: "abort", stream: this.request.stream, reason });
    this.stopUpstream(reason);
    this.requestBody.fail(new StreamClosedError(reason));
    this.finish();
  }

  /** Drops whatever the stream has open upstream (the vendor call, the vendor socket). */
  protected abstract stopUpstream(reason: string): void;

  /** Ends the stream once: closes the window and frees the stream id. */
  protected finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.window.close(new StreamClosedError(`stream ${this.request.stream} ended`));
    this.deps.done(this.request.stream);
  }
}
