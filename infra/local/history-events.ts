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
import type { EventLog } from './stack.ts';
import { LOCAL_REGION } from './template.ts';

/** A history event before it is numbered and stamped. */
type Recorded = Omit<HistoryEvent, 'id' | 'previousEventId' | 'timestamp'>;

// A `lambda:invoke` Task, as its history events name it.
const LAMBDA = { resourceType: 'lambda', resource: 'invoke' };

const json = (value: unknown) => JSON.stringify(value ?? null);

/** The history events AWS records for one local event, in order. */
function recorded(event: EventLog): Recorded[] {
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
export function historyRecorder(): (event: EventLog) => HistoryEvent[] {
  let id = 0;
  const chains = new Map<string, number>();
  return (event) => {
    const chain = 'index' in event && event.index !== undefined ? String(event.index) : '';
    if (event.type === 'MapIterationStarted') chains.delete(chain);
    const timestamp = new Date(event.timestamp);
    return recorded(event).map((details) => {
      id++;
      const previousEventId = chains.get(chain) ?? chains.get('') ?? 0;
      chains.set(chain, id);
      return { ...details, id, previousEventId, timestamp };
    });
  };
}

/** How many history events AWS records for one local event (what counts towards the 25,000). */
export const historyEventsFor = (event: EventLog): number => recorded(event).length;
