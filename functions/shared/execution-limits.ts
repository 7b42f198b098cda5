/**
 * The limits of one Step Functions execution that a run's size can cross: a Standard execution's history
 * holds at most 25,000 events, and a state's input or output at most 256 KB. "Prepare run" refuses a
 * run input that would cross either, before any model call, with what to change, instead of a run that
 * fails hours in. The figures per iteration and per Map item are measured on local runs' histories
 * (`infra/local/history.ts`; `test/e2e/local-run.test.ts` checks a run stays within them).
 */
import { RunInputInvalid } from './errors.ts';
import type { RunConfig } from './schemas.ts';

export const MAX_HISTORY_EVENTS = 25_000;
export const MAX_PAYLOAD_BYTES = 256 * 1024;

/**
 * History events a run pays once, per iteration (outside the instances Map's items, one batch of the
 * "Generate instructions" Map included), and per Map item (measured: 16, 39, 7; each further batch of an
 * iteration adds a Map item's 7 while the Map is inline).
 */
export const HISTORY_EVENTS = { once: 20, perIteration: 42, perMapItem: 7 } as const;
/** Bytes of "Save iteration"'s input (the largest state payload): a base, and per accepted id (measured: 1.1 KB, 31). */
export const PAYLOAD_BYTES = { base: 4_096, perAcceptedId: 40 } as const;
/** Most tasks one instruction call yields (Alpaca's prompt asks for 20). */
export const MAX_TASKS_PER_CALL = 20;
/** Share of accepted instructions that end with valid instances, planned low (runs see 85–95%). */
export const PLANNED_COMPLETE_RATE = 0.8;

/** What a run of this configuration needs of one execution, at worst. */
export interface ExecutionNeeds {
  iterations: number;
  mapItems: number;
  historyEvents: number;
  /** Accepted instructions of one iteration, at most, and the payload they make. */
  acceptedPerIteration: number;
  payloadBytes: number;
}

/**
 * The execution a run needs to add its `target`: the accepted instructions (planned at
 * `PLANNED_COMPLETE_RATE`), in as few iterations as the prompts per iteration allow (capped by
 * `maxIterations`: a run that stops at its cap adds less), in Map items of `chunkSize`.
 */
export function executionNeeds(
  config: Pick<
    RunConfig,
    'target' | 'maxIterations' | 'promptsPerIteration' | 'maxPromptsPerIteration' | 'chunkSize'
  >,
): ExecutionNeeds {
  const accepted = Math.ceil(config.target / PLANNED_COMPLETE_RATE);
  const prompts = config.promptsPerIteration ?? config.maxPromptsPerIteration;
  const acceptedPerIteration = Math.min(accepted, prompts * MAX_TASKS_PER_CALL);
  const iterations = Math.min(config.maxIterations, Math.ceil(accepted / acceptedPerIteration));
  const reachable = Math.min(accepted, iterations * acceptedPerIteration);
  // Every iteration's last Map item may be partial.
  const mapItems = Math.ceil(reachable / config.chunkSize) + iterations;
  return {
    iterations,
    mapItems,
    historyEvents:
      HISTORY_EVENTS.once + HISTORY_EVENTS.perIteration * iterations + HISTORY_EVENTS.perMapItem * mapItems,
    acceptedPerIteration,
    payloadBytes: PAYLOAD_BYTES.base + PAYLOAD_BYTES.perAcceptedId * acceptedPerIteration,
  };
}

/** The largest `target` one execution holds with this configuration's other settings. */
function largestTarget(config: Parameters<typeof executionNeeds>[0]): number {
  let low = 1;
  let high = config.target;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (executionNeeds({ ...config, target: middle }).historyEvents <= MAX_HISTORY_EVENTS) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** Throws `RunInputInvalid` naming the limit and what to change when a run would cross one. */
export function checkExecutionLimits(config: Parameters<typeof executionNeeds>[0]): void {
  const needs = executionNeeds(config);
  if (needs.payloadBytes > MAX_PAYLOAD_BYTES) {
    const prompts = Math.floor(
      (MAX_PAYLOAD_BYTES - PAYLOAD_BYTES.base) / PAYLOAD_BYTES.perAcceptedId / MAX_TASKS_PER_CALL,
    );
    throw new RunInputInvalid(
      `Run input is invalid: up to ${needs.acceptedPerIteration} instructions accepted in one iteration would make "Save iteration"'s input about ${Math.round(needs.payloadBytes / 1024)} KB, over Step Functions' 256 KB per state: use at most ${prompts} prompts per iteration (promptsPerIteration or maxPromptsPerIteration)`,
    );
  }
  if (needs.historyEvents > MAX_HISTORY_EVENTS) {
    const chunkSize = Math.ceil(
      ((needs.mapItems - needs.iterations) * config.chunkSize) /
        Math.max(
          1,
          (MAX_HISTORY_EVENTS -
            HISTORY_EVENTS.once -
            (HISTORY_EVENTS.perIteration + HISTORY_EVENTS.perMapItem) * needs.iterations) /
            HISTORY_EVENTS.perMapItem,
        ),
    );
    throw new RunInputInvalid(
      `Run input is invalid: adding ${config.target} tasks takes about ${needs.historyEvents} history events (${needs.iterations} iterations, ${needs.mapItems} Map items of ${config.chunkSize}), over Step Functions' 25,000 per execution: split it into runs of at most ${largestTarget(config)} tasks on the same pool${chunkSize <= 500 ? `, or raise chunkSize to ${chunkSize}` : ''}`,
    );
  }
}
