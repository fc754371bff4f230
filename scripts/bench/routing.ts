/**
 * `deno task bench routing`: the two per-request costs of routing — one `select` decision over
 * 100 / 1,000 / 10,000 candidate channels (hub/routing/bench_select.ts), and limiter decisions/s
 * in memory and on Redis (hub/limits/bench_limiter.ts). Each script measures its own baseline and
 * prints a table and a JSON line; this runs both, one after the other, so they don't compete.
 */
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCRIPTS = ["hub/routing/bench_select.ts", "hub/limits/bench_limiter.ts"];

export async function main(args: string[]): Promise<number> {
  for (const script of SCRIPTS) {
    console.log(`\n== ${script}`);
    const status = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}${script}`, ...args],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
    if (!status.success) return status.code || 1;
  }
  return 0;
}
