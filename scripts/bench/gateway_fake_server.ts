/**
 * The fake OpenAI vendor (tests/fakes/openai.ts) in a process of its own, for
 * `deno task bench gateway`: both the direct runs and the agent call this one server, so the
 * vendor's own cost is the same on both sides and never lands in the bench (load generator)
 * process. Prints its URL on stdout once listening; runs until killed.
 *
 * The fake keeps a record of every request for tests; here nobody reads them, so the list is
 * emptied every second to keep the fake's heap (and its GC work) flat over a long run.
 *
 *   deno run --allow-net=127.0.0.1 scripts/bench/gateway_fake_server.ts KEY
 */
import { startFakeOpenAI } from "../../tests/fakes/openai.ts";

const key = Deno.args[0];
if (!key) throw new Error("usage: gateway_fake_server.ts VENDOR_KEY");
const fake = await startFakeOpenAI({ keys: [key] });
setInterval(() => fake.requests.length = 0, 1000);
console.log(fake.url);
