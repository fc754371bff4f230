/**
 * Agent command line. The agent dials out to the hub; it never listens on a public interface.
 *
 *   agent init --hub URL --hub-key KEY [--hub-fingerprint sha256:…]… [--agent-id ID] [--dir DIR]
 *   agent set-id ID [--dir DIR]
 *   agent run [--dir DIR]
 *   agent channel add --vendor V --key K [--key K2] [--models a,b] [--rpm N] [--tpm N] [--id ID]
 *                     [--endpoint NAME] [--dir DIR]   (NAME: e.g. the resource of a per-resource host)
 *                     [--deployment NAME=MODEL]…     (Azure: deployments and the model each runs)
 *   agent channel list|remove --id ID [--dir DIR]
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { systemClock } from "../protocol/clock.ts";
import { generateIdentity, signerFromPem, verifierFor } from "../protocol/identity.ts";
import { LIMITS } from "../protocol/limits.ts";
import { createLogger, parseLogLevel } from "../runtime/log.ts";
import { channelCommand } from "./channels_cli.ts";
import {
  capabilitiesOf,
  type Channel,
  paths,
  readChannels,
  readConfig,
  tunnelUrl,
  validateConfig,
  writeJsonAtomic,
} from "./config.ts";
import {
  allowedNetHosts,
  channelNetHosts,
  hasUnrestrictedNet,
  lockedRunFlags,
  parseDevUpstreams,
} from "./permissions.ts";
import type { DevUpstreams } from "./upstream/whitelist.ts";
import type { Frame } from "../protocol/frames.ts";
import { vendorNamed } from "../protocol/vendors/registry.ts";
import { TunnelSupervisor } from "./tunnel/supervisor.ts";
import { ChannelLimiters } from "./limits/channels.ts";
import { AgentLedger } from "./ledger/mod.ts";
import { SettlementChecker } from "./ledger/verify.ts";
import { OwnCountStore } from "./ledger/own_counts.ts";
import { AgentLedgerSync } from "./ledger/sync.ts";
import { AgentPrices } from "./ledger/prices.ts";
import { join } from "node:path";
import { emptyUsage } from "../protocol/usage.ts";

const USAGE =
  `usage: agent <init|set-id|run|channel> [options]  (see agent/main.ts header or README)`;

function dirOf(values: { dir?: string }): string {
  return values.dir ?? Deno.env.get("AGENT_DIR") ?? "./data/agent";
}

async function init(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      hub: { type: "string" },
      "hub-key": { type: "string" },
      "hub-fingerprint": { type: "string", multiple: true },
      "agent-id": { type: "string" },
      dir: { type: "string" },
    },
  });
  const dir = dirOf(values);
  if (!values.hub || !values["hub-key"]) {
    throw new TypeError("init needs --hub <url> and --hub-key <hub public key>");
  }
  const config = validateConfig({
    hubUrl: values.hub,
    hubPublicKey: values["hub-key"],
    hubFingerprints: values["hub-fingerprint"] ?? [],
    agentId: values["agent-id"],
  }, "arguments");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const p = paths(dir);
  let publicKey: string;
  try {
    // Re-running init keeps the identity: the hub has enrolled this key.
    publicKey = (await signerFromPem(await Deno.readTextFile(p.key))).publicKey;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    const { pem, signer } = await generateIdentity();
    await Deno.writeTextFile(p.key, pem, { mode: 0o600, createNew: true });
    publicKey = signer.publicKey;
  }
  await writeJsonAtomic(p.config, config, 0o600);
  console.log(publicKey);
  console.error(
    `agent identity in ${p.key}; enroll this public key at the hub (POST /admin/agents)`,
  );
  return 0;
}

async function setId(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { dir: { type: "string" } },
    allowPositionals: true,
  });
  const dir = dirOf(values);
  const config = await readConfig(dir);
  await writeJsonAtomic(
    paths(dir).config,
    validateConfig({ ...config, agentId: positionals[0] }, "set-id"),
  );
  return 0;
}

async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { dir: { type: "string" } } });
  const dir = dirOf(values);
  const config = await readConfig(dir);
  const url = tunnelUrl(config.hubUrl);
  if (hasUnrestrictedNet()) return await runLocked(dir, url);

  const log = createLogger({ service: "agent", level: parseLogLevel(Deno.env.get("LOG_LEVEL")) });
  const agentId = Deno.env.get("AGENT_ID") || config.agentId;
  if (!agentId) {
    throw new Error(
      "agent id unknown: enroll the public key at the hub, then `agent set-id <id>` or set AGENT_ID",
    );
  }
  const identity = await signerFromPem(await Deno.readTextFile(paths(dir).key));
  let channels = await readChannels(dir);
  const limiters = new ChannelLimiters();
  // The agent's own copy of its settlement ledger, checked entry by entry against its own counts.
  const ledger = await AgentLedger.open(join(dir, "ledger"), { agentId, clock: systemClock });
  // Own counts are durable (own_counts.ts): a crash or a dropped tunnel does not lose what the
  // agent measured; unsettled ones are CLAIMed after the next catch-up (sync.ts).
  const usageBook = new OwnCountStore(ledger.dbPath);
  // Price versions the hub published, kept in <dir>/prices; a missing one is fetched on demand.
  const prices = await AgentPrices.open({
    dir: join(dir, "prices"),
    log: log.with({ agentId, component: "prices" }),
    send: (frame) => supervisor.connection?.sendControl(frame) ?? false,
  });
  const settlements = new SettlementChecker({
    ledger,
    book: usageBook,
    agentId,
    tables: prices.lookup,
    log: log.with({ agentId, component: "ledger" }),
    onAppended: (entry, reply) => ledgerSync.onAppended(entry, reply),
  });
  const hubKey = await verifierFor(config.hubPublicKey);
  const ledgerSync = new AgentLedgerSync({
    ledger,
    checker: settlements,
    counts: usageBook,
    identity,
    hubKey,
    clock: systemClock,
    log: log.with({ agentId, component: "ledger-sync" }),
    checkpointEvery: envInt("AGENT_CHECKPOINT_EVERY", 100),
    claimGraceMs: envInt("AGENT_CLAIM_GRACE_MS", 60_000),
  });
  const supervisor = new TunnelSupervisor({
    tunnelUrl: url,
    certFingerprints: config.hubFingerprints,
    agentId,
    identity,
    hubKey,
    capabilities: () => capabilitiesOf(channels),
    backoff: {
      baseMs: envInt("AGENT_RECONNECT_BASE_MS", LIMITS.reconnectBaseMs),
      capMs: envInt("AGENT_RECONNECT_CAP_MS", LIMITS.reconnectCapMs),
      stableAfterMs: LIMITS.reconnectStableAfterMs,
    },
    clock: systemClock,
    random: Math.random,
    log: log.with({ agentId }),
    streams: {
      resolveChannel: (request) => resolveChannel(channels, request),
      dev: devUpstreams(),
      limiterFor: (channel) => limiters.for(channel),
      capacity: () => limiters.capacity(),
      onMetered: (request, result) => {
        if (!result.usage) return;
        // Called just before RESPONSE_END goes out: `socketOpen` says whether it can reach the
        // hub (a closed tunnel: the count will be CLAIMed after reconnecting).
        usageBook.put(request.requestId, {
          vendor: request.vendor,
          usage: { ...emptyUsage(), ...result.usage },
          promptTokens: result.promptTokens,
          model: result.model,
          serviceTier: result.serviceTier,
          atMs: systemClock.nowMs(),
        }, supervisor.connection?.socketOpen ?? false);
      },
      onSettled: (frame, reply) => void settlements.onSettled(frame, reply),
      ledgerSync,
      onPrices: (frame) =>
        frame.type === "prices" ? void prices.accept(frame) : prices.missing(frame),
    },
  });
  const watcher = watchChannels(dir, async () => {
    channels = await readChannels(dir);
    supervisor.updateCapabilities();
    // `--allow-net` was fixed at start: a channel on a new per-account host needs a restart.
    for (const host of channelNetHosts(channels)) {
      if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
        log.warn("a channel's host is not allowed in this run; restart the agent", { host });
      }
    }
  });
  const stop = () => supervisor.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  log.info("agent starting", {
    hub: url,
    keyId: identity.keyId,
    channels: channels.length,
    pid: Deno.pid,
  });
  const reason = await supervisor.run();
  watcher.close();
  settlements.close();
  prices.close();
  await settlements.idle();
  usageBook.close();
  await ledger.close();
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  return reason.kind === "superseded" ? 3 : 0;
}

/** Re-executes `agent run` with the network narrowed to the hub and the official vendor hosts. */
async function runLocked(dir: string, url: string): Promise<number> {
  const hosts = allowedNetHosts(url, Deno.env.get("AGENT_DEV_UPSTREAMS"), await readChannels(dir));
  const self = fileURLToPath(import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...lockedRunFlags(dir, hosts), self, "run", "--dir", dir],
    stdin: "null",
  }).spawn();
  // The child handles SIGINT/SIGTERM itself; forward them and wait for its graceful exit.
  const forward = (signal: Deno.Signal) => () => child.kill(signal);
  const onInt = forward("SIGINT"), onTerm = forward("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  const status = await child.status;
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  return status.code;
}

/** Calls `onChange` (debounced) when channels.json is replaced. */
function watchChannels(dir: string, onChange: () => Promise<void>): { close(): void } {
  const watcher = Deno.watchFs(dir, { recursive: false });
  let timer: ReturnType<typeof setTimeout> | undefined;
  (async () => {
    for await (const event of watcher) {
      if (!event.paths.some((p) => p.endsWith("channels.json"))) continue;
      clearTimeout(timer);
      timer = setTimeout(
        () => onChange().catch(() => {/* a half-edited file: the next event retries */}),
        100,
      );
    }
  })();
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}

/** The channel the hub chose for a request, if this agent has it for that vendor. */
function resolveChannel(channels: Channel[], request: Frame<"request">) {
  const channel = channels.find((c) => c.id === request.channelId) ??
    (request.channelId ? undefined : channels.find((c) => c.vendor === request.vendor));
  if (!channel || channel.vendor !== request.vendor) {
    return `no ${request.vendor} channel "${request.channelId ?? ""}" here`;
  }
  const vendor = vendorNamed(channel.vendor);
  if (!vendor) return `vendor ${channel.vendor} is not supported by this agent version`;
  return { vendor, channel };
}

function devUpstreams(): DevUpstreams | undefined {
  const text = Deno.env.get("AGENT_DEV_UPSTREAMS");
  return text ? parseDevUpstreams(text) : undefined;
}

function envInt(name: string, fallback: number): number {
  const v = Deno.env.get(name);
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new RangeError(`${name}="${v}" is not a positive integer`);
  }
  return n;
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "init":
      return await init(rest);
    case "set-id":
      return await setId(rest);
    case "run":
      return await run(rest);
    case "channel":
      return await channelCommand(rest, dirOf);
    default:
      console.error(USAGE);
      return command === "help" || command === "--help" ? 0 : 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`agent: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
