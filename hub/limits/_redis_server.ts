/**
 * Test helper: a PRIVATE redis-server on a free loopback port (so failure tests can kill -9 it
 * without touching the shared Redis). Not used by production code.
 */
const REDIS_SERVER = "/usr/bin/redis-server";

/** Binds port 0, reads the port the kernel picked, and frees it. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

/** Resolves once `pred()` is true; rejects with `what` after `timeoutMs`. Polls every `stepMs`. */
export async function waitFor(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  stepMs = 20,
): Promise<number> {
  const t0 = performance.now();
  while (!(await pred())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return performance.now() - t0;
}

/** One private redis-server process (restartable on the same port). */
export class PrivateRedis {
  readonly port: number;
  readonly dir: string;
  #child: Deno.ChildProcess | undefined;

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  /** Starts redis-server on a free port with no persistence, in a temp dir. */
  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(freePort(), await Deno.makeTempDir({ prefix: "aq-redis-" }));
    await r.restart();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** (Re)starts the server on the same port and waits until it accepts connections. */
  async restart(): Promise<void> {
    if (this.#child) throw new Error("already running");
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", ""];
    args.push("--appendonly", "no", "--dir", this.dir, "--logfile", `${this.dir}/redis.log`);
    this.#child = new Deno.Command(REDIS_SERVER, { args, stdout: "null", stderr: "null" }).spawn();
    await waitFor(`redis-server on port ${this.port}`, async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Sends `signal` to the server; SIGKILL also waits for it to be gone. */
  async signal(signal: Deno.Signal): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill(signal);
    if (signal === "SIGKILL") {
      await child.status;
      this.#child = undefined;
    }
  }

  /** Kills the server (if running) and removes its temp dir. */
  async stop(): Promise<void> {
    if (this.#child) {
      this.#child.kill("SIGCONT");
      await this.signal("SIGKILL");
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
