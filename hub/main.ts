/**
 * Hub command line.
 *
 *   hub serve      run the hub (configuration from HUB_* environment variables)
 *   hub identity   print the hub identity public key (what agents pin at `agent init`)
 */
import { configSourceFromEnv, parseHubConfig } from "./config.ts";
import { loadOrCreateIdentity } from "./identity_file.ts";
import { startHub } from "./server.ts";

const USAGE = `usage: hub <serve|identity>

  serve      run the hub (HUB_LISTEN, HUB_DB, HUB_ADMIN_TOKEN, HUB_IDENTITY_KEY, HUB_TLS_CERT/KEY)
  identity   print the hub identity public key and key id (creates the key if missing)`;

async function main(args: string[]): Promise<number> {
  const command = args[0];
  if (command === "serve") {
    const hub = await startHub(parseHubConfig(configSourceFromEnv()));
    const stop = () => {
      hub.close().then(() => Deno.exit(0));
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    return await new Promise<number>(() => {}); // runs until a signal
  }
  if (command === "identity") {
    const config = parseHubConfig(configSourceFromEnv());
    const identity = await loadOrCreateIdentity(config.identityKeyPath);
    console.log(JSON.stringify({ publicKey: identity.publicKey, keyId: identity.keyId }));
    return 0;
  }
  console.error(USAGE);
  return command === "help" || command === "--help" ? 0 : 2;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`hub: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
