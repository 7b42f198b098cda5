/**
 * The sharded gate's figures: the gate's pair rate in one process, the CPU of a shard's two steps (the
 * sharded gate scans each pair twice, see `engine/sharded.ts`) and of the decisions step, on a
 * realistic synthetic workload (`bench:dedup`'s), and from them the projected wall time of one
 * iteration's gate at `--project` instructions with each count of `--shards`.
 *
 *   npm run bench:shards -- [--pool 100000] [--candidates 2000] [--project 1000000] [--shards 1,4,16,40]
 *
 * Projection (one shard per Lambda at 1,769 MB, one vCPU, assumed as fast as a core here): the two
 * steps' CPU per pair times the pairs of one shard's range, plus the decisions step, plus 0.1 s per
 * state transition on the sharded path (its 5 states and one item of each Map, the items starting
 * together; `estimate`'s figure per transition) and 0.5 s per step for the S3 objects the steps hand
 * each other (assumptions, not measured here; Map items starting together is Step Functions' inline
 * Map up to its concurrency, which `gateShards` stays within). The segments are assumed cached in the shard's `/tmp` (a warm function): a cold one
 * reads its range from S3 once.
 */
import { Command } from 'commander';
import { DEFAULT_TOP_K, gate, RougeIndex } from '../../functions/shared/engine/gate.ts';
import { decideBatch, prepareBatch } from '../../functions/shared/engine/scoring.ts';
import { shardHighest, shardScores } from '../../functions/shared/engine/sharded.ts';
import { Workload } from './dedup.ts';

const cpuSeconds = <T>(run: () => T): { value: T; cpu: number } => {
  const start = process.cpuUsage();
  const value = run();
  const used = process.cpuUsage(start);
  return { value, cpu: (used.user + used.system) / 1e6 };
};

const program = new Command()
  .option('--pool <n>', 'instructions in the measured pool', '100000')
  .option('--candidates <n>', 'candidates of one iteration', '2000')
  .option('--project <n>', 'pool size of the projection', '1000000')
  .option('--shards <list>', 'shard counts of the projection', '1,4,16,40')
  .parse();
const options = program.opts<{ pool: string; candidates: string; project: string; shards: string }>();
const poolSize = Number(options.pool);
const count = Number(options.candidates);
const projected = Number(options.project);

const workload = new Workload('bench-shards');
const pool = workload.next(poolSize);
const candidates = workload.next(count);
const pairs = poolSize * count;

const inProcess = cpuSeconds(() => gate(RougeIndex.from(pool), candidates));
// The index build is not the gate's: measured apart and taken out.
const build = cpuSeconds(() => RougeIndex.from(pool));
const gateCpu = inProcess.cpu - build.cpu;

const index = build.value;
const highest = cpuSeconds(() => shardHighest(index, 0, poolSize, candidates));
const decide = cpuSeconds(() =>
  decideBatch(prepareBatch(index, candidates), highest.value, poolSize, 0.7, true),
);
const sizes = decide.value.map((decision) => decision.size);
const scores = cpuSeconds(() =>
  shardScores(index, { from: 0, to: poolSize, offset: 0 }, candidates, sizes, DEFAULT_TOP_K),
);
const stepsPerPair = (highest.cpu + scores.cpu) / pairs;
const accepted = decide.value.filter((decision) => decision.accepted).length;

console.log(
  `measured: pool ${poolSize.toLocaleString('en')}, ${count.toLocaleString('en')} candidates (${accepted} accepted), ${(pairs / 1e6).toFixed(0)} M pairs`,
);
console.log(
  `  gate in one process: ${gateCpu.toFixed(2)} CPU-s, ${(pairs / gateCpu / 1e6).toFixed(1)} M pairs/CPU-s`,
);
console.log(
  `  shard steps: highest ${highest.cpu.toFixed(2)} CPU-s + top 10 and mean ${scores.cpu.toFixed(2)} CPU-s (${((highest.cpu + scores.cpu) / gateCpu).toFixed(2)}× the gate's); decisions ${decide.cpu.toFixed(2)} CPU-s`,
);
const projectedPairs = projected * count;
console.log(
  `projected one iteration's gate at ${projected.toLocaleString('en')} instructions, ${count.toLocaleString('en')} candidates (${(projectedPairs / 1e9).toFixed(1)} G pairs):`,
);
console.log(`  in one process: ${(projectedPairs / (pairs / gateCpu)).toFixed(0)} s`);
for (const shards of options.shards.split(',').map(Number)) {
  const compute = (stepsPerPair * projectedPairs) / shards;
  // The Map items start together: each Map adds one item's transition to the path, not one per shard.
  const overhead = 0.1 * (5 + 2) + 0.5 * 3;
  console.log(
    `  ${String(shards).padStart(3)} shards: ${(compute + decide.cpu + overhead).toFixed(1)} s (shards ${compute.toFixed(1)} s, decisions ${decide.cpu.toFixed(1)} s, transitions and S3 ${overhead.toFixed(1)} s)`,
  );
}
