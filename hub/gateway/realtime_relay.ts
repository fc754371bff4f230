/**
 * The hub's half of a realtime session once the client's WebSocket is open: client messages
 * become records in the tunnel stream's request body, the agent's records become client
 * messages. Both directions are bounded:
 *
 * - agent → client: the next body chunk is read (and so credit returned to the agent) only while
 *   the client socket's send buffer is below `CLIENT_BUFFER_BYTES_MAX`; a slow client stalls the
 *   agent, and the agent pauses the vendor socket.
 * - client → agent: Deno's server socket cannot pause reading, so records wait in a queue that
 *   the tunnel drains within its credit; a client that gets `QUEUE_BYTES_MAX` ahead is closed
 *   with 1008.
 */
import { RealtimeMeter } from "../../protocol/metering/realtime.ts";
import {
  encodeRecord,
  REALTIME_MESSAGE_BYTES_MAX,
  RecordDecoder,
  sendableCloseCode,
} from "../../protocol/realtime_wire.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";

const CLIENT_BUFFER_BYTES_MAX = 1024 * 1024;
const QUEUE_BYTES_MAX = 2 * REALTIME_MESSAGE_BYTES_MAX;
const OPEN = 1;

/** Client → agent records, as the pull-based request body of the tunnel stream. */
export class ClientPipe {
  readonly stream: ReadableStream<Uint8Array>;
  readonly #queue: Uint8Array[] = [];
  #bytes = 0;
  #ended = false;
  #wake?: () => void;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (this.#queue.length === 0 && !this.#ended) {
          await new Promise<void>((resolve) => this.#wake = resolve);
          this.#wake = undefined;
        }
        const next = this.#queue.shift();
        if (next) {
          this.#bytes -= next.length;
          controller.enqueue(next);
        } else controller.close();
      },
      cancel: () => this.end(),
    }, { highWaterMark: 0 });
  }

  get queuedBytes(): number {
    return this.#bytes;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(bytes: Uint8Array): void {
    if (this.#ended) return;
    this.#queue.push(bytes);
    this.#bytes += bytes.length;
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }
}

/** OpenAI's realtime `error` server event. */
export function realtimeErrorEvent(
  error: { type: string; code: string | null; message: string; param?: string | null },
): string {
  const id = crypto.getRandomValues(new Uint8Array(10));
  return JSON.stringify({
    type: "error",
    event_id: "event_" + Array.from(id, (b) => b.toString(16).padStart(2, "0")).join(""),
    error: {
      type: error.type,
      code: error.code,
      message: error.message,
      param: error.param ?? null,
      event_id: null,
    },
  });
}

export interface RelayOptions {
  socket: WebSocket;
  pipe: ClientPipe;
  /** The tunnel stream's response body: records from the agent. */
  body: ReadableStream<Uint8Array>;
  meter: RealtimeMeter;
  log: Logger;
  /** Gives up on the tunnel stream (ABORT), e.g. when the agent never ends after a client close. */
  abort: () => void;
}

/** After the client closed, the agent has this long to finish the session before an ABORT. */
const END_AFTER_CLIENT_CLOSE_MS = 10_000;

/** What one session relayed (for its log line; never contents). */
export interface RelayCounts {
  clientMessages: number;
  upstreamMessages: number;
  clientBytes: number;
  upstreamBytes: number;
  /** How the client's socket was closed, when it was. */
  clientCloseCode?: number;
}

/** Relays until both sides are done; resolves when the agent's side of the stream is over. */
export async function relay(o: RelayOptions): Promise<RelayCounts> {
  const counts: RelayCounts = {
    clientMessages: 0,
    upstreamMessages: 0,
    clientBytes: 0,
    upstreamBytes: 0,
  };
  const { socket, pipe, log } = o;
  socket.binaryType = "arraybuffer";
  let abortTimer: ReturnType<typeof setTimeout> | undefined;
  let over = false;
  const closeClient = (code: number, reason: string) => {
    if (socket.readyState <= OPEN) socket.close(code, reason);
  };
  socket.addEventListener("message", (ev) => {
    if (pipe.ended) return;
    const data = ev.data;
    const record = typeof data === "string"
      ? { kind: "text" as const, data }
      : { kind: "binary" as const, data: new Uint8Array(data as ArrayBuffer) };
    const size = typeof data === "string" ? data.length : record.data.length;
    if (size > REALTIME_MESSAGE_BYTES_MAX) {
      return closeClient(1009, `message above ${REALTIME_MESSAGE_BYTES_MAX} bytes`);
    }
    if (pipe.queuedBytes > QUEUE_BYTES_MAX) {
      return closeClient(1008, "client is sending faster than the session reads");
    }
    counts.clientMessages++;
    counts.clientBytes += size;
    try {
      pipe.push(encodeRecord(record));
    } catch (e) {
      closeClient(1009, errorMessage(e)); // UTF-8 grew the text past the bound
    }
  });
  socket.addEventListener("close", (ev) => {
    counts.clientCloseCode = ev.code;
    // Tell the upstream how the client left; a client that vanished (1006) left normally.
    pipe.push(encodeRecord({ kind: "close", code: ev.code, reason: ev.reason }));
    pipe.end();
    if (!over) abortTimer = setTimeout(o.abort, END_AFTER_CLIENT_CLOSE_MS);
  });

  const decoder = new RecordDecoder();
  const reader = o.body.getReader();
  let upstreamClosed = false;
  // The upstream's first events (session.created) may already be here: hold them until the
  // client's socket is open.
  if (socket.readyState === WebSocket.CONNECTING) {
    await new Promise((resolve) => {
      socket.addEventListener("open", resolve, { once: true });
      socket.addEventListener("close", resolve, { once: true });
    });
  }
  try {
    for (;;) {
      while (socket.readyState === OPEN && socket.bufferedAmount > CLIENT_BUFFER_BYTES_MAX) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const { done, value } = await reader.read();
      if (done) break;
      for (const record of decoder.push(value)) {
        if (record.kind === "close") {
          upstreamClosed = true;
          pipe.end();
          closeClient(sendableCloseCode(record.code), record.reason);
          continue;
        }
        if (record.kind === "text") o.meter.onServerText(record.data);
        counts.upstreamMessages++;
        counts.upstreamBytes += record.data.length;
        if (socket.readyState === OPEN) socket.send(record.data);
      }
    }
    if (!upstreamClosed) closeClient(1011, "upstream ended without a close");
  } catch (e) {
    // The agent or its tunnel went away mid-session: say so in OpenAI's format, then close.
    log.warn("realtime session cut", { error: errorMessage(e) });
    if (socket.readyState === OPEN) {
      socket.send(realtimeErrorEvent({
        type: "server_error",
        code: "upstream_disconnected",
        message: "The connection to the upstream provider was lost; open a new session.",
      }));
    }
    closeClient(1011, "upstream connection lost");
    pipe.end();
  } finally {
    over = true;
    clearTimeout(abortTimer);
  }
  return counts;
}
