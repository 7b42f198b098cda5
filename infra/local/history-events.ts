/**
 * The local engine's events as the Step Functions history events AWS records for them (the shape
 * `GetExecutionHistory` returns), all of them: a Lambda Task is entered, scheduled, started, then
 * succeeds or fails, a retry schedules and starts it again; a Map state is entered and started, each
 * item is an iteration. So a local run's history is as long as a deployed one's (the 25,000-event limit
 * is checked on it), and `status`, `watch` and the progress view read both with the same reducer.
 *
 * Approximations: a Task's `parameters` and result are the state's input and output (the engine does not
 * expose the Lambda payload), and `MapStateStarted` carries no item count.
 */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { mapRunLabel } from '../per-item-map.ts';
import type { EventLog } from './stack.ts';
import { LOCAL_ACCOUNT, LOCAL_REGION } from './template.ts';

/**
 * A history event as a local run records it: a parent's event, or (`childExecution` set) an event of a
 * Distributed Map item's child execution, which AWS keeps in that child's history, not the parent's.
 * The local history keeps both in one file so that `status`, `watch` and the progress view still show
 * the items' stages; only the parent's count towards the parent's 25,000.
 */
export type LocalHistoryEvent = HistoryEvent & { childExecution?: ChildExecution };

/** A Distributed Map item's child execution: its Map, the Map's entry (1, 2 … in this run) and index. */
export interface ChildExecution {
  map: string;
  entry: number;
  index: number;
}

/** The Distributed Maps of a definition (`ItemProcessor.ProcessorConfig.Mode` `DISTRIBUTED`). */
export interface DistributedMaps {
  /** The Distributed Map states' names. */
  maps: ReadonlySet<string>;
  /** Each state of a Distributed Map's item processor, with its Map. */
  itemStates: ReadonlyMap<string, string>;
}

type States = Record<
  string,
  { Type?: string; ItemProcessor?: ProcessorDefinition; Iterator?: ProcessorDefinition }
>;
interface ProcessorDefinition {
  ProcessorConfig?: { Mode?: string };
  States?: States;
}

/** Finds the Distributed Maps of a state machine definition (and, inline, in item processors). */
export function distributedMapsOf(definition: { States: unknown }): DistributedMaps {
  const maps = new Set<string>();
  const itemStates = new Map<string, string>();
  const visit = (states: States, within?: string) => {
    for (const [name, state] of Object.entries(states)) {
      if (within !== undefined) itemStates.set(name, within);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (!processor?.States) continue;
      const distributed = processor.ProcessorConfig?.Mode === 'DISTRIBUTED';
      if (distributed) maps.add(name);
      visit(processor.States, distributed ? name : within);
    }
  };
  visit(definition.States as States);
  return { maps, itemStates };
}

const NO_DISTRIBUTED_MAPS: DistributedMaps = { maps: new Set(), itemStates: new Map() };

/** A history event before it is numbered and stamped. */
type Recorded = Omit<HistoryEvent, 'id' | 'previousEventId' | 'timestamp'>;

// A `lambda:invoke` Task, as its history events name it.
const LAMBDA = { resourceType: 'lambda', resource: 'invoke' };

const json = (value: unknown) => JSON.stringify(value ?? null);

/** The history events AWS records for one local event, in order (a Distributed Map's item's in its child's). */
function recorded(event: EventLog, distributed: DistributedMaps, where?: MapRunPlace): Recorded[] {
  if ('state' in event && event.state?.type === 'Map' && distributed.maps.has(event.state.name)) {
    const { name } = event.state;
    return mapRun(event, mapRunArnOf(where?.execution ?? 'local', name, where?.entries.get(name) ?? 0));
  }
  switch (event.type) {
    case 'ExecutionStarted':
      return [{ type: 'ExecutionStarted', executionStartedEventDetails: { input: json(event.input) } }];
    case 'ExecutionSucceeded':
      return [{ type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: json(event.output) } }];
    case 'ExecutionFailed':
      return [
        {
          type: 'ExecutionFailed',
          executionFailedEventDetails: { error: event.Error, cause: String(event.Cause ?? '') },
        },
      ];
    case 'ExecutionAborted':
      return [{ type: 'ExecutionAborted' }];
    case 'ExecutionTimeout':
      return [{ type: 'ExecutionTimedOut' }];
    case 'MapIterationStarted':
    case 'MapIterationSucceeded':
    case 'MapIterationFailed': {
      const details = { name: event.parentState.name, index: event.index };
      if (event.type === 'MapIterationStarted')
        return [{ type: event.type, mapIterationStartedEventDetails: details }];
      if (event.type === 'MapIterationSucceeded')
        return [{ type: event.type, mapIterationSucceededEventDetails: details }];
      return [{ type: event.type, mapIterationFailedEventDetails: details }];
    }
    case 'StateEntered': {
      const { name, type, input } = event.state;
      const entered = {
        type: `${type}StateEntered` as HistoryEvent['type'],
        stateEnteredEventDetails: { name, input: json(input) },
      };
      if (type === 'Task') return [entered, ...attempt(input)];
      if (type === 'Map') return [entered, { type: 'MapStateStarted' }];
      return [entered];
    }
    case 'StateExited': {
      const { name, type, output } = event.state;
      const exited = {
        type: `${type}StateExited` as HistoryEvent['type'],
        stateExitedEventDetails: { name, output: json(output) },
      };
      if (type === 'Task')
        return [
          { type: 'TaskSucceeded', taskSucceededEventDetails: { ...LAMBDA, output: json(output) } },
          exited,
        ];
      if (type === 'Map') return [{ type: 'MapStateSucceeded' }, exited];
      return [exited];
    }
    // The engine reports every failed attempt (StateFailed), then, when a Retry applies, the next one.
    case 'StateFailed':
      if (event.state.type === 'Task') {
        const cause = typeof event.Cause === 'string' ? event.Cause : json(event.Cause);
        return [{ type: 'TaskFailed', taskFailedEventDetails: { ...LAMBDA, error: event.Error, cause } }];
      }
      return event.state.type === 'Map' ? [{ type: 'MapStateFailed' }] : [];
    case 'StateRetried':
      return event.state.type === 'Task' ? attempt(event.state.input) : [];
    // A caught error: the failure is already recorded, and the state exits to the Catch's next state.
    case 'StateCaught':
    // A Parallel state (none in this workflow) records its start and end, not its branches'.
    case 'ParallelBranchStarted':
    case 'ParallelBranchSucceeded':
    case 'ParallelBranchFailed':
      return [];
  }
}

/** Which execution an event is of, and how often it has entered each Distributed Map so far. */
interface MapRunPlace {
  execution: string;
  entries: ReadonlyMap<string, number>;
}

/**
 * The ARN of the Map Run of the `entry`-th entry of Distributed Map `map` in `execution`, shaped as
 * AWS's (`…:mapRun:<execution>/<label>:<id>`), unique in a local stack.
 */
export const mapRunArnOf = (execution: string, map: string, entry: number) =>
  `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:mapRun:${execution}/${mapRunLabel(map)}:${entry}`;

/**
 * A Distributed Map in its parent's history: the Map state and its Map Run (started, then succeeded or
 * failed); its items' events are their child executions'.
 */
function mapRun(event: EventLog, mapRunArn: string): Recorded[] {
  if (!('state' in event) || !event.state) return [];
  const { name, input, output } = event.state;
  switch (event.type) {
    case 'StateEntered':
      return [
        { type: 'MapStateEntered', stateEnteredEventDetails: { name, input: json(input) } },
        { type: 'MapStateStarted' },
        { type: 'MapRunStarted', mapRunStartedEventDetails: { mapRunArn } },
      ];
    case 'StateExited':
      return [
        { type: 'MapRunSucceeded' },
        { type: 'MapStateSucceeded' },
        { type: 'MapStateExited', stateExitedEventDetails: { name, output: json(output) } },
      ];
    case 'StateFailed': {
      const cause = typeof event.Cause === 'string' ? event.Cause : json(event.Cause);
      return [
        { type: 'MapRunFailed', mapRunFailedEventDetails: { error: event.Error, cause } },
        { type: 'MapStateFailed' },
      ];
    }
    default:
      return [];
  }
}

/** The child execution an event belongs to, if it is a Distributed Map item's. */
function childOf(
  event: EventLog,
  distributed: DistributedMaps,
  entries: ReadonlyMap<string, number>,
): ChildExecution | undefined {
  const map =
    'parentState' in event && event.type.startsWith('MapIteration')
      ? distributed.maps.has(event.parentState.name)
        ? event.parentState.name
        : undefined
      : 'state' in event && event.state && event.index !== undefined
        ? distributed.itemStates.get(event.state.name)
        : undefined;
  if (map === undefined || !('index' in event) || event.index === undefined) return undefined;
  return { map, entry: entries.get(map) ?? 0, index: event.index };
}

/** One attempt of a Lambda Task: scheduled, then started. */
const attempt = (input: unknown): Recorded[] => [
  {
    type: 'TaskScheduled',
    taskScheduledEventDetails: { ...LAMBDA, region: LOCAL_REGION, parameters: json(input) },
  },
  { type: 'TaskStarted', taskStartedEventDetails: LAMBDA },
];

/**
 * Maps an execution's local events, one after the other, to its history: ids count from 1 and each
 * event's `previousEventId` is the one before it in its own chain (the execution's, or one Map item's,
 * as AWS links them), so that a retry's `TaskScheduled` points at the `TaskFailed` it retries.
 */
export function historyRecorder(
  distributed: DistributedMaps = NO_DISTRIBUTED_MAPS,
  execution = 'local',
): HistoryRecorder {
  let id = 0;
  const chains = new Map<string, number>();
  const entries = new Map<string, number>();
  const redriven = (redriveCount: number, timestamp: Date): LocalHistoryEvent => {
    id++;
    const previousEventId = chains.get('') ?? 0;
    // The redriven execution goes on from here: every chain (a Map item's too) starts again after it.
    chains.clear();
    chains.set('', id);
    return {
      type: 'ExecutionRedriven',
      executionRedrivenEventDetails: { redriveCount },
      id,
      previousEventId,
      timestamp,
    };
  };
  const record = (event: EventLog): LocalHistoryEvent[] => {
    const chain = 'index' in event && event.index !== undefined ? String(event.index) : '';
    if (event.type === 'MapIterationStarted') chains.delete(chain);
    noteMapEntry(event, distributed, entries);
    const child = childOf(event, distributed, entries);
    const timestamp = new Date(event.timestamp);
    return recorded(event, distributed, { execution, entries }).map((details) => {
      id++;
      const previousEventId = chains.get(chain) ?? chains.get('') ?? 0;
      chains.set(chain, id);
      return { ...details, id, previousEventId, timestamp, ...(child ? { childExecution: child } : {}) };
    });
  };
  return Object.assign(record, { redriven });
}

/**
 * Maps an execution's local events to its history (see `historyRecorder`); `redriven` records the
 * `ExecutionRedriven` event a redrive appends (the history goes on, numbered after it).
 */
export interface HistoryRecorder {
  (event: EventLog): LocalHistoryEvent[];
  redriven(redriveCount: number, timestamp: Date): LocalHistoryEvent;
}

/** Counts a Distributed Map's entries, so that each entry's items are children of their own. */
function noteMapEntry(event: EventLog, distributed: DistributedMaps, entries: Map<string, number>): void {
  if (event.type === 'StateEntered' && event.state.type === 'Map' && distributed.maps.has(event.state.name))
    entries.set(event.state.name, (entries.get(event.state.name) ?? 0) + 1);
}

/** How many history events AWS records for one local event (what counts towards the 25,000). */
export const historyEventsFor = (
  event: EventLog,
  distributed: DistributedMaps = NO_DISTRIBUTED_MAPS,
): number => recorded(event, distributed).length;

/**
 * Counts an execution's history events where AWS keeps them: the parent's, and each Distributed Map
 * item's child execution's (its own `ExecutionStarted` and end included, which the local engine does
 * not report). `add` returns the counts the event brought to a limit.
 */
export class HistoryCounter {
  parent = 0;
  private readonly children = new Map<string, number>();
  private readonly entries = new Map<string, number>();

  constructor(private readonly distributed: DistributedMaps = NO_DISTRIBUTED_MAPS) {}

  /** Adds one local event; returns the parent's count, or the child's (and which) when it is an item's. */
  add(event: EventLog): { events: number; child?: ChildExecution } {
    noteMapEntry(event, this.distributed, this.entries);
    const child = childOf(event, this.distributed, this.entries);
    const count = historyEventsFor(event, this.distributed);
    if (!child) {
      this.parent += count;
      return { events: this.parent };
    }
    const key = `${child.map}\n${child.entry}\n${child.index}`;
    // A child starts with ExecutionStarted and ends with ExecutionSucceeded or ExecutionFailed.
    const events = (this.children.get(key) ?? 2) + (event.type.startsWith('MapIteration') ? 0 : count);
    this.children.set(key, events);
    return { events, child };
  }

  /** The longest child execution's history so far. */
  get largestChild(): number {
    return Math.max(0, ...this.children.values());
  }
}
