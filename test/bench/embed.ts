/**
 * Benchmark of the near-duplicate gate's exact search (`functions/shared/engine/vector-index.ts`): a pool
 * of `--pool` unit vectors and `--candidates` queries, drawn from a seeded Gaussian (the worst case for
 * any index: no structure to prune with, so every pool vector is scored), at 256 and 1,024 dimensions
 * (Titan Text Embeddings V2's smallest and largest sizes).
 *
 *   npm run bench:embed -- [--pool 52000] [--candidates 2000] [--runs 3] [--baseline-candidates 200] [--seed 1]
 *
 * For each size it prints the median wall time of `--runs` searches of all candidates with the
 * WebAssembly SIMD kernel, and the time of the plain JavaScript loop (`nearestPlain`: four queries per
 * pass over the pool, the fastest plain loop over Float32Arrays found) on the first
 * `--baseline-candidates` candidates, scaled to all of them (its time is linear in the candidates: no
 * set-up, no cache of the queries), the speed-up, and whether both found the same nearest rows and
 * scores (within float32 rounding) on those candidates; exit code 1 when they differ. The kernel's CPU
 * time (one thread) is printed next to its wall time, and the machine's load average with them: on a
 * shared machine the wall time is the CPU time stretched by the other processes.
 */
import { availableParallelism, loadavg } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { nearestPlain, normalized, searchRows } from '../../functions/shared/engine/vector-index.ts';
import { createRng } from '../../functions/shared/random.ts';

const count = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};
const options = new Command()
  .option('--pool <n>', 'pool vectors', count, 52_000)
  .option('--candidates <n>', 'candidates per search', count, 2_000)
  .option('--runs <n>', 'searches timed (median)', count, 3)
  .option('--baseline-candidates <n>', 'candidates the plain loop scores', count, 200)
  .option('--seed <s>', 'random seed', '1')
  .parse()
  .opts<{ pool: number; candidates: number; runs: number; baselineCandidates: number; seed: string }>();

function gaussianUnitVectors(n: number, dimensions: number, seed: string): Float32Array[] {
  const rng = createRng(seed);
  const random = () => rng.next();
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Array.from({ length: n }, () => normalized(Array.from({ length: dimensions }, gaussian)));
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

console.log(
  `pool ${options.pool} vectors, ${options.candidates} candidates, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')} on ${availableParallelism()} CPUs`,
);
let failed = false;
for (const dimensions of [256, 1024]) {
  const poolVectors = gaussianUnitVectors(options.pool, dimensions, `${options.seed}/pool/${dimensions}`);
  const rows = new Float32Array(options.pool * dimensions);
  poolVectors.forEach((vector, j) => {
    rows.set(vector, j * dimensions);
  });
  const queries = gaussianUnitVectors(
    options.candidates,
    dimensions,
    `${options.seed}/queries/${dimensions}`,
  );
  const times: number[] = [];
  const cpuTimes: number[] = [];
  let found = searchRows(rows, options.pool, dimensions, queries);
  for (let run = 0; run < options.runs; run++) {
    const start = performance.now();
    const cpu = process.cpuUsage();
    found = searchRows(rows, options.pool, dimensions, queries);
    times.push(performance.now() - start);
    const used = process.cpuUsage(cpu);
    cpuTimes.push((used.user + used.system) / 1000);
  }
  const sample = queries.slice(0, Math.min(options.baselineCandidates, queries.length));
  const start = performance.now();
  const plain = nearestPlain(rows, options.pool, dimensions, sample);
  const plainMs = ((performance.now() - start) * queries.length) / sample.length;
  const same = plain.every(
    (p, i) => p.row === found[i]?.row || Math.abs(p.score - (found[i]?.score ?? Number.NaN)) < 1e-5,
  );
  const scoresAgree = plain.every((p, i) => Math.abs(p.score - (found[i]?.score ?? Number.NaN)) < 1e-5);
  if (!same || !scoresAgree) failed = true;
  const kernelMs = median(times);
  console.log(
    `${String(dimensions).padStart(4)} dimensions: kernel ${seconds(kernelMs)} (median of ${options.runs}: ${times
      .map(seconds)
      .join(
        ', ',
      )}; CPU ${seconds(median(cpuTimes))}), plain JavaScript ${seconds(plainMs)} (${sample.length} candidates × ${(
      queries.length / sample.length
    ).toFixed(0)}), ${(plainMs / kernelMs).toFixed(1)}× faster, same nearest: ${same && scoresAgree}`,
  );
}
process.exitCode = failed ? 1 : 0;
