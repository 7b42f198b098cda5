/**
 * ROUGE-L as the Self-Instruct and Stanford Alpaca code compute it: Google's `rouge-score`,
 * `RougeScorer(["rougeL"], use_stemmer=False)`. Same tokenizer, same LCS, and the same floating-point
 * operations in the same order, so every score equals Python's to the last bit.
 */

const TOKEN = /[a-z0-9]+/g;

/**
 * rouge-score's default tokenizer without stemmer: lower-case, replace every run of characters
 * outside `[a-z0-9]` with a space, split on whitespace, keep tokens matching `^[a-z0-9]+$`.
 * Finding the runs of `[a-z0-9]` in the lower-cased text gives the same list.
 *
 * Python's `str.lower()` and JavaScript's `toLowerCase()` both apply Unicode's full lower-case mapping;
 * only characters that lower-case to ASCII letters can matter here (`İ` → `i̇`, the Kelvin sign → `k`),
 * and both agree on them. Text in other scripts yields no tokens.
 */
export function tokenize(text: string): string[] {
  return text.toLowerCase().match(TOKEN) ?? [];
}

/**
 * Length of the longest common subsequence of two sequences (rouge-score's `_lcs_table(...)[-1][-1]`),
 * by dynamic programming over one row: O(|a|·|b|) time, O(|b|) memory.
 */
export function lcsLength<T>(a: ArrayLike<T>, b: ArrayLike<T>): number {
  const n = b.length;
  if (a.length === 0 || n === 0) return 0;
  const row = new Int32Array(n + 1);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    let diagonal = 0; // row[j - 1] of the previous row
    for (let j = 1; j <= n; j++) {
      const above = row[j] as number;
      row[j] = x === b[j - 1] ? diagonal + 1 : Math.max(above, row[j - 1] as number);
      diagonal = above;
    }
  }
  return row[n] as number;
}

/**
 * rouge-score's `_score_lcs` F-measure from an LCS length: precision = lcs / len(prediction),
 * recall = lcs / len(target), F = 2·P·R / (P + R) (`scoring.fmeasure`), 0 when either side is empty or
 * nothing is shared. The operations and their order are Python's, so the result is bit-identical.
 *
 * The Self-Instruct code calls `scorer.score(candidate, pool_instruction)`: the candidate is the target
 * and the pool instruction the prediction. The formula is symmetric in floating point too
 * (IEEE multiplication and addition are commutative), but the order is kept anyway.
 */
export function fMeasure(lcs: number, targetLength: number, predictionLength: number): number {
  if (targetLength === 0 || predictionLength === 0) return 0;
  const precision = lcs / predictionLength;
  const recall = lcs / targetLength;
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

/** ROUGE-L F-measure of two token lists (target first, as in rouge-score's `score(target, prediction)`). */
export function rougeLTokens(target: readonly string[], prediction: readonly string[]): number {
  return fMeasure(lcsLength(target, prediction), target.length, prediction.length);
}

/**
 * ROUGE-L F-measure of two texts, as `RougeScorer(["rougeL"]).score(target, prediction)["rougeL"].fmeasure`.
 * In the gate the target is the candidate and the prediction a pool instruction.
 */
export function rougeL(target: string, prediction: string): number {
  return rougeLTokens(tokenize(target), tokenize(prediction));
}

/**
 * Fills `table[n * (m + 1) + lcs]` with `fMeasure(lcs, m, n)` for instruction lengths `n < rows` and
 * `lcs ≤ m`: the scores of a candidate of `m` tokens, looked up instead of computed with three
 * divisions per pair.
 */
export function fillScoreTable(table: Float64Array, m: number, rows: number): void {
  for (let n = 0; n < rows; n++) {
    for (let lcs = 0; lcs <= m; lcs++) table[n * (m + 1) + lcs] = fMeasure(lcs, m, n);
  }
}
