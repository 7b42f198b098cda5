/**
 * End to end, on the local stack: the per-item Maps are Distributed Maps, so a Map item's events are its
 * child execution's history, not the parent's. A run whose inline Map items would cross a lowered parent
 * history limit fits it; the same run with the Maps made inline again crosses it; a child execution
 * past its own (lowered) limit fails the run; and a state machine role without `states:StartExecution`
 * on itself fails the run at the Map, before any item runs, as AWS does (and one without
 * `lambda:InvokeFunction` on a function fails its task).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HISTORY_EVENTS } from '../../functions/shared/execution-limits.ts';
import { STAGES } from '../../functions/stages.ts';
import { HistoryCounter, historyEventsFor } from '../../infra/local/history-events.ts';
import { type ExecutionResult, LocalStack, type LocalStackOptions } from '../../infra/local/stack.ts';
import type { CfnTemplate } from '../../infra/local/template.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-dmap-'));
// Small Map items: many of them (about 23 in 2 iterations), each 7 events in an inline Map.
const input = {
  seed: 'distributed-map-e2e',
  target: 1000,
  maxIterations: 2,
  promptsPerIteration: 6,
  chunkSize: 5,
};
// Above what the run's parent records (66 measured), below what the same run records with inline Maps (223).
const PARENT_LIMIT = 120;

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs `act` on a fresh local stack started with `options`. */
async function withStack<T>(
  name: string,
  options: Partial<LocalStackOptions>,
  act: (stack: LocalStack) => Promise<T>,
): Promise<T> {
  const stack = await LocalStack.start({ dataDir: path.join(work, name), fresh: true, ...options });
  try {
    return await act(stack);
  } finally {
    await stack.close();
  }
}

/** The parent's history events and the longest child's, counted where AWS keeps them. */
function counted(stack: LocalStack, result: ExecutionResult) {
  const counter = new HistoryCounter(stack.distributed);
  for (const event of result.events) counter.add(event);
  return { parent: counter.parent, child: counter.largestChild };
}

/** The state machine's properties in the template. */
function stateMachineOf(template: CfnTemplate): Record<string, unknown> {
  const [, machine] =
    Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine') ?? [];
  if (!machine?.Properties) throw new Error('no state machine in the template');
  return machine.Properties;
}

/** The Step Functions definition parts of the template, to edit as text. */
function editDefinition(template: CfnTemplate, edit: (text: string) => string): void {
  const machine = stateMachineOf(template);
  const join = (machine.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  join[1] = join[1].map((part) => (typeof part === 'string' ? edit(part) : part));
}

describe('Distributed Maps on the local stack', { timeout: 300_000 }, () => {
  it('keeps the Map items out of the parent history: a run fits a parent limit its inline Map items would cross', async () => {
    const result = await withStack('distributed', {}, async (stack) => {
      const run = await stack.execute(
        { ...input, pool: 'distributed' },
        {
          retryIntervalMs: 10,
          limits: { historyEvents: PARENT_LIMIT },
        },
      );
      return { run, ...counted(stack, run) };
    });
    expect(result.run.status, `${result.run.error}: ${result.run.cause}`).toBe('SUCCEEDED');
    const items = result.run.events.filter(
      (event) => event.type === 'StateEntered' && event.state.name === STAGES.generateInstances.state,
    ).length;
    expect(items).toBeGreaterThan(15);
    expect(result.parent).toBeLessThan(PARENT_LIMIT);
    // The same events as an inline Map records them, all in the parent's history: over the limit.
    const inline = result.run.events.reduce((sum, event) => sum + historyEventsFor(event), 0);
    expect(inline).toBeGreaterThan(PARENT_LIMIT);
    expect(result.child).toBe(7);
    expect(result.child).toBeLessThanOrEqual(HISTORY_EVENTS.perChildExecution);
  });

  it('fails the same run at the parent limit when the Maps are inline again', async () => {
    const run = await withStack(
      'inline',
      {
        editTemplate: (template) =>
          editDefinition(template, (text) =>
            text
              .replaceAll('"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"', '"Mode":"INLINE"')
              .replace(/,"Label":"\w+"/g, ''),
          ),
      },
      async (stack) => {
        expect(stack.distributed.maps.size).toBe(0);
        return stack.execute(
          { ...input, pool: 'inline' },
          {
            retryIntervalMs: 10,
            limits: { historyEvents: PARENT_LIMIT },
          },
        );
      },
    );
    expect(run.status).toBe('FAILED');
    expect(run.error).toBe('States.Runtime');
    expect(run.cause).toBe(`The execution reached the maximum number of history events (${PARENT_LIMIT}).`);
  });

  it("fails a run whose Map item's child execution crosses its own history limit", async () => {
    await withStack('child-limit', {}, async (stack) => {
      const run = await stack.execute(
        { ...input, pool: 'child' },
        {
          retryIntervalMs: 10,
          limits: { childHistoryEvents: 6 },
        },
      );
      expect(run.status).toBe('FAILED');
      expect(run.error).toBe('States.Runtime');
      expect(run.cause).toMatch(
        /^Child execution \d+ of the Map Run of "Generate instances" reached the maximum number of history events \(6\)/,
      );
    });
  });

  it('records no gate shard in the parent history: a run gated in shards stays within the planned figures', async () => {
    await withStack('sharded', {}, async (stack) => {
      const sharded = { ...input, chunkSize: 40, shardGateAbove: 1, gateShards: 4 };
      const run = await stack.execute({ ...sharded, pool: 'sharded' }, { retryIntervalMs: 10 });
      expect(run.status, `${run.error}: ${run.cause}`).toBe('SUCCEEDED');
      const { parent } = counted(stack, run);
      // What "Prepare run" plans for 2 iterations (execution-limits.ts): at least what this run records.
      expect(parent).toBeLessThanOrEqual(
        HISTORY_EVENTS.once + 2 * (HISTORY_EVENTS.perIteration + HISTORY_EVENTS.perShardedIteration),
      );
      const inline = run.events.reduce((sum, event) => sum + historyEventsFor(event), 0);
      // 2 iterations × 2 Maps × 4 shards × 7 events that the parent no longer records.
      expect(inline - parent).toBeGreaterThanOrEqual(2 * 2 * 4 * 7);
    });
  });

  it('fails the run at the Map, before any item runs, when the state machine may not start its own executions', async () => {
    await withStack(
      'no-start-execution',
      { iam: true, editTemplate: (template) => removeMachineGrant(template, 'states:StartExecution') },
      async (stack) => {
        const run = await stack.execute({ ...input, pool: 'denied' }, { retryIntervalMs: 10 });
        expect(run.status).toBe('FAILED');
        expect(run.error).toBe('States.Runtime');
        expect(run.cause).toMatch(
          /assumed-role\/\w*StateMachineRole\w*\/\w+ is not authorized to perform: states:StartExecution on resource: arn:aws:states:[\w-]+:\d+:stateMachine:SelfInstruct/,
        );
        const entered = run.events.flatMap((event) =>
          event.type === 'StateEntered' ? [event.state.name] : [],
        );
        expect(entered).toContain(STAGES.generateInstances.mapState);
        expect(entered).not.toContain(STAGES.generateInstances.state);
      },
    );
  });

  it('fails a task as AWS does when the state machine may not invoke its function: Lambda.AWSLambdaException, retried, then the run fails there', async () => {
    await withStack(
      'no-invoke',
      {
        iam: true,
        editTemplate: (template) => removeMachineGrant(template, 'lambda:InvokeFunction', /ExportDataset/),
      },
      async (stack) => {
        const run = await stack.execute(
          { seed: 'distributed-map-e2e', target: 20, maxIterations: 1, pool: 'no-invoke' },
          { retryIntervalMs: 10 },
        );
        expect(run.status).toBe('FAILED');
        expect(run.error).toBe('Lambda.AWSLambdaException');
        expect(run.cause).toMatch(
          /assumed-role\/\w*StateMachineRole\w*\/\w+ is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:[\w-]+:\d+:function:\w*ExportDataset\w* because no identity-based policy allows the lambda:InvokeFunction action \(Service: AWSLambda; Status Code: 403; Error Code: AccessDeniedException;/,
        );
        const retried = run.events.filter(
          (event) => event.type === 'StateRetried' && event.state.name === STAGES.exportDataset.state,
        );
        expect(retried).toHaveLength(6);
      },
    );
  });
});

/** Removes `action` on the resources matching `on` from the state machine's role's statements. */
function removeMachineGrant(template: CfnTemplate, action: string, on = /./): void {
  const machine = stateMachineOf(template);
  const role = (machine.RoleArn as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  let removed = 0;
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type !== 'AWS::IAM::Policy') continue;
    if (!((resource.Properties?.Roles ?? []) as { Ref: string }[]).some((r) => r.Ref === role)) continue;
    const document = resource.Properties?.PolicyDocument as {
      Statement: { Action: string | string[]; Resource: unknown }[];
    };
    document.Statement = document.Statement.flatMap((statement) => {
      if (![statement.Action].flat().includes(action)) return [statement];
      // CDK merges the grants of one action into one statement: keep the other resources.
      const resources = [statement.Resource].flat();
      const kept = resources.filter((each) => !on.test(JSON.stringify(each)));
      removed += resources.length - kept.length;
      return kept.length > 0 ? [{ ...statement, Resource: kept }] : [];
    });
  }
  if (removed === 0) throw new Error(`the state machine role has no ${action} on ${on}`);
}
