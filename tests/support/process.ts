/**
 * Real child processes for cross-process tests: spawn, read their JSON-lines logs, wait on a
 * condition (never a bare sleep), and always clean up.
 */
import { fileURLToPath } from "node:url";

export const PROJECT_DIR = fileURLToPath(new URL("../../", import.meta.url));
export const DENO = Deno.execPath();

/**
 * The argument list of a `deno.json` task (`deno run … hub/main.ts serve` → `[run, …]`), so tests
 * start exactly what the README's `deno task NAME` starts while owning the process directly.
 */
export function taskArgs(name: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${PROJECT_DIR}deno.json`));
  const command: string | undefined = config.tasks?.[name];
  if (!command?.startsWith("deno ")) {
    throw new Error(`deno.json task "${name}" is not a plain deno command`);
  }
  return command.split(/\s+/).slice(1);
}

export type LogLine = Record<string, unknown> & { msg?: string };

/** A spawned process whose stderr (JSON lines) and stdout are captured. */
export class Proc {
  readonly lines: LogLine[] = [];
  readonly stdout: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #waiters = new Set<() => void>();
  readonly status: Promise<Deno.CommandStatus>;
  readonly #pumps: Promise<void>[];
  #exited = false;

  constructor(
    readonly name: string,
    args: string[],
    options: { env?: Record<string, string>; cwd?: string } = {},
  ) {
    // setsid: the process leads its own group, so `stop()` also reaps what it spawned
    // (the agent launcher's locked child, a task's subprocess).
    this.#child = new Deno.Command("setsid", {
      args: [DENO, ...args],
      cwd: options.cwd ?? PROJECT_DIR,
      env: { NO_COLOR: "1", ...options.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [
      this.#pump(this.#child.stderr, (line) => this.lines.push(parseLine(line))),
      this.#pump(this.#child.stdout, (line) => this.stdout.push(line)),
    ];
    this.status = this.#child.status;
    this.status.then(() => this.#exited = true);
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
      for (const wake of this.#waiters) wake();
    }
    if (buffered) onLine(buffered);
    for (const wake of this.#waiters) wake();
  }

  /** Resolves with the first log line matching `pred` (already seen or future). */
  waitForLine(pred: (l: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> {
    return waitFor(
      () => {
        const line = this.lines.find(pred);
        if (!line && this.#exited) {
          throw new Error(
            `${this.name} exited while waiting for ${what}:\n${this.dump()}`,
          );
        }
        return line;
      },
      `${this.name}: ${what}`,
      timeoutMs,
      this.#waiters,
    );
  }

  /** Resolves once the process exited, with its exit code. */
  async exited(timeoutMs = 15_000): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name}: did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return (await Promise.race([this.status, timeout])).code;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch { /* already exited */ }
  }

  /** Kills the whole process group and waits for exit and for the output pumps to drain. */
  async stop(): Promise<void> {
    try {
      Deno.kill(-this.#child.pid, "SIGKILL");
    } catch { /* group already gone */ }
    await this.status;
    await Promise.all(this.#pumps);
  }

  /** Log text for assertion messages. */
  dump(): string {
    return this.lines.map((l) => JSON.stringify(l)).join("\n");
  }
}

function parseLine(line: string): LogLine {
  try {
    const v = JSON.parse(line);
    return typeof v === "object" && v !== null ? v : { raw: line };
  } catch {
    return { raw: line };
  }
}

/**
 * Polls `probe` until it returns a value other than undefined/false, waking early when any of
 * `wakers` fires. Fails with `what` after `timeoutMs`.
 */
export function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 15_000,
  wakers?: Set<() => void>,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let running = false;
    const check = async () => {
      if (running) return;
      running = true;
      try {
        const v = await probe();
        if (v !== undefined && v !== false) return finish(() => resolve(v as T));
        if (performance.now() > deadline) {
          return finish(() => reject(new Error(`timed out waiting for ${what}`)));
        }
        clearTimeout(timer);
        timer = setTimeout(check, 20);
      } catch (e) {
        finish(() => reject(e));
      } finally {
        running = false;
      }
    };
    const finish = (f: () => void) => {
      clearTimeout(timer);
      wakers?.delete(check);
      f();
    };
    wakers?.add(check);
    check();
  });
}

/** Temp directory removed by the returned disposer. */
export async function tempDir(
  prefix: string,
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: `aqueduct-${prefix}-` });
  return { path, remove: () => Deno.remove(path, { recursive: true }).catch(() => {}) };
}
