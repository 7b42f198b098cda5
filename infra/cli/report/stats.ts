/**
 * The numbers of a run report (`exports/<run>/stats.json`): what a researcher reports about a generated
 * instruction set, after the Self-Instruct paper's section 3 (Wang et al., 2022): how the pool grew and
 * why candidates were lost, how much the new instructions overlap with the seeds (the paper's ROUGE-L
 * figure) and with the pool, how long instructions, inputs and outputs are, which verbs and objects the
 * instructions use (the paper's verb–noun chart), what it cost, and a sample of accepted and rejected
 * tasks with the reasons and nearest neighbours; and the quality checks of issue 12: the judge's scores
 * and audit answers (the paper's section 4.2), what the safety screen flagged, the near-duplicates the
 * embeddings caught, and the diversity plateau rule. Pure: the stores are read by `report.ts`; the output's
 * schema is `schema.ts`, its histograms are drawn by `histograms.ts`.
 */
import { z } from 'zod';
import { lowDiversityStreak, PLATEAU_METRICS } from '../../../functions/save-iteration/diversity.ts';
import { RougeIndex } from '../../../functions/shared/engine/gate.ts';
import { totalUsage } from '../../../functions/shared/model-calls.ts';
import { nearDuplicateGateOn } from '../../../functions/shared/models/embedding-ids.ts';
import { judgeModelOf } from '../../../functions/shared/models/judge-ids.ts';
import type { RunRecord } from '../../../functions/shared/ports.ts';
import { createRng } from '../../../functions/shared/random.ts';
import {
  type GateRecord,
  type IterationDiversity,
  IterationRecord,
  type TaskLine,
} from '../../../functions/shared/records.ts';
import { NO_SCREEN } from '../../../functions/shared/safety.ts';
import { Method, PlateauMetric, ResponseStyle } from '../../../functions/shared/schemas.ts';
import { evolutionStats } from './evolution.ts';
import { lengthDistribution, similarityDistribution } from './histograms.ts';
import {
  type NearDuplicateExample,
  type PlateauStats,
  type QualityStats,
  ReportStats,
  type SafetyCounts,
  type SampledTask,
} from './schema.ts';

// ---------------------------------------------------------------------------------------------------
// Inputs, as the pipeline stores them.

/** The run configuration fields the report shows (the run record's `config`). */
const ReportedConfig = z.object({
  profile: z.string().default('unknown'),
  model: z.string().default('unknown'),
  rougeThreshold: z.number().default(0.7),
  target: z.number().optional(),
  maxIterations: z.number().optional(),
  seed: z.string().optional(),
  judgeModel: z.string().optional(),
  minQuality: z.number().optional(),
  embeddingModel: z.string().optional(),
  embeddingThreshold: z.number().optional(),
  safetyScreen: z.string().optional(),
  method: z.string().optional(),
  responseStyle: z.string().optional(),
  // As the run input has it, without its default: a run from before the rule had none.
  diversityPlateau: z
    .union([
      z.literal(false),
      z.object({ metric: PlateauMetric, floor: z.number(), iterations: z.int().positive() }),
    ])
    .optional(),
});

/** Everything `computeStats` reads; `report.ts` gathers it from S3 and DynamoDB. */
export interface ReportInput {
  run: RunRecord;
  /** The gate decisions of each iteration, in gate order. */
  gate: { iteration: number; decisions: GateRecord[] }[];
  /** The export's tasks; tasks of other runs of the pool (the export holds them too) are ignored. */
  tasks: TaskLine[];
  /** The pool's seed tasks. */
  seeds: { instruction: string }[];
  /** Tasks in the pool after the run's last iteration (the summary's `poolSize`); default seeds + added. */
  poolSizeAfter?: number;
  /** Why a task that passed the gate was dropped at the instance stage, by task id (`rejectReason`). */
  instanceRejections?: Record<string, string>;
  /** Tasks of the run the judge scored but that were dropped after its verdict (`low-quality`). */
  judgedRejected?: JudgedTask[];
  /** Sampled tasks per table (default 12 accepted and 12 rejected) and the sampling seed (the run id). */
  sample?: { accepted?: number; rejected?: number; seed?: string };
}

// ---------------------------------------------------------------------------------------------------
// Helpers.

/** Rejection reasons of the gates (ROUGE-L, embeddings, the pool's keys); any other is a heuristic filter's. */
const GATE_REASONS = new Set(['rouge', 'near-duplicate', 'duplicate']);

/** Root verbs in the verb–noun chart, as in the paper. */
export const TOP_VERBS = 20;
/** Direct noun objects per verb in the verb–noun chart, as in the paper. */
export const TOP_NOUNS = 4;

/** Words of a text: whitespace-separated tokens. */
export const countWords = (text: string) => {
  const trimmed = text.trim();
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length;
};

const rate = (part: number, whole: number) => (whole > 0 ? part / whole : null);

/** A task's verdict fields, as the export and the pool's tasks carry them. */
export type JudgedTask = Pick<
  TaskLine,
  'iteration' | 'quality_score' | 'instruction_valid' | 'input_appropriate' | 'output_correct'
>;

/** The verdicts of `tasks` (see `QualityStats`). */
export function qualityStats(tasks: readonly JudgedTask[]): QualityStats {
  const scores = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, unscored: 0 };
  const scored = tasks.filter((task) => task.quality_score !== undefined);
  for (const task of tasks) {
    const score = task.quality_score;
    if (score === 1 || score === 2 || score === 3 || score === 4 || score === 5) scores[score]++;
    else scores.unscored++;
  }
  const share = (yes: (task: JudgedTask) => boolean) => rate(scored.filter(yes).length, scored.length);
  return {
    judged: tasks.length,
    scores,
    meanScore: rate(
      scored.reduce((sum, task) => sum + (task.quality_score as number), 0),
      scored.length,
    ),
    instructionValid: share((task) => task.instruction_valid === true),
    inputAppropriate: share((task) => task.input_appropriate === true),
    outputCorrect: share((task) => task.output_correct === true),
    fullyValid: share(
      (task) =>
        task.instruction_valid === true && task.input_appropriate === true && task.output_correct === true,
    ),
  };
}

/** A candidate instruction's reason when the safety screen flagged it, and an instance's count key. */
const UNSAFE_INSTRUCTION = /^unsafe-(.+)$/;
const UNSAFE_INSTANCE = /^instance-unsafe-(.+)$/;

/**
 * What the safety screen flagged, by category: the candidate instructions among `rejected` (the gate
 * log's reasons, `unsafe-<category>`) and the instances among an iteration's `counts` (the run record's,
 * `instance-unsafe-<category>`).
 */
export function safetyCounts(rejected: Record<string, number>, counts: Record<string, number>): SafetyCounts {
  const byCategory = (map: Record<string, number>, pattern: RegExp) => {
    const found: Record<string, number> = {};
    for (const [key, n] of Object.entries(map)) {
      const category = pattern.exec(key)?.[1];
      if (category !== undefined && n > 0) increment(found, category, n);
    }
    return Object.fromEntries(Object.entries(found).sort(byCount));
  };
  return {
    instructions: byCategory(rejected, UNSAFE_INSTRUCTION),
    instances: byCategory(counts, UNSAFE_INSTANCE),
  };
}

/** What the report shows instead of a candidate the safety screen flagged (`gate.jsonl` keeps it). */
export const WITHHELD = '(withheld: flagged by the safety screen)';

/** Near-duplicate examples in stats.json. */
export const NEAR_DUPLICATE_EXAMPLES = 8;

/**
 * The candidates the near-duplicate gate rejected, `k` of them drawn with `seed` (from the gate log in
 * iteration order, so the same run gives the same examples), shown by iteration, highest cosine first.
 */
export function nearDuplicateExamples(
  gate: ReportInput['gate'],
  seed: string,
  k = NEAR_DUPLICATE_EXAMPLES,
): { count: number; examples: NearDuplicateExample[] } {
  const all = [...gate]
    .sort((a, b) => a.iteration - b.iteration)
    .flatMap(({ iteration, decisions }) =>
      decisions.flatMap((d): NearDuplicateExample[] =>
        d.status === 'rejected' && d.reason === 'near-duplicate'
          ? [
              {
                iteration,
                instruction: d.instruction,
                nearestInstruction: d.nearest_instruction ?? null,
                cosine: d.nearest_cosine ?? null,
              },
            ]
          : [],
      ),
    );
  const examples = createRng(`${seed}/near-duplicates`)
    .sample(all, k)
    .sort((a, b) => a.iteration - b.iteration || (b.cosine ?? 0) - (a.cosine ?? 0));
  return { count: all.length, examples };
}

/**
 * The plateau rule's view of the run: the iterations whose watched figure stayed below the floor (as
 * "Save iteration" decides, `lowDiversityStreak`) and the last one when the run stopped for a plateau.
 */
export function plateauStats(
  rule: { metric: PlateauStats['metric']; floor: number; iterations: number },
  iterations: readonly { iteration: number; diversity: IterationDiversity | null }[],
  stopReason: string | undefined,
): PlateauStats {
  const measured = iterations.filter((it) => it.diversity !== null);
  return {
    metric: rule.metric,
    figure: PLATEAU_METRICS[rule.metric],
    floor: rule.floor,
    iterations: rule.iterations,
    belowFloor: measured.flatMap(({ iteration, diversity }) =>
      diversity !== null && lowDiversityStreak(diversity, rule, 0) > 0 ? [iteration] : [],
    ),
    stoppedAt: stopReason?.startsWith(PLATEAU_STOP) ? (measured.at(-1)?.iteration ?? null) : null,
  };
}

/** How "Export dataset" words a stop for a diversity plateau (`functions/export/core.ts`). */
const PLATEAU_STOP = 'diversity plateau';

function increment(map: Record<string, number>, key: string, by = 1) {
  map[key] = (map[key] ?? 0) + by;
}

function addAll(into: Record<string, number>, from: Record<string, number>) {
  for (const [key, n] of Object.entries(from)) increment(into, key, n);
}

/** Map entries sorted by count (descending), then name. */
const byCount = <T extends [string, number]>(a: T, b: T) => b[1] - a[1] || a[0].localeCompare(b[0]);

/** The sum of counts by key, largest first. */
function summed(maps: readonly Record<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const map of maps) addAll(total, map);
  return Object.fromEntries(Object.entries(total).sort(byCount));
}

/**
 * The verb–noun table: the `TOP_VERBS` most common root verbs, each with its `TOP_NOUNS` most common
 * direct noun objects, and how many instructions have such a structure.
 */
export function verbNounStats(
  tasks: readonly Pick<TaskLine, 'root_verb' | 'direct_object'>[],
): ReportStats['verbNoun'] {
  const byVerb = new Map<string, Map<string, number>>();
  let withStructure = 0;
  // Found when each task completed, or by the report for a task exported without it.
  const pairs = tasks.map((task) =>
    task.root_verb && task.direct_object ? { verb: task.root_verb, noun: task.direct_object } : undefined,
  );
  for (const pair of pairs) {
    if (!pair) continue;
    withStructure++;
    const nouns = byVerb.get(pair.verb) ?? new Map<string, number>();
    nouns.set(pair.noun, (nouns.get(pair.noun) ?? 0) + 1);
    byVerb.set(pair.verb, nouns);
  }
  const verbs = [...byVerb]
    .map(([verb, nouns]) => ({
      verb,
      count: [...nouns.values()].reduce((a, b) => a + b, 0),
      nouns: [...nouns]
        .sort(byCount)
        .slice(0, TOP_NOUNS)
        .map(([noun, count]) => ({ noun, count })),
    }))
    .sort((a, b) => b.count - a.count || a.verb.localeCompare(b.verb))
    .slice(0, TOP_VERBS);
  return {
    instructions: tasks.length,
    withStructure,
    withoutStructure: tasks.length - withStructure,
    verbs,
  };
}

/** The gate's most similar instructions, best first, at most `k`. */
function neighbours(record: GateRecord | undefined, k = 3) {
  return Object.entries(record?.most_similar ?? {})
    .map(([instruction, score]) => ({ instruction, score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

/** `k` items picked at random, spread over the groups in turn (largest group first). */
function sampleAcrossGroups<T>(groups: Map<string, T[]>, k: number, shuffle: (items: T[]) => T[]): T[] {
  const queues = [...groups]
    .sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]))
    .map(([, items]) => shuffle(items));
  const picked: T[] = [];
  while (picked.length < k && queues.some((queue) => queue.length > 0)) {
    for (const queue of queues) {
      const item = queue.shift();
      if (item !== undefined && picked.length < k) picked.push(item);
    }
  }
  return picked;
}

// ---------------------------------------------------------------------------------------------------

/**
 * The report's numbers from the run record, the gate decisions, the exported tasks and the seeds.
 *
 * - Pool growth: per iteration, the candidates generated (one gate decision each), those rejected by
 *   reason (heuristic filters, ROUGE-L, duplicates), those accepted, and of these the ones left without
 *   a valid instance (by the pool item's `rejectReason`) and the ones added to the dataset (the
 *   export's tasks of that iteration); the pool size after each iteration counts back from
 *   `poolSizeAfter`.
 * - ROUGE-L: of each added instruction, the highest score to the seed instructions, computed with the
 *   engine, and to the pool, as the gate recorded it (also for the instructions it rejected).
 * - Lengths: words of the added instructions, their instances' non-empty inputs and their outputs.
 * - Verb–noun: see `verb-noun.ts`.
 * - Usage and cost: the run record's per-iteration stats, and per 1,000 added tasks.
 * - Samples: seeded (the run id), spread over the rejection reasons; a task rejected for its instances
 *   counts as rejected. A candidate the safety screen flagged is shown as `WITHHELD`.
 * - Quality: the judge's verdicts (`qualityStats`), what the safety screen flagged by category
 *   (`safetyCounts`), the near-duplicate gate's rejections with examples (`nearDuplicateExamples`) and
 *   the plateau rule (`plateauStats`); each null when the run did not have it.
 */
export function computeStats(input: ReportInput): ReportStats {
  const { run } = input;
  const config = ReportedConfig.parse(run.config ?? {});
  const sampleSeed = input.sample?.seed ?? run.runId;
  const rng = createRng(sampleSeed);
  const tasks = input.tasks.filter((task) => task.run_id === undefined || task.run_id === run.runId);
  const addedIds = new Set(tasks.map((task) => task.id));
  const gateById = new Map<string, GateRecord>();
  for (const { decisions } of input.gate) {
    for (const decision of decisions) if (decision.id) gateById.set(decision.id, decision);
  }
  const instanceRejections = input.instanceRejections ?? {};
  const judged: JudgedTask[] | undefined =
    judgeModelOf(config) === undefined ? undefined : [...tasks, ...(input.judgedRejected ?? [])];
  const quality = (iteration?: number) =>
    judged &&
    qualityStats(iteration === undefined ? judged : judged.filter((task) => task.iteration === iteration));
  const screened = config.safetyScreen !== undefined && config.safetyScreen !== NO_SCREEN;

  // Pool growth and usage, per iteration.
  const records = Object.fromEntries(
    Object.entries(run.iterations ?? {}).map(([n, stats]) => [Number(n), IterationRecord.parse(stats)]),
  );
  const numbers = [...new Set([...input.gate.map((g) => g.iteration), ...Object.keys(records).map(Number)])]
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => a - b);
  const iterations = numbers.map((iteration) => {
    const decisions = input.gate.find((g) => g.iteration === iteration)?.decisions ?? [];
    const record = records[iteration];
    const rejected: Record<string, number> = {};
    const droppedAtInstances: Record<string, number> = {};
    let accepted = 0;
    for (const decision of decisions) {
      if (decision.status === 'rejected') increment(rejected, decision.reason ?? 'unknown');
      else {
        accepted++;
        if (decision.id && !addedIds.has(decision.id)) {
          increment(droppedAtInstances, instanceRejections[decision.id] ?? 'no-valid-instances');
        }
      }
    }
    const added = tasks.filter((task) => task.iteration === iteration).length;
    const { calls, inputTokens, outputTokens } = totalUsage(record?.usage ?? {});
    const usage = { calls, inputTokens, outputTokens };
    const cost = {
      modelUsd: record?.cost?.modelUsd ?? 0,
      awsUsd: record?.cost?.awsUsd ?? 0,
      totalUsd: record?.cost?.totalUsd ?? 0,
    };
    return {
      iteration,
      generated: decisions.length,
      rejected,
      accepted,
      droppedAtInstances,
      added,
      poolSize: 0,
      acceptanceRate: rate(accepted, decisions.length),
      yieldRate: rate(added, decisions.length),
      usage,
      cost,
      per1000Added: per1000(usage, cost, added),
      diversity: record?.diversity ?? null,
      saved: record !== undefined,
      quality: quality(iteration) ?? null,
      safety: screened ? safetyCounts(rejected, record?.counts ?? {}) : null,
      batch: record?.batch ?? null,
    };
  });
  const added = tasks.length;
  const poolSizeAfter = input.poolSizeAfter ?? input.seeds.length + added;
  let poolSize = poolSizeAfter;
  for (const iteration of [...iterations].reverse()) {
    iteration.poolSize = poolSize;
    poolSize = Math.max(0, poolSize - iteration.added);
  }
  const poolSizeBefore = poolSize;

  const sum = (pick: (it: (typeof iterations)[number]) => number) =>
    iterations.reduce((total, it) => total + pick(it), 0);
  const generated = sum((it) => it.generated);
  const accepted = sum((it) => it.accepted);
  const rejected: Record<string, number> = {};
  const droppedAtInstances: Record<string, number> = {};
  for (const it of iterations) {
    addAll(rejected, it.rejected);
    addAll(droppedAtInstances, it.droppedAtInstances);
  }
  const safety = screened
    ? {
        instructions: summed(iterations.map((it) => it.safety?.instructions ?? {})),
        instances: summed(iterations.map((it) => it.safety?.instances ?? {})),
      }
    : null;
  const usage = {
    calls: sum((it) => it.usage.calls),
    inputTokens: sum((it) => it.usage.inputTokens),
    outputTokens: sum((it) => it.usage.outputTokens),
  };
  const cost = {
    modelUsd: run.cost?.modelUsd ?? sum((it) => it.cost.modelUsd),
    awsUsd: run.cost?.awsUsd ?? sum((it) => it.cost.awsUsd),
    totalUsd: run.cost?.totalUsd ?? sum((it) => it.cost.totalUsd),
    modelUnpriced: Object.values(records).some((record) => record.cost.modelUnpriced),
  };
  const tokensEstimated =
    config.model === 'offline' || Object.values(records).some((record) => record.tokensEstimated);

  // Similarity.
  const seedIndex = RougeIndex.from(input.seeds.map((seed) => seed.instruction));
  const seedSimilarity = new Map(
    tasks.map((task) => [task.id, seedIndex.size > 0 ? seedIndex.score(task.instruction).maxSimilarity : 0]),
  );
  const poolScoresAdded = tasks.flatMap((task) => {
    const score = gateById.get(task.id)?.max_similarity ?? task.most_similar_score;
    return score === undefined ? [] : [score];
  });
  const poolScoresRejected = input.gate.flatMap(({ decisions }) =>
    decisions.flatMap((d) =>
      d.status === 'rejected' && d.max_similarity !== null ? [d.max_similarity] : [],
    ),
  );

  // Lengths.
  const instances = tasks.flatMap((task) => task.instances);
  const inputs = instances.map((instance) => countWords(instance.input));

  // Samples: added tasks, and rejected ones spread over the reasons.
  const sampleSize = { accepted: input.sample?.accepted ?? 12, rejected: input.sample?.rejected ?? 12 };
  const shuffle = <T>(items: T[]) => rng.shuffle(items);
  const addedSample = rng
    .sample(
      [...tasks].sort((a, b) => (a.iteration ?? 0) - (b.iteration ?? 0) || a.id.localeCompare(b.id)),
      sampleSize.accepted,
    )
    .sort((a, b) => (a.iteration ?? 0) - (b.iteration ?? 0))
    .map((task): SampledTask => {
      const decision = gateById.get(task.id);
      return {
        iteration: task.iteration ?? 0,
        instruction: task.instruction,
        status: 'added',
        reason: null,
        stage: null,
        maxSimilarity: decision?.max_similarity ?? task.most_similar_score ?? null,
        seedSimilarity: seedSimilarity.get(task.id) ?? null,
        neighbours: neighbours(decision),
        isClassification: task.is_classification ?? null,
        instances: task.instances.length,
        example: task.instances[0] ?? null,
      };
    });
  const rejectedByReason = new Map<string, SampledTask[]>();
  for (const { iteration, decisions } of input.gate) {
    for (const decision of decisions) {
      let reason = decision.reason ?? 'unknown';
      let stage: SampledTask['stage'] = GATE_REASONS.has(reason) ? 'gate' : 'filter';
      if (decision.status === 'accepted') {
        if (!decision.id || addedIds.has(decision.id)) continue;
        reason = instanceRejections[decision.id] ?? 'no-valid-instances';
        stage = 'instances';
      }
      const group = rejectedByReason.get(reason) ?? [];
      group.push({
        iteration,
        // The report is stored with the export, where screened text never goes.
        instruction: UNSAFE_INSTRUCTION.test(reason) ? WITHHELD : decision.instruction,
        status: 'rejected',
        reason,
        stage,
        maxSimilarity: decision.max_similarity ?? null,
        seedSimilarity: null,
        neighbours: neighbours(decision),
        isClassification: null,
        instances: 0,
        example: null,
      });
      rejectedByReason.set(reason, group);
    }
  }
  const rejectedSample = sampleAcrossGroups(rejectedByReason, sampleSize.rejected, shuffle).sort(
    (a, b) => a.iteration - b.iteration || (a.reason ?? '').localeCompare(b.reason ?? ''),
  );

  return ReportStats.parse({
    version: 1,
    run: {
      runId: run.runId,
      pool: run.pool,
      status: run.status,
      model: config.model,
      profile: config.profile,
      method: Method.catch('self-instruct').parse(config.method),
      responseStyle: ResponseStyle.catch('direct').parse(config.responseStyle),
      rougeThreshold: config.rougeThreshold,
      target: config.target ?? null,
      maxIterations: config.maxIterations ?? null,
      seed: config.seed ?? null,
      startedAt: run.startedAt,
      endedAt: run.endedAt ?? null,
      stopReason: run.stopReason ?? null,
      tokensEstimated,
      judgeModel: judgeModelOf(config) ?? null,
      minQuality: config.minQuality ?? null,
      embeddingModel: nearDuplicateGateOn(config) ? (config.embeddingModel ?? null) : null,
      safetyScreen: screened ? (config.safetyScreen ?? null) : null,
    },
    totals: {
      seeds: input.seeds.length,
      iterations: iterations.length,
      generated,
      accepted,
      added,
      rejected: Object.fromEntries(Object.entries(rejected).sort(byCount)),
      droppedAtInstances: Object.fromEntries(Object.entries(droppedAtInstances).sort(byCount)),
      poolSizeBefore,
      poolSizeAfter,
      acceptanceRate: rate(accepted, generated),
      yieldRate: rate(added, generated),
      instances: instances.length,
      usage,
      cost,
      per1000Added: per1000(usage, cost, added),
      quality: quality() ?? null,
      safety,
    },
    iterations,
    nearDuplicates:
      nearDuplicateGateOn(config) && config.embeddingModel !== undefined
        ? {
            embeddingModel: config.embeddingModel,
            threshold: config.embeddingThreshold ?? null,
            ...nearDuplicateExamples(input.gate, sampleSeed),
          }
        : null,
    plateau: config.diversityPlateau
      ? plateauStats(config.diversityPlateau, iterations, run.stopReason)
      : null,
    evolution:
      config.method === 'evol'
        ? evolutionStats(
            input.gate.flatMap(({ decisions }) => decisions),
            tasks,
            instanceRejections,
          )
        : null,
    similarity: {
      threshold: config.rougeThreshold,
      toSeeds: similarityDistribution([...seedSimilarity.values()]),
      toPool: {
        added: similarityDistribution(poolScoresAdded),
        rejected: similarityDistribution(poolScoresRejected),
      },
    },
    lengths: {
      instructions: lengthDistribution(tasks.map((task) => countWords(task.instruction))),
      inputs: lengthDistribution(inputs.filter((n) => n > 0)),
      emptyInputs: inputs.filter((n) => n === 0).length,
      outputs: lengthDistribution(instances.map((instance) => countWords(instance.output))),
    },
    verbNoun: verbNounStats(tasks),
    samples: { seed: sampleSeed, added: addedSample, rejected: rejectedSample },
  } satisfies ReportStats);
}

/** Tokens and USD per 1,000 added tasks (null before any task is added). */
function per1000(
  usage: { inputTokens: number; outputTokens: number },
  cost: { totalUsd: number },
  added: number,
) {
  return added > 0
    ? {
        tokens: (1000 * (usage.inputTokens + usage.outputTokens)) / added,
        usd: (1000 * cost.totalUsd) / added,
      }
    : null;
}
