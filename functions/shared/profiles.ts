/**
 * Profiles fix the prompts, parsers and filters of a run.
 *
 * - `self-instruct`: the released code of Wang et al. (2022): its instruction prompt (completion, 8
 *   numbered demonstrations: 6 seed + 2 machine), its filters and instance parsers, exactly; its
 *   classification and instance prompts in the paper's few-shot structure, with demonstrations written
 *   for this project (a run can give the paper's own as templates: `prompt-templates.ts`).
 * - `alpaca`: Stanford Alpaca's variant: 3 seed demonstrations, up to 20 tasks per reply with
 *   instruction, input and output together, its 18-word banned list, no capitalization.
 * - `default`: ours: chat prompts with JSON replies validated by zod, no lower-casing,
 *   configurable banned words.
 */
import type { ModelRequest } from './ports.ts';
import type { ProfileName } from './schemas.ts';

/**
 * One entry per profile: what each stage keeps per profile (its prompt and parser, its filter rules) is
 * such a table, so that adding a profile name without its entries fails to compile instead of quietly
 * taking another profile's path.
 */
export type ProfileTable<T> = { readonly [P in ProfileName]: T };

/** Sampling parameters of one model call. */
export interface CallParameters {
  temperature: number;
  topP: number;
  maxTokens: number;
  stop?: string[];
}

/**
 * What a profile fixes besides its prompts, parsers and filters (those are per-stage `ProfileTable`s:
 * `generate-instructions/prompt.ts`, `generate-instances/prompt.ts`, `engine/filters.ts`).
 */
export interface Profile {
  name: ProfileName;
  /** Demonstrations per instruction-generation prompt taken from the seeds … */
  seedDemonstrations: number;
  /** … and from machine-generated tasks once the pool has them. */
  machineDemonstrations: number;
  /** Whole-word, case-insensitive banned words/phrases of the instruction filter. */
  bannedWords: readonly string[];
  /** Instances kept per task at most. */
  maxInstances: number;
  /** Parameters per model call. */
  parameters: {
    instructions: CallParameters;
    classify: CallParameters;
    instances: CallParameters;
  };
}

/** The 13 banned words/phrases of the Self-Instruct code. */
export const SELF_INSTRUCT_BANNED = [
  'image',
  'images',
  'graph',
  'graphs',
  'picture',
  'pictures',
  'file',
  'files',
  'map',
  'maps',
  'draw',
  'plot',
  'go to',
] as const;

/** Stanford Alpaca's 18: the Self-Instruct list plus video, audio, music, flowchart, diagram. */
export const ALPACA_BANNED = [
  ...SELF_INSTRUCT_BANNED,
  'video',
  'audio',
  'music',
  'flowchart',
  'diagram',
] as const;

/** The profiles' settings. */
export const PROFILES: ProfileTable<Profile> = {
  'self-instruct': {
    name: 'self-instruct',
    seedDemonstrations: 6,
    machineDemonstrations: 2,
    bannedWords: SELF_INSTRUCT_BANNED,
    maxInstances: 5,
    parameters: {
      // bootstrap_instructions.py: davinci, temperature 0.7, top_p 0.5, 1024 tokens, stop at item 16.
      instructions: { temperature: 0.7, topP: 0.5, maxTokens: 1024, stop: ['\n\n', '\n16', '16.', '16 .'] },
      // identify_clf_or_not.py: greedy, 3 tokens.
      classify: { temperature: 0, topP: 0, maxTokens: 3, stop: ['\n', 'Task'] },
      // generate_instances.py: greedy, 300 tokens.
      instances: { temperature: 0, topP: 0, maxTokens: 300, stop: ['Example 16', 'Task:'] },
    },
  },
  alpaca: {
    name: 'alpaca',
    seedDemonstrations: 3,
    machineDemonstrations: 0,
    bannedWords: ALPACA_BANNED,
    maxInstances: 1,
    parameters: {
      // generate_instruction.py: temperature 1.0, top_p 1.0, 3072 tokens, stop at item 20.
      instructions: { temperature: 1.0, topP: 1.0, maxTokens: 3072, stop: ['\n20', '20.', '20.'] },
      classify: { temperature: 0, topP: 0, maxTokens: 3, stop: ['\n'] },
      instances: { temperature: 0, topP: 0, maxTokens: 300 },
    },
  },
  default: {
    name: 'default',
    seedDemonstrations: 6,
    machineDemonstrations: 2,
    bannedWords: SELF_INSTRUCT_BANNED,
    maxInstances: 5,
    parameters: {
      instructions: { temperature: 0.7, topP: 0.9, maxTokens: 1024 },
      classify: { temperature: 0, topP: 1, maxTokens: 8 },
      instances: { temperature: 0.3, topP: 0.9, maxTokens: 700 },
    },
  },
};

/** The sampling fields of a request for one of a profile's calls (`stop` only when the profile has one). */
export function callParameters(
  profile: ProfileName,
  call: keyof Profile['parameters'],
): Pick<ModelRequest, 'temperature' | 'topP' | 'maxTokens' | 'stop'> {
  const { temperature, topP, maxTokens, stop } = PROFILES[profile].parameters[call];
  return { temperature, topP, maxTokens, ...(stop ? { stop } : {}) };
}
