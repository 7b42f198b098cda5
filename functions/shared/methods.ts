/**
 * Methods: how a run makes its candidates and their responses, through the same state machine.
 *
 * - `self-instruct`: Wang et al. (2022). "Generate instructions" shows the model demonstrations from the
 *   seeds and the pool and asks for new tasks; "Generate instances" writes their instances. The profile
 *   (`profiles.ts`) fixes prompts, parsers and filters.
 * - `evol`: Evol-Instruct (Xu et al., 2023, WizardLM). "Generate instructions" samples pool instructions
 *   and evolves each with one in-depth or in-breadth operation; the paper's elimination rules drop
 *   evolutions that failed; each task keeps its lineage.
 * - `backtranslate`: instruction backtranslation (Li et al., 2023, Humpback). The user's documents are
 *   split into passages; the model writes the instruction each passage answers, and the judge curates.
 *
 * What a stage does per method is a `MethodTable` in that stage, so that adding a method without its
 * entries fails to compile instead of quietly taking another method's path.
 */
import type { Method } from './schemas.ts';

/** One entry per method. */
export type MethodTable<T> = { readonly [M in Method]: T };

/** Run input defaults that depend on the method; a field given in the input wins. */
export const METHOD_DEFAULTS: MethodTable<{ readonly minQuality?: number }> = {
  'self-instruct': {},
  evol: {},
  // Humpback's self-curation keeps the passages its judge rates 4 or 5 (of 5) in its first iteration.
  backtranslate: { minQuality: 4 },
};
