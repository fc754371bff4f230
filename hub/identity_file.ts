import { dirname } from "node:path";
import { generateIdentity, type Signer, signerFromPem } from "../protocol/identity.ts";
import type { Logger } from "../runtime/log.ts";

/** Loads the hub identity key, creating it (mode 0600) on first start. */
export async function loadOrCreateIdentity(path: string, log?: Logger): Promise<Signer> {
  let pem: string | undefined;
  try {
    pem = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (pem !== undefined) {
    try {
      return await signerFromPem(pem);
    } catch (e) {
      throw new TypeError(`Cannot load hub identity key ${path}: ${(e as Error).message}`);
    }
  }
  const created = await generateIdentity();
  const signer = created.signer;
  await Deno.mkdir(dirname(path), { recursive: true });
  // createNew: two hubs starting at once must not overwrite each other's fresh key.
  try {
    await Deno.writeTextFile(path, created.pem, { mode: 0o600, createNew: true });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      return await signerFromPem(await Deno.readTextFile(path));
    }
    throw e;
  }
  log?.info("created hub identity key", { path, keyId: signer.keyId });
  return signer;
}
