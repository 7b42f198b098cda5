/**
 * Step Functions limits, checked on a local run's history (the events AWS would record, see
 * `history-events.ts`): a Standard execution's history holds at most 25,000 events and a state's input
 * or output at most 256 KB. The history is split into what a run pays once, per iteration and per Map
 * item in the parent's history (none for a Distributed Map's item), and what each Distributed Map item's
 * child execution holds in its own, and extrapolated to a larger run. Where the run stands at each event (iteration, state, inside
 * a Map item or not) comes from the history reducer that `status` uses.
 */

import { SaveInput } from '../../functions/shared/schemas.ts';
import {
  BATCH_JOB_STATES,
  CONTROL_STATES,
  INSTRUCTION_BATCH_STATES,
  SHARDED_GATE_STATES,
  STAGES,
} from '../../functions/stages.ts';
import { initialRunView, reduce } from '../history/run-view.ts';
import type { LocalHistoryEvent } from './history-events.ts';

export { MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES } from '../../functions/shared/execution-limits.ts';

export interface HistoryProfile {
  iterations: number;
  chunks: number;
  acceptedIds: number;
  /** The parent execution's events. */
  totalEvents: number;
  /** Events a run pays once, per iteration (outside the Map items), and per Map item, in the parent's history. */
  fixedEvents: number;
  eventsPerIteration: number;
  eventsPerChunk: number;
  /** The longest history of a Distributed Map item's child execution (its start and end included). */
  childEvents: number;
  /** The largest state input or output seen, and which state. */
  largestPayloadBytes: number;
  largestPayloadState: string;
  /** Payload bytes that grow with each accepted instruction id of an iteration (ids + Map results). */
  payloadBytesPerId: number;
  payloadBaseBytes: number;
  /** Batch mode: jobs submitted (or found), and the parent's events per job's submit and per look at it. */
  batchJobs: number;
  batchPolls: number;
  eventsPerBatchSubmit: number;
  eventsPerBatchPoll: number;
}

const bytes = (text: string | undefined) => Buffer.byteLength(text ?? 'null');

// The states of one pass round the loop (the Map's own events included, its items' not).
const LOOP_STATES = new Set<string | undefined>([
  INSTRUCTION_BATCH_STATES.plan,
  STAGES.generateInstructions.mapState,
  STAGES.generateInstructions.state,
  INSTRUCTION_BATCH_STATES.collect,
  CONTROL_STATES.shardGate,
  STAGES.filter.state,
  // Entered by every iteration, batch mode or not.
  BATCH_JOB_STATES.choice,
  // The gate in shards, its Maps' own events included.
  SHARDED_GATE_STATES.plan,
  STAGES.gateShard.mapState,
  SHARDED_GATE_STATES.decide,
  SHARDED_GATE_STATES.rescoreMap,
  SHARDED_GATE_STATES.merge,
  STAGES.generateInstances.mapState,
  STAGES.saveIteration.state,
  CONTROL_STATES.enough,
]);

// Batch mode's states, counted apart: a job's submit once, and each look of the poll loop.
const BATCH_SUBMIT_STATES = new Set<string | undefined>([
  BATCH_JOB_STATES.submit,
  BATCH_JOB_STATES.submitted,
]);
const BATCH_POLL_STATES = new Set<string | undefined>([
  BATCH_JOB_STATES.wait,
  BATCH_JOB_STATES.check,
  BATCH_JOB_STATES.done,
]);

/** Splits a run's history into the parts that scale differently. */
export function profileHistory(history: readonly LocalHistoryEvent[]): HistoryProfile {
  let view = initialRunView;
  let chunks = 0;
  let chunkEvents = 0;
  let loopEvents = 0;
  let parentEvents = 0;
  const children = new Map<string, number>();
  let acceptedIds = 0;
  let largest = { bytes: 0, state: '' };
  let perId = 0;
  let base = 0;
  let batchJobs = 0;
  let batchPolls = 0;
  let submitEvents = 0;
  let pollEvents = 0;

  for (const event of history) {
    view = reduce(view, event);
    // The instances Map's items (the instruction batches and gate shards are part of the iteration).
    if (
      event.type === 'MapIterationStarted' &&
      event.mapIterationStartedEventDetails?.name === STAGES.generateInstances.mapState
    )
      chunks++;
    const child = event.childExecution;
    if (child) {
      // A child execution's own events (its start and end counted in), the local item markers aside.
      if (event.type?.startsWith('MapIteration')) continue;
      const key = `${child.map}\n${child.entry}\n${child.index}`;
      children.set(key, (children.get(key) ?? 2) + 1);
      continue;
    }
    parentEvents++;
    // Inside an inline Map item: while the Map runs, every event but the Map state's (and run's) own.
    if (view.chunks && !/^Map(State|Run)/.test(event.type ?? '')) chunkEvents++;
    else if (LOOP_STATES.has(view.state)) loopEvents++;
    else if (BATCH_SUBMIT_STATES.has(view.state)) submitEvents++;
    else if (BATCH_POLL_STATES.has(view.state)) pollEvents++;

    const entered = event.stateEnteredEventDetails;
    const exited = event.stateExitedEventDetails;
    if (entered?.name === BATCH_JOB_STATES.submit) batchJobs++;
    if (entered?.name === BATCH_JOB_STATES.check) batchPolls++;
    for (const payload of [entered?.input, exited?.output]) {
      if (payload !== undefined && bytes(payload) > largest.bytes)
        largest = { bytes: bytes(payload), state: entered?.name ?? exited?.name ?? '' };
    }
    if (entered?.name === STAGES.saveIteration.state) {
      const { gated, instances } = SaveInput.parse(JSON.parse(entered.input ?? 'null'));
      const ids = gated.chunks.reduce((sum, chunk) => sum + chunk.ids.length, 0);
      acceptedIds += ids;
      const growing = bytes(JSON.stringify(gated.chunks)) + bytes(JSON.stringify(instances));
      if (ids > 0 && growing / ids > perId) {
        perId = growing / ids;
        base = bytes(entered.input) - growing;
      }
    }
  }
  const eventsPerIteration = view.iteration > 0 ? loopEvents / view.iteration : 0;
  return {
    iterations: view.iteration,
    chunks,
    acceptedIds,
    totalEvents: parentEvents,
    fixedEvents: parentEvents - chunkEvents - loopEvents - submitEvents - pollEvents,
    eventsPerIteration,
    eventsPerChunk: chunks > 0 ? chunkEvents / chunks : 0,
    childEvents: Math.max(0, ...children.values()),
    largestPayloadBytes: largest.bytes,
    largestPayloadState: largest.state,
    payloadBytesPerId: perId,
    payloadBaseBytes: base,
    batchJobs,
    batchPolls,
    eventsPerBatchSubmit: batchJobs > 0 ? submitEvents / batchJobs : 0,
    eventsPerBatchPoll: batchPolls > 0 ? pollEvents / batchPolls : 0,
  };
}

export interface Projection {
  tasks: number;
  iterations: number;
  chunks: number;
  events: number;
  largestPayloadBytes: number;
}

/**
 * Projects a run that adds `tasks` tasks, with `idsPerIteration` instructions accepted per iteration at
 * most, `completeRate` of them getting valid instances, and Map items of `chunkSize` ids.
 */
export function project(
  profile: HistoryProfile,
  {
    tasks,
    idsPerIteration,
    completeRate,
    chunkSize,
  }: { tasks: number; idsPerIteration: number; completeRate: number; chunkSize: number },
): Projection {
  const accepted = Math.ceil(tasks / completeRate);
  const iterations = Math.ceil(accepted / idsPerIteration);
  // Every iteration's last chunk may be partial.
  const chunks = Math.ceil(accepted / chunkSize) + iterations;
  return {
    tasks,
    iterations,
    chunks,
    events: Math.ceil(
      profile.fixedEvents + profile.eventsPerIteration * iterations + profile.eventsPerChunk * chunks,
    ),
    largestPayloadBytes: Math.max(
      profile.largestPayloadBytes,
      Math.ceil(profile.payloadBaseBytes + profile.payloadBytesPerId * idsPerIteration),
    ),
  };
}
