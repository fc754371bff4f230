/** A seed from the environment variable `name` if set (to replay a run), else a random one. */
export function seedFromEnv(name: string): number {
  const given = Deno.env.get(name);
  if (given !== undefined && given !== "") {
    const n = Number(given);
    if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
      throw new RangeError(`${name}=${given} is not an integer in 0..2^32-1`);
    }
    return n;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}
