/**
 * For crash tests: runs `deno run -A <script> …args`, collects the lines it prints, and kills it
 * with SIGKILL at a chosen moment — once it printed `minLines` lines, then `extraMs` later (the
 * seeded random part of the moment). A child that exits on its own first, or prints too few
 * lines within `timeoutMs`, fails the test with its stderr.
 */
export async function runUntilKilled(
  script: string,
  args: string[],
  moment: { minLines: number; extraMs: number; timeoutMs: number },
): Promise<string[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const enough = Promise.withResolvers<void>();
  const stderr = new Response(child.stderr).text();
  const read = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (buf + chunk).split("\n");
      buf = parts.pop()!;
      lines.push(...parts);
      if (lines.length >= moment.minLines) enough.resolve();
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`child printed only ${lines.length} of ${moment.minLines} lines`)),
        moment.timeoutMs,
      );
    });
    const exited = child.status.then(async () => {
      throw new Error(`child exited early: ${await stderr}`);
    });
    exited.catch(() => {}); // handled here too: after the kill below it always rejects
    timedOut.catch(() => {});
    await Promise.race([enough.promise, exited, timedOut]);
    await new Promise((r) => setTimeout(r, moment.extraMs));
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await read;
    await stderr;
  }
  return lines;
}
