/**
 * The pool of instructions the ROUGE-L gate compares candidates with, kept tokenized: a vocabulary of
 * token ids and every instruction's token-id sequence in flat `Int32Array`s, plus the texts.
 * It serializes to a compact versioned binary, so a Lambda can load a 50,000-instruction pool from S3
 * without tokenizing it again.
 */
import { SelfInstructError } from '../errors.ts';
import { tokenize } from './rouge.ts';
import { type GateOptions, type GateResult, runGate } from './scoring.ts';
import { TokenPool, type TokenPoolCheckpoint } from './token-pool.ts';

/** A serialized index that can't be read (wrong magic, unknown version, truncated or inconsistent). */
export class RougeIndexInvalid extends SelfInstructError {}

const MAGIC = 0x58494752; // 'RGIX' read as a little-endian uint32
const HEADER_BYTES = 32;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** An index's state at one moment (`RougeIndex.checkpoint`). */
export interface RougeIndexCheckpoint {
  pool: TokenPoolCheckpoint;
  vocabularySize: number;
}

/** An append-only pool of tokenized instructions. */
export class RougeIndex {
  /** Version of the `toBuffer()` format; `fromBuffer()` refuses any other. */
  static readonly FORMAT_VERSION = 1;

  readonly #vocabulary = new Map<string, number>();
  readonly #words: string[] = [];
  readonly #texts: string[] = [];
  #pool = new TokenPool();

  /** An index of `texts`, in order. */
  static from(texts: Iterable<string>): RougeIndex {
    const index = new RougeIndex();
    for (const text of texts) index.add(text);
    return index;
  }

  /** Number of instructions in the pool. */
  get size(): number {
    return this.#pool.size;
  }

  /** The instructions' token ids, which the LCS kernels scan. */
  get tokenPool(): TokenPool {
    return this.#pool;
  }

  /** Number of distinct tokens seen. */
  get vocabularySize(): number {
    return this.#words.length;
  }

  /** Total number of tokens over all instructions. */
  get tokenCount(): number {
    return this.#pool.tokenCount;
  }

  /** Token count of the longest instruction. */
  get maxLength(): number {
    return this.#pool.maxLength;
  }

  /** All instructions, in pool order. */
  get instructions(): readonly string[] {
    return this.#texts;
  }

  /**
   * Scores `candidate` against the pool without adding it (the gate's single-candidate form, see
   * `scoreCandidate` in `gate.ts`); `add` admits it.
   */
  score(candidate: string, options: GateOptions = {}): GateResult {
    return runGate(this, [candidate], options, false)[0] as GateResult;
  }

  /** Appends `text` (tokenized here) and returns its position. */
  add(text: string): number {
    return this.addTokenized(text, tokenize(text));
  }

  /**
   * Appends `text` whose tokens (from `tokenize(text)`) are already known; returns its position. `ids`,
   * when given, are their ids where known (`tokenId`) and negative where not.
   */
  addTokenized(text: string, tokens: readonly string[], ids?: ArrayLike<number>): number {
    const resolved = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      let id = ids?.[i] ?? -1;
      if (id < 0) {
        const token = tokens[i] as string;
        id = this.#vocabulary.get(token) ?? this.#words.length;
        if (id === this.#words.length) {
          this.#vocabulary.set(token, id);
          this.#words.push(token);
        }
      }
      resolved[i] = id;
    }
    this.#texts.push(text);
    return this.#pool.append(resolved);
  }

  /**
   * Appends every instruction of `segment` (another index, e.g. one segment of a pool stored in parts),
   * in order, mapping its token ids onto this index's vocabulary without tokenizing again. The result is
   * the index `add` would build from the same texts in the same order (same vocabulary order too).
   */
  append(segment: RougeIndex): void {
    const ids = new Int32Array(segment.vocabularySize);
    segment.#words.forEach((word, id) => {
      let mine = this.#vocabulary.get(word);
      if (mine === undefined) {
        mine = this.#words.length;
        this.#vocabulary.set(word, mine);
        this.#words.push(word);
      }
      ids[id] = mine;
    });
    const { tokens, offsets } = segment.storage();
    const mapped = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) mapped[i] = ids[tokens[i] as number] as number;
    for (let position = 0; position < segment.size; position++) {
      this.#texts.push(segment.#texts[position] as string);
      this.#pool.append(mapped.subarray(offsets[position], offsets[position + 1]));
    }
  }

  /** What `rollback` restores: the index as it is now. */
  checkpoint(): RougeIndexCheckpoint {
    return { pool: this.#pool.checkpoint(), vocabularySize: this.#words.length };
  }

  /** Drops what was added since `checkpoint`: instructions and the tokens only they had. */
  rollback(checkpoint: RougeIndexCheckpoint): void {
    this.#pool.rollback(checkpoint.pool);
    this.#texts.length = checkpoint.pool.size;
    for (const word of this.#words.splice(checkpoint.vocabularySize)) this.#vocabulary.delete(word);
  }

  /** The text at `position`. */
  text(position: number): string {
    const text = this.#texts[position];
    if (text === undefined) throw new RangeError(`no instruction at position ${position}`);
    return text;
  }

  /** The id of `token`, or undefined when no instruction in the pool has it. */
  tokenId(token: string): number | undefined {
    return this.#vocabulary.get(token);
  }

  /** The token of `id`. */
  token(id: number): string {
    const word = this.#words[id];
    if (word === undefined) throw new RangeError(`no token with id ${id}`);
    return word;
  }

  /** Token ids of the instruction at `position` (a view: do not modify). */
  tokenIds(position: number): Int32Array {
    return this.#pool.ids(position);
  }

  /** The flat storage of the token ids (see `TokenPool.storage`). */
  storage(): { tokens: Int32Array; offsets: Int32Array; lengths: Int32Array } {
    return this.#pool.storage();
  }

  /**
   * Serializes the index (format version 1, little-endian):
   * a 32-byte header (magic `RGIX`, version, size, vocabulary size, token count, and the byte lengths
   * of the vocabulary and texts sections), then `offsets` (size + 1 int32), token ids (int32),
   * text byte lengths (size uint32), the vocabulary as UTF-8 joined by `\n` (tokens are `[a-z0-9]+`),
   * and the texts as concatenated UTF-8.
   */
  toBuffer(): Uint8Array {
    const { tokens, offsets } = this.#pool.storage();
    const size = this.size;
    const vocabulary = encoder.encode(this.#words.join('\n'));
    const texts = this.#texts.map((text) => encoder.encode(text));
    const textBytes = texts.reduce((sum, bytes) => sum + bytes.length, 0);
    const intsBytes = 4 * (size + 1 + tokens.length + size);
    const buffer = new Uint8Array(HEADER_BYTES + intsBytes + vocabulary.length + textBytes);
    const view = new DataView(buffer.buffer);
    const header = [
      MAGIC,
      RougeIndex.FORMAT_VERSION,
      size,
      this.#words.length,
      tokens.length,
      vocabulary.length,
      textBytes,
      0,
    ];
    header.forEach((value, i) => {
      view.setUint32(4 * i, value, true);
    });
    let at = HEADER_BYTES;
    const putInt = (value: number) => {
      view.setInt32(at, value, true);
      at += 4;
    };
    for (const offset of offsets) putInt(offset);
    for (const id of tokens) putInt(id);
    for (const bytes of texts) putInt(bytes.length);
    buffer.set(vocabulary, at);
    at += vocabulary.length;
    for (const bytes of texts) {
      buffer.set(bytes, at);
      at += bytes.length;
    }
    return buffer;
  }

  /** Reads an index written by `toBuffer()`, checking its structure; throws `RougeIndexInvalid`. */
  static fromBuffer(buffer: Uint8Array): RougeIndex {
    const fail = (message: string): never => {
      throw new RougeIndexInvalid(`Pool index is invalid: ${message}`);
    };
    if (buffer.length < HEADER_BYTES) fail('too short for a header');
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const u32 = (i: number) => view.getUint32(4 * i, true);
    if (u32(0) !== MAGIC) fail('not a pool index (bad magic)');
    if (u32(1) !== RougeIndex.FORMAT_VERSION) {
      fail(`format version ${u32(1)} is not supported (expected ${RougeIndex.FORMAT_VERSION})`);
    }
    const size = u32(2);
    const vocabularySize = u32(3);
    const tokenCount = u32(4);
    const vocabularyBytes = u32(5);
    const textBytes = u32(6);
    const expected = HEADER_BYTES + 4 * (size + 1 + tokenCount + size) + vocabularyBytes + textBytes;
    if (buffer.length !== expected) fail(`expected ${expected} bytes, got ${buffer.length}`);

    let at = HEADER_BYTES;
    const getInt = () => {
      const value = view.getInt32(at, true);
      at += 4;
      return value;
    };
    const offsets = new Int32Array(size + 1);
    let previous = 0;
    for (let i = 0; i <= size; i++) {
      const offset = getInt();
      if ((i === 0 && offset !== 0) || offset < previous || offset > tokenCount) fail(`bad offset at ${i}`);
      offsets[i] = offset;
      previous = offset;
    }
    if (previous !== tokenCount) fail('offsets do not cover the tokens');
    const tokens = new Int32Array(tokenCount);
    for (let i = 0; i < tokenCount; i++) {
      const id = getInt();
      if (id < 0 || id >= vocabularySize) fail(`token id ${id} out of range`);
      tokens[i] = id;
    }
    const textLengths: number[] = [];
    for (let i = 0; i < size; i++) textLengths.push(getInt() >>> 0);
    if (textLengths.reduce((sum, n) => sum + n, 0) !== textBytes) fail('text lengths do not add up');
    const decode = (bytes: Uint8Array) => {
      try {
        return decoder.decode(bytes);
      } catch {
        return fail('text is not valid UTF-8');
      }
    };
    const words = vocabularySize === 0 ? [] : decode(buffer.subarray(at, at + vocabularyBytes)).split('\n');
    at += vocabularyBytes;
    if (words.length !== vocabularySize) fail('vocabulary size does not match');
    const index = new RougeIndex();
    words.forEach((word, id) => {
      if (!/^[a-z0-9]+$/.test(word) || index.#vocabulary.has(word)) fail(`bad vocabulary entry ${id}`);
      index.#vocabulary.set(word, id);
      index.#words.push(word);
    });
    for (const length of textLengths) {
      index.#texts.push(decode(buffer.subarray(at, at + length)));
      at += length;
    }
    index.#pool = TokenPool.fromArrays(tokens, offsets);
    return index;
  }
}
