/**
 * Bit-parallel LCS (Allison–Dix 1986, in Hyyrö's 2004 form) of one candidate against a range of
 * token-id sequences, in plain JavaScript: the fallback of the WebAssembly kernel, the path for
 * candidates longer than 64 tokens, and the comparisons of a batch's candidates with each other.
 *
 * The candidate's positions are bits: `M[t]` has bit i set when the candidate's i-th token is `t`. Scanning
 * an instruction, each token updates `U = V & M[t]; V = (V + U) | (V - U)` (multiword: `V - U` = `V & ~M`,
 * and the addition carries across words); a token not in the candidate has `M = 0`, a no-op. The LCS is the
 * number of zero bits of V within the candidate's length. O(n·⌈m/32⌉) per instruction instead of O(n·m).
 */

let masks = new Int32Array(0);

/** Bits set in a 32-bit integer. */
export function popcount32(value: number): number {
  let x = value - ((value >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Sequences of token ids: `tokens[offsets[d] .. offsets[d + 1])` is sequence `d`. */
export interface TokenSequences {
  tokens: Int32Array;
  offsets: Int32Array;
}

/**
 * Writes into `out[d - from]` the LCS length of `candidate` and sequence `d` of `sequences`, for `d` in
 * `[from, to)`. Token ids are below `idLimit` (see `TokenPool.idLimit`); a candidate's ids outside
 * `[0, idLimit)`, such as negative ones, match nothing.
 */
export function lcsAgainst(
  sequences: TokenSequences,
  idLimit: number,
  candidate: Int32Array,
  from: number,
  to: number,
  out: Int32Array,
): void {
  const m = candidate.length;
  if (m === 0) {
    out.fill(0, 0, to - from);
    return;
  }
  const words = Math.ceil(m / 32);
  if (masks.length < idLimit * words) masks = new Int32Array(Math.max(idLimit * words, 2 * masks.length));
  for (let i = 0; i < m; i++) {
    const id = candidate[i] as number;
    if (id >= 0 && id < idLimit) {
      const at = id * words + (i >>> 5);
      masks[at] = (masks[at] as number) | (1 << (i & 31));
    }
  }
  const { tokens, offsets } = sequences;
  try {
    if (words === 1) scanOneWord(tokens, offsets, m, from, to, out);
    else scanWords(tokens, offsets, m, words, from, to, out);
  } finally {
    for (let i = 0; i < m; i++) {
      const id = candidate[i] as number;
      if (id >= 0 && id < idLimit) masks[id * words + (i >>> 5)] = 0;
    }
  }
}

function scanOneWord(
  tokens: Int32Array,
  offsets: Int32Array,
  m: number,
  from: number,
  to: number,
  out: Int32Array,
): void {
  const table = masks;
  const full = m === 32 ? -1 : (1 << m) - 1;
  for (let d = from; d < to; d++) {
    let v = full;
    const end = offsets[d + 1] as number;
    for (let k = offsets[d] as number; k < end; k++) {
      const u = v & (table[tokens[k] as number] as number);
      v = (v + u) | (v - u);
    }
    out[d - from] = popcount32(~v & full);
  }
}

function scanWords(
  tokens: Int32Array,
  offsets: Int32Array,
  m: number,
  words: number,
  from: number,
  to: number,
  out: Int32Array,
): void {
  const table = masks;
  const v = new Int32Array(words);
  const top = m % 32 === 0 ? -1 : (1 << (m % 32)) - 1;
  for (let d = from; d < to; d++) {
    v.fill(-1);
    v[words - 1] = top;
    const end = offsets[d + 1] as number;
    for (let k = offsets[d] as number; k < end; k++) {
      const row = (tokens[k] as number) * words;
      let carry = 0;
      for (let w = 0; w < words; w++) {
        const mask = table[row + w] as number;
        const vw = v[w] as number;
        const sum = (vw >>> 0) + ((vw & mask) >>> 0) + carry;
        carry = sum > 0xffffffff ? 1 : 0;
        v[w] = sum | (vw & ~mask);
      }
    }
    let lcs = 0;
    for (let w = 0; w < words - 1; w++) lcs += popcount32(~(v[w] as number));
    out[d - from] = lcs + popcount32(~(v[words - 1] as number) & top);
  }
}
