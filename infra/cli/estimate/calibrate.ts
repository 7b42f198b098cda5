/**
 * The yields and output tokens an estimate assumes: defaults per profile measured on the offline model,
 * or figures read back from past runs: an exported `summary.json`, or the summaries and raw call records
 * of a local data folder (read through its local S3 and DynamoDB servers, started for the purpose).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { SelfInstructError } from '../../../functions/shared/errors.ts';
import { parseJsonFile } from '../../../functions/shared/input-files.ts';
import { fromJsonLines } from '../../../functions/shared/json-lines.ts';
import type { CallRecord } from '../../../functions/shared/model-calls.ts';
import { judgeModelOf } from '../../../functions/shared/models/judge-ids.ts';
import type { ModelStage } from '../../../functions/shared/ports.ts';
import { RunSummary } from '../../../functions/shared/records.ts';
import type { Method, ProfileName } from '../../../functions/shared/schemas.ts';
import {
  AcceptanceCurve,
  DEFAULT_ACCEPTANCE_CURVE,
  fitAcceptanceCurve,
  type GateOutcome,
  scaleCurve,
} from './acceptance.ts';
import { MODEL_STEPS } from './prompts.ts';
import { fitLatency, hasRealLatency, type LatencySample, ModelLatency } from './timing.ts';

/**
 * Output tokens of an explained answer, measured on the offline teacher (2026-12-01: 734 teacher calls of
 * `npm start -- --response-style explained --seed explained-readme`, read back with `estimate --data-dir`);
 * the profile defaults below predate the teacher.
 */
const TEACH_OUTPUT_TOKENS = 136.4;

/** What a profile's calls look like and yield, per call and per accepted instruction. */
export const Calibration = z.object({
  /** Where the figures come from (shown with the estimate). */
  source: z.string(),
  /** Candidates parsed from one instruction-generation reply. */
  candidatesPerCall: z.number().nonnegative(),
  /** Share of candidates that pass the filters and the ROUGE-L gate, over the runs it comes from. */
  acceptanceRate: z.number().min(0).max(1),
  /** The same as a function of the pool's size: what the simulation reads, iteration by iteration. */
  acceptanceCurve: AcceptanceCurve,
  /** Where the curve comes from. */
  acceptanceSource: z.string(),
  /** The model's reply time, measured from the runs' recorded calls of that model (else a default). */
  latency: ModelLatency.optional(),
  /** Share of accepted instructions left with at least one valid instance (the tasks a run adds). */
  completeShare: z.number().min(0).max(1),
  /** Classification calls per accepted instruction. */
  classifyCallsPerAccepted: z.number().nonnegative(),
  /** Instance-generation calls per accepted instruction. */
  instanceCallsPerAccepted: z.number().nonnegative(),
  /** Judge calls per accepted instruction (one per task left with valid instances), when a judge runs. */
  judgeCallsPerAccepted: z.number().nonnegative(),
  /** Output tokens per call of each model step. */
  outputTokensPerCall: z.object({
    'generate-instructions': z.number().nonnegative(),
    classify: z.number().nonnegative(),
    'generate-instances': z.number().nonnegative(),
    judge: z.number().nonnegative(),
    teach: z.number().nonnegative().default(TEACH_OUTPUT_TOKENS),
  }),
  /** Instances kept per task (records per exported task); informational. */
  instancesPerTask: z.number().nonnegative(),
  /**
   * `method: evol`: information-gain calls per evolving call (one per `GAIN_BATCH` evolutions the
   * copied-words rule kept); counted with the instruction step, whose calls they are. Absent: none.
   */
  gainCallsPerCall: z.number().nonnegative().optional(),
});
export type Calibration = z.infer<typeof Calibration>;

/**
 * Output tokens of a judge verdict, measured on the offline judge (2026-12-01: 328 verdicts of a default
 * `npm start` run read back with `estimate --data-dir`); the profile defaults below predate the judge.
 */
export const JUDGE_OUTPUT_TOKENS = 44.3;

/**
 * A profile's default curve: the offline model's measured shape (`DEFAULT_ACCEPTANCE_CURVE`) through
 * the profile's own rate, measured on a 300-task run whose middle accepted candidate met a pool of
 * about 340 (192 seeds + half the ~300 accepted).
 */
const profileCurve = (rate: number) => ({
  acceptanceCurve: scaleCurve(DEFAULT_ACCEPTANCE_CURVE, rate, 340),
  acceptanceSource:
    "the offline model's curve measured on a 10K-task run (DEFAULT_ACCEPTANCE_CURVE), through the profile's measured rate",
});

/**
 * Defaults per profile, measured on the offline model (2026-11-24) with
 * `npm start -- --fresh --data-dir .local/est-<profile> --profile <profile> --seed est --out .local/est-out`
 * (target 300, at most 3 iterations) and read back with `estimate --data-dir .local/est-<profile>`. The offline
 * model's reply lengths are arbitrary, so calibrate with a real model's run (`--data-dir`, `--from-run`).
 */
export const PROFILE_DEFAULTS: Record<ProfileName, Calibration> = {
  'self-instruct': {
    source: 'defaults for self-instruct, measured on the offline model (run-20261124-223319-q83t)',
    candidatesPerCall: 6.506,
    acceptanceRate: 0.7218,
    ...profileCurve(0.7218),
    completeShare: 0.8841,
    classifyCallsPerAccepted: 1,
    instanceCallsPerAccepted: 1,
    judgeCallsPerAccepted: 0.8841,
    outputTokensPerCall: {
      'generate-instructions': 169.4,
      classify: 1.005,
      'generate-instances': 96.72,
      judge: JUDGE_OUTPUT_TOKENS,
      teach: TEACH_OUTPUT_TOKENS,
    },
    instancesPerTask: 1.881,
  },
  alpaca: {
    source: 'defaults for alpaca, measured on the offline model (run-20261124-223330-d7os)',
    candidatesPerCall: 15.19,
    acceptanceRate: 0.7771,
    ...profileCurve(0.7771),
    completeShare: 0.8415,
    classifyCallsPerAccepted: 0,
    instanceCallsPerAccepted: 0,
    judgeCallsPerAccepted: 0.8415,
    outputTokensPerCall: {
      'generate-instructions': 1158,
      classify: 0,
      'generate-instances': 0,
      judge: JUDGE_OUTPUT_TOKENS,
      teach: TEACH_OUTPUT_TOKENS,
    },
    instancesPerTask: 1,
  },
  default: {
    source: 'defaults for default, measured on the offline model (run-20261124-223339-w7eg)',
    candidatesPerCall: 9.523,
    acceptanceRate: 0.7733,
    ...profileCurve(0.7733),
    completeShare: 0.9352,
    classifyCallsPerAccepted: 0,
    instanceCallsPerAccepted: 1,
    judgeCallsPerAccepted: 0.9352,
    outputTokensPerCall: {
      'generate-instructions': 368.6,
      classify: 0,
      'generate-instances': 126.0,
      judge: JUDGE_OUTPUT_TOKENS,
      teach: TEACH_OUTPUT_TOKENS,
    },
    instancesPerTask: 2.35,
  },
};

/**
 * Defaults of `method: evol` (with the `default` profile's instance prompts), measured on the offline
 * model (2026-12-01) with `npm start -- --method evol --target 200 --seed evol-1 --data-dir /tmp/evol-data
 * --fresh` and read back with `estimate --method evol --data-dir /tmp/evol-data` (run-20261201-053316-2m25:
 * 501 evolving calls, 47 information-gain calls, 489 candidates, 191 accepted, 160 complete).
 */
export const EVOL_DEFAULTS: Calibration = {
  source: 'defaults for method evol, measured on the offline model (run-20261201-053316-2m25)',
  candidatesPerCall: 0.976,
  acceptanceRate: 0.3906,
  ...profileCurve(0.3906),
  completeShare: 0.8377,
  classifyCallsPerAccepted: 1,
  instanceCallsPerAccepted: 1,
  judgeCallsPerAccepted: 0.8377,
  outputTokensPerCall: {
    'generate-instructions': 50.57,
    classify: 6.906,
    'generate-instances': 122.1,
    judge: JUDGE_OUTPUT_TOKENS,
    teach: TEACH_OUTPUT_TOKENS,
  },
  instancesPerTask: 2.388,
  gainCallsPerCall: 0.0938,
};

/** A run summary or call record that can't calibrate an estimate. */
export class CalibrationInvalid extends SelfInstructError {}

/** Calls and output tokens of one model step over some runs. */
export type StageTotals = Record<ModelStage, { calls: number; outputTokens: number }>;

const ratio = (a: number, b: number, fallback: number) => (b > 0 ? a / b : fallback);

/**
 * Calibrates from run summaries (their counts) and, when given, per-step totals from the runs' raw call
 * records. Without per-step totals the profile's default output tokens are scaled so their total
 * matches the summaries', and the instance stage's calls are split as the defaults split them.
 */
export function calibrate(
  profile: ProfileName,
  summaries: readonly (Pick<RunSummary, 'counts' | 'usage' | 'exportedTasks' | 'exportedRecords'> &
    Partial<Pick<RunSummary, 'poolSize' | 'added'>> & {
      config?: { judgeModel?: string };
    })[],
  stageTotals: StageTotals | undefined,
  source: string,
  measured: { outcomes?: readonly GateOutcome[]; latency?: ModelLatency } = {},
): Calibration {
  const defaults = PROFILE_DEFAULTS[profile];
  const total = (key: string) => summaries.reduce((sum, s) => sum + (s.counts[key] ?? 0), 0);
  const prompts = total('prompts');
  // Candidates past the target (`surplus`) were neither gated nor accepted: they say nothing of the rate.
  const generated = total('generated') - total('surplus');
  const accepted = total('accepted');
  const complete = total('complete');
  if (prompts <= 0 || accepted <= 0) {
    throw new CalibrationInvalid(
      `${source}: no instruction calls or no accepted instruction to calibrate from (prompts ${prompts}, accepted ${accepted})`,
    );
  }
  const exportedTasks = summaries.reduce((sum, s) => sum + s.exportedTasks, 0);
  const exportedRecords = summaries.reduce((sum, s) => sum + s.exportedRecords, 0);
  // The judge rates each task left with valid instances: the complete ones and those it dropped.
  const judged = summaries
    .filter((s) => s.config && judgeModelOf(s.config) !== undefined)
    .reduce((sum, s) => sum + (s.counts.complete ?? 0) + (s.counts['low-quality'] ?? 0), 0);
  const acceptanceRate = ratio(accepted, generated, 0);
  const fitted = measured.outcomes && fitAcceptanceCurve(measured.outcomes);
  const base = {
    source,
    candidatesPerCall: total('generated') / prompts,
    acceptanceRate,
    acceptanceCurve:
      fitted ?? scaleCurve(DEFAULT_ACCEPTANCE_CURVE, acceptanceRate, middlePool(summaries, accepted)),
    acceptanceSource: fitted
      ? `fitted to ${measured.outcomes?.length} iterations' gate outcomes of ${source}`
      : `the default curve's shape through the overall rate of ${source}`,
    ...(measured.latency ? { latency: measured.latency } : {}),
    completeShare: complete / accepted,
    instancesPerTask: ratio(exportedRecords, exportedTasks, defaults.instancesPerTask),
  };
  // Runs without a judge say nothing of its calls: one per task with valid instances, as the run does.
  const judgeCallsPer = (calls: number) => (calls > 0 ? calls / accepted : base.completeShare);
  if (stageTotals) {
    const per = (stage: ModelStage) =>
      ratio(stageTotals[stage].outputTokens, stageTotals[stage].calls, defaults.outputTokensPerCall[stage]);
    // Instruction-step calls beyond the generating ones: evol's information-gain questions.
    const gain = Math.max(0, stageTotals['generate-instructions'].calls - prompts) / prompts;
    return Calibration.parse({
      ...base,
      ...(gain > 0 ? { gainCallsPerCall: gain } : {}),
      classifyCallsPerAccepted: stageTotals.classify.calls / accepted,
      instanceCallsPerAccepted: stageTotals['generate-instances'].calls / accepted,
      judgeCallsPerAccepted: judgeCallsPer(stageTotals.judge.calls),
      outputTokensPerCall: Object.fromEntries(MODEL_STEPS.map((stage) => [stage, per(stage)])),
    });
  }
  const calls = summaries.reduce((sum, s) => sum + s.usage.calls, 0);
  const outputTokens = summaries.reduce((sum, s) => sum + s.usage.outputTokens, 0);
  const mapCalls = Math.max(0, calls - prompts - judged);
  const defaultMap = defaults.classifyCallsPerAccepted + defaults.instanceCallsPerAccepted;
  const classifyShare = ratio(defaults.classifyCallsPerAccepted, defaultMap, 0);
  const stageCalls: Record<ModelStage, number> = {
    'generate-instructions': prompts,
    classify: mapCalls * classifyShare,
    'generate-instances': mapCalls * (1 - classifyShare),
    judge: judged,
    // A summary does not tell teacher calls apart: they count with the instance calls.
    teach: 0,
  };
  const expected = MODEL_STEPS.reduce(
    (sum, stage) => sum + stageCalls[stage] * defaults.outputTokensPerCall[stage],
    0,
  );
  const scale = ratio(outputTokens, expected, 1);
  return Calibration.parse({
    ...base,
    source: `${source} (output tokens per step: the defaults scaled by ${scale.toFixed(2)} to the summary's total)`,
    classifyCallsPerAccepted: stageCalls.classify / accepted,
    instanceCallsPerAccepted: stageCalls['generate-instances'] / accepted,
    judgeCallsPerAccepted: judgeCallsPer(judged),
    outputTokensPerCall: Object.fromEntries(
      MODEL_STEPS.map((stage) => [stage, defaults.outputTokensPerCall[stage] * scale]),
    ),
  });
}

/**
 * The pool size the runs' middle accepted candidate met: the pool each run started from (its tasks
 * before the run; a new pool's are the seeds) plus half of what it accepted, weighted by acceptances.
 * Summaries without the pool's size count from the 175 tasks of the paper's seed file.
 */
function middlePool(
  summaries: readonly (Partial<Pick<RunSummary, 'poolSize' | 'added'>> & {
    counts: Record<string, number>;
  })[],
  accepted: number,
): number {
  const weighted = summaries.reduce((sum, s) => {
    const own = s.counts.accepted ?? 0;
    const start = s.poolSize !== undefined && s.added !== undefined ? s.poolSize - s.added : 175;
    return sum + own * (start + own / 2);
  }, 0);
  return accepted > 0 ? weighted / accepted : 175;
}

/**
 * The gate outcome of each iteration of a run, from its iterations' `counts` (`PoolStore.getIterations`), the
 * pool growing by each iteration's accepted instructions from `poolAtStart`.
 */
export function gateOutcomes(
  iterations: Readonly<Record<string, { counts: Readonly<Record<string, number>> }>>,
  poolAtStart: number,
): GateOutcome[] {
  let pool = poolAtStart;
  return Object.entries(iterations)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, { counts }]) => {
      const accepted = counts.accepted ?? 0;
      const outcome = {
        poolAtStart: pool,
        candidates: (counts.generated ?? 0) - (counts.surplus ?? 0),
        accepted,
      };
      pool += accepted;
      return outcome;
    });
}

/** Reads and validates an exported `summary.json`. */
export function readSummaryFile(file: string): RunSummary {
  const json = parseJsonFile(readFileSync(file, 'utf8'), file);
  const parsed = RunSummary.safeParse(json);
  if (!parsed.success) {
    throw new CalibrationInvalid(
      `${file} is not a run summary: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}

/**
 * Calibration from a local data folder: the summaries under `exports/` of the runs with this profile
 * and method (preferring those of `model`), and the raw call records of those runs under `runs/<run>/`.
 */
export async function calibrateFromDataDir(
  dataDir: string,
  profile: ProfileName,
  model: string,
  method: Method = 'self-instruct',
): Promise<Calibration | undefined> {
  const { hasLocalData, openLocalData } = await import('../../local/data.ts');
  if (!hasLocalData(dataDir)) throw new CalibrationInvalid(`${dataDir} holds no local run data`);
  const stack = await openLocalData(dataDir, 'estimate', 'run `npm start` first');
  try {
    const summaries: RunSummary[] = [];
    for (const key of await stack.objects.list('exports/')) {
      if (!key.endsWith('/summary.json')) continue;
      const parsed = RunSummary.safeParse(JSON.parse((await stack.objects.getText(key)) ?? 'null'));
      if (parsed.success && parsed.data.profile === profile && parsed.data.config.method === method) {
        summaries.push(parsed.data);
      }
    }
    const sameModel = summaries.filter((s) => s.model === model);
    const chosen = sameModel.length > 0 ? sameModel : summaries;
    if (chosen.length === 0) return undefined;
    const totals = Object.fromEntries(
      MODEL_STEPS.map((stage) => [stage, { calls: 0, outputTokens: 0 }]),
    ) as StageTotals;
    let records = 0;
    const outcomes: GateOutcome[] = [];
    const latencies: LatencySample[] = [];
    for (const summary of chosen) {
      if (!summary.runId) continue;
      const iterations = await stack.pool.getIterations(summary.runId);
      outcomes.push(...gateOutcomes(iterations, summary.poolSize - summary.added));
      for (const key of await stack.objects.list(`runs/${summary.runId}/`)) {
        if (!/\/raw\/[^/]+\.jsonl$/.test(key)) continue;
        const calls = fromJsonLines<Pick<CallRecord, 'stage' | 'usage' | 'model' | 'latencyMs' | 'reused'>>(
          await stack.objects.getText(key),
        );
        for (const record of calls) {
          const stage = totals[record.stage as ModelStage];
          if (!stage) continue;
          stage.calls++;
          stage.outputTokens += record.usage.outputTokens;
          records++;
          // Reply times of the estimated model only, paid calls only (a reused reply took no time).
          if (record.model === model && !record.reused && hasRealLatency(model)) {
            latencies.push({ seconds: record.latencyMs / 1000, outputTokens: record.usage.outputTokens });
          }
        }
      }
    }
    const models = [...new Set(chosen.map((s) => s.model))].join(', ');
    const source = `${chosen.length} ${profile} run${chosen.length === 1 ? '' : 's'} of ${models} in ${dataDir}, ${records} call records`;
    const latency = fitLatency(latencies, `${latencies.length} recorded calls of ${model} in ${dataDir}`);
    return calibrate(profile, chosen, records > 0 ? totals : undefined, source, {
      outcomes,
      ...(latency ? { latency } : {}),
    });
  } finally {
    await stack.close();
  }
}
