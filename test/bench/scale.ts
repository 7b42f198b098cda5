/**
 * Scale benchmark: does an iteration's cost, apart from the gate's pair work, stay flat as the pool grows?
 *
 *   npm run bench:scale -- [--sizes 10000,50000,200000,1000000] [--candidates 2000] [--items 20000] [--json]
 *
 * For each size it starts the local stack (the real local S3 and DynamoDB servers, in their process, and
 * the stages' own adapters), prepares a run on a pool of its own, and preloads the pool as its commits
 * would have left it: the synthetic instructions (`test/support/synthetic-pool.ts`) as index segments of
 * 50,000 written straight to S3, the last one of `--candidates` instructions (one iteration's), the
 * manifest, the demonstrations sample, and one commit on the pool's `META` counting them all. Then a
 * function's cold load of the committed index but its last segment (what a function that ran the
 * iteration before holds), and ONE iteration of the stages, each core called in this process with the
 * stack's adapters, timed in CPU (this process: the servers' CPU, AWS's side, is not counted) and wall:
 * Generate instructions (offline model, sized for about `--candidates` candidates), Filter and
 * deduplicate (and, apart, the gate's pair work on the same survivors, which grows with the pool by
 * design), Generate instances (all chunks), Save iteration, and Export dataset (per task).
 *
 * DynamoDB items: the local DynamoDB (dynalite, on LevelDB) writes about 2,000 items a second here, so
 * only `--items` of the pool's tasks are written as items (all of them when the pool is smaller). The
 * iteration's stages read items by id (their own tasks) and the `META` item only, never the pool's other
 * items, so their figures don't depend on them; Export reads every item, so its figure is per task.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Command } from 'commander';
import pLimit from 'p-limit';
import { exportDataset } from '../../functions/export/core.ts';
import { FilterInput, filterAndDeduplicate } from '../../functions/filter/core.ts';
import { generateInstances } from '../../functions/generate-instances/core.ts';
import { generateInstructions } from '../../functions/generate-instructions/core.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { saveIteration } from '../../functions/save-iteration/core.ts';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { EMPTY_SAMPLE, extendSample } from '../../functions/shared/demonstrations.ts';
import { gate } from '../../functions/shared/engine/gate.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { poolKeys } from '../../functions/shared/keys.ts';
import { createTextModel } from '../../functions/shared/models/index.ts';
import { taskId } from '../../functions/shared/pool-ids.ts';
import {
  appendSegment,
  openPoolIndex,
  readManifest,
  segmentLoads,
} from '../../functions/shared/pool-index.ts';
import type { PoolTask } from '../../functions/shared/ports.ts';
import { createRng } from '../../functions/shared/random.ts';
import type { GateRecord, IndexManifest } from '../../functions/shared/records.ts';
import type { RunState } from '../../functions/shared/schemas.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { syntheticInstructions } from '../support/synthetic-pool.ts';

const SEGMENT = 50_000;

interface Timing {
  cpuMs: number;
  wallMs: number;
}

/** One size's figures. */
export interface ScaleRow {
  pool: number;
  items: number;
  preloadS: number;
  coldLoad: Timing;
  candidates: number;
  accepted: number;
  generate: Timing;
  filter: Timing;
  gate: Timing;
  instances: Timing;
  save: Timing;
  exportPerTask: Timing;
  exported: number;
  /** Filter's segment loads in the timed iteration: reused from memory, read from S3. */
  segments: { reused: number; fromStore: number; fromDisk: number };
}

async function timed<T>(work: () => Promise<T>): Promise<[T, Timing]> {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  const result = await work();
  const used = process.cpuUsage(cpu);
  return [result, { cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - wall }];
}

/** Writes `tasks` as items, 25 per BatchWriteItem, 8 requests at once. */
async function writeItems(table: string, tasks: readonly PoolTask[]): Promise<void> {
  const base = new DynamoDBClient(awsClientConfig('dynamodb'));
  const client = DynamoDBDocumentClient.from(base, { marshallOptions: { removeUndefinedValues: true } });
  const limit = pLimit(8);
  const batches: PoolTask[][] = [];
  for (let i = 0; i < tasks.length; i += 25) batches.push(tasks.slice(i, i + 25));
  await Promise.all(
    batches.map((batch) =>
      limit(async () => {
        let requests = batch.map((task) => ({
          PutRequest: { Item: { pk: `POOL#${task.pool}`, sk: `TASK#${task.id}`, ...task } },
        }));
        while (requests.length > 0) {
          const reply = await client.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
          requests = (reply.UnprocessedItems?.[table] ?? []) as typeof requests;
        }
      }),
    ),
  );
  base.destroy();
}

async function measure(size: number, options: { candidates: number; items: number }): Promise<ScaleRow> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bench-scale-'));
  // A /tmp segment cache of this size's own: the cold load reads S3, not an earlier bench's files.
  process.env.SELFINSTRUCT_INDEX_CACHE = path.join(dataDir, 'segment-cache');
  const stack = await LocalStack.start({ dataDir, fresh: true, holder: 'bench:scale', iam: false });
  const { objects, pool } = stack;
  try {
    const name = `scale-${size}`;
    const runId = `bench-${size}`;
    const prepared = await prepareRun(
      {
        runId,
        input: {
          pool: name,
          seed: 'bench-scale',
          target: 1_000_000,
          maxIterations: 10,
          // The offline model's replies hold about 10 tasks each.
          promptsPerIteration: Math.ceil(options.candidates / 9),
          embeddingModel: 'none',
        },
      },
      { objects, pool },
    );
    const preloadStart = performance.now();
    // The pool as its commits would have left it: seeds (prepared), then machine tasks in segments.
    const seeds = prepared.progress.poolSize;
    const machine = syntheticInstructions(Math.max(0, size - seeds), `pool-${size}`);
    const keys = poolKeys(name);
    let manifest: IndexManifest = await readManifest(
      objects,
      (await pool.getMeta(name))?.indexKey ?? keys.index,
    );
    const last = Math.max(0, machine.length - options.candidates);
    const bounds: number[] = [];
    for (let from = 0; from < last; from += SEGMENT) bounds.push(from);
    bounds.push(last);
    for (const [i, from] of bounds.entries()) {
      const to = bounds[i + 1] ?? machine.length;
      const key = `${keys.segment('preload', i + 1)}`;
      manifest = await appendSegment(objects, manifest, { writeTo: key, key }, machine.slice(from, to));
    }
    const demonstrations = keys.demonstrations('preload', 1);
    await objects.put(
      demonstrations,
      JSON.stringify(extendSample(EMPTY_SAMPLE, machine, createRng('preload'))),
    );
    const indexKey = keys.indexVersion(runId, 1);
    await objects.put(indexKey, JSON.stringify({ ...manifest, demonstrations }), 'application/json');
    const createdAt = new Date().toISOString();
    const items = machine.slice(0, options.items).map(
      (instruction, i): PoolTask => ({
        id: taskId(instruction),
        pool: name,
        instruction,
        source: 'machine',
        status: 'complete',
        instances: [{ input: `input ${i}`, output: `output of ${instruction}` }],
        isClassification: false,
        runId: 'preload',
        iteration: 1 + Math.floor(i / SEGMENT),
        createdAt,
      }),
    );
    await writeItems(stack.tableName, items);
    const committed = await pool.commit(name, {
      runId,
      iteration: 1,
      fence: prepared.progress.fence,
      complete: machine.length,
      indexKey,
    });
    if (committed !== 'committed') throw new Error(`preload commit: ${committed}`);
    const preloadS = (performance.now() - preloadStart) / 1000;

    // A function that ran the iteration before: it holds every segment but the last.
    const [, coldLoad] = await timed(async () => {
      const held = { ...manifest, segments: manifest.segments.slice(0, -1) };
      (await openPoolIndex(objects, held)).release();
    });

    const state: RunState = {
      ...prepared,
      progress: { ...prepared.progress, iteration: 1, poolSize: size },
    };
    const model = await createTextModel(state.config.model, { seed: state.config.seed, pool });
    const [generated, generate] = await timed(() => generateInstructions(state, { objects, pool, model }));
    const [gated, filter] = await timed(() =>
      filterAndDeduplicate(FilterInput.parse({ ...state, candidatesKey: generated.candidatesKey }), {
        objects,
        pool,
      }),
    );
    const segments = { ...segmentLoads };
    // The gate's pair work alone, on the same survivors against the same index (what Filter's gate did).
    const survivors = fromJsonLines<GateRecord>((await objects.getText(gated.decisionsKey)) ?? '')
      .filter((decision) => decision.max_similarity !== null)
      .map((decision) => decision.instruction);
    const [, gateTime] = await timed(async () => {
      const lease = await openPoolIndex(objects, await readManifest(objects, indexKey));
      try {
        gate(lease.index, survivors, { threshold: state.config.rougeThreshold });
      } finally {
        lease.release();
      }
    });
    const [results, instances] = await timed(() =>
      Promise.all(
        gated.chunks.map(async (chunk) =>
          generateInstances(
            { runId, config: state.config, progress: state.progress, chunk },
            {
              objects,
              pool,
              model: await createTextModel(state.config.model, {
                seed: `${state.config.seed}:chunk-${chunk.index}`,
                pool,
              }),
            },
          ),
        ),
      ),
    );
    const [saved, save] = await timed(() =>
      saveIteration(
        {
          ...state,
          generated,
          gated: { chunks: gated.chunks, counts: gated.counts },
          instances: results,
        },
        { objects, pool },
      ),
    );
    const [summary, exported] = await timed(() => exportDataset(saved, { objects, pool }));
    const per = Math.max(1, summary.exportedTasks);
    return {
      pool: size,
      items: items.length,
      preloadS,
      coldLoad,
      candidates: generated.candidates,
      accepted: gated.counts.accepted ?? 0,
      generate,
      filter,
      gate: gateTime,
      instances,
      save,
      exportPerTask: { cpuMs: exported.cpuMs / per, wallMs: exported.wallMs / per },
      exported: summary.exportedTasks,
      segments,
    };
  } finally {
    await stack.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const ms = (t: Timing) => `${Math.round(t.cpuMs)} / ${Math.round(t.wallMs)}`;

function print(rows: readonly ScaleRow[]): void {
  const header = [
    'pool',
    'cold load',
    'cand.',
    'acc.',
    'Generate instr.',
    'Filter',
    'of which gate',
    'Filter − gate',
    'Gen. instances',
    'Save',
    'non-gate total',
    'Export / task',
  ];
  const lines = rows.map((row) => {
    const nonGate = row.generate.cpuMs + row.filter.cpuMs - row.gate.cpuMs + row.save.cpuMs;
    return [
      row.pool.toLocaleString('en-US'),
      ms(row.coldLoad),
      String(row.candidates),
      String(row.accepted),
      ms(row.generate),
      ms(row.filter),
      ms(row.gate),
      String(Math.round(row.filter.cpuMs - row.gate.cpuMs)),
      ms(row.instances),
      ms(row.save),
      String(Math.round(nonGate)),
      `${row.exportPerTask.cpuMs.toFixed(3)} / ${row.exportPerTask.wallMs.toFixed(3)} (${row.exported} tasks)`,
    ];
  });
  console.log('CPU / wall, ms. "non-gate total" = CPU of Generate instructions + Filter − gate + Save.');
  console.log(`| ${header.join(' | ')} |`);
  console.log(`| ${header.map(() => '---').join(' | ')} |`);
  for (const line of lines) console.log(`| ${line.join(' | ')} |`);
  const first = rows[0];
  const lastRow = rows.at(-1);
  if (first && lastRow && first !== lastRow) {
    const nonGate = (row: ScaleRow) =>
      row.generate.cpuMs + row.filter.cpuMs - row.gate.cpuMs + row.save.cpuMs;
    console.log(
      `non-gate CPU at ${lastRow.pool.toLocaleString('en-US')}: ${(nonGate(lastRow) / nonGate(first)).toFixed(2)}× that at ${first.pool.toLocaleString('en-US')}`,
    );
  }
}

const program = new Command('bench:scale')
  .option('--sizes <list>', 'pool sizes, comma-separated', '10000,50000,200000,1000000')
  .option('--candidates <n>', 'candidates of the timed iteration (about)', '2000')
  .option('--items <n>', 'pool tasks written as DynamoDB items (at most)', '20000')
  .option('--json', 'print the rows as JSON too');
program.parse();
const opts = program.opts<{ sizes: string; candidates: string; items: string; json?: boolean }>();
const rows: ScaleRow[] = [];
for (const size of opts.sizes.split(',').map(Number)) {
  const row = await measure(size, { candidates: Number(opts.candidates), items: Number(opts.items) });
  console.error(
    `pool ${size}: preloaded in ${row.preloadS.toFixed(1)} s (${row.items} items); Filter reused ${row.segments.reused} segments, read ${row.segments.fromStore} from S3 and ${row.segments.fromDisk} from /tmp`,
  );
  rows.push(row);
}
print(rows);
if (opts.json) console.log(JSON.stringify(rows, null, 2));
