/**
 * Child processes and clean-up for the benchmarks. Every child leads its own process group
 * (`setsid`), so killing the group also reaps what it spawned (the agent launcher's locked child).
 * A `Scope` owns children, temp dirs and other closers, and releases them all on success, on error
 * and on SIGINT/SIGTERM (children in their own session do not get the terminal's Ctrl-C).
 * Output is read line by line; stdout is kept whole (benchmarks print few lines there), stderr
 * only as a bounded tail, so a chatty hub cannot grow the bench's heap and skew nothing else.
 */
import { fileURLToPath } from "node:url";

export const PROJECT_DIR = fileURLToPath(new URL("../../", import.meta.url));
export const DENO = Deno.execPath();

/** Arguments of a `deno.json` task (`deno run … agent/main.ts` → `[run, …]`), as the tests do. */
export function taskArgs(name: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${PROJECT_DIR}deno.json`));
  const command: string | undefined = config.tasks?.[name];
  if (!command?.startsWith("deno ")) throw new Error(`deno.json task "${name}" is not deno …`);
  return command.split(/\s+/).slice(1);
}

type Stream = "stdout" | "stderr";
type Listener = (line: string, stream: Stream) => void;
const TAIL_LINES = 40;

export class BenchProc {
  readonly stdout: string[] = [];
  readonly stderrTail: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #listeners = new Set<Listener>();
  readonly #pumps: Promise<void>[];
  readonly #stdin?: WritableStreamDefaultWriter<Uint8Array>;
  #exited = false;

  /** `nofile`: soft fd limit to set (via `sh -c ulimit -n`) before exec'ing deno. */
  constructor(
    readonly name: string,
    args: string[],
    options: { env?: Record<string, string>; stdin?: boolean; nofile?: number } = {},
  ) {
    const argv = options.nofile
      ? ["sh", "-c", `ulimit -n ${options.nofile} && exec "$@"`, "sh", DENO, ...args]
      : [DENO, ...args];
    this.#child = new Deno.Command("setsid", {
      args: argv,
      cwd: PROJECT_DIR,
      env: { NO_COLOR: "1", ...options.env },
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin) this.#stdin = this.#child.stdin.getWriter();
    this.#pumps = [this.#pump("stdout"), this.#pump("stderr")];
    this.status = this.#child.status;
    Promise.all([this.status, ...this.#pumps]).finally(() => {
      this.#exited = true;
      for (const l of this.#listeners) l("", "stderr");
    });
  }

  /** setsid execs in place (the child is not a group leader), so this is deno's own pid. */
  get pid(): number {
    return this.#child.pid;
  }

  async #pump(stream: Stream): Promise<void> {
    let buffered = "";
    const onLine = (line: string) => {
      if (stream === "stdout") this.stdout.push(line);
      else if (this.stderrTail.push(line) > TAIL_LINES) this.stderrTail.shift();
      for (const l of this.#listeners) l(line, stream);
    };
    for await (const chunk of this.#child[stream].pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    }
    if (buffered) onLine(buffered);
  }

  /**
   * First line of `stream` (already seen or future) for which `pick` returns a value; stdout
   * lines before index `fromLine` are skipped.
   */
  waitLine<T>(
    stream: Stream,
    pick: (line: string) => T | undefined,
    what: string,
    timeoutMs: number,
    fromLine = 0,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        f();
      };
      const listener: Listener = (line, s) => {
        const v = s === stream && line ? pick(line) : undefined;
        if (v !== undefined) return done(() => resolve(v));
        if (this.#exited) {
          done(() =>
            reject(new Error(`${this.name} exited while waiting for ${what}\n${this.dump()}`))
          );
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`))),
        timeoutMs,
      );
      this.#listeners.add(listener);
      for (const line of stream === "stdout" ? this.stdout.slice(fromLine) : this.stderrTail) {
        listener(line, stream);
        if (!this.#listeners.has(listener)) return;
      }
      if (this.#exited) listener("", stream);
    });
  }

  async send(line: string): Promise<void> {
    if (!this.#stdin) throw new Error(`${this.name}: stdin is not piped`);
    await this.#stdin.write(new TextEncoder().encode(line + "\n"));
  }

  /** Resolves with the exit code, or kills the group after `timeoutMs`. */
  async exited(timeoutMs: number): Promise<number> {
    const timer = setTimeout(() => this.stop(), timeoutMs);
    try {
      return (await this.status).code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILLs the whole process group; waits for exit and for the output pumps to drain. */
  async stop(): Promise<void> {
    try {
      Deno.kill(-this.#child.pid, "SIGKILL");
    } catch { /* group already gone */ }
    await this.#stdin?.close().catch(() => {});
    await this.status;
    await Promise.all(this.#pumps).catch(() => {});
  }

  dump(): string {
    return [`--- ${this.name} stdout`, ...this.stdout.slice(-TAIL_LINES), "--- stderr (tail)"]
      .concat(this.stderrTail).join("\n");
  }
}

/** Owns everything a benchmark starts; `close()` releases it in reverse order. */
export class Scope {
  readonly #closers: (() => Promise<void> | void)[] = [];
  #closing?: Promise<void>;

  defer(close: () => Promise<void> | void): void {
    // Something started while the scope is already closing is released right away.
    if (this.#closing) this.#closing.then(close).catch(() => {});
    else this.#closers.push(close);
  }

  proc(...args: ConstructorParameters<typeof BenchProc>): BenchProc {
    const p = new BenchProc(...args);
    this.defer(() => p.stop());
    return p;
  }

  async tempDir(prefix: string): Promise<string> {
    const path = await Deno.makeTempDir({ prefix: `aqueduct-bench-${prefix}-` });
    this.defer(() => Deno.remove(path, { recursive: true }).catch(() => {}));
    return path;
  }

  /** Idempotent; a second caller (signal + unwinding code) waits for the same clean-up. */
  close(): Promise<void> {
    return this.#closing ??= (async () => {
      for (const close of this.#closers.splice(0).reverse()) {
        try {
          await close();
        } catch (e) {
          console.error(`bench: clean-up step failed: ${e instanceof Error ? e.message : e}`);
        }
      }
    })();
  }
}

/** Runs `fn` with a scope that is closed on return, throw, SIGINT or SIGTERM. */
export async function withScope<T>(fn: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope();
  const onSignal = () => {
    console.error("bench: interrupted; cleaning up");
    scope.close().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    return await fn(scope);
  } finally {
    await scope.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

/** Runs a short CLI command (inside `scope`) to completion; returns its trimmed stdout. */
export async function runToEnd(scope: Scope, name: string, args: string[]): Promise<string> {
  const p = scope.proc(name, args);
  const code = await p.exited(60_000);
  await p.stop();
  if (code !== 0) throw new Error(`${name} exited ${code}\n${p.dump()}`);
  return p.stdout.join("\n").trim();
}

/** Resident set size of `pid` in KiB (VmRSS from /proc). */
export function rssKiB(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+) kB/m);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** The fd limits children inherit (Deno cannot read rlimits; a shell can). */
export async function fdLimits(): Promise<{ soft: number; hard: number }> {
  const out = await new Deno.Command("sh", { args: ["-c", "ulimit -Sn; ulimit -Hn"] }).output();
  const [soft, hard] = new TextDecoder().decode(out.stdout).trim().split(/\s+/).map((v) =>
    v === "unlimited" ? Infinity : Number(v)
  );
  return { soft: soft ?? 1024, hard: hard ?? soft ?? 1024 };
}

/** Polls `probe` every `everyMs` until it returns a value; throws after `timeoutMs`. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs: number,
  everyMs = 50,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
