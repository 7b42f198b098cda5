/**
 * Stage "Generate instructions": the candidates of the run's method (`methods.ts`). Self-Instruct (step
 * 2 of the paper): each call shows the model a few seed and machine-made tasks and asks for new ones (in
 * the profile's prompt, or the run's own template of it). Evol-Instruct: each call evolves one pool
 * instruction (`evol.ts`). Backtranslation: each call asks for the instruction a passage of the run's
 * documents answers (`backtranslate.ts`). Replies are parsed into candidates, which the next stage
 * filters; the number of calls is sized from the remaining target and the last iteration's yield.
 */

import { type DemonstrationSampler, machineDemonstrations } from '../shared/demonstrations.ts';
import { fromJsonLines } from '../shared/json-lines.ts';
import { runKeys } from '../shared/keys.ts';
import type { MethodTable } from '../shared/methods.ts';
import type { ModelCalls } from '../shared/model-calls.ts';
import { taskId } from '../shared/pool-ids.ts';
import { type CommittedPool, committedPool } from '../shared/pool-index.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore, TextModel } from '../shared/ports.ts';
import { runTemplates, type TemplateOverrides } from '../shared/prompt-templates.ts';
import { createRng, type Rng } from '../shared/random.ts';
import type { Candidate, RunState, SeedTask, UsageByStage } from '../shared/schemas.ts';
import { backtranslateInstructions, iterationPassages } from './backtranslate.ts';
import { instructionCalls, storeCandidates } from './calls.ts';
import { drawParents, type EvolParent, evolveInstructions } from './evol.ts';
import { parseInstructionReply, renderInstructionRequest, selectDemonstrations } from './prompt.ts';

/**
 * Complete tasks per call assumed before a run has measured its own, per method: a Self-Instruct call
 * asks for several tasks, an Evol-Instruct call evolves one (and some evolutions are eliminated).
 */
export const DEFAULT_YIELDS: MethodTable<number> = { 'self-instruct': 4, evol: 0.5, backtranslate: 1 };
/** The Self-Instruct default (`DEFAULT_YIELDS`). */
export const DEFAULT_YIELD_PER_PROMPT = DEFAULT_YIELDS['self-instruct'];

/** Calls are sized for this much more than the iteration's share of the remaining target. */
export const SIZING_MARGIN = 1.2;
/** … and the last iteration, which has no next one to make up a shortfall, for this much more. */
export const LAST_ITERATION_MARGIN = 1.5;

export interface GenerateInstructionsResult {
  candidatesKey: string;
  prompts: number;
  candidates: number;
  malformed: number;
  droppedByTruncation: number;
  /** Calls that still failed after their retries (within the share a stage may lose). */
  lost: number;
  /** Calls a `replay:` model had no recording for (and no fallback to make them). */
  notRecorded: number;
  /** What this attempt was billed (the run's usage is the sum of the recorded calls). */
  usage: UsageByStage;
}

export interface GenerateInstructionsDeps {
  objects: ObjectStore;
  pool: PoolStore;
  model: TextModel;
  /** Milliseconds the function has left. */
  remainingMs?: () => number;
}

/** How many instruction-generation calls this iteration makes. */
export function promptsForIteration({ config, progress }: RunState): number {
  if (config.promptsPerIteration) return config.promptsPerIteration;
  const remaining = Math.max(1, config.target - progress.added);
  const iterationsLeft = Math.max(1, config.maxIterations - progress.iteration);
  const perIteration = Math.ceil(remaining / iterationsLeft);
  const yieldPerPrompt = Math.max(0.25, progress.yieldPerPrompt ?? DEFAULT_YIELDS[config.method]);
  // Aim high: yields fall as the pool grows, and one more call is cheaper than missing the target.
  const margin = iterationsLeft === 1 ? LAST_ITERATION_MARGIN : SIZING_MARGIN;
  const prompts = Math.ceil((perIteration * margin) / yieldPerPrompt);
  return Math.min(config.maxPromptsPerIteration, Math.max(1, prompts));
}

/** What a method's step of this stage is given: the run, the committed pool, the calls to make. */
export interface InstructionStepInput {
  state: RunState;
  pool: PoolStore;
  objects: ObjectStore;
  /** The pool as committed (its machine tasks are read through `machineDemonstrations`). */
  committed: CommittedPool;
  seeds: readonly SeedTask[];
  /** The seeds' instructions, trimmed as the index holds them: never machine tasks. */
  seedInstructions: ReadonlySet<string>;
  rng: Rng;
  /** Calls of the iteration (sized from the remaining target, or a replay's recorded number). */
  prompts: number;
  /** The calls `[from, to)` of them this invocation makes (a batch), all of them by default. */
  range: readonly [from: number, to: number];
  templates: TemplateOverrides;
  calls: ModelCalls;
}

/** What a method's step yields: the candidates (with the call each came from) and what was lost. */
export interface InstructionStepOutput {
  candidates: (Candidate & { call: number })[];
  malformed: number;
  droppedByTruncation: number;
}

/**
 * Self-Instruct: each call shows demonstrations sampled from the seeds and the pool (profile-dependent)
 * and asks for new tasks, parsed with the profile's parser.
 */
async function selfInstructStep(input: InstructionStepInput): Promise<InstructionStepOutput> {
  const { seeds, rng, prompts, templates, calls } = input;
  const { config } = input.state;
  const seedDemos = seeds.map((task) => ({
    instruction: task.instruction,
    input: task.instances[0]?.input,
    output: task.instances[0]?.output,
  }));
  const diverse = config.diverseDemonstrations ?? config.profile === 'default';
  const machineDemos = await machineDemonstrations(input.objects, input.committed, {
    seeds: input.seedInstructions,
    diverse,
  });
  const requests = Array.from({ length: prompts }, () => {
    const demonstrations = selectDemonstrations(config.profile, seedDemos, machineDemos, rng);
    return {
      request: renderInstructionRequest(config.profile, demonstrations, templates),
      demonstrations: demonstrations.length,
    };
  });
  // Every request of the iteration is drawn (the same draws in every batch), only the range's are made.
  const [from, to] = input.range;
  const replies = await Promise.all(
    requests.map(async ({ request, demonstrations }, call) => {
      if (call < from || call >= to) return undefined;
      const reply = await calls.call(request, `prompt-${call}`);
      return reply && parseInstructionReply(config.profile, reply, { demonstrations });
    }),
  );
  const parsed = replies.map((reply) => reply ?? { candidates: [], malformed: 0, droppedByTruncation: 0 });
  return {
    candidates: parsed.flatMap((reply, call) =>
      reply.candidates.map((candidate) => ({ ...candidate, call })),
    ),
    malformed: parsed.reduce((sum, reply) => sum + reply.malformed, 0),
    droppedByTruncation: parsed.reduce((sum, reply) => sum + reply.droppedByTruncation, 0),
  };
}

/**
 * Evol-Instruct (`evol.ts`): each call evolves one pool instruction, a seed (depth 0) or a machine task
 * (its lineage's depth, 0 when it was not made by evolution); the elimination rules mark what they drop.
 */
async function evolStep(input: InstructionStepInput): Promise<InstructionStepOutput> {
  const { seeds, rng } = input;
  // Uniform over the pool's machine tasks: all of them while the sample file lists them (then parents
  // are drawn from seeds and machine tasks alike), else its per-word samples (above
  // EXACT_DEMONSTRATIONS machine tasks, where seeds are a few percent of the pool, from those only).
  const machine = await machineDemonstrations(input.objects, input.committed, {
    seeds: input.seedInstructions,
    diverse: false,
  });
  const pool = Array.isArray(machine)
    ? [
        ...seeds.map((task) => ({ instruction: task.instruction, seed: true })),
        ...(machine as readonly { instruction: string }[]).map(({ instruction }) => ({
          instruction,
          seed: false,
        })),
      ]
    : undefined;
  const drawn = (
    pool
      ? drawParents(pool, input.prompts, rng)
      : (machine as DemonstrationSampler)
          .sample(input.prompts, rng)
          .map(({ instruction }) => ({ instruction, seed: false }))
  ).map(({ instruction, seed }) => ({ id: taskId(instruction), instruction, seed }));
  // Only the drawn machine tasks of the range are read, for their depth.
  const [from, to] = input.range;
  const machineIds = [
    ...new Set(
      drawn
        .slice(from, to)
        .filter(({ seed }) => !seed)
        .map(({ id }) => id),
    ),
  ];
  const depths = new Map(
    (await input.pool.getTasks(input.state.config.pool, machineIds)).map((task) => [
      task.id,
      task.lineage?.depth ?? 0,
    ]),
  );
  const parents: EvolParent[] = drawn.map(({ id, instruction }) => ({
    id,
    instruction,
    depth: depths.get(id) ?? 0,
  }));
  return evolveInstructions({
    drawn: parents,
    rng,
    templates: input.templates,
    runner: input.calls,
    range: input.range,
  });
}

/** The calls of one batch: `[from, to)` of the iteration's `prompts` (see `batches.ts`). */
export interface CallSlice {
  prompts: number;
  from: number;
  to: number;
}

/** What a method's calls made, before it is stored. */
export type MadeInstructions = InstructionStepOutput & { prompts: number };

/**
 * What "Generate instructions" does per method (see `methods.ts`): a step over the committed pool
 * (Self-Instruct, Evol-Instruct), or the next passages of the run's documents (backtranslation). Each
 * makes the calls of `slice` (a batch), or all of the iteration's.
 */
const GENERATORS: MethodTable<
  (
    state: RunState,
    deps: GenerateInstructionsDeps,
    calls: ModelCalls,
    slice?: CallSlice,
  ) => Promise<MadeInstructions>
> = {
  'self-instruct': (state, deps, calls, slice) => fromPool(selfInstructStep, state, deps, calls, slice),
  evol: (state, deps, calls, slice) => fromPool(evolStep, state, deps, calls, slice),
  backtranslate: backtranslateInstructions,
};

/**
 * How many calls the iteration makes: a replay's recorded number, else sized from the remaining target
 * (`promptsForIteration`), or for backtranslation the passages of its share.
 */
export async function iterationPrompts(state: RunState, deps: GenerateInstructionsDeps): Promise<number> {
  if (state.config.method === 'backtranslate') return (await iterationPassages(state, deps.objects)).length;
  return (
    (await deps.model.recordedInstructionCalls?.(state.progress.iteration + 1)) ?? promptsForIteration(state)
  );
}

/**
 * Stage "Generate instructions" in one invocation: the run's method's candidates, all of the iteration's
 * calls, stored as the state machine's batches and their collection store them (see the module comment
 * and `batches.ts`). What a definition without the batches' Map runs.
 */
export async function generateInstructions(
  state: RunState,
  deps: GenerateInstructionsDeps,
): Promise<GenerateInstructionsResult> {
  const { calls, made } = await makeInstructionCalls(state, deps);
  return storeCandidates(deps.objects, runKeys(state.runId, state.progress.iteration + 1), calls, made);
}

/** Holds the pool, then makes the calls of `slice` (or all of the iteration's) with the run's method. */
export async function makeInstructionCalls(
  state: RunState,
  deps: GenerateInstructionsDeps,
  slice?: CallSlice,
): Promise<{ calls: ModelCalls; made: MadeInstructions }> {
  const { config } = state;
  await holdPool(deps.pool, state);
  const calls = instructionCalls(state, deps);
  return { calls, made: await GENERATORS[config.method](state, deps, calls, slice) };
}

/** Runs a method's `step` over the pool as committed, with the stage's calls (those of `slice`). */
async function fromPool(
  step: (input: InstructionStepInput) => Promise<InstructionStepOutput>,
  state: RunState,
  deps: GenerateInstructionsDeps,
  calls: ModelCalls,
  slice?: CallSlice,
): Promise<MadeInstructions> {
  const { objects, pool } = deps;
  const { runId, config, progress } = state;

  // Demonstrations come from the pool as committed: the same for every attempt and batch of this stage.
  const committed = await committedPool(pool, config.pool);
  const seeds = fromJsonLines<SeedTask>(await objects.getText(committed.seedsKey));
  const seedInstructions = new Set(seeds.map((task) => task.instruction.trim()));

  const rng = createRng(`${config.seed}:iteration-${progress.iteration + 1}:instructions`);
  const prompts = slice?.prompts ?? (await iterationPrompts(state, deps));
  const templates = await runTemplates(objects, runId, config);
  const made = await step({
    state,
    pool,
    objects,
    committed,
    seeds,
    seedInstructions,
    rng,
    prompts,
    range: slice ? [slice.from, slice.to] : [0, prompts],
    templates,
    calls,
  });
  return { prompts: slice ? slice.to - slice.from : prompts, ...made };
}
