/**
 * The judge step of "Generate instances": a model rates each task that kept valid instances, asking the
 * Self-Instruct paper's three audit questions (section 4.2, Table 2: is the instruction a valid task, is
 * the input appropriate for it, is the output a correct and acceptable response) and an overall score from
 * 1 to 5 with a one-sentence reason, as the LLM-as-a-judge filters after it do (AlpaGasus rates Alpaca's
 * 52K tasks and keeps those ≥ 4.5). One chat prompt for every profile: the paper has no judge to follow,
 * and a JSON verdict is what any chat model the project supports can give. Templates are in `./prompts/`.
 *
 * The verdict is model output, hence untrusted data: the reply is read only up to `MAX_VERDICT_CHARS`,
 * parsed with zod into four typed fields and a reason cut to one line of at most `MAX_REASON_CHARS`, and
 * only ever stored. A reply that does not parse yields `null`: the caller keeps the task unscored and
 * counts it (`judge-unparseable`).
 */
import { z } from 'zod';
import { JUDGE_STAGE, type ModelRequest, type TaskQuality } from '../shared/ports.ts';
import type { CallParameters } from '../shared/profiles.ts';
import { SHIPPED_TEMPLATES, stageTemplates, type TemplateOverrides } from '../shared/prompt-templates.ts';
import type { Instance } from '../shared/schemas.ts';
import { extractJsonObject } from '../shared/templates.ts';

/** Greedy and short: a verdict is a few dozen tokens. */
export const JUDGE_PARAMETERS: CallParameters = { temperature: 0, topP: 1, maxTokens: 256 };

/** A longer reply is not a verdict (and is not parsed). */
export const MAX_VERDICT_CHARS = 4_000;

/** The stored reason is cut to this many characters. */
export const MAX_REASON_CHARS = 300;

/** An input or output is shown to the judge up to this many characters (an instance may hold 32,000). */
export const MAX_JUDGED_FIELD_CHARS = 2_000;

const fill = stageTemplates(import.meta.url, 'generate-instances');

/** The reason as stored: whitespace collapsed to one line, cut to `MAX_REASON_CHARS`. */
const Reason = z
  .string()
  .transform((text) => text.replace(/\s+/g, ' ').trim())
  .pipe(z.string().min(1))
  .transform((text) => (text.length <= MAX_REASON_CHARS ? text : `${text.slice(0, MAX_REASON_CHARS - 1)}…`));

/** A verdict as the judge writes it (snake case, as the prompt asks). */
export const Verdict = z
  .object({
    instruction_valid: z.boolean(),
    input_appropriate: z.boolean(),
    output_correct: z.boolean(),
    score: z.int().min(1).max(5),
    reason: Reason,
  })
  .transform(
    (verdict): TaskQuality => ({
      score: verdict.score,
      instructionValid: verdict.instruction_valid,
      inputAppropriate: verdict.input_appropriate,
      outputCorrect: verdict.output_correct,
      reason: verdict.reason,
    }),
  );

/** A field as the judge sees it: cut to `MAX_JUDGED_FIELD_CHARS`, and `(none)` for an empty input. */
function shown(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return '(none)';
  return trimmed.length <= MAX_JUDGED_FIELD_CHARS
    ? trimmed
    : `${trimmed.slice(0, MAX_JUDGED_FIELD_CHARS)} […]`;
}

/** The judge's request for a task with its instances (the ones the instance filters kept), with the run's templates. */
export function renderJudgeRequest(
  instruction: string,
  instances: readonly Instance[],
  templates: TemplateOverrides = SHIPPED_TEMPLATES,
): ModelRequest {
  return {
    stage: JUDGE_STAGE,
    format: 'judge/default',
    kind: 'chat',
    ...JUDGE_PARAMETERS,
    system: fill(templates, 'judge-system.txt', {}),
    prompt: fill(templates, 'judge-user.txt', {
      instruction: instruction.trim(),
      count: instances.length,
      instances: instances
        .map(
          (instance, i) =>
            `Example ${i + 1}\nInput: ${shown(instance.input)}\nOutput: ${shown(instance.output)}`,
        )
        .join('\n\n'),
    }),
    json: true,
  };
}

/** The verdict in a judge's reply, or `null` when it has none that parses (see the module comment). */
export function parseJudgeReply(text: string): TaskQuality | null {
  if (text.length > MAX_VERDICT_CHARS) return null;
  const verdict = Verdict.safeParse(extractJsonObject(text));
  return verdict.success ? verdict.data : null;
}
