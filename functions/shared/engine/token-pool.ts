/**
 * The token-id sequences of a pool's instructions in flat, append-only `Int32Array`s: what the LCS
 * kernels scan. A `RougeIndex` keeps one next to its vocabulary and texts; a worker thread scanning part
 * of the pool keeps a copy without them.
 */

/** A pool's state at one moment (`TokenPool.checkpoint`). */
export interface TokenPoolCheckpoint {
  size: number;
  maxLength: number;
  idLimit: number;
  distinctLengths: number;
}

/** Token ids of instructions, in pool order. */
export class TokenPool {
  #tokens = new Int32Array(4096);
  #offsets = new Int32Array(257);
  #lengths = new Int32Array(256);
  #lengthIds = new Int32Array(256);
  #size = 0;
  #tokenCount = 0;
  #maxLength = 0;
  #idLimit = 0;
  #rollbacks = 0;
  readonly #lengthIdOf = new Map<number, number>();
  readonly #lengthsById: number[] = [];

  /**
   * A pool of the instructions whose token ids are `tokens[offsets[i] .. offsets[i + 1])`. The arrays
   * must be consistent (`offsets[0] = 0`, non-decreasing, ending at `tokens.length`; ids ≥ 0).
   */
  static fromArrays(tokens: Int32Array, offsets: Int32Array): TokenPool {
    const pool = new TokenPool();
    const size = offsets.length - 1;
    pool.#reserve(size, tokens.length);
    pool.#tokens.set(tokens);
    pool.#offsets.set(offsets);
    for (let i = 0; i < size; i++) pool.#noteLength(i, (offsets[i + 1] as number) - (offsets[i] as number));
    for (const id of tokens) if (id >= pool.#idLimit) pool.#idLimit = id + 1;
    pool.#size = size;
    pool.#tokenCount = tokens.length;
    return pool;
  }

  /** Number of instructions. */
  get size(): number {
    return this.#size;
  }

  /** Total number of tokens. */
  get tokenCount(): number {
    return this.#tokenCount;
  }

  /** Token count of the longest instruction. */
  get maxLength(): number {
    return this.#maxLength;
  }

  /**
   * How many times the pool was rolled back: a copy of it (a kernel's) made before the last rollback may
   * hold instructions and length ids it no longer has, and must be made again.
   */
  get rollbacks(): number {
    return this.#rollbacks;
  }

  /** One more than the highest token id in the pool: an id at or above it matches nothing. */
  get idLimit(): number {
    return this.#idLimit;
  }

  /**
   * The distinct token counts of the instructions, in order of first appearance: `lengthIds` in
   * `storage()` index it. Scores depend on an instruction only through its length, so the kernel keeps
   * one table of scores per candidate with a row per distinct length.
   */
  get lengthsById(): readonly number[] {
    return this.#lengthsById;
  }

  /** Appends an instruction's token ids (all ≥ 0); returns its position. */
  append(ids: ArrayLike<number>): number {
    const position = this.#size;
    this.#reserve(position + 1, this.#tokenCount + ids.length);
    let at = this.#tokenCount;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (id >= this.#idLimit) this.#idLimit = id + 1;
      this.#tokens[at++] = id;
    }
    this.#noteLength(position, ids.length);
    this.#offsets[position + 1] = at;
    this.#tokenCount = at;
    this.#size = position + 1;
    return position;
  }

  /** What `rollback` restores: the pool as it is now. */
  checkpoint(): TokenPoolCheckpoint {
    return {
      size: this.#size,
      maxLength: this.#maxLength,
      idLimit: this.#idLimit,
      distinctLengths: this.#lengthsById.length,
    };
  }

  /**
   * Drops every instruction appended since `checkpoint` was taken, leaving the pool exactly as it was
   * then (lengths, ids, limits), so a cached pool can be gated on and given back unchanged.
   */
  rollback(checkpoint: TokenPoolCheckpoint): void {
    if (checkpoint.size > this.#size) throw new RangeError('checkpoint is ahead of the pool');
    if (checkpoint.size < this.#size || checkpoint.distinctLengths < this.#lengthsById.length)
      this.#rollbacks++;
    this.#size = checkpoint.size;
    this.#tokenCount = this.#offsets[checkpoint.size] as number;
    this.#maxLength = checkpoint.maxLength;
    this.#idLimit = checkpoint.idLimit;
    for (const length of this.#lengthsById.splice(checkpoint.distinctLengths))
      this.#lengthIdOf.delete(length);
  }

  /** Token ids of the instruction at `position` (a view: do not modify). */
  ids(position: number): Int32Array {
    return this.#tokens.subarray(this.#offsets[position], this.#offsets[position + 1]);
  }

  /**
   * The flat storage: `tokens[offsets[i] .. offsets[i + 1])` are the token ids of instruction `i`,
   * `lengths[i]` their count and `lengthIds[i]` its index in `lengthsById`. Views valid until the next
   * `append`; do not modify.
   */
  storage(): { tokens: Int32Array; offsets: Int32Array; lengths: Int32Array; lengthIds: Int32Array } {
    return {
      tokens: this.#tokens.subarray(0, this.#tokenCount),
      offsets: this.#offsets.subarray(0, this.#size + 1),
      lengths: this.#lengths.subarray(0, this.#size),
      lengthIds: this.#lengthIds.subarray(0, this.#size),
    };
  }

  #noteLength(position: number, length: number): void {
    this.#lengths[position] = length;
    if (length > this.#maxLength) this.#maxLength = length;
    let id = this.#lengthIdOf.get(length);
    if (id === undefined) {
      id = this.#lengthsById.length;
      this.#lengthIdOf.set(length, id);
      this.#lengthsById.push(length);
    }
    this.#lengthIds[position] = id;
  }

  #reserve(size: number, tokenCount: number): void {
    if (tokenCount > this.#tokens.length) {
      const grown = new Int32Array(Math.max(tokenCount, 2 * this.#tokens.length));
      grown.set(this.#tokens.subarray(0, this.#tokenCount));
      this.#tokens = grown;
    }
    if (size > this.#lengths.length) {
      const capacity = Math.max(size, 2 * this.#lengths.length);
      const lengths = new Int32Array(capacity);
      lengths.set(this.#lengths.subarray(0, this.#size));
      this.#lengths = lengths;
      const lengthIds = new Int32Array(capacity);
      lengthIds.set(this.#lengthIds.subarray(0, this.#size));
      this.#lengthIds = lengthIds;
      const offsets = new Int32Array(capacity + 1);
      offsets.set(this.#offsets.subarray(0, this.#size + 1));
      this.#offsets = offsets;
    }
  }
}
