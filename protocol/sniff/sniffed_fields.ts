/**
 * Bookkeeping shared by the body sniffers: which requested fields were seen, their first and
 * final values, and whether a duplicate disagreed. A body can repeat a field, and the parser at
 * the vendor keeps one of the copies (`JSON.parse` the last one, `FormData.get` the first), so a
 * value seen early is only a routing hint: values are final once `done` (the body ended), and a
 * gateway should reject a body whose field has a `conflict`, so no two parsers can disagree.
 */
export abstract class SniffedFields<V> {
  /** Why the body was rejected (malformed, not the expected shape, value too long); then `done`. */
  error?: string;
  /** The requested names, deduplicated, in order. */
  protected readonly names: string[];
  /** Requested name → field number. */
  protected readonly index = new Map<string, number>();
  /** Whether `end()` was called. */
  protected ended = false;
  readonly #lastWins: boolean;
  readonly #kind: Uint8Array; // 0 absent, 1 captured value, 2 present but not captured
  readonly #first: (V | undefined)[];
  readonly #last: (V | undefined)[];
  readonly #conflict: boolean[];
  #seen = 0;

  /** `lastWins`: which duplicate the reference parser keeps (`get` returns that one). */
  protected constructor(fields: string[], lastWins: boolean) {
    this.names = [...new Set(fields)];
    this.names.forEach((n, i) => this.index.set(n, i));
    const k = this.names.length;
    this.#lastWins = lastWins;
    this.#kind = new Uint8Array(k);
    [this.#first, this.#last] = [Array(k).fill(undefined), Array(k).fill(undefined)];
    this.#conflict = Array(k).fill(false);
  }

  /** True once `end()` was called or an error was found: `get`, `has`, `conflict` are final. */
  get done(): boolean {
    return this.ended || this.error !== undefined;
  }
  /** True once every requested field was seen at least once (or `done`): `getEarly` is usable. */
  get ready(): boolean {
    return this.#seen === this.names.length || this.done;
  }
  /** The value the reference parser would keep, as seen so far; final once `done`. */
  get(name: string): V | undefined {
    const i = this.index.get(name);
    return i === undefined ? undefined : this.#lastWins ? this.#last[i] : this.#first[i];
  }
  /** The first value seen: for routing before the body has ended (check `conflict` at the end). */
  getEarly(name: string): V | undefined {
    const i = this.index.get(name);
    return i === undefined ? undefined : this.#first[i];
  }
  /** Whether the field occurred, even with a value that is not captured (object, array, file). */
  has(name: string): boolean {
    const i = this.index.get(name);
    return i !== undefined && this.#kind[i] !== 0;
  }
  /** Whether the field occurred again with a different value (or either copy not captured). */
  conflict(name: string): boolean {
    const i = this.index.get(name);
    return i !== undefined && this.#conflict[i]!;
  }

  /** Records an occurrence of field `f`; `captured` false: present, value not captured. */
  protected record(f: number, value: V | undefined, captured: boolean): void {
    if (this.#kind[f] === 0) this.#seen++, this.#first[f] = value;
    else if (!captured || this.#kind[f] === 2 || !Object.is(this.#first[f], value)) {
      this.#conflict[f] = true;
    }
    this.#last[f] = value;
    this.#kind[f] = captured ? 1 : 2;
  }
}
