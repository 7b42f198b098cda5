/**
 * A local endpoint speaking the Step Functions API (AWS JSON 1.0: StartExecution, StopExecution,
 * RedriveExecution, DescribeExecution, GetExecutionHistory, ListExecutions, DescribeMapRun) over the
 * local stack's engine and its registry of executions. The stack's Lambdas reach it through their
 * client configuration (each request checked against the function's role, see `runtime.ts`); point
 * the AWS SDK at it with `AWS_ENDPOINT_URL_SFN` and the CLI's deployed-run code path (`run --deployed`,
 * `status`, `watch`) runs exactly as against AWS.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ExecutionRecord, StepFunctionsApiError } from './execution-registry.ts';
import { MAX_HISTORY_EVENTS } from './history.ts';
import { setLocalEndpoint } from './runtime.ts';
import type { LocalStack } from './stack.ts';

export interface LocalStepFunctions {
  url: string;
  stateMachineArn: string;
  /** Resolves when every execution (and redrive) started through the endpoint so far has ended. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const seconds = (milliseconds: number | undefined) =>
  milliseconds === undefined ? undefined : milliseconds / 1000;

/**
 * The local stack's Step Functions endpoint, for the stack's whole life (`LocalStack.start` starts it,
 * `close` stops it): every execution of the stack, however it was started, as the stack's registry
 * (`execution-registry.ts`) knows it.
 */
export async function serveStepFunctions(stack: LocalStack): Promise<LocalStepFunctions> {
  const stateMachineArn = stack.stateMachineArn;
  const executionArn = (name: string) => stack.executionArn(name);
  const running = new Set<Promise<unknown>>();
  const track = (done: Promise<unknown>) => {
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    running.add(settled);
    void settled.finally(() => running.delete(settled));
  };

  const find = (arn: unknown): ExecutionRecord => {
    const name = String(arn).split(':').at(-1) ?? '';
    const execution = stack.executions.get(name);
    if (!execution || executionArn(name) !== String(arn))
      throw new StepFunctionsApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(arn)}'`);
    return execution;
  };

  const operations: Record<string, (body: Record<string, unknown>) => unknown> = {
    StartExecution(body) {
      if (body.stateMachineArn !== stateMachineArn) {
        throw new StepFunctionsApiError(
          'StateMachineDoesNotExist',
          `State Machine Does Not Exist: '${String(body.stateMachineArn)}'`,
        );
      }
      const name = String(body.name ?? crypto.randomUUID());
      if (stack.executions.has(name))
        throw new StepFunctionsApiError('ExecutionAlreadyExists', `Execution Already Exists: '${name}'`);
      track(stack.execute(JSON.parse(String(body.input ?? '{}')), { executionName: name }));
      // The execution is registered as soon as it is started.
      const execution = find(executionArn(name));
      return { executionArn: executionArn(name), startDate: seconds(execution.startDate) };
    },
    StopExecution(body) {
      find(body.executionArn).stop?.();
      return { stopDate: Date.now() / 1000 };
    },
    RedriveExecution(body) {
      const { name } = find(body.executionArn);
      const { redriveDate, result } = stack.startRedrive(name);
      track(result);
      return { redriveDate: seconds(redriveDate) };
    },
    DescribeExecution(body) {
      const e = find(body.executionArn);
      const refusal = stack.executions.redriveRefusal(e, MAX_HISTORY_EVENTS);
      return {
        executionArn: executionArn(e.name),
        stateMachineArn: stateMachineArn,
        name: e.name,
        status: e.status,
        startDate: seconds(e.startDate),
        stopDate: seconds(e.stopDate),
        input: JSON.stringify(e.input),
        inputDetails: { included: true },
        output: e.status === 'SUCCEEDED' ? JSON.stringify(e.output) : undefined,
        error: e.error,
        cause: e.cause,
        redriveCount: e.redriveCount,
        redriveDate: seconds(e.redriveDate),
        redriveStatus: refusal ? 'NOT_REDRIVABLE' : 'REDRIVABLE',
        redriveStatusReason: refusal,
      };
    },
    GetExecutionHistory(body) {
      const e = find(body.executionArn);
      const events = e.history.map((event) => ({
        ...event,
        timestamp: (event.timestamp as Date).getTime() / 1000,
      }));
      return { events: body.reverseOrder ? events.reverse() : events };
    },
    // Only the figures `watch` reads: the items started so far stand for the total.
    DescribeMapRun(body) {
      const run = stack.executions.mapRun(String(body.mapRunArn));
      if (!run)
        throw new StepFunctionsApiError(
          'ResourceNotFound',
          `Map Run does not exist: '${String(body.mapRunArn)}'`,
        );
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
        executionArn: executionArn(run.executionName),
        status: 'RUNNING',
        itemCounts: counts,
        executionCounts: counts,
      };
    },
    ListExecutions() {
      return {
        executions: stack.executions.list().map((e) => ({
          executionArn: executionArn(e.name),
          stateMachineArn: stateMachineArn,
          name: e.name,
          status: e.status,
          startDate: seconds(e.startDate),
          stopDate: seconds(e.stopDate),
          redriveCount: e.redriveCount,
          redriveDate: seconds(e.redriveDate),
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
          throw new StepFunctionsApiError(
            'UnknownOperationException',
            `Operation ${operation} is not served locally`,
          );
        reply(200, handler(JSON.parse(Buffer.concat(chunks).toString() || '{}')));
      } catch (error) {
        const type = error instanceof StepFunctionsApiError ? error.name : 'InvalidParameterValue';
        reply(400, { __type: type, message: (error as Error).message });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  // This process's Step Functions clients (the CLI's, the stack's Lambdas') now reach this endpoint.
  setLocalEndpoint('sfn', url);
  let closed: Promise<void> | undefined;
  return {
    url,
    stateMachineArn,
    idle: async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        setLocalEndpoint('sfn', undefined, url);
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

/**
 * The stack's Step Functions endpoint, for the CLI's deployed-run code path (`serve`, `run --deployed`
 * tests): it runs as long as the stack, which closes it (closing this handle leaves it running).
 */
export async function startLocalStepFunctions(stack: LocalStack): Promise<LocalStepFunctions> {
  const endpoint = stack.stepFunctions;
  if (!endpoint) throw new Error('local stack: its Step Functions endpoint is not running');
  return { ...endpoint, close: async () => undefined };
}
