/**
 * Memory of the model-calling stages: what their Lambda functions need, to size them
 * (`functions/stages.ts`) from a measurement rather than a guess.
 *
 *   npm run bench:memory -- [--pool 192,52000] [--json]
 *
 * Each case runs in a fresh Node.js process (`--expose-gc`) that first imports the stage's handler
 * module, as Lambda loads its bundle (the AWS SDK clients, the model adapters, constructed), then
 * builds an in-memory pool (the unit tests' ports: S3 and DynamoDB are the fakes) of `--pool`
 * instructions, with the offline model, and runs the stage at its largest default size: "Generate
 * instructions" with 200 calls (the per-iteration maximum) against that pool (it loads the pool's
 * ROUGE-L index), "Generate instances for a chunk" on a chunk of 40 ids (the default `chunkSize`) with
 * the judge. It collects garbage, then samples the resident set every 2 ms while the stage runs.
 *
 * Figures per case: RSS at start (Node.js, tsx and the handler's modules), RSS before the stage (plus
 * the in-memory pool, which a Lambda does not hold: an upper bound), the peak RSS during the stage,
 * and the stage's CPU time. The fakes hold the bucket's objects in the process, so the figures are
 * above what the function holds; the offline model answers at once, so calls that would overlap for
 * seconds overlap less: `callConcurrency` (8) bounds them either way.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const HERE = fileURLToPath(import.meta.url);

interface Figures {
  stage: string;
  pool: number;
  startRssMb: number;
  beforeRssMb: number;
  peakRssMb: number;
  cpuMs: number;
  /** Model calls the stage made (each parsed, screened and recorded: the CPU per call). */
  calls: number;
}

const MB = 1024 * 1024;

/** The child: one stage, one pool size. */
async function child(stage: string, poolSize: number): Promise<Figures> {
  process.env.BUCKET_NAME ??= 'bench';
  process.env.TABLE_NAME ??= 'bench';
  process.env.AWS_REGION ??= 'us-east-1';
  await import(
    stage === 'generate-instructions'
      ? '../../functions/generate-instructions/handler.ts'
      : '../../functions/generate-instances/handler.ts'
  );
  const startRss = process.memoryUsage.rss();
  const { MemoryObjects, MemoryPool } = await import('../unit/fakes.ts');
  const { prepareRun } = await import('../../functions/prepare/core.ts');
  const { generateInstructions } = await import('../../functions/generate-instructions/core.ts');
  const { filterAndDeduplicate } = await import('../../functions/filter/core.ts');
  const { generateInstances } = await import('../../functions/generate-instances/core.ts');
  const { OfflineModel } = await import('../../functions/shared/models/offline.ts');
  const { toJsonLines, fromJsonLines } = await import('../../functions/shared/json-lines.ts');

  // The shipped seeds, then numbered variants of them up to the pool size (distinct instructions).
  const shipped = fromJsonLines<{ instruction: string; instances: unknown[] }>(
    readFileSync(new URL('../../seeds/seed_tasks.jsonl', import.meta.url), 'utf8'),
  );
  const seeds = Array.from({ length: poolSize }, (_, i) => {
    const base = shipped[i % shipped.length] ?? shipped[0];
    const round = Math.floor(i / shipped.length);
    return {
      id: `seed_task_${i}`,
      name: `task-${i}`,
      instruction: round === 0 ? base?.instruction : `${base?.instruction} (variant ${round})`,
      instances: base?.instances,
      is_classification: false,
    };
  });
  const objects = new MemoryObjects();
  const pool = new MemoryPool();
  await objects.put('seeds/bench/seeds.jsonl', toJsonLines(seeds));
  const offline = new OfflineModel({ seed: 'memory' });
  let calls = 0;
  const model: typeof offline = Object.assign(Object.create(offline), {
    generate: (request: Parameters<typeof offline.generate>[0]) => {
      calls++;
      return offline.generate(request);
    },
  });
  const deps = { objects, pool, model };
  const input = { seedKey: 'seeds/bench/seeds.jsonl', target: 1000, maxIterations: 3, seed: 'memory' };

  let state = await prepareRun({ runId: 'run-1', input }, deps);
  let measured: () => Promise<unknown>;
  if (stage === 'generate-instructions') {
    state = { ...state, config: { ...state.config, promptsPerIteration: 200 } };
    measured = () => generateInstructions(state, deps);
  } else {
    // One small iteration up to the gate, so the chunk's tasks are pending in the pool.
    const small = { ...state, config: { ...state.config, promptsPerIteration: 6, chunkSize: 40 } };
    const generated = await generateInstructions(small, deps);
    const gated = await filterAndDeduplicate({ ...small, candidatesKey: generated.candidatesKey }, deps);
    const chunk = gated.chunks[0];
    if (!chunk) throw new Error('the gate accepted nothing: no chunk to measure');
    measured = () => generateInstances({ ...small, chunk }, deps);
  }
  globalThis.gc?.();
  calls = 0;
  const beforeRss = process.memoryUsage.rss();
  let peak = beforeRss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 2);
  const cpu = process.cpuUsage();
  await measured();
  const used = process.cpuUsage(cpu);
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage.rss());
  return {
    stage,
    pool: poolSize,
    startRssMb: startRss / MB,
    beforeRssMb: beforeRss / MB,
    peakRssMb: peak / MB,
    cpuMs: (used.user + used.system) / 1000,
    calls,
  };
}

const program = new Command('bench:memory')
  .option('--pool <sizes>', 'pool sizes (instructions), comma-separated', '192,52000')
  .option('--json', 'print JSON')
  .option('--child <stage:pool>', '(internal) run one case')
  .action(async (options: { pool: string; json?: boolean; child?: string }) => {
    if (options.child) {
      const [stage = '', pool = '0'] = options.child.split(':');
      process.stdout.write(`${JSON.stringify(await child(stage, Number(pool)))}\n`);
      return;
    }
    const sizes = options.pool.split(',').map(Number);
    const cases = [
      ...sizes.map((pool) => `generate-instructions:${pool}`),
      // A chunk's memory does not depend on the pool: it reads its own 40 tasks.
      'generate-instances:192',
    ];
    const results: Figures[] = [];
    for (const which of cases) {
      const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', HERE, '--child', which], {
        encoding: 'utf8',
        maxBuffer: 16 * MB,
      });
      if (run.status !== 0) throw new Error(`${which} failed:\n${run.stderr}`);
      results.push(JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Figures);
    }
    if (options.json) {
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      'stage                    pool  RSS start  before stage  peak in stage  CPU ms  calls  CPU ms/call\n',
    );
    for (const r of results) {
      process.stdout.write(
        `${r.stage.padEnd(22)} ${String(r.pool).padStart(6)} ${r.startRssMb.toFixed(0).padStart(9)} MiB ${r.beforeRssMb.toFixed(0).padStart(9)} MiB ${r.peakRssMb.toFixed(0).padStart(10)} MiB ${r.cpuMs.toFixed(0).padStart(7)} ${String(r.calls).padStart(6)} ${(r.cpuMs / Math.max(1, r.calls)).toFixed(2).padStart(12)}\n`,
      );
    }
  });

await program.parseAsync();
