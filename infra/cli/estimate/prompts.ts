import { renderTeacherRequest, systemMessageFor } from '../../../functions/generate-instances/explain.ts';
import { renderJudgeRequest } from '../../../functions/generate-instances/judge.ts';
import {
  renderClassifyRequest,
  renderInstancesRequest,
} from '../../../functions/generate-instances/prompt.ts';
import {
  GAIN_BATCH,
  OPERATION_NAMES,
  renderEqualRequest,
  renderEvolveRequest,
} from '../../../functions/generate-instructions/evol.ts';
import {
  renderInstructionRequest,
  selectDemonstrations,
} from '../../../functions/generate-instructions/prompt.ts';
import { estimateTokens } from '../../../functions/shared/models/usage.ts';
import type { ModelRequest, ModelStage } from '../../../functions/shared/ports.ts';
import { SHIPPED_TEMPLATES, type TemplateOverrides } from '../../../functions/shared/prompt-templates.ts';
import { createRng } from '../../../functions/shared/random.ts';
import type { Method, ProfileName, SeedTask } from '../../../functions/shared/schemas.ts';

/** The model steps, in pipeline order. */
export const MODEL_STEPS: readonly ModelStage[] = [
  'generate-instructions',
  'classify',
  'generate-instances',
  'judge',
  'teach',
];

/**
 * `method: evol`: mean input tokens and `maxTokens` of an instruction-step call, the evolving prompts of
 * every seed instruction by every operation and the information-gain question over `GAIN_BATCH` seed
 * pairs, weighted by `gainCallsPerCall`.
 */
function evolPromptTokens(
  seeds: readonly SeedTask[],
  templates: TemplateOverrides,
  gainCallsPerCall: number,
) {
  const evolving = seeds.flatMap((task) =>
    OPERATION_NAMES.map((operation) => renderEvolveRequest(task.instruction, operation, templates)),
  );
  const pairs = seeds.slice(0, GAIN_BATCH).map((task, i) => ({
    parent: task.instruction,
    child: seeds[(i + 1) % seeds.length]?.instruction ?? '',
  }));
  const gain = renderEqualRequest(pairs, templates);
  const weighted = (evolve: number, equal: number) =>
    (evolve + gainCallsPerCall * equal) / (1 + gainCallsPerCall);
  return {
    tokens: weighted(mean(evolving.map(requestTokens)), requestTokens(gain)),
    maxTokens: weighted(mean(evolving.map((request) => request.maxTokens)), gain.maxTokens),
  };
}

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);

/** Tokens of a rendered request: system and user message (chat framing tokens not counted). */
const requestTokens = (request: ModelRequest) => estimateTokens((request.system ?? '') + request.prompt);

/** Mean input tokens per call of each model step, from the rendered prompts. */
export interface PromptTokens {
  'generate-instructions': number;
  classify: number;
  'generate-instances': number;
  judge: number;
  /** A teacher's request per seed instance, under its task's system message (explained responses). */
  teach: number;
  /**
   * Mean `maxTokens` per call of each model step, from the same rendered requests: what each call
   * reserves of the model's tokens-per-minute quota at its start, besides its input.
   */
  maxTokens: Record<ModelStage, number>;
  /**
   * Explained responses: the tokens the teacher's reply adds to the judge's prompt per instance, over the
   * direct output it replaces (`judge` includes them, on `instancesPerTask` instances).
   */
  judgeExplainedPerInstance?: number;
  /** Instruction prompts rendered (each with its own sampled demonstrations). */
  samples: number;
  /** Share of the sample instructions that are classification tasks. */
  classificationShare: number;
}

/**
 * What an explained run's judge reads in place of each direct output: the teacher's reply (`teach`
 * output tokens, the calibration's), on each instance of a task (`instancesPerTask`, the calibration's:
 * a run's tasks, not the seeds, are judged).
 */
export interface ExplainedJudge {
  outputTokens: number;
  instancesPerTask: number;
}

/** A text `estimateTokens` counts as `tokens` tokens, standing in for a reply of that length. */
const standIn = (tokens: number) => 'x'.repeat(Math.max(0, Math.round(tokens * 4)));

/**
 * The judge's mean input tokens: its prompt rendered for each seed task with its instances; with
 * `explained`, plus what each explained output adds over the direct one it replaces (measured by
 * rendering each seed task again with its outputs replaced by a stand-in of the teacher's reply length),
 * times the instances the judge sees per task. Without this, an explained run's judge was counted with the
 * seeds' short direct outputs (offline: 348 input tokens estimated per verdict against 599 recorded).
 */
function judgeTokens(seeds: readonly SeedTask[], templates: TemplateOverrides, explained?: ExplainedJudge) {
  const direct = seeds.map((task) =>
    requestTokens(renderJudgeRequest(task.instruction, task.instances, templates)),
  );
  const judge = direct.reduce((sum, n) => sum + n, 0) / Math.max(1, seeds.length);
  if (!explained) return { judge };
  const reply = standIn(explained.outputTokens);
  const added = seeds.reduce((sum, task, i) => {
    const instances = task.instances.map((instance) => ({ ...instance, output: reply }));
    return sum + requestTokens(renderJudgeRequest(task.instruction, instances, templates)) - (direct[i] ?? 0);
  }, 0);
  const perInstance =
    added /
    Math.max(
      1,
      seeds.reduce((sum, task) => sum + task.instances.length, 0),
    );
  return {
    judge: judge + explained.instancesPerTask * perInstance,
    judgeExplainedPerInstance: perInstance,
  };
}

/**
 * Renders the profile's prompts and measures them: `samples` instruction-generation prompts with
 * demonstrations sampled as the stage samples them (machine demonstrations stood in for by seed
 * instructions), the classification and instance prompts of every seed instruction (output-first
 * for the classification ones, input-first for the others), the judge's prompt of every seed task
 * with its instances (`judgeTokens`), and the teacher's request of every seed instance under its task's system message; with the run's `templates` (run input `templates`) where it has them.
 */
export function measurePrompts(
  profile: ProfileName,
  seeds: readonly SeedTask[],
  {
    samples = 200,
    seed = 'estimate',
    templates = SHIPPED_TEMPLATES,
    method = 'self-instruct',
    gainCallsPerCall = 0,
    explained,
  }: {
    samples?: number;
    seed?: string;
    templates?: TemplateOverrides;
    method?: Method;
    gainCallsPerCall?: number;
    /** Explained responses: the judge reads the teacher's replies (see `judgeTokens`). */
    explained?: ExplainedJudge;
  } = {},
): PromptTokens {
  const rng = createRng(`${seed}:${profile}`);
  const demos = seeds.map((task) => ({
    instruction: task.instruction,
    input: task.instances[0]?.input,
    output: task.instances[0]?.output,
  }));
  const machine = seeds.map((task) => ({ instruction: task.instruction }));
  const instruction = Array.from({ length: samples }, () =>
    renderInstructionRequest(profile, selectDemonstrations(profile, demos, machine, rng), templates),
  );
  const evol = method === 'evol' ? evolPromptTokens(seeds, templates, gainCallsPerCall) : undefined;
  const classify = seeds.map((task) => renderClassifyRequest(profile, task.instruction, templates));
  const instances = seeds.map((task) =>
    renderInstancesRequest(profile, task.instruction, task.is_classification, templates),
  );
  const judge = seeds.map((task) => renderJudgeRequest(task.instruction, task.instances, templates));
  const teach = seeds.flatMap((task) => {
    const system = systemMessageFor(task.instruction, task.is_classification, task.instances).text;
    return task.instances.map((instance) => renderTeacherRequest(system, task.instruction, instance));
  });
  const meanMax = (requests: ModelRequest[]) => mean(requests.map((request) => request.maxTokens));
  return {
    'generate-instructions': evol?.tokens ?? mean(instruction.map(requestTokens)),
    classify: mean(classify.map(requestTokens)),
    'generate-instances': mean(instances.map(requestTokens)),
    ...judgeTokens(seeds, templates, explained),
    teach: mean(teach.map(requestTokens)),
    maxTokens: {
      'generate-instructions': evol?.maxTokens ?? meanMax(instruction),
      classify: meanMax(classify),
      'generate-instances': meanMax(instances),
      judge: meanMax(judge),
      teach: meanMax(teach),
    },
    samples,
    classificationShare: seeds.filter((task) => task.is_classification).length / Math.max(1, seeds.length),
  };
}
