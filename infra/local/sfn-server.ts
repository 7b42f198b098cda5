/**
 * A local endpoint speaking the Step Functions API (AWS JSON 1.0: StartExecution, StopExecution,
 * DescribeExecution, GetExecutionHistory, ListExecutions, DescribeMapRun) over the local stack's engine. Point the AWS SDK at it with
 * `AWS_ENDPOINT_URL_SFN` and the CLI's deployed-run code path (`run --deployed`, `status`, `watch`)
 * runs exactly as against AWS.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { mapRunArnOf } from './history-events.ts';
import type { ExecutionStatus } from './rules.ts';
import { setLocalEndpoint } from './runtime.ts';
import type { LocalStack } from './stack.ts';

interface Execution {
  name: string;
  input: string;
  startDate: Date;
  stopDate?: Date;
  status: 'RUNNING' | ExecutionStatus;
  stop: AbortController;
  output?: string;
  error?: string;
  cause?: string;
  events: HistoryEvent[];
}

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export interface LocalStepFunctions {
  url: string;
  stateMachineArn: string;
  /** Resolves when every execution started so far has ended. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export async function startLocalStepFunctions(stack: LocalStack): Promise<LocalStepFunctions> {
  const stateMachineArn = stack.stateMachineArn;
  const executionArn = (name: string) => stack.executionArn(name);
  const executions = new Map<string, Execution>();
  const mapRuns = new Map<string, { started: number; succeeded: number; executionArn: string }>();
  const running = new Set<Promise<unknown>>();

  const find = (arn: unknown) => {
    const name = String(arn).split(':').at(-1) ?? '';
    const execution = executions.get(name);
    if (!execution) throw new ApiError('ExecutionDoesNotExist', `Execution does not exist: '${String(arn)}'`);
    return execution;
  };

  const operations: Record<string, (body: Record<string, unknown>) => unknown> = {
    StartExecution(body) {
      if (body.stateMachineArn !== stateMachineArn) {
        throw new ApiError(
          'StateMachineDoesNotExist',
          `State Machine Does Not Exist: '${String(body.stateMachineArn)}'`,
        );
      }
      const name = String(body.name ?? crypto.randomUUID());
      if (executions.has(name))
        throw new ApiError('ExecutionAlreadyExists', `Execution Already Exists: '${name}'`);
      const input = String(body.input ?? '{}');
      const execution: Execution = {
        name,
        input,
        startDate: new Date(),
        status: 'RUNNING',
        stop: new AbortController(),
        events: [],
      };
      executions.set(name, execution);
      const recorders = new Map<string, ReturnType<LocalStack['historyRecorder']>>();
      const done = stack
        .execute(JSON.parse(input), {
          executionName: name,
          signal: execution.stop.signal,
          // Each execution's history, as AWS keeps it (a run's next executions are executions of their
          // own), the parent's only: a Distributed Map item's events are its child's.
          onEvent: (event, executionName) => {
            let current = executions.get(executionName);
            if (!current) {
              current = {
                name: executionName,
                input: JSON.stringify(event.type === 'ExecutionStarted' ? event.input : {}),
                startDate: new Date(event.timestamp),
                status: 'RUNNING',
                stop: execution.stop,
                events: [],
              };
              executions.set(executionName, current);
            }
            const toHistory = recorders.get(executionName) ?? stack.historyRecorder(executionName);
            recorders.set(executionName, toHistory);
            for (const recorded of toHistory(event)) {
              const child = recorded.childExecution;
              if (!child) current.events.push(recorded);
              else if (recorded.type === 'MapIterationStarted' || recorded.type === 'MapIterationSucceeded') {
                // The Map Run's item counts, as DescribeMapRun reports them.
                const arn = mapRunArnOf(executionName, child.map, child.entry);
                const counts = mapRuns.get(arn) ?? {
                  started: 0,
                  succeeded: 0,
                  executionArn: executionArn(executionName),
                };
                if (recorded.type === 'MapIterationStarted') counts.started++;
                else counts.succeeded++;
                mapRuns.set(arn, counts);
              }
            }
            if (event.type === 'ExecutionSucceeded') {
              current.status = 'SUCCEEDED';
              current.stopDate = new Date(event.timestamp);
              current.output = JSON.stringify(event.output);
            }
          },
        })
        .then((result) => {
          const last = executions.get(result.executions.at(-1) ?? name) ?? execution;
          last.status = result.status;
          last.stopDate = new Date();
          last.output = result.output === undefined ? undefined : JSON.stringify(result.output);
          last.error = result.error;
          last.cause = result.cause;
        });
      running.add(done);
      void done.finally(() => running.delete(done));
      return { executionArn: executionArn(name), startDate: execution.startDate.getTime() / 1000 };
    },
    StopExecution(body) {
      const e = find(body.executionArn);
      e.stop.abort();
      return { stopDate: Date.now() / 1000 };
    },
    DescribeExecution(body) {
      const e = find(body.executionArn);
      return {
        executionArn: executionArn(e.name),
        stateMachineArn: stateMachineArn,
        name: e.name,
        status: e.status,
        startDate: e.startDate.getTime() / 1000,
        stopDate: e.stopDate ? e.stopDate.getTime() / 1000 : undefined,
        input: e.input,
        output: e.output,
        error: e.error,
        cause: e.cause,
      };
    },
    GetExecutionHistory(body) {
      const e = find(body.executionArn);
      const events = e.events.map((event) => ({
        ...event,
        timestamp: (event.timestamp as Date).getTime() / 1000,
      }));
      return { events: body.reverseOrder ? events.reverse() : events };
    },
    // Only the figures `watch` reads: the items started so far stand for the total.
    DescribeMapRun(body) {
      const run = mapRuns.get(String(body.mapRunArn));
      if (!run) throw new ApiError('ResourceNotFound', `Map Run does not exist: '${String(body.mapRunArn)}'`);
      const counts = {
        pending: 0,
        running: run.started - run.succeeded,
        succeeded: run.succeeded,
        failed: 0,
        timedOut: 0,
        aborted: 0,
        total: run.started,
        resultsWritten: run.succeeded,
      };
      // Each item is a child execution: the two counts are the same.
      return {
        mapRunArn: body.mapRunArn,
        executionArn: run.executionArn,
        status: 'RUNNING',
        itemCounts: counts,
        executionCounts: counts,
      };
    },
    ListExecutions() {
      return {
        executions: [...executions.values()].map((e) => ({
          executionArn: executionArn(e.name),
          stateMachineArn: stateMachineArn,
          name: e.name,
          status: e.status,
          startDate: e.startDate.getTime() / 1000,
        })),
      };
    },
  };

  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const operation = String(request.headers['x-amz-target'] ?? '').replace('AWSStepFunctions.', '');
      const reply = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
        response.end(JSON.stringify(body));
      };
      try {
        const handler = operations[operation];
        if (!handler)
          throw new ApiError('UnknownOperationException', `Operation ${operation} is not served locally`);
        reply(200, handler(JSON.parse(Buffer.concat(chunks).toString() || '{}')));
      } catch (error) {
        const type = error instanceof ApiError ? error.type : 'InvalidParameterValue';
        reply(400, { __type: type, message: (error as Error).message });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  // This process's Step Functions clients (the CLI's) now reach this endpoint.
  setLocalEndpoint('sfn', url);
  return {
    url,
    stateMachineArn,
    idle: async () => {
      await Promise.allSettled([...running]);
    },
    close: () => {
      setLocalEndpoint('sfn', undefined);
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
