/**
 * Memory of "Export dataset" as the pool grows: is it flat?
 *
 *   npm run bench:export -- [--sizes 10000,200000] [--whole | --cli] [--text seeds|synthetic] [--json]
 *
 * Each case runs in a fresh Node.js process (`--expose-gc`) that starts the local S3 server (in a
 * process of its own, as S3 is apart from the function), and runs the stage's core
 * (`exportDataset`) with the S3 adapter on it and a pool whose query yields `size` synthetic machine
 * tasks (`test/support/synthetic-pool.ts` instructions, 1–3 instances of a few hundred characters, the
 * judge's fields), made as they are read, never held: twenty (run, iteration) groups interleaved, as
 * the id order interleaves them, the export's worst case. It samples the resident set and the heap
 * every 5 ms and reads the kernel's peak resident set at the end.
 *
 * `--whole` also runs each size the way the stage wrote before it streamed (emulated: every line kept
 * in memory, never spilled, each file then joined into one string and written with one `PutObject`),
 * for comparison.
 *
 * `--cli` runs the `export` command instead (`infra/cli/export.ts`, every format, train and validation,
 * into a local folder) on the run's `tasks.jsonl` of the same `size` tasks, put in the bucket first.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const HERE = fileURLToPath(import.meta.url);
const MB = 1024 * 1024;

/** The stage streaming, the stage as it wrote before it streamed, or the CLI's `export` command. */
type Mode = 'stream' | 'whole' | 'cli';

interface Figures {
  size: number;
  mode: Mode;
  exportedTasks: number;
  exportedRecords: number;
  /** Bytes of dataset.jsonl + alpaca.json + tasks.jsonl. */
  fileBytes: number;
  beforeRssMb: number;
  peakRssMb: number;
  peakHeapMb: number;
  /** The most text spilled to the temporary folder at once (gzipped), sampled every 200 ms. */
  peakSpillMb: number;
  wallS: number;
  cpuS: number;
}

/** Bytes of the export's spill files under `folder` (its `selfinstruct-export-*` folders). */
function spilledBytes(folder: string): number {
  let bytes = 0;
  try {
    for (const name of readdirSync(folder).filter((n) => n.startsWith('selfinstruct-export-'))) {
      for (const file of readdirSync(path.join(folder, name))) {
        bytes += statSync(path.join(folder, name, file), { throwIfNoEntry: false })?.size ?? 0;
      }
    }
  } catch {
    // Removed while listed: the export is done with it.
  }
  return bytes;
}

/** `selfinstruct export bench-export` in every format into `outDir`, as the command runs it. */
async function cliExport(
  objects: import('../../functions/shared/adapters/s3.ts').S3ObjectStore,
  outDir: string,
): Promise<{ exportedTasks: number; exportedRecords: number }> {
  const { exportDataset } = await import('../../infra/cli/export.ts');
  const { EXPORT_FORMATS } = await import('../../functions/shared/exports/schemas.ts');
  const written = await exportDataset(objects, {
    source: { run: 'bench-export' },
    outDir,
    formats: [...EXPORT_FORMATS],
  });
  const { train, validation } = written.counts;
  return {
    exportedTasks: train.tasks + validation.tasks,
    exportedRecords: train.records + validation.records,
  };
}

/** The child: one size, one mode. */
async function child(
  size: number,
  mode: Mode,
  text: 'seeds' | 'synthetic',
  memoryChars?: number,
): Promise<Figures> {
  const work = mkdtempSync(path.join(tmpdir(), 'bench-export-'));
  // The spilled text goes where the Lambda's would (its /tmp), inside this case's folder.
  process.env.TMPDIR = work;
  const { HeadObjectCommand, S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const { S3ObjectStore } = await import('../../functions/shared/adapters/s3.ts');
  const { awsClientConfig } = await import('../../functions/shared/config.ts');
  const { exportDataset } = await import('../../functions/export/core.ts');
  const { prepareRun } = await import('../../functions/prepare/core.ts');
  const { exportKeys, DEFAULT_SEED_KEY } = await import('../../functions/shared/keys.ts');
  const { taskId } = await import('../../functions/shared/pool-ids.ts');
  const { createRng } = await import('../../functions/shared/random.ts');
  const { startLocalServers, pointSdkAt } = await import('../../infra/local/servers.ts');
  const { MemoryObjects, MemoryPool } = await import('../unit/fakes.ts');
  const { syntheticInstructions } = await import('../support/synthetic-pool.ts');
  type PoolTask = import('../../functions/shared/ports.ts').PoolTask;

  const servers = await startLocalServers(path.join(work, 'data'), { fresh: true, holder: 'bench:export' });
  try {
    pointSdkAt(servers);
    const client = new S3Client(awsClientConfig('s3'));
    await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
    const s3 = new S3ObjectStore('bench', client);
    const objects =
      mode === 'stream'
        ? s3
        : // Before streaming: each file whole in memory, then one PutObject.
          Object.assign(Object.create(s3) as typeof s3, {
            async upload(key: string, body: AsyncIterable<string | Uint8Array>, contentType?: string) {
              let text = '';
              for await (const chunk of body) text += String(chunk);
              await s3.put(key, text, contentType);
            },
          });

    const setup = new MemoryObjects();
    await setup.put(DEFAULT_SEED_KEY, readFileSync(new URL('../../seeds/seed_tasks.jsonl', import.meta.url)));
    const pool = new MemoryPool();
    const state = await prepareRun(
      { runId: 'bench-export', input: { pool: 'bench', target: 1000, seed: 'bench-export' } },
      { objects: setup, pool },
    );

    const rng = createRng('bench-export');
    const sentence = (words: number) =>
      Array.from(
        { length: words },
        () => ['the', 'pool', 'export', 'answer', 'with', 'a', 'clear', 'step'][rng.int(8)],
      ).join(' ');
    // Realistic text: each task takes the shape of a seed task (its instances, each input's and output's
    // length, line breaks and words) with its words shuffled. The offline model writes its tasks by
    // recombining seed demonstrations, so its lengths are the seeds'; shuffled words compress worse under
    // gzip than prose does, so the spill measured is an upper bound for text like it.
    const seedTasks = readFileSync(new URL('../../seeds/seed_tasks.jsonl', import.meta.url), 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as { instances: { input: string; output: string }[] });
    const shuffled = (text: string) => {
      const parts = text.split(/(\s+)/);
      const words = rng.shuffle(parts.filter((_, i) => i % 2 === 0));
      return parts.map((part, i) => (i % 2 === 0 ? (words[i / 2] ?? '') : part)).join('');
    };
    const instancesOf = (): { input: string; output: string }[] => {
      if (text === 'synthetic') {
        return Array.from({ length: 1 + rng.int(3) }, () => ({ input: sentence(12), output: sentence(50) }));
      }
      const seed = seedTasks[rng.int(seedTasks.length)] as (typeof seedTasks)[number];
      return seed.instances.map(({ input, output }) => ({
        input: shuffled(input),
        output: shuffled(output),
      }));
    };
    async function* tasks(): AsyncGenerator<PoolTask> {
      const createdAt = new Date().toISOString();
      for (let from = 0; from < size; from += 1000) {
        const instructions = syntheticInstructions(Math.min(1000, size - from), `export-${from}`);
        for (const [j, instruction] of instructions.entries()) {
          const i = from + j;
          yield {
            id: taskId(`${instruction} #${i}`),
            pool: 'bench',
            instruction,
            source: 'machine',
            status: 'complete',
            instances: instancesOf(),
            isClassification: false,
            runId: `bench-run-${i % 5}`,
            iteration: 1 + (Math.floor(i / 5) % 4),
            mostSimilar: { instruction: `${instruction} again`, score: 0.5 },
            avgSimilarity: 0.1,
            quality: {
              score: 4,
              instructionValid: true,
              inputAppropriate: true,
              outputCorrect: true,
              reason: sentence(10),
            },
            createdAt,
          };
        }
      }
    }
    const keys = exportKeys('bench-export');
    if (mode === 'cli') {
      // The run's export as the stage leaves it: its summary (of an empty pool), then the pool's tasks.jsonl,
      // streamed up, which the command reads.
      await exportDataset(state, { objects: s3, pool });
      const { toSeedFormat } = await import('../../functions/shared/exports/formats.ts');
      async function* lines() {
        for await (const task of tasks()) yield `${JSON.stringify(toSeedFormat(task))}\n`;
      }
      await s3.upload(keys.tasks, lines(), 'application/jsonl');
    }
    pool.listTasks = () => tasks();

    globalThis.gc?.();
    const beforeRss = process.memoryUsage.rss();
    let peakRss = beforeRss;
    let peakHeap = process.memoryUsage().heapUsed;
    const timer = setInterval(() => {
      const usage = process.memoryUsage();
      peakRss = Math.max(peakRss, usage.rss);
      peakHeap = Math.max(peakHeap, usage.heapUsed);
    }, 5);
    let peakSpill = 0;
    const spillTimer = setInterval(() => {
      peakSpill = Math.max(peakSpill, spilledBytes(work));
    }, 200);
    const cpu = process.cpuUsage();
    const wall = performance.now();
    const outDir = path.join(work, 'out');
    const summary =
      mode === 'cli'
        ? await cliExport(s3, outDir)
        : // Before streaming, every line stayed in memory until the files were joined.
          await exportDataset(
            state,
            { objects, pool },
            { memoryChars: mode === 'whole' ? Number.POSITIVE_INFINITY : memoryChars },
          );
    const wallS = (performance.now() - wall) / 1000;
    const used = process.cpuUsage(cpu);
    clearInterval(timer);
    clearInterval(spillTimer);
    // The kernel's peak (kB): what sampling between event-loop turns can miss.
    peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);

    let fileBytes = 0;
    if (mode === 'cli') {
      for (const file of readdirSync(outDir, { recursive: true, encoding: 'utf8' })) {
        if (file.endsWith('.json') || file.endsWith('.jsonl'))
          fileBytes += statSync(path.join(outDir, file)).size;
      }
    } else {
      for (const key of [keys.dataset, keys.alpaca, keys.tasks]) {
        fileBytes +=
          (await client.send(new HeadObjectCommand({ Bucket: 'bench', Key: key }))).ContentLength ?? 0;
      }
    }
    return {
      size,
      mode,
      exportedTasks: summary.exportedTasks,
      exportedRecords: summary.exportedRecords,
      fileBytes,
      beforeRssMb: beforeRss / MB,
      peakRssMb: peakRss / MB,
      peakHeapMb: peakHeap / MB,
      peakSpillMb: peakSpill / MB,
      wallS,
      cpuS: (used.user + used.system) / 1e6,
    };
  } finally {
    await servers.close();
    rmSync(work, { recursive: true, force: true });
  }
}

const program = new Command('bench:export')
  .option('--sizes <list>', 'pool sizes (machine tasks), comma-separated', '10000,200000')
  .option('--whole', 'also run the export as it was before streaming (whole files in memory)')
  .option(
    '--memory-chars <n>',
    'text the export keeps in memory before it spills to /tmp (default: the stage’s)',
  )
  .option(
    '--text <kind>',
    'instances: seeds (the seed tasks’ lengths and words, shuffled) or synthetic (short sentences of 8 words)',
    'seeds',
  )
  .option('--cli', 'run the `export` command (every format, from the run’s tasks.jsonl) instead of the stage')
  .option('--json', 'print JSON')
  .option('--child <size:mode>', '(internal) run one case')
  .action(
    async (options: {
      sizes: string;
      whole?: boolean;
      memoryChars?: string;
      text: string;
      cli?: boolean;
      json?: boolean;
      child?: string;
    }) => {
      if (options.text !== 'seeds' && options.text !== 'synthetic')
        throw new Error('--text: seeds or synthetic');
      const text = options.text;
      const memoryChars = options.memoryChars === undefined ? undefined : Number(options.memoryChars);
      if (options.child) {
        const [size = '0', mode = 'stream'] = options.child.split(':');
        process.stdout.write(
          `${JSON.stringify(await child(Number(size), mode as Mode, text, memoryChars))}\n`,
        );
        return;
      }
      const modes = options.cli ? ['cli'] : options.whole ? ['stream', 'whole'] : ['stream'];
      const results: Figures[] = [];
      for (const size of options.sizes.split(',').map(Number)) {
        for (const mode of modes) {
          const run = spawnSync(
            process.execPath,
            [
              '--expose-gc',
              '--import',
              'tsx',
              HERE,
              '--child',
              `${size}:${mode}`,
              '--text',
              text,
              ...(memoryChars === undefined ? [] : ['--memory-chars', String(memoryChars)]),
            ],
            {
              encoding: 'utf8',
              maxBuffer: 16 * MB,
            },
          );
          if (run.status !== 0) throw new Error(`${size}:${mode} failed:\n${run.stderr}`);
          const figures = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Figures;
          results.push(figures);
          process.stderr.write(`${size} ${mode}: peak RSS ${figures.peakRssMb.toFixed(0)} MiB\n`);
        }
      }
      if (options.json) {
        process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        '| pool | mode | records | files | RSS before | peak RSS | peak heap | spilled (gzip) | spill/task | wall | CPU |\n',
      );
      process.stdout.write('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n');
      for (const r of results) {
        process.stdout.write(
          `| ${r.size.toLocaleString('en-US')} | ${r.mode} | ${r.exportedRecords.toLocaleString('en-US')} | ${(r.fileBytes / MB).toFixed(0)} MiB | ${r.beforeRssMb.toFixed(0)} MiB | ${r.peakRssMb.toFixed(0)} MiB | ${r.peakHeapMb.toFixed(0)} MiB | ${r.peakSpillMb.toFixed(0)} MiB | ${((r.peakSpillMb * MB) / r.size).toFixed(0)} B | ${r.wallS.toFixed(1)} s | ${r.cpuS.toFixed(1)} s |\n`,
        );
      }
    },
  );

await program.parseAsync();
