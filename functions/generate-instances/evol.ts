/**
 * Stage "Generate instances", `method: evol`: Evol-Instruct's elimination rules on the response (Xu et
 * al., 2023, section 3.3). An evolved task is eliminated when a response to it (an instance's output)
 * shows the evolution failed:
 * - `evol-could-not-answer`: it contains "sorry" and is short (fewer than 80 words, the paper's bound):
 *   the evolved instruction made the model give up;
 * - `evol-stopwords-only`: it has only punctuation and stop words: nothing was answered.
 *
 * The paper has one response per instruction; a task here has several instances, and one failed
 * response is enough to show the evolved instruction is hard to answer, so any instance failing a rule
 * eliminates the task. A classification task's outputs are labels by design ("No", "A"), so the
 * stop-word rule does not apply to them. Pure.
 */
import type { EvolElimination, Instance } from '../shared/schemas.ts';

/** A response with "sorry" is an apology below this many words (whitespace-separated). */
export const APOLOGY_MAX_WORDS = 80;

/** English stop words (NLTK's list, without the contractions' fragments). */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    'i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her ' +
    'hers herself it its itself they them their theirs themselves what which who whom this that these ' +
    'those am is are was were be been being have has had having do does did doing a an the and but if or ' +
    'because as until while of at by for with about against between into through during before after ' +
    'above below to from up down in out on off over under again further then once here there when where ' +
    'why how all any both each few more most other some such no nor not only own same so than too very s ' +
    't can will just don should now d ll m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma ' +
    'mightn mustn needn shan shouldn wasn weren won wouldn'
  ).split(' '),
);

/** The paper's second rule: the response apologizes ("sorry") and has fewer than `APOLOGY_MAX_WORDS` words. */
export function couldNotAnswer(output: string): boolean {
  const words = output.trim().split(/\s+/).filter(Boolean);
  return /\bsorry\b/i.test(output) && words.length < APOLOGY_MAX_WORDS;
}

/** The paper's third rule: the response has only punctuation and stop words (no word of content). */
export function stopwordsOnly(output: string): boolean {
  const words = output.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return words.every((word) => STOP_WORDS.has(word));
}

/**
 * The rule that eliminates a task with these instances (the first instance failing one decides), if
 * any; `isClassification` exempts it from the stop-word rule.
 */
export function evolResponseElimination(
  instances: readonly Instance[],
  isClassification: boolean,
): EvolElimination | undefined {
  for (const { output } of instances) {
    if (couldNotAnswer(output)) return 'evol-could-not-answer';
    if (!isClassification && stopwordsOnly(output)) return 'evol-stopwords-only';
  }
  return undefined;
}
