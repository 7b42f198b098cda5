/**
 * The local stack's executions, as Step Functions knows them: every execution of the stack (started by
 * `LocalStack.execute`, by the local endpoint's `StartExecution`, or handed a run by "Continue in a new
 * execution"), its status while it runs and once it ended, its redrives, and its history (the parent's
 * events, as `GetExecutionHistory` returns them). One registry per stack: `LocalStack` writes it, the
 * local Step Functions endpoint (`sfn-server.ts`) reads it, so both say the same.
 */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import {
  type DistributedMaps,
  type HistoryRecorder,
  historyRecorder,
  mapRunArnOf,
} from './history-events.ts';
import type { ExecutionStatus } from './rules.ts';
import type { EventLog } from './stack.ts';

/** One execution of the stack. */
export interface ExecutionRecord {
  readonly name: string;
  /** The execution's input (`$$.Execution.Input`), the same on every redrive. */
  readonly input: unknown;
  /** Milliseconds since the epoch (`$$.Execution.StartTime`), the same on every redrive. */
  readonly startDate: number;
  status: 'RUNNING' | ExecutionStatus;
  stopDate?: number;
  output?: unknown;
  error?: string;
  cause?: string;
  /** How often it was redriven (`$$.Execution.RedriveCount`). */
  redriveCount: number;
  /** When it was last redriven (`$$.Execution.RedriveTime`), milliseconds since the epoch. */
  redriveDate?: number;
  /** It failed by reaching the history event limit: it can't be redriven. */
  historyLimitExceeded: boolean;
  /** The parent's history, every attempt's (a Distributed Map item's events are its child's). */
  readonly history: HistoryEvent[];
  /** Stops the running attempt (`StopExecution`): it ends ABORTED. */
  stop?: () => void;
  /** Resolves when the last attempt has ended and its status-change event was delivered. */
  settled: Promise<void>;
}

/** A Map Run's item counts, as `DescribeMapRun` reports them. */
export interface MapRunCounts {
  started: number;
  succeeded: number;
  executionName: string;
}

/** An error of the Step Functions API (`ExecutionDoesNotExist`, `ExecutionNotRedrivable` …): its name is its type. */
export class StepFunctionsApiError extends Error {
  constructor(type: string, message: string) {
    super(message);
    this.name = type;
  }
}

export class ExecutionRegistry {
  private readonly executions = new Map<string, ExecutionRecord>();
  private readonly recorders = new Map<string, HistoryRecorder>();
  private readonly mapRuns = new Map<string, MapRunCounts>();

  constructor(private readonly distributed: DistributedMaps) {}

  has(name: string): boolean {
    return this.executions.has(name);
  }

  get(name: string): ExecutionRecord | undefined {
    return this.executions.get(name);
  }

  list(): ExecutionRecord[] {
    return [...this.executions.values()];
  }

  mapRun(arn: string): MapRunCounts | undefined {
    return this.mapRuns.get(arn);
  }

  /** A new execution, running. */
  start(name: string, input: unknown, startDate: number): ExecutionRecord {
    const record: ExecutionRecord = {
      name,
      input,
      startDate,
      status: 'RUNNING',
      redriveCount: 0,
      historyLimitExceeded: false,
      history: [],
      settled: new Promise(() => undefined),
    };
    this.executions.set(name, record);
    this.recorders.set(name, historyRecorder(this.distributed, name));
    return record;
  }

  /** Adds one engine event of the execution to its history (its Map Runs' counts for a child's). */
  record(name: string, event: EventLog): void {
    const record = this.executions.get(name);
    const toHistory = this.recorders.get(name);
    if (!record || !toHistory) return;
    for (const recorded of toHistory(event)) {
      const child = recorded.childExecution;
      if (!child) {
        record.history.push(recorded);
        continue;
      }
      if (recorded.type !== 'MapIterationStarted' && recorded.type !== 'MapIterationSucceeded') continue;
      const arn = mapRunArnOf(name, child.map, child.entry);
      const counts = this.mapRuns.get(arn) ?? { started: 0, succeeded: 0, executionName: name };
      if (recorded.type === 'MapIterationStarted') counts.started++;
      else counts.succeeded++;
      this.mapRuns.set(arn, counts);
    }
  }

  /** The execution ended (before its status-change event is delivered, as AWS orders them). */
  end(
    name: string,
    end: {
      status: ExecutionStatus;
      output?: unknown;
      error?: string;
      cause?: string;
      historyLimit?: boolean;
    },
  ): void {
    const record = this.executions.get(name);
    if (!record) return;
    record.status = end.status;
    record.stopDate = Date.now();
    record.output = end.status === 'SUCCEEDED' ? end.output : undefined;
    record.error = end.error;
    record.cause = end.cause;
    record.historyLimitExceeded = end.historyLimit === true;
    delete record.stop;
  }

  /**
   * Why `RedriveExecution` would refuse the execution (AWS's `redriveStatusReason`), or undefined:
   * only a FAILED, ABORTED or TIMED_OUT execution whose history has room for the `ExecutionRedriven`
   * event and at least one more (fewer than `historyLimit - 1` events) is redrivable.
   */
  redriveRefusal(record: ExecutionRecord, historyLimit: number): string | undefined {
    if (record.status === 'RUNNING' || record.status === 'SUCCEEDED')
      return `Execution is ${record.status} and cannot be redriven`;
    if (record.historyLimitExceeded || record.history.length >= historyLimit - 1)
      return 'Execution history event limit exceeded';
    return undefined;
  }

  /** The execution runs again: RUNNING, one more redrive, `ExecutionRedriven` in its history. */
  redrive(record: ExecutionRecord, now: number): void {
    const toHistory = this.recorders.get(record.name);
    if (!toHistory) throw new Error(`local stack: no history of execution ${record.name}`);
    record.redriveCount++;
    record.redriveDate = now;
    record.status = 'RUNNING';
    delete record.stopDate;
    delete record.output;
    delete record.error;
    delete record.cause;
    record.history.push(toHistory.redriven(record.redriveCount, new Date(now)));
  }
}
