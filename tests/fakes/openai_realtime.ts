/**
 * A deterministic fake of OpenAI's Realtime WebSocket (`GET /v1/realtime?model=…`, GA event
 * shapes). Auth as OpenAI does it: `Authorization: Bearer <key>` or the subprotocol
 * `openai-insecure-api-key.<key>` (answered with `realtime`); a wrong key gets an accepted socket,
 * an `error` event (`invalid_api_key`) and close 3000 `invalid_request_error.invalid_api_key`.
 * Also Azure's GA shape on a resource host: `/openai/v1/realtime?model=<deployment>`, `api-key`.
 *
 * Events: `session.created` on open; `session.update` → `session.updated`;
 * `conversation.item.create` → `conversation.item.added` + `.done`; `input_audio_buffer.append`
 * (counted); `response.create` → `response.created`, `response.output_item.added`, deltas
 * (`response.output_text.delta`, or `response.output_audio.delta` + transcript deltas when
 * `output_modalities` is `["audio"]`), `.done` events, `response.done` with usage. Usage of the
 * k-th response: input text tokens = 10 + words of every user text item; input audio tokens =
 * ⌈appended audio bytes / 50⌉; cached = 8 text tokens from the second response on; output
 * `[[words:N]]` (default 5) text tokens, or 10·N audio + N text tokens for audio.
 *
 * Test-only controls (OpenAI has no such events): model `fake-status-NNN` answers the upgrade
 * with HTTP NNN (an OpenAI error body); a binary message is echoed back as binary;
 * `{"type":"fake.close","code":…,"reason":…}` closes from the server side;
 * `{"type":"fake.ping","n":…}` answers `{"type":"fake.pong","n":…}` at once (latency probes);
 * `{"type":"fake.flood","count":…,"bytes":…}` sends that many binary messages at once.
 */

export interface FakeRealtimeSession {
  path: string;
  key: string | null;
  model: string | null;
  headers: Record<string, string>;
  protocols: string[];
  /** Client messages in arrival order (binary as byte arrays). */
  received: (string | Uint8Array)[];
  responses: number;
  close?: { code: number; reason: string };
  /** Bytes the fake has queued on this socket but the peer has not taken yet. */
  bufferedAmount(): number;
}

export interface FakeRealtime {
  url: string;
  sessions: FakeRealtimeSession[];
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

export function startFakeRealtime(options: { keys: string[] }): Promise<FakeRealtime> {
  const sessions: FakeRealtimeSession[] = [];
  const sockets = new Set<WebSocket>();
  let seq = 0;
  const id = (prefix: string) => `${prefix}_fake${String(++seq).padStart(12, "0")}`;

  const handle = (req: Request): Response => {
    const url = new URL(req.url);
    // Azure's realtime paths on a resource host take the key in `api-key`: GA `/openai/v1/realtime`
    // (`?model=<deployment>`) and preview `/openai/realtime` (`?api-version=…&deployment=…`).
    const azurePreview = url.pathname === "/openai/realtime";
    const azure = azurePreview || url.pathname === "/openai/v1/realtime";
    if (url.pathname !== "/v1/realtime" && !azure) {
      return Response.json(
        envelope("invalid_request_error", null, `Invalid URL (GET ${url.pathname})`),
        { status: 404 },
      );
    }
    if (azurePreview && !url.searchParams.get("api-version")) {
      return Response.json({
        error: {
          code: "MissingApiVersionParameter",
          message: "The api-version query parameter (?api-version=) is required for all requests.",
        },
      }, { status: 400 });
    }
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json(
        envelope("invalid_request_error", null, "Expected a WebSocket upgrade"),
        { status: 400 },
      );
    }
    // Test control: a model named `fake-status-NNN` is refused over HTTP with that status.
    const refusedWith = Number(
      /^fake-status-(\d{3})$/.exec(url.searchParams.get("model") ?? "")?.[1],
    );
    if (refusedWith) {
      return Response.json(
        envelope("server_error", null, "The server is overloaded; please retry."),
        { status: refusedWith, headers: { "x-request-id": "req_fake_refused" } },
      );
    }
    const protocols = (req.headers.get("sec-websocket-protocol") ?? "").split(",")
      .map((p) => p.trim()).filter(Boolean);
    const auth = req.headers.get("authorization") ?? "";
    const key = azure
      ? req.headers.get("api-key")
      : auth.toLowerCase().startsWith("bearer ")
      ? auth.slice(7).trim()
      : protocols.find((p) => p.startsWith("openai-insecure-api-key."))?.slice(24) ?? null;
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => headers[k] = v);
    const holder: { socket?: WebSocket } = {};
    const session: FakeRealtimeSession = {
      path: url.pathname,
      key,
      model: url.searchParams.get(azurePreview ? "deployment" : "model"),
      headers,
      protocols,
      received: [],
      responses: 0,
      bufferedAmount: () => holder.socket?.bufferedAmount ?? 0,
    };
    sessions.push(session);
    // Deno's `protocol` option splits the offer on ", " only (ws clients join with ","): by hand.
    const { socket, response } = Deno.upgradeWebSocket(req);
    if (protocols.includes("realtime")) response.headers.set("sec-websocket-protocol", "realtime");
    sockets.add(socket);
    holder.socket = socket;
    socket.binaryType = "arraybuffer";
    const send = (event: Json) => {
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ event_id: id("event"), ...event }));
      }
    };
    const refuse = (type: string, code: string, message: string) => {
      send({ type: "error", error: { type, code, message, param: null, event_id: null } });
      session.close = { code: 3000, reason: `${type}.${code}` };
      socket.close(3000, `${type}.${code}`);
    };
    const state = { texts: [] as string[], audioBytes: 0, modalities: ["audio"] as string[] };
    socket.addEventListener("open", () => {
      if (!key || !options.keys.includes(key)) {
        return refuse(
          "invalid_request_error",
          "invalid_api_key",
          key
            ? `Incorrect API key provided: ${key.slice(0, 3)}***${key.slice(-4)}. You can find ` +
              "your API key at https://platform.openai.com/account/api-keys."
            : "You didn't provide an API key.",
        );
      }
      if (!session.model) {
        return refuse("invalid_request_error", "missing_model", "Missing required param: model");
      }
      send({ type: "session.created", session: sessionObject(id("sess"), session.model, state) });
    });
    socket.addEventListener("close", (ev) => {
      session.close ??= { code: ev.code, reason: ev.reason };
      sockets.delete(socket);
    });
    socket.addEventListener("message", (ev) => {
      if (typeof ev.data !== "string") {
        const bytes = new Uint8Array(ev.data as ArrayBuffer);
        session.received.push(bytes);
        if (socket.readyState === WebSocket.OPEN) socket.send(bytes);
        return;
      }
      session.received.push(ev.data);
      let event: Json;
      try {
        const parsed = JSON.parse(ev.data);
        if (!isObj(parsed)) throw new Error("not an object");
        event = parsed;
      } catch {
        return send({
          type: "error",
          error: {
            type: "invalid_request_error",
            code: "invalid_json",
            message: "The server failed to parse the event.",
            param: null,
            event_id: null,
          },
        });
      }
      onEvent(event);
    });

    const onEvent = (event: Json) => {
      switch (event.type) {
        case "fake.ping":
          return socket.send(JSON.stringify({ type: "fake.pong", n: event.n }));
        case "fake.flood": {
          // As fast as the socket takes them: `count` binary messages of `bytes`, byte = index.
          for (let i = 0; i < Number(event.count); i++) {
            socket.send(new Uint8Array(Number(event.bytes)).fill(i & 0xff));
          }
          return;
        }
        case "fake.close":
          session.close = { code: Number(event.code), reason: String(event.reason ?? "") };
          return socket.close(Number(event.code), String(event.reason ?? ""));
        case "session.update": {
          const s = isObj(event.session) ? event.session : {};
          if (Array.isArray(s.output_modalities)) {
            state.modalities = s.output_modalities.map(String);
          }
          return send({
            type: "session.updated",
            session: sessionObject(id("sess"), session.model!, state),
          });
        }
        case "input_audio_buffer.append":
          state.audioBytes += typeof event.audio === "string"
            ? Math.floor(event.audio.length * 3 / 4) -
              (/==$/.test(event.audio) ? 2 : /=$/.test(event.audio) ? 1 : 0)
            : 0;
          return;
        case "conversation.item.create": {
          const item = isObj(event.item) ? event.item : {};
          const content = Array.isArray(item.content) ? item.content : [];
          for (const part of content) {
            if (isObj(part) && typeof part.text === "string") state.texts.push(part.text);
          }
          const added = { id: id("item"), object: "realtime.item", status: "completed", ...item };
          send({ type: "conversation.item.added", previous_item_id: null, item: added });
          return send({ type: "conversation.item.done", previous_item_id: null, item: added });
        }
        case "response.create":
          return respond(event);
        default:
          return send({
            type: "error",
            error: {
              type: "invalid_request_error",
              code: "invalid_value",
              message: `Invalid value: '${String(event.type).slice(0, 60)}'.`,
              param: "type",
              event_id: typeof event.event_id === "string" ? event.event_id : null,
            },
          });
      }
    };

    const respond = (event: Json) => {
      session.responses++;
      const r = isObj(event.response) ? event.response : {};
      const modalities = Array.isArray(r.output_modalities)
        ? r.output_modalities.map(String)
        : state.modalities;
      const audio = modalities.includes("audio");
      const last = state.texts.at(-1) ?? "";
      const n = Number(/\[\[words:(\d+)\]\]/.exec(last)?.[1] ?? 5);
      const responseId = id("resp"), itemId = id("item");
      const base = {
        object: "realtime.response",
        id: responseId,
        conversation_id: "conv_fake",
        output_modalities: audio ? ["audio"] : ["text"],
        max_output_tokens: "inf",
        metadata: null,
      };
      send({
        type: "response.created",
        response: { ...base, status: "in_progress", status_details: null, output: [], usage: null },
      });
      const item = { id: itemId, object: "realtime.item", type: "message", role: "assistant" };
      send({
        type: "response.output_item.added",
        response_id: responseId,
        output_index: 0,
        item: { ...item, status: "in_progress", content: [] },
      });
      const words = Array.from({ length: n }, (_, i) => `w${i + 1}`);
      const at = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
      for (const [i, word] of words.entries()) {
        const delta = (i ? " " : "") + word;
        if (audio) {
          const pcm = new Uint8Array(240).fill(i & 0xff);
          send({
            type: "response.output_audio.delta",
            ...at,
            delta: btoa(String.fromCharCode(...pcm)),
          });
          send({ type: "response.output_audio_transcript.delta", ...at, delta });
        } else send({ type: "response.output_text.delta", ...at, delta });
      }
      const text = words.join(" ");
      send(
        audio
          ? { type: "response.output_audio_transcript.done", ...at, transcript: text }
          : { type: "response.output_text.done", ...at, text },
      );
      const part = audio
        ? { type: "output_audio", transcript: text, audio: null }
        : { type: "output_text", text };
      const doneItem = { ...item, status: "completed", content: [part] };
      send({
        type: "response.output_item.done",
        response_id: responseId,
        output_index: 0,
        item: doneItem,
      });
      const wordsIn = state.texts.join(" ").split(/\s+/).filter(Boolean).length;
      const textIn = 10 + wordsIn;
      const audioIn = Math.ceil(state.audioBytes / 50);
      const cached = session.responses > 1 ? 8 : 0;
      const textOut = n, audioOut = audio ? 10 * n : 0;
      send({
        type: "response.done",
        response: {
          ...base,
          status: "completed",
          status_details: null,
          output: [doneItem],
          usage: {
            total_tokens: textIn + audioIn + textOut + audioOut,
            input_tokens: textIn + audioIn,
            output_tokens: textOut + audioOut,
            input_token_details: {
              text_tokens: textIn,
              audio_tokens: audioIn,
              image_tokens: 0,
              cached_tokens: cached,
              cached_tokens_details: { text_tokens: cached, audio_tokens: 0, image_tokens: 0 },
            },
            output_token_details: { text_tokens: textOut, audio_tokens: audioOut },
          },
        },
      });
    };
    return response;
  };

  const { promise, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: resolve }, handle);
  return promise.then((addr) => ({
    url: `http://127.0.0.1:${addr.port}`,
    sessions,
    async close() {
      for (const s of sockets) {
        try {
          s.close(1000, "fake shutting down");
        } catch { /* already closing */ }
      }
      await server.shutdown();
    },
  }));
}

function sessionObject(sessionId: string, model: string, state: { modalities: string[] }) {
  return {
    type: "realtime",
    object: "realtime.session",
    id: sessionId,
    model,
    output_modalities: state.modalities,
    instructions: "",
    tools: [],
    tool_choice: "auto",
    max_output_tokens: "inf",
    tracing: null,
    prompt: null,
    expires_at: 0,
    audio: {
      input: { format: { type: "audio/pcm", rate: 24000 }, turn_detection: null },
      output: { format: { type: "audio/pcm", rate: 24000 }, voice: "alloy", speed: 1 },
    },
    include: null,
  };
}

function envelope(type: string, code: string | null, message: string) {
  return { error: { message, type, param: null, code } };
}
