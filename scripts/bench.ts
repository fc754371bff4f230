/**
 * `deno task bench <name> [flags]`: runs one benchmark from scripts/bench/<name>.ts.
 *
 * Benchmarks measure on this machine, in one run, against a baseline measured in the same run
 * (interleaved rounds, medians), and print a human-readable table followed by one JSON line
 * `{"bench":"<name>",…}` that the README quotes. Speed claims come from here, never from timed
 * unit tests. To add one: export `main(args): Promise<number>` from scripts/bench/<name>.ts and
 * list it below.
 */
interface Bench {
  about: string;
  load: () => Promise<{ main(args: string[]): Promise<number> }>;
}

const BENCHES: Record<string, Bench> = {
  tunnel: {
    about: "echo round trip vs plain WebSocket; hub RSS per idle agent " +
      "[--rounds N] [--agents N] [--quick] [--seed N] [--only echo|rss]",
    load: () => import("./bench/tunnel.ts"),
  },
  gateway: {
    about: "OpenAI chat through hub + agent vs direct to the same fake vendor: added latency, " +
      "req/s at 64 conns, CPU µs/req, streaming TTFB/gaps, RSS [--rounds N] [--quick] " +
      "[--log-level L] [--cpu-prof DIR]",
    load: () => import("./bench/gateway.ts"),
  },
  ledger: {
    about: "settlements/s on SQLite and MariaDB (durable commits): settle one by one vs group " +
      "commit (SettleBatcher); agent verify + commit/s [--rounds N] [--count N] [--in-flight N] " +
      "[--quick] [--only sqlite|mariadb|agent] [--mysql DSN]",
    load: () => import("./bench/ledger.ts"),
  },
  routing: {
    about: "select() µs per decision at 100/1,000/10,000 candidates; limiter decisions/s " +
      "(memory, Redis)",
    load: () => import("./bench/routing.ts"),
  },
};

function usage(): string {
  const names = Object.entries(BENCHES).map(([name, b]) => `  ${name.padEnd(10)} ${b.about}`);
  return ["usage: deno task bench <name> [flags]", "", ...names].join("\n");
}

async function run(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return 0;
  }
  const bench = name === undefined ? undefined : BENCHES[name];
  if (!bench || !Object.hasOwn(BENCHES, name!)) {
    console.error(`${name === undefined ? "no benchmark given" : `unknown benchmark "${name}"`}\n`);
    console.error(usage());
    return 2;
  }
  return await (await bench.load()).main(rest);
}

if (import.meta.main) {
  try {
    Deno.exit(await run(Deno.args));
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    Deno.exit(1);
  }
}
