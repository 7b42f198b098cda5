/**
 * Step Functions limits, checked from a local run's event log: a Standard execution's history holds at
 * most 25,000 events and a state's input or output at most 256 KB. The local event log is mapped to
 * the history events AWS would record, split into what a run pays once, per iteration and per Map
 * item, and extrapolated to a larger run.
 */
import { CONTROL_STATES, STAGES } from '../../functions/stages.ts';
import type { EventLog } from './stack.ts';

export const MAX_HISTORY_EVENTS = 25_000;
export const MAX_PAYLOAD_BYTES = 256 * 1024;

interface AnyEvent {
  type: string;
  index?: number;
  state?: { name: string; type: string; input?: unknown; output?: unknown };
}

/** History events AWS records for one local event (e.g. a Lambda task adds Scheduled/Started/Succeeded). */
export function historyEventsFor(event: AnyEvent): number {
  switch (event.type) {
    case 'StateEntered':
      // Map: MapStateEntered + MapStateStarted; Task: TaskStateEntered + TaskScheduled + TaskStarted.
      return event.state?.type === 'Map' || event.state?.type === 'Task'
        ? event.state.type === 'Map'
          ? 2
          : 3
        : 1;
    case 'StateExited':
      // Map: MapStateSucceeded + MapStateExited; Task: TaskSucceeded + TaskStateExited.
      return event.state?.type === 'Map' || event.state?.type === 'Task' ? 2 : 1;
    case 'StateRetried':
      // TaskFailed, then TaskScheduled + TaskStarted of the next attempt.
      return 3;
    case 'StateFailed':
    case 'StateCaught':
      return 1;
    default:
      return 1; // Execution*, MapIteration*
  }
}

export interface HistoryProfile {
  iterations: number;
  chunks: number;
  acceptedIds: number;
  totalEvents: number;
  /** Events a run pays once, per iteration (outside the Map items), and per Map item. */
  fixedEvents: number;
  eventsPerIteration: number;
  eventsPerChunk: number;
  /** The largest state input or output seen, and which state. */
  largestPayloadBytes: number;
  largestPayloadState: string;
  /** Payload bytes that grow with each accepted instruction id of an iteration (ids + Map results). */
  payloadBytesPerId: number;
  payloadBaseBytes: number;
}

const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value ?? null));

/** Splits a local run's event log into the parts that scale differently. */
export function profileHistory(events: readonly EventLog[]): HistoryProfile {
  const list = events as unknown as AnyEvent[];
  let totalEvents = 0;
  let chunkEvents = 0;
  let inMap = false;
  let iterations = 0;
  let chunks = 0;
  let acceptedIds = 0;
  let largest = { bytes: 0, state: '' };
  let perId = 0;
  let base = 0;

  for (const event of list) {
    const n = historyEventsFor(event);
    totalEvents += n;
    const name = event.state?.name;
    if (name === STAGES.generateInstances.mapState && event.type === 'StateEntered') inMap = true;
    if (inMap && !(name === STAGES.generateInstances.mapState)) chunkEvents += n;
    if (name === STAGES.generateInstances.mapState && event.type === 'StateExited') inMap = false;
    if (event.type === 'MapIterationStarted') chunks++;
    if (event.type === 'StateEntered' && name === STAGES.generateInstructions.state) iterations++;

    for (const payload of [event.state?.input, event.state?.output]) {
      const bytes = size(payload);
      if (bytes > largest.bytes) largest = { bytes, state: name ?? event.type };
    }
    if (event.type === 'StateEntered' && name === STAGES.saveIteration.state) {
      const input = event.state?.input as {
        gated?: { chunks?: { ids: string[] }[] };
        instances?: unknown[];
      };
      const ids = (input.gated?.chunks ?? []).reduce((sum, chunk) => sum + chunk.ids.length, 0);
      acceptedIds += ids;
      if (ids > 0) {
        const growing = size(input.gated?.chunks) + size(input.instances);
        const rate = growing / ids;
        if (rate > perId) {
          perId = rate;
          base = size(input) - growing;
        }
      }
    }
  }
  const loopEvents = totalEvents - chunkEvents;
  // Per iteration: the loop's states once each; measured as the loop's share, fixed = the rest.
  const perIterationEvents = iterations > 0 ? loopEventsPerIteration(list) : 0;
  return {
    iterations,
    chunks,
    acceptedIds,
    totalEvents,
    fixedEvents: loopEvents - perIterationEvents * iterations,
    eventsPerIteration: perIterationEvents,
    eventsPerChunk: chunks > 0 ? chunkEvents / chunks : 0,
    largestPayloadBytes: largest.bytes,
    largestPayloadState: largest.state,
    payloadBytesPerId: perId,
    payloadBaseBytes: base,
  };
}

/** History events of one pass round the loop, outside the Map items (the Map state itself included). */
function loopEventsPerIteration(events: readonly AnyEvent[]): number {
  const loopStates = new Set<string>([
    STAGES.generateInstructions.state,
    STAGES.filter.state,
    STAGES.saveIteration.state,
    CONTROL_STATES.enough,
  ]);
  let total = 0;
  let iterations = 0;
  for (const event of events) {
    const name = event.state?.name;
    if (!name) continue;
    if (
      loopStates.has(name) ||
      (name === STAGES.generateInstances.mapState && event.type.startsWith('State'))
    ) {
      total += historyEventsFor(event);
    }
    if (event.type === 'StateEntered' && name === STAGES.generateInstructions.state) iterations++;
  }
  return iterations > 0 ? total / iterations : 0;
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
