/**
 * The decision about each candidate instruction, as both the Filter stage ("Filter and deduplicate") and
 * the `dedup` command take it: the profile's normalization and heuristic filters first (they don't depend
 * on the pool), then the ROUGE-L gate over the survivors in order, and one serializer of the outcome as a
 * `gate.jsonl` line (`GateRecord`). Filtering everything first and gating the survivors in order decides
 * exactly as interleaving would, and lets the gate take the survivors in batches (in this thread or on
 * worker threads).
 */
import type { UnsafeReason } from '../safety.ts';
import type { EvolElimination, Lineage, ProfileName } from '../schemas.ts';
import { checkInstruction, type FilterOptions, type FilterReason, normalizeInstruction } from './filters.ts';
import type { GateResult, SimilarInstruction } from './scoring.ts';

/** A candidate after the profile's normalization and filters. */
export interface Screened {
  /** The candidate as the model wrote it. */
  raw: string;
  /** As normalized by the profile: what the gate compares and the pool stores. */
  instruction: string;
  /**
   * The filter (or the safety screen, or an Evol-Instruct elimination rule before them) that dropped it;
   * null when it goes on to the gate.
   */
  filtered: FilterReason | UnsafeReason | EvolElimination | null;
  /** An evolved candidate's lineage (`method: evol`), written into its gate line. */
  lineage?: Lineage;
}

/** Normalizes and filters each candidate with the profile's rules. */
export function screen(
  profile: ProfileName,
  raws: readonly string[],
  options: FilterOptions = {},
): Screened[] {
  return raws.map((raw) => {
    const instruction = normalizeInstruction(profile, raw);
    return { raw, instruction, filtered: checkInstruction(profile, instruction, options) };
  });
}

/** What was decided about one candidate, in candidate order. */
export interface Decision extends Screened {
  /** Why it was rejected (a filter, `rouge`, `surplus`, or what the caller adds), or null when accepted. */
  reason: string | null;
  /** The gate's result, for a candidate the gate scored. */
  gated?: GateResult;
  /** The task id an accepted candidate got (the Filter stage's). */
  id?: string;
  /** Its nearest instruction by embedding (pool or accepted before it) and their cosine, when compared. */
  nearest?: { instruction: string; score: number };
}

/**
 * Merges the screening with the gate's results, in candidate order: `results` yields, batch by batch, one
 * result per survivor in order; each yielded batch of decisions ends with a gated candidate, and the last
 * one holds the candidates after it. Survivors the gate never reached (it stopped early) are `surplus`.
 */
export async function* decide(
  screened: readonly Screened[],
  results: Iterable<GateResult[]> | AsyncIterable<GateResult[]>,
): AsyncGenerator<Decision[]> {
  let next = 0;
  const filteredUntilSurvivor = (batch: Decision[]) => {
    for (; next < screened.length && (screened[next] as Screened).filtered !== null; next++) {
      const candidate = screened[next] as Screened;
      batch.push({ ...candidate, reason: candidate.filtered });
    }
  };
  for await (const gatedBatch of results) {
    const batch: Decision[] = [];
    for (const gated of gatedBatch) {
      filteredUntilSurvivor(batch);
      const candidate = screened[next++] as Screened;
      batch.push({ ...candidate, reason: gated.accepted ? null : (gated.vetoed ?? 'rouge'), gated });
    }
    yield batch;
  }
  const rest: Decision[] = [];
  for (filteredUntilSurvivor(rest); next < screened.length; filteredUntilSurvivor(rest)) {
    rest.push({ ...(screened[next++] as Screened), reason: 'surplus' });
  }
  yield rest;
}

/**
 * Writes decisions as `gate.jsonl` lines (`records.ts`'s `GateRecord`), `raw` included unless told
 * otherwise.
 * `most_similar` is written as an object in descending order; it is built by hand because
 * `JSON.stringify` puts integer-like keys ("42") first. A text that occurs twice in the pool appears
 * once, at its first (highest) place, as in the original's Python dict. The same pool texts and scores
 * recur across lines, so their JSON is kept: by pool position, and by value (scores take about a thousand
 * distinct values).
 */
export class DecisionWriter {
  readonly #raw: boolean;
  readonly #texts: string[] = [];
  readonly #numbers = new Map<number, string>();

  constructor({ raw = true }: { raw?: boolean } = {}) {
    this.#raw = raw;
  }

  /** One line, with its newline. */
  line(decision: Decision): string {
    const { gated } = decision;
    const head =
      `{"instruction":${JSON.stringify(decision.instruction)}` +
      (this.#raw ? `,"raw":${JSON.stringify(decision.raw)}` : '') +
      `,"status":"${decision.reason === null ? 'accepted' : 'rejected'}","reason":${JSON.stringify(decision.reason)}`;
    const nearest =
      decision.nearest === undefined
        ? ''
        : `,"nearest_instruction":${JSON.stringify(decision.nearest.instruction)},"nearest_cosine":${this.#number(decision.nearest.score)}`;
    const lineage = decision.lineage === undefined ? '' : `,"lineage":${JSON.stringify(decision.lineage)}`;
    const tail = `${nearest}${lineage}${decision.id === undefined ? '' : `,"id":${JSON.stringify(decision.id)}`}}\n`;
    if (gated === undefined) {
      return `${head},"max_similarity":null,"most_similar":null,"avg_similarity_score":null${tail}`;
    }
    const entries = gated.mostSimilar;
    let similar = '{';
    for (let i = 0; i < entries.length; i++) {
      const { instruction, position, score } = entries[i] as SimilarInstruction;
      if (entries.findIndex((earlier) => earlier.instruction === instruction) < i) continue;
      this.#texts[position] ??= JSON.stringify(instruction);
      similar += `${similar === '{' ? '' : ','}${this.#texts[position]}:${this.#number(score)}`;
    }
    return (
      `${head},"max_similarity":${this.#number(gated.maxSimilarity)},"most_similar":${similar}},` +
      `"avg_similarity_score":${JSON.stringify(gated.avgSimilarity)}${tail}`
    );
  }

  /** All the lines. */
  lines(decisions: readonly Decision[]): string {
    let text = '';
    for (const decision of decisions) text += this.line(decision);
    return text;
  }

  #number(value: number): string {
    let json = this.#numbers.get(value);
    if (json === undefined) {
      json = JSON.stringify(value);
      if (this.#numbers.size < 1_000_000) this.#numbers.set(value, json);
    }
    return json;
  }
}
