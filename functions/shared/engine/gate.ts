/**
 * The ROUGE-L novelty gate of Self-Instruct (Wang et al., 2022, `bootstrap_instructions.py`) and Stanford
 * Alpaca: a candidate is rejected when its ROUGE-L F-measure against some pool instruction is strictly
 * greater than the threshold (0.7; exactly 0.7 is kept). Each candidate is compared with the pool as it is
 * at that moment: the seeds plus every candidate accepted before it, in order. For each candidate the gate
 * also reports the 10 most similar pool instructions and the mean score over the whole pool, as the
 * original records them. Decisions, scores and means equal the original's to the last bit
 * (`test/support/rouge-reference.ts` is the literal version the tests compare with); the engine is in `scoring.ts`.
 */
import type { RougeIndex } from './rouge-index.ts';
import { type GateOptions, type GateResult, runGate } from './scoring.ts';

export { RougeIndex, RougeIndexInvalid } from './rouge-index.ts';
export {
  DEFAULT_THRESHOLD,
  DEFAULT_TOP_K,
  type GateOptions,
  type GateResult,
  type SimilarInstruction,
} from './scoring.ts';

/**
 * Gates `candidates` in order against the index, adding every accepted one to it, so that later
 * candidates are compared with it too. One result per candidate, in order.
 */
export function gate(
  index: RougeIndex,
  candidates: readonly string[],
  options: GateOptions = {},
): GateResult[] {
  return runGate(index, candidates, options, true);
}

/**
 * Scores one candidate against the index without adding it: the single-candidate form, for callers that
 * interleave their own checks. `accepted` is the gate's decision; `index.add(candidate)` admits it.
 * (`gate()` is faster for many candidates: it scans the pool once per 16 of them.)
 */
export function scoreCandidate(index: RougeIndex, candidate: string, options: GateOptions = {}): GateResult {
  return runGate(index, [candidate], options, false)[0] as GateResult;
}
