/**
 * Fault benchmark: runs the synthesized state machine on the local stack (IAM enforced) against the
 * OpenAI protocol stand-in under a named fault mix, then reads the pool and the run back and prints the
 * invariants a fault-tolerant pipeline keeps, as figures.
 *
 *   npm run bench:faults -- [--seed 1] [--mix realistic] [--target 100] [--iterations 2] [--json]
 *                           [--write-point <service>:<operation>:<key prefix>] [--retry-interval-ms 50]
 *
 * The `realistic` mix: 20% of model calls throttled (429), 5% answered with malformed text, 5–40 ms of
 * latency per call, one Map item crashed per iteration (`Lambda.Unknown`, at a seeded AWS write, the kill
 * deferred while the invocation has a model call in flight so that no billed reply is lost unrecorded),
 * one Map item delivered twice, and one timeout injected right after the first pool write of "Save
 * iteration" (`--write-point` moves it: `dynamodb:UpdateItem:POOL#`, `s3:PutObject:pools/`, `*` for any
 * part). `none` runs without faults. Every draw comes from `--seed`.
 *
 * Figures: `completed`; `generated` (what the model returned: the candidate lines the instruction stage
 * wrote, read back from the bucket, plus the unparseable items), `accepted`, `rejected_by_reason` and
 * `unparseable` (the run's counters), so `generated == accepted + Σ rejected_by_reason + unparseable`
 * checks the counters against the files; `pool_meta_count` (the pool's META `taskCount`),
 * `pool_complete_items` (complete items the pool committed, from a table scan), `pending_items`,
 * `staged_items`, `duplicate_instructions` (a normalized instruction stored twice), `billed_calls` (model
 * calls the stand-in answered with a reply), `usage_calls` (the calls the run recorded), timing and the
 * faults that struck. It prints them whether or not the invariants hold.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import { Command, Option } from 'commander';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { createRng } from '../../functions/shared/random.ts';
import { groupCounts } from '../../infra/cli/counts.ts';
import { type Fault, type RuntimeRequest, timeoutAfterWrite } from '../../infra/local/faults.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { type FaultMix, startOpenAIStandIn } from '../support/model-servers.ts';

const CHUNK_TASK = 'Generate instances for a chunk';
const POOL = 'bench';

interface Options {
  seed: string;
  mix: 'realistic' | 'none';
  target: string;
  iterations: string;
  json?: boolean;
  writePoint?: string;
  retryIntervalMs: string;
}

/** The figures the benchmark prints. */
export interface FaultFigures {
  seed: string;
  mix: string;
  completed: boolean;
  status: string;
  error?: string;
  generated: number;
  accepted: number;
  rejected_by_reason: Record<string, number>;
  unparseable: number;
  pool_meta_count: number;
  pool_complete_items: number;
  pending_items: number;
  /** Items still marked staged (written by an iteration that has not committed, or not cleared yet). */
  staged_items: number;
  duplicate_instructions: number;
  billed_calls: number;
  usage_calls: number;
  faults_struck: Record<string, number>;
  /** The invariants that do not hold (empty when the run kept them all). */
  broken_invariants: string[];
  wall_ms: number;
}

/** The invariants a fault-tolerant run keeps, by name, checked on its figures. */
export function brokenInvariants(f: Omit<FaultFigures, 'broken_invariants' | 'wall_ms'>): string[] {
  const rejected = Object.values(f.rejected_by_reason).reduce((sum, n) => sum + n, 0);
  const checks: [string, boolean][] = [
    ['completed', f.completed],
    ['pool_meta_count == pool_complete_items', f.pool_meta_count === f.pool_complete_items],
    [
      'generated == accepted + Σ rejected_by_reason + unparseable',
      f.generated === f.accepted + rejected + f.unparseable,
    ],
    ['pending_items == 0', f.pending_items === 0],
    ['staged_items == 0', f.staged_items === 0],
    ['duplicate_instructions == 0', f.duplicate_instructions === 0],
    ['billed_calls == usage_calls', f.billed_calls === f.usage_calls],
  ];
  return checks.filter(([, holds]) => !holds).map(([name]) => name);
}

const WRITES = /^(Put|Update|Delete|BatchWrite|TransactWrite)/;

/** A request predicate from `<service>:<operation>:<key prefix>` (`*` for any part). */
export function writePoint(spec: string | undefined): (request: RuntimeRequest) => boolean {
  if (!spec) {
    // The first pool write: a pool item or a pool object.
    return (r) =>
      (r.service === 'dynamodb' && WRITES.test(r.operation) && (r.key ?? 'POOL#').startsWith('POOL#')) ||
      (r.service === 's3' && r.operation === 'PutObject' && (r.key ?? '').startsWith('pools/'));
  }
  const [service = '*', operation = '*', prefix = '*'] = spec.split(':');
  return (r) =>
    (service === '*' || r.service === service) &&
    (operation === '*' || r.operation === operation) &&
    (prefix === '*' || (r.key ?? '').startsWith(prefix));
}

interface MapItem {
  input: unknown;
  attempt: number;
  state: string;
  mapInput?: unknown;
}
const chunkIndex = (item: MapItem) => (item.input as { chunk?: { index?: number } }).chunk?.index ?? -1;
const chunkCount = (item: MapItem) =>
  (item.mapInput as { gated?: { chunks?: unknown[] } } | undefined)?.gated?.chunks?.length ?? 0;
const iterationOf = (item: MapItem) =>
  (item.input as { progress?: { iteration?: number } }).progress?.iteration ?? 0;

/** The named mix's faults, every choice drawn from `seed`. */
export function faultPlan(
  mix: Options['mix'],
  seed: string,
  writeAt: (request: RuntimeRequest) => boolean,
): { faults: Fault[]; models: FaultMix | undefined } {
  if (mix === 'none') return { faults: [], models: undefined };
  const rng = createRng(`${seed}/faults`);
  // A per-iteration draw, the same whichever invocation asks first.
  const draw = (what: string, iteration: number, n: number) =>
    n === 0 ? -1 : createRng(`${seed}/${what}/${iteration}`).int(n);
  const crashes: Fault = {
    kind: 'crash',
    // One Map item per iteration: its first delivery, chosen among the iteration's chunks.
    invocation: (item) =>
      item.state === CHUNK_TASK &&
      item.attempt === 1 &&
      chunkIndex(item) === draw('crash', iterationOf(item), chunkCount(item)),
    request: (r) => r.service !== 'model' && WRITES.test(r.operation),
    nth: 1 + rng.int(3),
    deferWhileModelCalls: true,
    times: Number.POSITIVE_INFINITY,
  };
  const duplicate: Fault = {
    kind: 'duplicate',
    invocation: (item) =>
      item.state === CHUNK_TASK &&
      item.attempt === 1 &&
      chunkIndex(item) === draw('duplicate', 0, chunkCount(item)),
  };
  const timeout = timeoutAfterWrite({
    invocation: (item) => item.state === 'Save iteration' && item.attempt === 1,
    request: writeAt,
  });
  return {
    faults: [crashes, duplicate, timeout],
    models: { seed: `${seed}/models`, throttled: 0.2, malformed: 0.05, latencyMs: [5, 40] },
  };
}

const normalize = (instruction: string) => instruction.toLowerCase().replace(/\s+/g, ' ').trim();

/** Runs the benchmark once and returns its figures. */
export async function runFaultBench(options: Options): Promise<FaultFigures> {
  const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-bench-faults-'));
  const { faults, models } = faultPlan(options.mix, options.seed, writePoint(options.writePoint));
  const openai = await startOpenAIStandIn({ seed: options.seed, ...(models ? { mix: models } : {}) });
  const stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    // The operator allows the stand-in's endpoint, as a deployment would allow its model's.
    context: { 'selfinstruct:allowedModelEndpoints': [openai.url] },
  });
  try {
    const started = performance.now();
    const result = await stack.execute(
      {
        pool: POOL,
        model: `openai-compatible:stand-in-chat@${openai.url}`,
        target: Number(options.target),
        maxIterations: Number(options.iterations),
        seed: options.seed,
      },
      { retryIntervalMs: Number(options.retryIntervalMs), faults },
    );
    const wallMs = performance.now() - started;
    const run = await stack.pool.getRun(result.executionName);
    const counts = run?.counts ?? {};
    const groups = groupCounts(counts);

    const doc = DynamoDBDocumentClient.from(new DynamoDBClient(awsClientConfig('dynamodb')));
    const items: Record<string, unknown>[] = [];
    for await (const page of paginateScan({ client: doc }, { TableName: stack.tableName })) {
      items.push(...(page.Items ?? []));
    }
    const tasks = items.filter(
      (item) => item.pk === `POOL#${POOL}` && String(item.sk).startsWith('TASK#'),
    ) as { status: string; instruction: string; staged?: string }[];
    let candidateLines = 0;
    for (const key of await stack.objects.list(`runs/${result.executionName}/`)) {
      if (!key.endsWith('/candidates.jsonl')) continue;
      const text = (await stack.objects.getText(key)) ?? '';
      candidateLines += text.split('\n').filter((line) => line.trim() !== '').length;
    }
    const unparseable = counts.unparseable ?? 0;
    const seen = new Map<string, number>();
    for (const task of tasks)
      seen.set(normalize(task.instruction), (seen.get(normalize(task.instruction)) ?? 0) + 1);

    const figures = {
      seed: options.seed,
      mix: options.mix,
      completed: result.status === 'SUCCEEDED',
      status: result.status,
      ...(result.error ? { error: result.error } : {}),
      generated: candidateLines + unparseable,
      accepted: counts.accepted ?? 0,
      rejected_by_reason: Object.fromEntries(groups.instructions),
      unparseable,
      pool_meta_count: await stack.pool.countComplete(POOL),
      pool_complete_items: tasks.filter((task) => task.status === 'complete' && !task.staged).length,
      pending_items: tasks.filter((task) => task.status === 'pending').length,
      staged_items: tasks.filter((task) => task.staged !== undefined).length,
      duplicate_instructions: [...seen.values()].reduce((sum, n) => sum + n - 1, 0),
      billed_calls: openai.billedCalls(),
      usage_calls: Number(run?.usage?.calls ?? 0),
      faults_struck: result.faultsStruck,
    };
    return { ...figures, broken_invariants: brokenInvariants(figures), wall_ms: Math.round(wallMs) };
  } finally {
    await stack.close();
    await openai.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** The figures as a two-column table. */
export function formatFigures(figures: FaultFigures): string {
  const rows = Object.entries(figures).map(([key, value]) => [
    key,
    typeof value === 'object' ? JSON.stringify(value) : String(value),
  ]);
  const width = Math.max(...rows.map(([key]) => (key ?? '').length));
  return rows.map(([key, value]) => `  ${(key ?? '').padEnd(width)}  ${value}`).join('\n');
}

const program = new Command('bench:faults')
  .description('Runs the state machine on the local stack under a fault mix and prints the invariants')
  .option('--seed <text>', 'seed of every fault draw and of the model stand-in', '1')
  .addOption(new Option('--mix <name>', 'fault mix').choices(['realistic', 'none']).default('realistic'))
  .option('--target <n>', 'tasks the run adds', '100')
  .option('--iterations <n>', 'iteration cap', '2')
  .option('--write-point <spec>', 'where the timeout between a pool write and its counter strikes')
  .option('--retry-interval-ms <ms>', 'state machine retry interval (instead of its backoff)', '50')
  .option('--json', 'print JSON')
  .action(async (options: Options) => {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const figures = await runFaultBench(options);
    console.log(options.json ? JSON.stringify(figures, null, 2) : formatFigures(figures));
    if (figures.broken_invariants.length > 0) process.exitCode = 1;
  });

if (process.argv[1] && /faults\.ts$/.test(process.argv[1])) await program.parseAsync(process.argv);
