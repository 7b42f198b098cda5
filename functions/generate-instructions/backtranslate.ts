/**
 * "Generate instructions" for method `backtranslate`: instruction backtranslation (Li et al., 2023,
 * "Self-Alignment with Instruction Backtranslation", Humpback). "Prepare run" split the run's documents
 * into passages (`functions/shared/documents/`, stored at `passagesKey(run)`); each iteration takes its
 * share of them, in order, and asks the model, once per passage, for the instruction the passage answers
 * (the paper's self-augmentation, done here by prompting the model rather than by a fine-tuned backward
 * model), and with `groundedQuestions` > 0 also for question–answer pairs grounded in the passage.
 *
 * A candidate carries the passage as its output (empty input, not a classification task), so "Generate
 * instances" makes no call for it and the judge curates it (the paper's self-curation; `minQuality`
 * defaults to 4 for this method); a grounded pair carries its answer. Both carry their source: the
 * document's key and the passage's span [start, end) in the document's extracted text. The usual filters
 * and the ROUGE-L gate then catch instructions repeated across passages.
 *
 * The reply is untrusted: parsed with zod, a reply without the JSON object (or a pair without its fields)
 * is counted as malformed, a reply cut by the token limit is dropped whole (`droppedByTruncation`), and
 * neither stops the batch.
 */
import { z } from 'zod';
import { fromJsonLines } from '../shared/json-lines.ts';
import { passagesKey } from '../shared/keys.ts';
import type { ModelCalls } from '../shared/model-calls.ts';
import type { ModelRequest, ObjectStore, ReplyText } from '../shared/ports.ts';
import type { CallParameters } from '../shared/profiles.ts';
import {
  runTemplates,
  SHIPPED_TEMPLATES,
  stageTemplates,
  type TemplateOverrides,
} from '../shared/prompt-templates.ts';
import { Passage } from '../shared/records.ts';
import type { Candidate, RunState } from '../shared/schemas.ts';
import { extractJsonObject } from '../shared/templates.ts';
import type { CallSlice, GenerateInstructionsDeps, MadeInstructions } from './core.ts';

/** Sampling of the backtranslation calls (a run's `temperature` and `topP` override them). */
export const BACKTRANSLATE_PARAMETERS: CallParameters = { temperature: 0.7, topP: 0.9, maxTokens: 600 };

/** A longer reply is not parsed (an instruction and five pairs fit in far less). */
export const MAX_BACKTRANSLATE_REPLY_CHARS = 8_000;

const fill = stageTemplates(import.meta.url, 'generate-instructions');

/** The request that asks for the instruction `passage` answers (and `count` grounded pairs when > 0). */
export function renderBacktranslateRequest(
  passage: string,
  count: number,
  templates: TemplateOverrides = SHIPPED_TEMPLATES,
): ModelRequest {
  return {
    stage: 'generate-instructions',
    format: 'backtranslate/default',
    kind: 'chat',
    ...BACKTRANSLATE_PARAMETERS,
    system: fill(templates, 'backtranslate-system.txt', {}),
    prompt:
      count > 0
        ? fill(templates, 'backtranslate-qa-user.txt', { passage, count })
        : fill(templates, 'backtranslate-user.txt', { passage }),
    json: true,
  };
}

const Text = z.string().trim().min(1);
const Pair = z.object({ question: Text, answer: Text });
const Reply = z.object({ instruction: Text, pairs: z.array(z.unknown()).optional() });

/** What one reply yields: the passage's instruction, its grounded pairs, and what could not be read. */
export interface ParsedBacktranslation {
  instruction: string | null;
  pairs: { question: string; answer: string }[];
  malformed: number;
  droppedByTruncation: number;
}

/** Reads a backtranslation reply; at most `count` pairs are kept (see the module comment). */
export function parseBacktranslateReply(reply: ReplyText, count: number): ParsedBacktranslation {
  const none = { instruction: null, pairs: [], malformed: 0, droppedByTruncation: 0 };
  if (reply.finish === 'length') return { ...none, droppedByTruncation: 1 };
  const parsed =
    reply.text.length > MAX_BACKTRANSLATE_REPLY_CHARS
      ? undefined
      : Reply.safeParse(extractJsonObject(reply.text)).data;
  if (parsed === undefined) return { ...none, malformed: 1 };
  const items = count > 0 ? (parsed.pairs ?? []).slice(0, count) : [];
  const pairs = items.flatMap((item) => Pair.safeParse(item).data ?? []);
  return {
    instruction: parsed.instruction,
    pairs,
    malformed: items.length - pairs.length,
    droppedByTruncation: 0,
  };
}

/**
 * The passages iteration `iteration` (from 1) takes: `promptsPerIteration` of them, else an equal share
 * of all so that `maxIterations` iterations cover every passage, at most `maxPromptsPerIteration`.
 */
export function passageSlice(
  total: number,
  iteration: number,
  config: Pick<RunState['config'], 'promptsPerIteration' | 'maxPromptsPerIteration' | 'maxIterations'>,
): [start: number, end: number] {
  const per = Math.min(
    config.maxPromptsPerIteration,
    config.promptsPerIteration ?? Math.max(1, Math.ceil(total / config.maxIterations)),
  );
  return [Math.min(total, (iteration - 1) * per), Math.min(total, iteration * per)];
}

/** The candidates one passage's reply yields, each with its source. */
function candidatesOf(passage: Passage, parsed: ParsedBacktranslation): Candidate[] {
  const span: [number, number] = [passage.start, passage.end];
  const candidates: Candidate[] = [];
  if (parsed.instruction !== null) {
    candidates.push({
      instruction: parsed.instruction,
      input: '',
      output: passage.text,
      isClassification: false,
      document: { document: passage.document, span, use: 'output' },
    });
  }
  for (const pair of parsed.pairs) {
    candidates.push({
      instruction: pair.question,
      input: '',
      output: pair.answer,
      isClassification: false,
      document: { document: passage.document, span, use: 'grounding' },
    });
  }
  return candidates;
}

/** The passages of the iteration's share (`passageSlice`), read from the run's passages file. */
export async function iterationPassages(state: RunState, objects: ObjectStore): Promise<Passage[]> {
  const { runId, config, progress } = state;
  const all = fromJsonLines<unknown>(await objects.getText(passagesKey(runId))).map((line) =>
    Passage.parse(line),
  );
  const [start, end] = passageSlice(all.length, progress.iteration + 1, config);
  return all.slice(start, end);
}

/**
 * "Generate instructions" of a `backtranslate` run (see the module comment): the calls of `slice` (a
 * batch of the iteration's passages), or all of them.
 */
export async function backtranslateInstructions(
  state: RunState,
  { objects }: GenerateInstructionsDeps,
  calls: ModelCalls,
  slice?: CallSlice,
): Promise<MadeInstructions> {
  const { runId, config } = state;
  const share = await iterationPassages(state, objects);
  const from = slice?.from ?? 0;
  const passages = share.slice(from, slice?.to ?? share.length);
  const templates = await runTemplates(objects, runId, config);
  const count = config.groundedQuestions ?? 0;
  const replies = await Promise.all(
    passages.map(async (passage) => {
      const reply = await calls.call(
        renderBacktranslateRequest(passage.text, count, templates),
        `passage-${passage.index}`,
      );
      return reply && parseBacktranslateReply(reply, count);
    }),
  );
  const candidates = replies.flatMap((parsed, i) => {
    const passage = passages[i] as Passage;
    const call = from + i;
    return parsed ? candidatesOf(passage, parsed).map((candidate) => ({ ...candidate, call })) : [];
  });
  return {
    prompts: passages.length,
    candidates,
    malformed: replies.reduce((sum, parsed) => sum + (parsed?.malformed ?? 0), 0),
    droppedByTruncation: replies.reduce((sum, parsed) => sum + (parsed?.droppedByTruncation ?? 0), 0),
  };
}
