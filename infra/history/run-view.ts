/**
 * A run as its execution history shows it: one pure `reduce(view, event)` over Step Functions history
 * events, those `GetExecutionHistory` returns for a deployed run and those a local run records
 * (`infra/local/history-events.ts`). `status`, `watch` and the progress view of `run` (plain lines and
 * the bar) all render from it. The stages' outputs are read with the stages' own schemas.
 */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { readableCause } from '../../functions/record-failure/core.ts';
import { addUsageByStage } from '../../functions/shared/model-calls.ts';
import {
  addCounts,
  ContinuedAs,
  type Counts,
  Progress,
  RunState,
  SaveInput,
  type UsageByStage,
} from '../../functions/shared/schemas.ts';
import { INSTRUCTION_BATCH_STATES, SHARDED_GATE_STATES, STAGES } from '../../functions/stages.ts';
import type { ExecutionStatus } from '../local/rules.ts';

/** What the instruction stage reports of an iteration (as the state carries it to "Save iteration"). */
export type Generation = SaveInput['generated'];

/** A run so far. */
export interface RunView {
  status: 'RUNNING' | ExecutionStatus;
  /** The state being executed (the last one entered; the Map's, while its items run). */
  state?: string;
  /** The iteration under way (or the last one). */
  iteration: number;
  maxIterations?: number;
  target?: number;
  /** Tasks this run added (after each "Save iteration"). */
  added: number;
  poolSize?: number;
  /** generated, accepted, complete and one key per rejection reason, the iteration under way included. */
  counts: Counts;
  /** Billed model calls and tokens by pipeline step, the iteration under way included. */
  usage: UsageByStage;
  /** Estimated USD spent, as of the last "Save iteration". */
  costUsd: number;
  /** The Map's items while it runs. */
  chunks?: { done: number; total: number };
  /** The Distributed Map's run under way (its items' progress is `DescribeMapRun`'s, deployed). */
  mapRun?: string;
  /** What the iteration under way reported so far: its generation, its gate, its tasks. */
  current: { generation?: Generation; gated?: Counts; tasks?: Counts };
  /** Task attempts that failed and were tried again. */
  retries: number;
  /** Ids of failed task attempts that no retry has followed (yet). */
  failedAttempts: readonly number[];
  startedAt?: Date;
  endedAt?: Date;
  error?: string;
  /** The failure's message, readable (not Lambda's JSON). */
  cause?: string;
  /** The execution's output (the run summary) once it succeeded. */
  output?: unknown;
}

/** A run of which no event has been read. */
export const initialRunView: RunView = {
  status: 'RUNNING',
  iteration: 0,
  added: 0,
  counts: {},
  usage: {},
  costUsd: 0,
  current: {},
  retries: 0,
  failedAttempts: [],
};

// The state after each stage (each stage adds its result to it; "Save iteration" replaces it).
const AfterGeneration = SaveInput.pick({ generated: true });
const AfterGate = SaveInput.pick({ gated: true });
const AfterInstances = SaveInput.pick({ instances: true });
const IterationsDone = z.object({ progress: Progress.pick({ iteration: true }) });

const json = (text: string | undefined): unknown => JSON.parse(text ?? 'null');
const plus = (a: Counts, b: Counts) => addCounts(addCounts({}, a), b);
const plusUsage = (a: UsageByStage, b: UsageByStage) => addUsageByStage(addUsageByStage({}, a), b);

/** The run after one more event of its history (oldest first). */
export function reduce(view: RunView, event: HistoryEvent): RunView {
  const entered = event.stateEnteredEventDetails;
  if (entered?.name) return enter(view, entered.name, entered.input);
  const exited = event.stateExitedEventDetails;
  if (exited?.name) return exit(view, exited.name, exited.output);
  switch (event.type) {
    // A run's later executions (`<run>-2` …) follow its first in one history: the run started with the first.
    case 'ExecutionStarted':
      return { ...view, startedAt: view.startedAt ?? event.timestamp };
    case 'ExecutionSucceeded': {
      const output = json(event.executionSucceededEventDetails?.output);
      // Handed to the next execution: the run goes on there.
      if (ContinuedAs.safeParse(output).success) return view;
      return {
        ...view,
        status: 'SUCCEEDED',
        endedAt: event.timestamp,
        output,
      };
    }
    case 'ExecutionFailed': {
      const error = event.executionFailedEventDetails?.error;
      const cause = readableCause(error ?? '', event.executionFailedEventDetails?.cause);
      return { ...view, status: 'FAILED', endedAt: event.timestamp, error, cause };
    }
    case 'ExecutionAborted':
      return { ...view, status: 'ABORTED', endedAt: event.timestamp };
    case 'ExecutionTimedOut':
      return { ...view, status: 'TIMED_OUT', endedAt: event.timestamp };
    // `RedriveExecution`: the execution goes on at its failed state, in the same history.
    case 'ExecutionRedriven':
      return { ...view, status: 'RUNNING', endedAt: undefined, error: undefined, cause: undefined };
    // A Distributed Map's run (a deployed history has its items' events in their own executions').
    case 'MapRunStarted':
      return { ...view, mapRun: event.mapRunStartedEventDetails?.mapRunArn };
    case 'MapRunSucceeded':
    case 'MapRunFailed':
      return { ...view, mapRun: undefined };
    case 'MapIterationSucceeded':
      return view.chunks ? { ...view, chunks: { ...view.chunks, done: view.chunks.done + 1 } } : view;
    case 'TaskFailed':
      return { ...view, failedAttempts: [...view.failedAttempts, event.id ?? 0] };
    case 'TaskScheduled':
      // A retry is scheduled right after the attempt that failed.
      return view.failedAttempts.includes(event.previousEventId ?? -1)
        ? {
            ...view,
            retries: view.retries + 1,
            failedAttempts: view.failedAttempts.filter((id) => id !== event.previousEventId),
          }
        : view;
    default:
      return view;
  }
}

function enter(view: RunView, name: string, input: string | undefined): RunView {
  switch (name) {
    // An iteration starts: the one after those its state says are done (a redrive enters the failed
    // iteration's states again, and must not count it twice).
    case INSTRUCTION_BATCH_STATES.plan: {
      const done = IterationsDone.safeParse(json(input));
      const iteration = done.success ? done.data.progress.iteration + 1 : view.iteration + 1;
      return { ...view, state: name, iteration, current: {} };
    }
    // A batch's state: the run is still in the Map of batches.
    case STAGES.generateInstructions.state:
      return view;
    case STAGES.generateInstances.mapState:
      return {
        ...view,
        state: name,
        chunks: { done: 0, total: AfterGate.parse(json(input)).gated.chunks.length },
      };
    // A Map item's state: the run is still in the Map.
    case STAGES.generateInstances.state:
      return view;
    default:
      return { ...view, state: name };
  }
}

function exit(view: RunView, name: string, output: string | undefined): RunView {
  switch (name) {
    case STAGES.prepare.state: {
      const { config, progress } = RunState.parse(json(output));
      return {
        ...view,
        target: config.target,
        maxIterations: config.maxIterations,
        poolSize: progress.poolSize,
      };
    }
    case INSTRUCTION_BATCH_STATES.collect: {
      const { generated } = AfterGeneration.parse(json(output));
      return {
        ...view,
        usage: plusUsage(view.usage, generated.usage),
        current: { ...view.current, generation: generated },
      };
    }
    case STAGES.filter.state:
    case SHARDED_GATE_STATES.merge: {
      const { counts } = AfterGate.parse(json(output)).gated;
      return { ...view, counts: plus(view.counts, counts), current: { ...view.current, gated: counts } };
    }
    case STAGES.generateInstances.mapState: {
      const { instances } = AfterInstances.parse(json(output));
      const tasks = instances.reduce<Counts>((sum, chunk) => addCounts(sum, chunk.counts), {});
      const usage = instances.reduce((sum, chunk) => plusUsage(sum, chunk.usage), view.usage);
      return {
        ...view,
        counts: plus(view.counts, tasks),
        usage,
        chunks: undefined,
        current: { ...view.current, tasks },
      };
    }
    case STAGES.saveIteration.state: {
      const { progress } = RunState.parse(json(output));
      return { ...view, added: progress.added, poolSize: progress.poolSize, costUsd: progress.costUsd };
    }
    default:
      return view;
  }
}

/** Milliseconds since the run started (to its end, once ended), and the time left at the rate so far. */
export function timing(view: RunView, now = new Date()): { elapsedMs: number; etaMs?: number } {
  const start = view.startedAt?.getTime();
  const elapsedMs = start === undefined ? 0 : (view.endedAt ?? now).getTime() - start;
  const { status, target, added } = view;
  if (status !== 'RUNNING' || !target || added <= 0 || added >= target) return { elapsedMs };
  return { elapsedMs, etaMs: (elapsedMs * (target - added)) / added };
}
