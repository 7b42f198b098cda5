/**
 * Stage "Generate instructions" (Self-Instruct step 1): the prompt it sends and the parser of the reply.
 *
 * - `self-instruct`: `encode_prompt` and `post_process_gpt3_response` of the paper's
 *   `bootstrap_instructions.py` (Wang et al., 2022): 8 numbered demonstrations, the model continues the list.
 * - `alpaca`: `encode_prompt` and `post_process_gpt3_response` of Stanford Alpaca's
 *   `generate_instruction.py`: 3 seed tasks with input and output, up to 20 tasks per reply between `###`.
 * - `default`: ours: a chat prompt asking for a JSON list of tasks, each with its classification flag.
 *
 * Templates are in `./prompts/`. Filtering and normalizing the instructions is the filter stage's job.
 */
import { z } from 'zod';
import { type DemonstrationSampler, MachineDemonstrations } from '../shared/demonstrations.ts';
import type { ModelPrompt, ModelRequest, ReplyText } from '../shared/ports.ts';
import { callParameters, PROFILES, type ProfileTable } from '../shared/profiles.ts';
import { SHIPPED_TEMPLATES, stageTemplates, type TemplateOverrides } from '../shared/prompt-templates.ts';
import type { Rng } from '../shared/random.ts';
import type { Candidate, ProfileName } from '../shared/schemas.ts';
import { extractJsonArrayItems } from '../shared/templates.ts';

/** A task shown to the model as an example: a seed or a machine-generated task. */
export interface DemoTask {
  instruction: string;
  /** The input of one of its instances (Alpaca shows one instance per demonstration). */
  input?: string;
  output?: string;
}

/** What one reply yields. */
export interface ParsedInstructions {
  candidates: Candidate[];
  /** Items the reply has but that do not have the expected shape. */
  malformed: number;
  /** Items lost because the reply was cut by the token limit. */
  droppedByTruncation: number;
}

/** How many new tasks the default profile asks for in one call. */
export const DEFAULT_TASKS_PER_CALL = 10;

export { MachineDemonstrations };

const fill = stageTemplates(import.meta.url, 'generate-instructions');

/**
 * Picks the demonstrations of one prompt.
 *
 * `self-instruct` and `default`, as `bootstrap_instructions.py`: up to 2 machine tasks (fewer while the
 * pool has fewer), then seeds up to 8 in all, then shuffled. `alpaca`, as `generate_instruction.py`:
 * 3 seed tasks in random order (the caller passes each seed with its first instance).
 */
export function selectDemonstrations(
  profile: ProfileName,
  seeds: readonly DemoTask[],
  machine: readonly DemoTask[] | DemonstrationSampler,
  rng: Rng,
): DemoTask[] {
  const { seedDemonstrations, machineDemonstrations } = PROFILES[profile];
  const pick = Array.isArray(machine) ? undefined : (machine as DemonstrationSampler);
  const tasks = pick ? [] : (machine as readonly DemoTask[]);
  const fromMachine =
    machineDemonstrations === 0
      ? []
      : pick
        ? pick.sample(machineDemonstrations, rng)
        : rng.sample(tasks, Math.min(machineDemonstrations, tasks.length));
  const fromSeeds = rng.sample(seeds, seedDemonstrations + machineDemonstrations - fromMachine.length);
  const demos = [...fromMachine, ...fromSeeds];
  return machineDemonstrations > 0 ? rng.shuffle(demos) : demos;
}

/** The paper's clean-up of a demonstration: whitespace runs collapsed, stripped, trailing colons removed. */
function cleanInstruction(instruction: string): string {
  return instruction.replace(/\s+/g, ' ').trim().replace(/:+$/, '');
}

/**
 * The instruction-generation task of one profile: the prompt it renders around the demonstrations with
 * the run's templates (the sampling parameters are the profile's) and the parser of the reply.
 * `demonstrations` is the number of tasks the prompt showed.
 */
export interface InstructionTask {
  render(demos: readonly DemoTask[], templates: TemplateOverrides): ModelPrompt;
  parse(reply: ReplyText, demonstrations: number): ParsedInstructions;
}

/**
 * The task per profile.
 *
 * - `self-instruct`: 8 numbered demonstrations, the model continues the list. A reply cut by the token
 *   limit is dropped whole; otherwise it is split with `/\n\d+\s?\. /` exactly as the paper, so the first
 *   piece is the rest of the item the prompt opened, and a line whose number is not followed by ". "
 *   stays glued to the item before it.
 * - `alpaca`: 3 seed tasks with input and output between `###`. `${n+1}. Instruction:` is put back in
 *   front of the reply, the text is split on `###`, the last piece is dropped when the reply was cut, and
 *   each piece must split into exactly 7 parts on `${index}\.\s+(Instruction|Input|Output):`;
 *   `<noinput>` becomes an empty input.
 * - `default`: a chat prompt asking for a JSON list of tasks; the JSON object's `tasks`, each validated;
 *   a task cut by the token limit is counted, not kept.
 */
export const INSTRUCTION_TASKS: ProfileTable<InstructionTask> = {
  'self-instruct': {
    render: (demos, templates) => ({
      format: 'instructions/self-instruct',
      kind: 'completion',
      prompt: fill(templates, 'self-instruct.txt', {
        demonstrations: demos.map((d, i) => `${i + 1}. ${cleanInstruction(d.instruction)}\n`).join(''),
        next: demos.length + 1,
      }),
    }),
    parse: parseNumberedList,
  },
  alpaca: {
    render: (demos, templates) => ({
      format: 'instructions/alpaca',
      kind: 'completion',
      prompt: fill(templates, 'alpaca.txt', {
        demonstrations: demos
          .map((d, i) => {
            const n = i + 1;
            const input = d.input ? d.input : '<noinput>';
            return `###\n${n}. Instruction: ${cleanInstruction(d.instruction)}\n${n}. Input:\n${input}\n${n}. Output:\n${d.output ?? ''}\n`;
          })
          .join(''),
        next: demos.length + 1,
      }),
    }),
    parse: parseAlpacaBlocks,
  },
  default: {
    render: (demos, templates) => ({
      format: 'instructions/default',
      kind: 'chat',
      system: fill(templates, 'default-system.txt', {}),
      prompt: fill(templates, 'default-user.txt', {
        demonstrations: demos.map((d, i) => `${i + 1}. ${cleanInstruction(d.instruction)}`).join('\n'),
        count: DEFAULT_TASKS_PER_CALL,
      }),
      json: true,
    }),
    parse: parseJsonTasks,
  },
};

/**
 * Builds the instruction-generation request of a profile from its demonstrations (see `INSTRUCTION_TASKS`),
 * with the run's templates (the shipped ones unless told).
 */
export function renderInstructionRequest(
  profile: ProfileName,
  demos: readonly DemoTask[],
  templates: TemplateOverrides = SHIPPED_TEMPLATES,
): ModelRequest {
  return {
    stage: 'generate-instructions',
    ...callParameters(profile, 'instructions'),
    ...INSTRUCTION_TASKS[profile].render(demos, templates),
  };
}

/**
 * Parses a reply into candidate tasks (see `INSTRUCTION_TASKS`). `demonstrations` is the number of tasks
 * the prompt showed (the profile's own number unless told).
 */
export function parseInstructionReply(
  profile: ProfileName,
  reply: ReplyText,
  options: { demonstrations?: number } = {},
): ParsedInstructions {
  const { seedDemonstrations, machineDemonstrations } = PROFILES[profile];
  return INSTRUCTION_TASKS[profile].parse(
    reply,
    options.demonstrations ?? seedDemonstrations + machineDemonstrations,
  );
}

/** One task of the default profile's JSON reply. */
const DefaultTask = z.object({
  instruction: z.string().refine((s) => s.trim() !== '', 'empty instruction'),
  is_classification: z.boolean().optional(),
});

function parseNumberedList({ text, finish }: ReplyText): ParsedInstructions {
  const pieces = text
    .split(/\n\d+\s?\. /)
    .map((piece) => piece.trim())
    .filter((piece) => piece !== '');
  if (finish === 'length') return { candidates: [], malformed: 0, droppedByTruncation: pieces.length };
  return { candidates: pieces.map((instruction) => ({ instruction })), malformed: 0, droppedByTruncation: 0 };
}

function parseAlpacaBlocks({ text, finish }: ReplyText, demonstrations: number): ParsedInstructions {
  const pieces = `${demonstrations + 1}. Instruction:${text}`.split('###');
  const result: ParsedInstructions = { candidates: [], malformed: 0, droppedByTruncation: 0 };
  pieces.forEach((piece, i) => {
    // What follows the last `###` is often just the newline before the stop sequence: nothing to count.
    if (piece.trim() === '') return;
    if (i === pieces.length - 1 && finish === 'length') {
      result.droppedByTruncation++;
      return;
    }
    const parts = piece.split(new RegExp(`${i + demonstrations + 1}\\.\\s+(Instruction|Input|Output):`));
    if (parts.length !== 7) {
      result.malformed++;
      return;
    }
    const input = (parts[4] ?? '').trim();
    result.candidates.push({
      instruction: (parts[2] ?? '').trim(),
      input: input.toLowerCase() === '<noinput>' ? '' : input,
      output: (parts[6] ?? '').trim(),
    });
  });
  return result;
}

function parseJsonTasks({ text, finish }: ReplyText): ParsedInstructions {
  const { found, items, unparseable, unfinished } = extractJsonArrayItems(text, 'tasks');
  if (!found) {
    // Nothing usable: count the reply once, as a cut one if the limit stopped it before the list.
    return finish === 'length'
      ? { candidates: [], malformed: 0, droppedByTruncation: 1 }
      : { candidates: [], malformed: 1, droppedByTruncation: 0 };
  }
  const result: ParsedInstructions = { candidates: [], malformed: unparseable, droppedByTruncation: 0 };
  if (unfinished) {
    if (finish === 'length') result.droppedByTruncation++;
    else result.malformed++;
  }
  for (const item of items) {
    const task = DefaultTask.safeParse(item);
    if (!task.success) {
      result.malformed++;
      continue;
    }
    const { instruction, is_classification } = task.data;
    result.candidates.push(
      is_classification === undefined
        ? { instruction }
        : { instruction, isClassification: is_classification },
    );
  }
  return result;
}
