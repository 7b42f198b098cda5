/**
 * Methods: how a run makes its candidates and their responses, through the same state machine. What
 * each one does, in words, is `METHODS` below (the dataset card says it from there); how it does it is
 * a `MethodTable` in each stage, so that adding a method without its entries fails to compile instead of
 * quietly taking another method's path:
 *
 * - `self-instruct`: "Generate instructions" shows the model demonstrations from the seeds and the pool
 *   and asks for new tasks; "Generate instances" writes their instances. The profile (`profiles.ts`)
 *   fixes prompts, parsers and filters.
 * - `evol`: "Generate instructions" samples pool instructions and evolves each with one in-depth or
 *   in-breadth operation; the paper's elimination rules drop evolutions that failed.
 * - `backtranslate`: the user's documents are split into passages; the model writes the instruction each
 *   passage answers, and the judge curates.
 *
 * Independently of the method, `responseStyle` says how the responses were written (`RESPONSE_STYLES`).
 */
import type { Method, ResponseStyle } from './schemas.ts';

/** One entry per method. */
export type MethodTable<T> = { readonly [M in Method]: T };

/** What a method or a response style is, in the words a dataset card uses. */
export interface MethodDescription {
  /** Its name in prose. */
  readonly name: string;
  /** The paper it follows, as cited in prose, and where to read it. */
  readonly paper: { readonly cite: string; readonly url: string };
  /** What a run did with it: one clause, lower case, no final stop. */
  readonly did: string;
}

/** What each method does, for the people who read its data (the dataset card's summary and citation). */
export const METHODS: MethodTable<MethodDescription> = {
  'self-instruct': {
    name: 'Self-Instruct',
    paper: { cite: 'Wang et al., 2022', url: 'https://arxiv.org/abs/2212.10560' },
    did:
      'a language model writes new tasks from demonstrations sampled from a seed set and the growing pool, ' +
      'near-duplicates are filtered out with ROUGE-L, and the model then writes inputs and outputs for each task',
  },
  evol: {
    name: 'Evol-Instruct',
    paper: { cite: 'Xu et al., 2023, WizardLM', url: 'https://arxiv.org/abs/2304.12244' },
    did:
      'a language model rewrites instructions of the pool, each by one operation that makes it harder (in depth) ' +
      'or writes a rarer one of the same domain (in breadth), evolutions that failed are eliminated, ' +
      'near-duplicates are filtered out with ROUGE-L, and the model then writes inputs and outputs for each ' +
      'task; each task keeps its lineage',
  },
  backtranslate: {
    name: 'instruction backtranslation',
    paper: { cite: 'Li et al., 2023, Humpback', url: 'https://arxiv.org/abs/2308.06259' },
    did:
      "the user's documents are split into passages, a language model writes the instruction each passage " +
      'answers (the passage, or an answer it states, is the output), near-duplicates are filtered out with ' +
      'ROUGE-L, and a judge model keeps the pairs it rates highly',
  },
};

/** What each response style did; direct responses are the method's own, with nothing to add. */
export const RESPONSE_STYLES: { readonly [S in ResponseStyle]: MethodDescription | undefined } = {
  direct: undefined,
  explained: {
    name: "Orca's explanation traces",
    paper: { cite: 'Mukherjee et al., 2023', url: 'https://arxiv.org/abs/2306.02707' },
    did:
      'a teacher model then wrote each output again as an explanation (reasoning, then the answer), under a ' +
      "system message chosen by the task's type",
  },
};

/** Run input defaults that depend on the method; a field given in the input wins. */
export const METHOD_DEFAULTS: MethodTable<{ readonly minQuality?: number }> = {
  'self-instruct': {},
  evol: {},
  // Humpback's self-curation keeps the passages its judge rates 4 or 5 (of 5) in its first iteration.
  backtranslate: { minQuality: 4 },
};
