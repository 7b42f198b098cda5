/**
 * The local engine's events as Step Functions history events (the shape `GetExecutionHistory`
 * returns), so that `status` and `watch` read a local run and a deployed one with the same code.
 */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import type { EventLog } from './stack.ts';

const STATE_TYPES: Record<string, string> = {
  Task: 'Task',
  Map: 'Map',
  Choice: 'Choice',
  Pass: 'Pass',
  Succeed: 'Succeed',
  Fail: 'Fail',
  Parallel: 'Parallel',
  Wait: 'Wait',
};

interface LocalEvent {
  type: string;
  timestamp: number;
  state?: { name: string; type: string; input?: unknown; output?: unknown };
  input?: unknown;
  output?: unknown;
  Error?: string;
  Cause?: unknown;
  index?: number;
}

/** Maps one local event to the history event AWS records for it (the main one, when it records several). */
export function toHistoryEvent(raw: EventLog, id: number): HistoryEvent {
  const event = raw as unknown as LocalEvent;
  const base = { id, previousEventId: id - 1, timestamp: new Date(event.timestamp) };
  const kind = STATE_TYPES[event.state?.type ?? ''] ?? 'Task';
  const json = (value: unknown) => JSON.stringify(value ?? null);
  switch (event.type) {
    case 'ExecutionStarted':
      return {
        ...base,
        type: 'ExecutionStarted',
        executionStartedEventDetails: { input: json(event.input) },
      };
    case 'ExecutionSucceeded':
      return {
        ...base,
        type: 'ExecutionSucceeded',
        executionSucceededEventDetails: { output: json(event.output) },
      };
    case 'ExecutionFailed':
      return {
        ...base,
        type: 'ExecutionFailed',
        executionFailedEventDetails: { error: event.Error, cause: String(event.Cause ?? '') },
      };
    case 'ExecutionAborted':
      return { ...base, type: 'ExecutionAborted' };
    case 'ExecutionTimeout':
      return { ...base, type: 'ExecutionTimedOut' };
    case 'StateEntered':
      return {
        ...base,
        type: `${kind}StateEntered` as HistoryEvent['type'],
        stateEnteredEventDetails: { name: event.state?.name, input: json(event.state?.input) },
      };
    case 'StateExited':
      return {
        ...base,
        type: `${kind}StateExited` as HistoryEvent['type'],
        stateExitedEventDetails: { name: event.state?.name ?? '', output: json(event.state?.output) },
      };
    case 'StateRetried':
    case 'StateFailed':
      return {
        ...base,
        type: 'TaskFailed',
        taskFailedEventDetails: {
          resourceType: 'lambda',
          resource: event.state?.name ?? '',
          error: event.Error ?? 'retried',
          cause: String(event.Cause ?? ''),
        },
      };
    case 'MapIterationStarted':
      return {
        ...base,
        type: 'MapIterationStarted',
        mapIterationStartedEventDetails: { index: event.index },
      };
    case 'MapIterationSucceeded':
      return {
        ...base,
        type: 'MapIterationSucceeded',
        mapIterationSucceededEventDetails: { index: event.index },
      };
    case 'MapIterationFailed':
      return { ...base, type: 'MapIterationFailed', mapIterationFailedEventDetails: { index: event.index } };
    default:
      return { ...base, type: 'PassStateEntered', stateEnteredEventDetails: { name: event.type } };
  }
}
