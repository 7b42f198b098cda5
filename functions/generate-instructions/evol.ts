/**
 * Stage "Generate instructions", `method: evol`: Evol-Instruct (Xu et al., 2023, "WizardLM: Empowering
 * Large Language Models to Follow Complex Instructions"). Each call takes one pool instruction (a seed or
 * a machine task, sampled with the run's seeded rng) and evolves it with one operation drawn at random:
 * in-depth (add constraints, deepen, concretize, increase reasoning steps, complicate the input) or
 * in-breadth (a new, rarer instruction of the same domain). Prompts are the templates `evol-depth.txt`
 * (with the operation's sentence) and `evol-breadth.txt`.
 *
 * Two of the paper's elimination rules run here, before the filters: an evolution that copies the
 * evolving prompt's own words (`evol-copied-prompt`), and one the model judges equal to its parent, no
 * information gain (`evol-no-gain`: the paper's "equal" question, asked for `GAIN_BATCH` pairs per call
 * with `evol-equal.txt`, each call counted and priced in the ledger). Eliminated candidates travel on to
 * "Filter and deduplicate" marked, which counts them by reason and never adds them. The other two rules
 * judge the response (`generate-instances/evol.ts`).
 */
import { z } from 'zod';
import type { ModelCalls } from '../shared/model-calls.ts';
import type { ModelRequest, ReplyText } from '../shared/ports.ts';
import { stageTemplates, type TemplateOverrides } from '../shared/prompt-templates.ts';
import type { Rng } from '../shared/random.ts';
import type { Candidate, EvolElimination, EvolOperation, Lineage } from '../shared/schemas.ts';
import { extractJsonArrayItems } from '../shared/templates.ts';

/** How an operation rewrites: in depth (with its sentence in `evol-depth.txt`) or in breadth. */
export type EvolOperationSpec =
  | { readonly kind: 'depth'; readonly method: string }
  | { readonly kind: 'breadth' };

/** The operations, the paper's five in-depth ones and in-breadth; one is drawn uniformly per call. */
export const EVOL_OPERATIONS: Readonly<Record<EvolOperation, EvolOperationSpec>> = {
  'add-constraints': {
    kind: 'depth',
    method: 'Add one more constraint or requirement to #The Given Prompt#.',
  },
  deepen: {
    kind: 'depth',
    method:
      'If #The Given Prompt# asks about a certain issue, increase the depth and breadth of the inquiry.',
  },
  concretize: { kind: 'depth', method: 'Replace general concepts with more specific ones.' },
  'increase-reasoning': {
    kind: 'depth',
    method:
      'If #The Given Prompt# can be solved with only a few simple steps of thinking, rewrite it to ask explicitly for reasoning in several steps.',
  },
  'complicate-input': {
    kind: 'depth',
    method:
      'Add input data in a more complex format, such as a table, JSON, XML, code or a formula, that the prompt must work on.',
  },
  breadth: { kind: 'breadth' },
};

/** The operations in a fixed order (the draw's). */
export const OPERATION_NAMES = Object.keys(EVOL_OPERATIONS) as EvolOperation[];

/** Sampling of an evolving call (WizardLM samples at temperature 1) and of an "equal?" call. */
export const EVOLVE_PARAMETERS = { temperature: 1, topP: 0.95, maxTokens: 1024 } as const;
export const EQUAL_PARAMETERS = { temperature: 0, topP: 1 } as const;

/** Parent–child pairs per "equal?" call. */
export const GAIN_BATCH = 10;

/**
 * Words of the evolving prompts that an evolved instruction must not copy (the paper's fourth rule:
 * "#Rewritten Prompt#", "given prompt", "rewritten prompt" …), matched case-insensitively.
 */
export const COPIED_PROMPT_WORDS = [
  '#the given prompt#',
  '#given prompt#',
  '#rewritten prompt#',
  '#created prompt#',
  'given prompt',
  'rewritten prompt',
  'created prompt',
  'prompt rewriter',
  'prompt creator',
] as const;

const fill = stageTemplates(import.meta.url, 'generate-instructions');

/** Draws one operation, uniformly. */
export function chooseOperation(rng: Rng): EvolOperation {
  return OPERATION_NAMES[rng.int(OPERATION_NAMES.length)] as EvolOperation;
}

/** The evolving request of one instruction by one operation (a chat prompt, the reply is the new instruction). */
export function renderEvolveRequest(
  instruction: string,
  operation: EvolOperation,
  templates: TemplateOverrides,
): ModelRequest {
  const spec = EVOL_OPERATIONS[operation];
  const prompt =
    spec.kind === 'breadth'
      ? fill(templates, 'evol-breadth.txt', { instruction })
      : fill(templates, 'evol-depth.txt', { instruction, method: spec.method });
  return {
    stage: 'generate-instructions',
    format: 'evol/evolve',
    kind: 'chat',
    prompt,
    ...EVOLVE_PARAMETERS,
  };
}

/** What an evolving reply yields: the evolved instruction, or why there is none. */
export type EvolvedReply = { instruction: string } | { malformed: true } | { truncated: true };

/**
 * The evolved instruction of a reply: the text, trimmed, without surrounding quotes. A reply cut by the
 * token limit yields nothing (counted as truncated), an empty one nothing (counted as malformed). A
 * reply that repeats the prompt's own headings is kept as the model wrote it: the copied-words rule
 * eliminates it, counted.
 */
export function parseEvolveReply({ text, finish }: ReplyText): EvolvedReply {
  if (finish === 'length') return { truncated: true };
  const instruction = text
    .trim()
    .replace(/^"([\s\S]*)"$/, '$1')
    .trim();
  return instruction === '' ? { malformed: true } : { instruction };
}

/** The paper's fourth rule: the evolved instruction copies the evolving prompt's own words. */
export function copiesPrompt(instruction: string): boolean {
  const lower = instruction.toLowerCase();
  return COPIED_PROMPT_WORDS.some((words) => lower.includes(words));
}

/** One "equal?" request over parent–child pairs (the paper's information-gain question, batched). */
export function renderEqualRequest(
  pairs: readonly { parent: string; child: string }[],
  templates: TemplateOverrides,
): ModelRequest {
  return {
    stage: 'generate-instructions',
    format: 'evol/equal',
    kind: 'chat',
    prompt: fill(templates, 'evol-equal.txt', {
      count: pairs.length,
      pairs: pairs
        .map(({ parent, child }, i) => `Pair ${i + 1}\nFirst: ${parent}\nSecond: ${child}`)
        .join('\n\n'),
    }),
    json: true,
    ...EQUAL_PARAMETERS,
    // Each verdict is a few tokens; the JSON around them a few more.
    maxTokens: 32 + 8 * pairs.length,
  };
}

const Verdict = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.enum(['equal', 'not equal']));

/**
 * The verdicts of an "equal?" reply: per pair, `true` when the model judged them equal (no information
 * gain), `false` when not, `null` when its verdict is missing or unreadable (the pair is then kept: an
 * unreadable verdict is no evidence against the evolution).
 */
export function parseEqualReply({ text }: ReplyText, pairs: number): (boolean | null)[] {
  const { found, items } = extractJsonArrayItems(text, 'verdicts');
  const verdicts = found ? items : [];
  return Array.from({ length: pairs }, (_, i) => {
    const verdict = Verdict.safeParse(verdicts[i]);
    return verdict.success ? verdict.data === 'equal' : null;
  });
}

/** A pool task an evolution starts from: its id, instruction and depth in the evolution tree. */
export interface EvolParent {
  id: string;
  instruction: string;
  depth: number;
}

/** What the evolving step of one iteration yields. */
export interface EvolvedCandidates {
  candidates: (Candidate & { call: number })[];
  malformed: number;
  droppedByTruncation: number;
}

/**
 * Draws the instructions of `calls` evolutions from `tasks` (the seeds and machine tasks of the pool):
 * distinct while there are enough, then again from the whole pool.
 */
export function drawParents<T>(tasks: readonly T[], calls: number, rng: Rng): T[] {
  const drawn: T[] = [];
  while (drawn.length < calls && tasks.length > 0) {
    drawn.push(...rng.sample(tasks, Math.min(tasks.length, calls - drawn.length)));
  }
  return drawn;
}

/**
 * Evolves each of `drawn` with one operation, then applies the copied-words rule and the
 * information-gain question (batched, only over evolutions the first rule kept). Calls are named
 * (`evolve-<n>`, `gain-<n>`), so a retried stage reuses the replies it recorded. With `range`, only the
 * evolutions `[from, to)` of the iteration's are made (one batch of "Generate instructions"): the
 * operations are still drawn for all of them, so each call is the one the whole iteration would make;
 * the "equal?" calls of a batch are named `gain-<from>-<n>`.
 */
export async function evolveInstructions({
  drawn,
  rng,
  templates,
  runner,
  range = [0, drawn.length],
}: {
  drawn: readonly EvolParent[];
  rng: Rng;
  templates: TemplateOverrides;
  runner: ModelCalls;
  range?: readonly [from: number, to: number];
}): Promise<EvolvedCandidates> {
  const plan = drawn.map((parent) => ({ parent, operation: chooseOperation(rng) }));
  const [from, to] = range;
  const replies = await Promise.all(
    plan.map(({ parent, operation }, call) =>
      call < from || call >= to
        ? undefined
        : runner.call(renderEvolveRequest(parent.instruction, operation, templates), `evolve-${call}`),
    ),
  );
  const gainKey = (b: number) => (from === 0 && to >= drawn.length ? `gain-${b}` : `gain-${from}-${b}`);

  const result: EvolvedCandidates = { candidates: [], malformed: 0, droppedByTruncation: 0 };
  replies.forEach((reply, call) => {
    if (!reply) return;
    const parsed = parseEvolveReply(reply);
    if ('truncated' in parsed) result.droppedByTruncation++;
    else if ('malformed' in parsed) result.malformed++;
    else {
      const { parent, operation } = plan[call] as (typeof plan)[number];
      const lineage: Lineage = { parent: parent.id, operation, depth: parent.depth + 1 };
      const eliminated: EvolElimination | undefined = copiesPrompt(parsed.instruction)
        ? 'evol-copied-prompt'
        : undefined;
      result.candidates.push({
        instruction: parsed.instruction,
        lineage,
        call,
        ...(eliminated ? { eliminated } : {}),
      });
    }
  });

  // The information-gain question, over what the copied-words rule kept, in batches.
  const asked = result.candidates.filter((candidate) => candidate.eliminated === undefined);
  const batches = Array.from({ length: Math.ceil(asked.length / GAIN_BATCH) }, (_, b) =>
    asked.slice(b * GAIN_BATCH, (b + 1) * GAIN_BATCH),
  );
  await Promise.all(
    batches.map(async (batch, b) => {
      const pairs = batch.map((candidate) => ({
        parent: (plan[candidate.call] as (typeof plan)[number]).parent.instruction,
        child: candidate.instruction,
      }));
      const reply = await runner.call(renderEqualRequest(pairs, templates), gainKey(b));
      // A lost call leaves its pairs unjudged (the ledger counts the loss); an unreadable verdict is
      // marked, and "Filter and deduplicate" counts it (`evol-gain-unparseable`).
      const verdicts = reply ? parseEqualReply(reply, batch.length) : [];
      batch.forEach((candidate, i) => {
        const equal = verdicts[i];
        if (equal === true) candidate.eliminated = 'evol-no-gain';
        else if (reply && equal === null) candidate.gainUnparseable = true;
      });
    }),
  );
  return result;
}
