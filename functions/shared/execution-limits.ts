/**
 * The limits of one Step Functions execution that a run's size can cross: a Standard execution's history
 * holds at most 25,000 events (the parent's, and each Distributed Map item's child execution's its own),
 * and a state's input or output at most 256 KB. A run plans each execution's history: when one more
 * iteration might not fit, "Save iteration" says so and the run goes on in a new execution of the state
 * machine (`<run>-2`, `<run>-3` …, see `infra/workflow.ts`), so a run of any size holds. "Prepare run"
 * refuses a run input that would cross a limit all the same (a payload, a child's history, one batch
 * iteration longer than an execution), before any model call, naming the limit and what to change. The
 * figures are measured on local runs' histories (`infra/local/history.ts`; `test/e2e/local-run.test.ts`
 * checks a run stays within them, `test/e2e/distributed-map.test.ts` measures the sharded gate's).
 */
import { BATCH_WINDOW_HOURS, maxPolls } from './batch/jobs.ts';
import { RunInputInvalid } from './errors.ts';
import type { RunConfig } from './schemas.ts';

export const MAX_HISTORY_EVENTS = 25_000;
export const MAX_PAYLOAD_BYTES = 256 * 1024;
/** The longest Wait between two looks at a batch job (run input `batchPollSeconds`'s maximum). */
export const MAX_BATCH_POLL_SECONDS = 3600;
/** A Standard execution runs at most a year; the state machine's own `TimeoutSeconds` is 7 days. */
export const MAX_EXECUTION_DAYS = 7;

/**
 * History events, rounded up from local runs (measured: 16 once; 38 per iteration, whatever its number of
 * instruction batches: Plan instructions 5, the "Generate instructions" Map and its Map Run 6, Collect
 * instructions 5, the gate's Choice 2 and Filter 5, the instances Map and its Map Run 6, Save iteration 5,
 * the Choices "Batch the instances?" 2 and "Enough instructions?" 2; 22 more for an iteration gated in shards whatever the shard count; 0 per Map item in
 * the parent, 7 per child execution). The Maps are Distributed: each item (a batch of instruction calls,
 * a chunk of ids, a gate shard) is a child execution with a history of its own (started, the task
 * entered, scheduled, started, succeeded, exited, succeeded), and each Retry of its task adds 3 (failed,
 * scheduled, started), at most 6 retries.
 */
export const HISTORY_EVENTS = {
  once: 20,
  perIteration: 40,
  perShardedIteration: 24,
  perMapItem: 0,
  perChildExecution: 7 + 3 * 6,
  /**
   * Batch mode, rounded up from `test/e2e/batch.test.ts`'s run: "Submit the instance batch" and
   * "Instance batch submitted?" once per iteration (measured 7), and each look of the poll loop: Wait,
   * "Check the instance batch", "Batch done?" (measured 9); a retried look adds 3 more.
   */
  perBatchSubmit: 8,
  perBatchPoll: 10,
  /**
   * Handing the run to its next execution: the Choice's exit, "Continue in a new execution" (entered,
   * scheduled, started, submitted, succeeded, exited: measured 6, plus 3 per retry, at most 6), the
   * Succeed state's 2 and the execution's end.
   */
  handoff: 10 + 3 * 6,
} as const;

export const HISTORY_EVENTS_ENV = 'SELFINSTRUCT_HISTORY_EVENTS';

/**
 * The history limit the run plans each execution against: Step Functions' 25,000, or less when the
 * environment says so (`SELFINSTRUCT_HISTORY_EVENTS`: the local stack's tests lower its own limit and
 * the functions' plan together, to see a run continue in a new execution after a few iterations).
 */
export function historyEventsLimit(env: Record<string, string | undefined> = process.env): number {
  const value = Number(env[HISTORY_EVENTS_ENV]);
  return Number.isInteger(value) && value > 0 ? Math.min(value, MAX_HISTORY_EVENTS) : MAX_HISTORY_EVENTS;
}

/**
 * Bytes of "Save iteration"'s input, the largest state payload (the instances Map's output: it holds the
 * Map's input ids and its whole result, so it bounds both, and the iteration's plan of instruction
 * batches, the "Generate instructions" Map's items, which the state carries from "Plan instructions"
 * on): a base, per accepted id, per Map item and per instruction batch (measured: 1.3 KB, 24 bytes,
 * 282 bytes; 32 bytes per batch, 502 for a plan of 15). The batches' own results stay in S3 (the Map
 * discards its result), each a few bytes.
 */
export const PAYLOAD_BYTES = {
  base: 4_096,
  perAcceptedId: 32,
  perMapItem: 400,
  perInstructionBatch: 40,
} as const;
/** Most tasks one instruction call yields (Alpaca's prompt asks for 20). */
export const MAX_TASKS_PER_CALL = 20;
/** Share of accepted instructions that end with valid instances, planned low (runs see 85–95%). */
export const PLANNED_COMPLETE_RATE = 0.8;

type LimitedConfig = Pick<
  RunConfig,
  | 'target'
  | 'maxIterations'
  | 'promptsPerIteration'
  | 'maxPromptsPerIteration'
  | 'chunkSize'
  | 'instructionBatchSize'
> &
  Partial<Pick<RunConfig, 'batch' | 'batchPollSeconds'>>;

/**
 * The parent's events of one iteration's batch job at worst: its submit, and every look the poll loop
 * allows (`maxPolls`: the provider's 24 h window at `batchPollSeconds`; the job may run that long).
 * 0 without batch mode.
 */
export function batchEventsPerIteration(config: Pick<LimitedConfig, 'batch' | 'batchPollSeconds'>): number {
  if (!config.batch) return 0;
  return (
    HISTORY_EVENTS.perBatchSubmit + HISTORY_EVENTS.perBatchPoll * maxPolls(config.batchPollSeconds ?? 60)
  );
}

/** History events of one iteration at worst: planned gated in shards, with its batch job's every look. */
export function eventsPerIteration(config: Pick<LimitedConfig, 'batch' | 'batchPollSeconds'>): number {
  return HISTORY_EVENTS.perIteration + HISTORY_EVENTS.perShardedIteration + batchEventsPerIteration(config);
}

/**
 * The iterations one execution holds within `limit` history events: its start and end (`once`), its
 * hand-off to the next execution, and as many iterations at worst as fit between (0: not even one).
 */
export function iterationsPerExecution(
  config: Pick<LimitedConfig, 'batch' | 'batchPollSeconds'>,
  limit = historyEventsLimit(),
): number {
  return Math.max(
    0,
    Math.floor((limit - HISTORY_EVENTS.once - HISTORY_EVENTS.handoff) / eventsPerIteration(config)),
  );
}

/**
 * Whether the execution that began at iteration `executionFirstIteration` and has now made `iteration`
 * holds one more: "Save iteration" asks after each; when not, the run goes on in a new execution. Its
 * history at worst (`iterationsPerExecution`), and, given the execution's start and the time now, the
 * state machine's 7-day timeout: one more iteration planned at twice the execution's mean so far, and at
 * least the batch job window for a batch run (a job may take it all), must end before it.
 */
export function nextIterationFits(
  config: Pick<LimitedConfig, 'batch' | 'batchPollSeconds'>,
  progress: { iteration: number; executionFirstIteration: number },
  limit = historyEventsLimit(),
  time?: { startedAt: Date; now: Date },
): boolean {
  const done = progress.iteration - progress.executionFirstIteration;
  if (done >= iterationsPerExecution(config, limit)) return false;
  if (!time) return true;
  const elapsed = time.now.getTime() - time.startedAt.getTime();
  const next = Math.max((2 * elapsed) / Math.max(1, done), config.batch ? BATCH_WINDOW_HOURS * HOUR_MS : 0);
  return elapsed + next <= MAX_EXECUTION_DAYS * 24 * HOUR_MS;
}

const HOUR_MS = 3_600_000;

/** What a run of this configuration needs of its executions, at worst. */
export interface ExecutionNeeds {
  iterations: number;
  /** Executions the run takes: each holds `iterationsPerExecution` and hands the run to the next. */
  executions: number;
  iterationsPerExecution: number;
  /** Map items of the instances Map (child executions), in all. */
  mapItems: number;
  /** Events of the fullest execution's history. */
  historyEvents: number;
  /** Events of the longest child execution's history (a Map item retried to the end of its Retry). */
  childHistoryEvents: number;
  /** Accepted instructions of one iteration, at most, and the payload they make. */
  acceptedPerIteration: number;
  payloadBytes: number;
}

/**
 * The executions a run needs to add its `target`: the accepted instructions (planned at
 * `PLANNED_COMPLETE_RATE`), in as few iterations as the prompts per iteration allow (capped by
 * `maxIterations`: a run that stops at its cap adds less), in Map items of `chunkSize`, each execution
 * holding as many iterations as its history allows. Every iteration is planned gated in shards: the
 * pool's size is not known yet, and it may be past `shardGateAbove`.
 */
export function executionNeeds(config: LimitedConfig, limit = historyEventsLimit()): ExecutionNeeds {
  const accepted = Math.ceil(config.target / PLANNED_COMPLETE_RATE);
  const prompts = config.promptsPerIteration ?? config.maxPromptsPerIteration;
  const acceptedPerIteration = Math.min(accepted, prompts * MAX_TASKS_PER_CALL);
  const iterations = Math.min(config.maxIterations, Math.ceil(accepted / acceptedPerIteration));
  const reachable = Math.min(accepted, iterations * acceptedPerIteration);
  // Every iteration's last Map item may be partial.
  const mapItems = Math.ceil(reachable / config.chunkSize) + iterations;
  const itemsPerIteration = Math.ceil(acceptedPerIteration / config.chunkSize) + 1;
  const batchesPerIteration = Math.ceil(prompts / config.instructionBatchSize);
  const perExecution = iterationsPerExecution(config, limit);
  const fullest = Math.min(iterations, Math.max(1, perExecution));
  return {
    iterations,
    executions: perExecution === 0 ? Number.POSITIVE_INFINITY : Math.ceil(iterations / perExecution),
    iterationsPerExecution: perExecution,
    mapItems,
    historyEvents:
      HISTORY_EVENTS.once +
      (fullest < iterations ? HISTORY_EVENTS.handoff : 0) +
      eventsPerIteration(config) * fullest +
      HISTORY_EVENTS.perMapItem * mapItems,
    childHistoryEvents: HISTORY_EVENTS.perChildExecution,
    acceptedPerIteration,
    payloadBytes:
      PAYLOAD_BYTES.base +
      PAYLOAD_BYTES.perAcceptedId * acceptedPerIteration +
      PAYLOAD_BYTES.perMapItem * itemsPerIteration +
      PAYLOAD_BYTES.perInstructionBatch * batchesPerIteration,
  };
}

/** The largest value from 1 to `high` for which `fits` holds (it holds for 1 and up to the answer, not past it). */
function largest(high: number, fits: (value: number) => boolean): number {
  let low = 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (fits(middle)) low = middle;
    else high = middle - 1;
  }
  return low;
}

/**
 * Throws `RunInputInvalid` naming the limit and what to change when a run would cross one; else what
 * the run needs of its executions.
 */
export function checkExecutionLimits(config: LimitedConfig): ExecutionNeeds {
  const needs = executionNeeds(config);
  if (needs.payloadBytes > MAX_PAYLOAD_BYTES) {
    // The same arithmetic as the refusal: the most prompts whose iteration's payload fits.
    const prompts = largest(
      config.promptsPerIteration ?? config.maxPromptsPerIteration,
      (value) =>
        executionNeeds({ ...config, promptsPerIteration: value, maxPromptsPerIteration: value })
          .payloadBytes <= MAX_PAYLOAD_BYTES,
    );
    throw new RunInputInvalid(
      `Run input is invalid: up to ${needs.acceptedPerIteration} instructions accepted in one iteration (in ${Math.ceil(needs.acceptedPerIteration / config.chunkSize) + 1} Map items) would make "Save iteration"'s input about ${Math.round(needs.payloadBytes / 1024)} KB, over Step Functions' 256 KB per state: use at most ${prompts} prompts per iteration (promptsPerIteration or maxPromptsPerIteration)`,
    );
  }
  if (needs.childHistoryEvents > MAX_HISTORY_EVENTS) {
    throw new RunInputInvalid(
      `Run input is invalid: a Map item's child execution would take about ${needs.childHistoryEvents} history events, over Step Functions' 25,000 per execution`,
    );
  }
  if (needs.iterationsPerExecution === 0) {
    // Only batch mode's poll loop makes one iteration too long for an execution: the fewest looks (the
    // longest Wait) with which one fits, if any does.
    const limit = historyEventsLimit();
    const fitsPolls = (seconds: number) =>
      iterationsPerExecution({ ...config, batchPollSeconds: seconds }, limit) > 0;
    let seconds: number | undefined;
    if (fitsPolls(MAX_BATCH_POLL_SECONDS)) {
      let low = config.batchPollSeconds ?? 0;
      let high = MAX_BATCH_POLL_SECONDS;
      while (low < high) {
        const middle = Math.floor((low + high) / 2);
        if (fitsPolls(middle)) high = middle;
        else low = middle + 1;
      }
      seconds = low;
    }
    throw new RunInputInvalid(
      `Run input is invalid: in batch mode an iteration may wait up to the provider's 24 h job window, ${maxPolls(config.batchPollSeconds ?? 60)} looks ${config.batchPollSeconds} s apart (about ${eventsPerIteration(config)} history events with the iteration's own), more than one execution holds (Step Functions' ${limit.toLocaleString('en-US')} events)${seconds !== undefined ? `: raise batchPollSeconds to ${seconds}` : ''}`,
    );
  }
  return needs;
}

/**
 * The state machine's 7-day timeout: refuses a run whose projected duration (e.g. the estimate's, in
 * hours) would cross it. Not called by "Prepare run" (the run input has no duration); for callers that
 * project one.
 */
export function checkExecutionDuration(projectedHours: number): void {
  if (projectedHours > MAX_EXECUTION_DAYS * 24) {
    throw new RunInputInvalid(
      `Run input is invalid: the run is projected to take about ${Math.round(projectedHours)} hours, over the state machine's ${MAX_EXECUTION_DAYS}-day timeout: split it into runs of a smaller target on the same pool`,
    );
  }
}
