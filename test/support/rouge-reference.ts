/**
 * The reference implementation of the gate: a literal transliteration of the code path of Self-Instruct's
 * `bootstrap_instructions.py` and Google's `rouge-score`. For every pair it calls `scorerScore(candidate,
 * poolInstruction)`, which tokenizes both strings again and fills the full (m+1)×(n+1) LCS table, then takes
 * the max, the top 10 and the mean the same way as `gate.ts`. Slow on purpose (O(m·n) per pair, allocating):
 * tests and the benchmark use it to check that every decision, score and mean of the fast gate agrees.
 */
import { DEFAULT_THRESHOLD, DEFAULT_TOP_K, type GateResult } from '../../functions/shared/engine/gate.ts';
import { numpyMean } from '../../functions/shared/engine/mean.ts';

/** rouge-score's `Score` tuple. */
export interface Score {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** rouge-score's `tokenize.tokenize(text, stemmer=None)`, step by step. */
export function referenceTokenize(text: string): string[] {
  // Convert everything to lowercase.
  const lowered = text.toLowerCase();
  // Replace any non-alpha-numeric characters with spaces.
  const spaced = lowered.replace(/[^a-z0-9]+/g, ' ');
  const tokens = spaced.split(/\s+/);
  // One final check to drop any empty or invalid tokens.
  return tokens.filter((token) => /^[a-z0-9]+$/.test(token));
}

/** rouge-score's `_lcs_table(ref, can)`: the full dynamic-programming table. */
export function lcsTable(ref: readonly string[], can: readonly string[]): number[][] {
  const rows = ref.length;
  const cols = can.length;
  const table = Array.from({ length: rows + 1 }, () => new Array<number>(cols + 1).fill(0));
  for (let i = 1; i <= rows; i++) {
    const row = table[i] as number[];
    const above = table[i - 1] as number[];
    for (let j = 1; j <= cols; j++) {
      row[j] =
        ref[i - 1] === can[j - 1]
          ? (above[j - 1] as number) + 1
          : Math.max(above[j] as number, row[j - 1] as number);
    }
  }
  return table;
}

/** rouge-score's `scoring.fmeasure(precision, recall)`. */
function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

/** rouge-score's `_score_lcs(target_tokens, prediction_tokens)`. */
export function scoreLcs(targetTokens: readonly string[], predictionTokens: readonly string[]): Score {
  if (targetTokens.length === 0 || predictionTokens.length === 0)
    return { precision: 0, recall: 0, fmeasure: 0 };
  const table = lcsTable(targetTokens, predictionTokens);
  const lcs = (table[targetTokens.length] as number[])[predictionTokens.length] as number;
  const precision = lcs / predictionTokens.length;
  const recall = lcs / targetTokens.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** `RougeScorer(["rougeL"], use_stemmer=False).score(target, prediction)["rougeL"]`. */
export function scorerScore(target: string, prediction: string): Score {
  return scoreLcs(referenceTokenize(target), referenceTokenize(prediction));
}

/** One candidate against `pool`, as the original's loop body does it (without adding it). */
export function referenceScore(
  pool: readonly string[],
  candidate: string,
  options: { threshold?: number; topK?: number } = {},
): GateResult {
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  const topK = options.topK ?? DEFAULT_TOP_K;
  // rouge_scores = p.map(partial(scorer.score, inst), seed_instructions + machine_instructions)
  const scores = pool.map((instruction) => scorerScore(candidate, instruction).fmeasure);
  let maxSimilarity = 0;
  for (const score of scores) if (score > maxSimilarity) maxSimilarity = score;
  // np.argsort(rouge_scores)[-10:][::-1], with ties in pool order (NumPy's quicksort leaves them unspecified).
  const order = scores.map((_, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  return {
    instruction: candidate,
    accepted: !(maxSimilarity > threshold),
    maxSimilarity,
    mostSimilar: order
      .slice(0, topK)
      .map((i) => ({ instruction: pool[i] as string, position: i, score: scores[i] as number })),
    avgSimilarity: scores.length > 0 ? numpyMean(scores) : 0,
  };
}

/** The original's loop: each candidate against the seeds plus every candidate accepted before it. */
export function referenceGate(
  pool: readonly string[],
  candidates: readonly string[],
  options: { threshold?: number; topK?: number } = {},
): GateResult[] {
  const current = [...pool];
  return candidates.map((candidate) => {
    const result = referenceScore(current, candidate, options);
    if (result.accepted) current.push(candidate);
    return result;
  });
}
