/**
 * Explanation traces (run input `responseStyle: "explained"`), after Orca (Mukherjee et al., 2023,
 * "Orca: Progressive Learning from Complex Explanation Traces of GPT-4", https://arxiv.org/abs/2306.02707):
 * the output of each instance is written again by a teacher model (`teacherModel`, by default the run's
 * model) under a system message that asks for the reasoning behind the answer, so that a model trained on
 * the records learns the explanation and not only the answer.
 *
 * - The system message is chosen per task type, deterministically (`taskType`, `SYSTEM_MESSAGE_OF_TYPE`),
 *   from Orca's set of 16 (its Table 2; the texts as the paper prints them, typos included): a label is
 *   justified, a short answer about an input is reached step by step, an explanation is pitched at a
 *   five-year-old, and so on. One message per task: every instance of a task is taught under it.
 * - The teacher sees what a trained model will see: the system message, then the user turn of the
 *   `messages` export (the instruction, and the input after a blank line). It does not see the direct
 *   output: as in Orca, the teacher answers the query itself.
 * - Its reply is model output: an empty reply, one cut by the token limit, a refusal, a bare answer with
 *   no reasoning, or one too long for a pool item is unusable (`parseTeacherReply`). That instance is
 *   dropped, counted as `teach-<reason>`, and not kept direct: every record of an explained task says it
 *   was written under its system message, and a direct output would say it falsely. A task left with no
 *   instance is rejected as `no-valid-instances`; a teacher call lost after its retries rejects the task as
 *   the instance calls do (`model-call-failed`).
 */
import { userContent } from '../shared/exports/formats.ts';
import type { ModelCalls } from '../shared/model-calls.ts';
import { type ModelRequest, type ReplyText, TEACH_STAGE } from '../shared/ports.ts';
import type { CallParameters } from '../shared/profiles.ts';
import type { Counts, Instance } from '../shared/schemas.ts';

/** Sampling of a teacher call: a little temperature, room for the reasoning. */
export const TEACH_PARAMETERS: CallParameters = { temperature: 0.3, topP: 1, maxTokens: 1024 };

/** An explained output shorter than this many words has no reasoning in it (a bare answer). */
export const MIN_EXPLAINED_WORDS = 12;

/** A direct output of at most this many words (on average over the task's instances) is a short answer. */
export const SHORT_ANSWER_WORDS = 20;

/**
 * The system messages of Orca's Table 2 that the task types use, by id. Orca's 16 messages also include
 * the empty message and a few variants of these; the ones below cover the task types of `taskType`.
 */
export const SYSTEM_MESSAGES = {
  /** Orca's message 3. */
  'detailed-long':
    'You are an AI assistant. You will be given a task. You must generate a detailed and long answer.',
  /** Orca's message 4. */
  'five-year-old':
    'You are a helpful assistant, who always provide explanation. Think like you are answering to a five year old.',
  /** Orca's message 7. */
  'step-by-step':
    'You are an AI assistant. User will you give you a task. Your goal is to complete the task as faithfully as you can. While performing the task think step-by-step and justify your steps.',
  /** Orca's message 10. */
  'justify-answer':
    'You are an AI assistant. You should describe the task and explain your answer. While answering a multiple choice question, first output the correct answer(s). Then explain why other answers are wrong. You might need to use additional knowledge to answer the question.',
  /** Orca's message 11. */
  'find-information':
    'You are an AI assistant that helps people find information. User will you give you a question. Your task is to answer as faithfully as you can. While answering think step-by-step and justify your answer.',
  /** Orca's message 12. */
  'follow-instructions':
    'User will you give you a task with some instruction. Your job is follow the instructions as faithfully as you can. While answering think step-by-step and justify your answer.',
  /** Orca's message 14. */
  translation:
    'You are an AI assistant, who knows every language and how to translate one language to another. Given a task, you explain in simple steps what the task is asking, any guidelines that it provides. You solve the task and show how you used the guidelines to solve the task.',
} as const;

/** The id of a system message. */
export type SystemMessageId = keyof typeof SYSTEM_MESSAGES;

/** The task types a system message is chosen by (see `taskType`). */
export const TASK_TYPES = [
  'classification',
  'translation',
  'explanation',
  'closed-qa',
  'input-rewriting',
  'open-qa',
  'open-generation',
] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/** The system message of each task type: one table, documented in the README ("Explanation traces"). */
export const SYSTEM_MESSAGE_OF_TYPE: { readonly [T in TaskType]: SystemMessageId } = {
  classification: 'justify-answer',
  translation: 'translation',
  explanation: 'five-year-old',
  'closed-qa': 'step-by-step',
  'input-rewriting': 'follow-instructions',
  'open-qa': 'find-information',
  'open-generation': 'detailed-long',
};

const words = (text: string) => text.trim().split(/\s+/).filter(Boolean).length;

/**
 * The type of a task, from its instruction, its classification flag and its (direct) instances, checked
 * in this order: a classification task; a translation (`translat…` in the instruction); a request for an
 * explanation (it starts with "Explain", "Describe" or "Why"); a task on an input (some instance has one)
 * whose answers are short (`SHORT_ANSWER_WORDS` on average): closed QA, else rewriting the input; without
 * an input, a question (ends with "?" or starts with a question word): open QA, else open generation.
 */
export function taskType(
  instruction: string,
  isClassification: boolean,
  instances: readonly Instance[],
): TaskType {
  const text = instruction.trim();
  if (isClassification) return 'classification';
  if (/\btranslat/i.test(text)) return 'translation';
  if (/^(explain|describe|why)\b/i.test(text)) return 'explanation';
  if (instances.some((instance) => instance.input.trim() !== '')) {
    const mean = instances.reduce((sum, i) => sum + words(i.output), 0) / Math.max(1, instances.length);
    return mean <= SHORT_ANSWER_WORDS ? 'closed-qa' : 'input-rewriting';
  }
  return /\?$/.test(text) || /^(what|who|when|where|which|how|is|are|can|does|do)\b/i.test(text)
    ? 'open-qa'
    : 'open-generation';
}

/** The system message a task is taught under (see `taskType` and `SYSTEM_MESSAGE_OF_TYPE`). */
export function systemMessageFor(
  instruction: string,
  isClassification: boolean,
  instances: readonly Instance[],
): { type: TaskType; id: SystemMessageId; text: string } {
  const type = taskType(instruction, isClassification, instances);
  const id = SYSTEM_MESSAGE_OF_TYPE[type];
  return { type, id, text: SYSTEM_MESSAGES[id] };
}

/**
 * The teacher's request for one instance: the task's system message, then the user's turn of the
 * `messages` and `bedrock` exports (`userContent`: the instruction, and the input after a blank line).
 */
export function renderTeacherRequest(
  systemMessage: string,
  instruction: string,
  instance: Instance,
): ModelRequest {
  return {
    stage: TEACH_STAGE,
    format: 'teach/explained',
    kind: 'chat',
    ...TEACH_PARAMETERS,
    system: systemMessage,
    prompt: userContent({ instruction, input: instance.input }),
  };
}

/** Why a teacher reply can't be used (counted as `teach-<reason>`). */
export type TeachUnusable = 'empty' | 'truncated' | 'refusal' | 'no-explanation' | 'too-long';

const REFUSAL =
  /^(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|as an ai(?: language model)?,? i (?:can(?:no|')t|am unable)|i can(?:no|')t (?:help|assist|answer|do that))/i;

/**
 * The explained output in a teacher's reply, or why it can't be used: empty, cut by the token limit,
 * a refusal, fewer than `MIN_EXPLAINED_WORDS` words (no reasoning), or longer than `maxChars`.
 */
export function parseTeacherReply(
  reply: ReplyText,
  maxChars: number,
): { output: string } | { unusable: TeachUnusable } {
  const output = reply.text.trim();
  if (output === '') return { unusable: 'empty' };
  if (reply.finish === 'length') return { unusable: 'truncated' };
  if (REFUSAL.test(output)) return { unusable: 'refusal' };
  if (words(output) < MIN_EXPLAINED_WORDS) return { unusable: 'no-explanation' };
  if (output.length > maxChars) return { unusable: 'too-long' };
  return { output };
}

/** What teaching a task's instances gave. */
export interface Explained {
  /** The instances whose explained output could be used, with it as their output. */
  instances: Instance[];
  /** The system message they were written under. */
  systemMessage: string;
  /** `teach-<reason>` per instance dropped. */
  counts: Counts;
  /** The key of a call lost after its retries (or not recorded, for a replay): the task is lost. */
  lost?: string;
}

/**
 * Has the teacher write the output of each of a task's instances under the task's system message
 * (`systemMessageFor`), one call per instance (key `<task id>/teach-<n>`, in the instances' order), and
 * keeps those whose reply can be used. `maxInstanceChars` bounds an instance (input and output together).
 */
export async function explainInstances(
  task: { id: string; instruction: string; isClassification: boolean },
  instances: readonly Instance[],
  teacher: Pick<ModelCalls, 'call'>,
  maxInstanceChars: number,
): Promise<Explained> {
  const { text: systemMessage } = systemMessageFor(task.instruction, task.isClassification, instances);
  const replies = await Promise.all(
    instances.map(async (instance, n) => {
      const key = `${task.id}/teach-${n}`;
      const reply = await teacher.call(renderTeacherRequest(systemMessage, task.instruction, instance), key);
      return { key, instance, reply };
    }),
  );
  const counts: Counts = {};
  const kept: Instance[] = [];
  for (const { key, instance, reply } of replies) {
    if (!reply) return { instances: [], systemMessage, counts, lost: key };
    const parsed = parseTeacherReply(reply, maxInstanceChars - instance.input.length);
    if ('unusable' in parsed) {
      const reason = `teach-${parsed.unusable}`;
      counts[reason] = (counts[reason] ?? 0) + 1;
    } else kept.push({ input: instance.input, output: parsed.output });
  }
  return { instances: kept, systemMessage, counts };
}
