/**
 * Benchmark of the ROUGE-L gate against the reference dynamic programming, on a reproducible synthetic
 * workload: a seed pool plus a stream of candidates of realistic instruction length (8–40 words, median 14)
 * drawn from a Zipf-like vocabulary, a quarter of them near-duplicates (adjacent swaps, insertions,
 * deletions, substitutions) of earlier ones.
 *
 *   npm run bench:dedup -- [--pool 175] [--candidates 5000] [--seed 1] [--full] [--sample 500]
 *                          [--bootstrap] [--target 52000]
 *
 * Checks every decision, max, top 10 and mean of the gate (WebAssembly and JavaScript kernels) against the
 * reference (on a sample of candidates unless `--full`), exits 1 on any difference, and prints throughput,
 * memory and the projected (with `--bootstrap`, measured) time of a full 52,000-instruction bootstrap.
 */
import { pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { gate, RougeIndex } from '../../functions/shared/engine/gate.ts';
import { wasmSimdAvailable } from '../../functions/shared/engine/lcs-wasm.ts';
import { referenceScore } from '../../functions/shared/engine/reference.ts';
import { tokenize } from '../../functions/shared/engine/rouge.ts';
import type { GateResult } from '../../functions/shared/engine/scoring.ts';
import { createRng, type Rng } from '../../functions/shared/random.ts';

// Frequent words of instruction text first, so that the head of the Zipf distribution looks like it.
const COMMON = `the a of to and in for is that you this with on are be as it your can or an from by
what how given following write text sentence list create generate explain describe find make use give
each word words number numbers provide if which one two their have not between example examples input
output answer question questions story short about task new best most more all into based these should
classify identify summarize translate rewrite suggest compare determine convert calculate design explain
code function python string array sort order first last name names people person time day year world
article paragraph poem letter email review product customer user data information following statement
true false positive negative correct incorrect type category categories topic main idea key points`.split(
  /\s+/,
);
const SYLLABLES =
  'ka lo mi ne ru sa ti ve zo ba de fi gu ho ja ke li mo nu pa qui re so tu vi wa xe yo'.split(' ');
const ENDINGS = ['.', '.', '.', '?', ':', ''];

/** A reproducible stream of instruction-like texts. */
export class Workload {
  readonly #rng: Rng;
  readonly #words: string[];
  readonly #cdf: Float64Array;
  readonly #seen: string[] = [];

  constructor(seed: string, vocabulary = 20_000, exponent = 1.07) {
    this.#rng = createRng(seed);
    const words = [...new Set(COMMON)];
    const taken = new Set(words);
    while (words.length < vocabulary) {
      const length = 2 + this.#rng.int(3);
      const word = Array.from({ length }, () => SYLLABLES[this.#rng.int(SYLLABLES.length)]).join('');
      if (!taken.has(word)) {
        taken.add(word);
        words.push(word);
      }
    }
    this.#words = words;
    this.#cdf = new Float64Array(vocabulary);
    let sum = 0;
    for (let rank = 0; rank < vocabulary; rank++) {
      sum += 1 / (rank + 1) ** exponent;
      this.#cdf[rank] = sum;
    }
    for (let rank = 0; rank < vocabulary; rank++) this.#cdf[rank] = (this.#cdf[rank] as number) / sum;
  }

  #word(): string {
    const x = this.#rng.next();
    let lo = 0;
    let hi = this.#cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#cdf[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return this.#words[lo] as string;
  }

  #length(): number {
    // Log-normal around 14 words, clipped to 8–40.
    const gaussian =
      Math.sqrt(-2 * Math.log(1 - this.#rng.next())) * Math.cos(2 * Math.PI * this.#rng.next());
    return Math.min(40, Math.max(8, Math.round(Math.exp(Math.log(14) + 0.45 * gaussian))));
  }

  #render(words: string[]): string {
    const [first = '', ...rest] = words;
    const ending = ENDINGS[this.#rng.int(ENDINGS.length)] as string;
    return `${first.charAt(0).toUpperCase()}${first.slice(1)} ${rest.join(' ')}${ending}`;
  }

  #fresh(): string {
    const words = Array.from({ length: this.#length() }, () => this.#word());
    if (this.#rng.next() < 0.1) words.splice(1 + this.#rng.int(words.length - 1), 0, "don't");
    return this.#render(words);
  }

  #nearDuplicate(): string {
    const source = this.#seen[this.#rng.int(this.#seen.length)] as string;
    const words = source.replace(/[.?:]$/, '').split(' ');
    const edits = 1 + this.#rng.int(3);
    for (let e = 0; e < edits; e++) {
      const at = this.#rng.int(words.length);
      const kind = this.#rng.int(4);
      if (kind === 0 && at + 1 < words.length)
        [words[at], words[at + 1]] = [words[at + 1] as string, words[at] as string];
      else if (kind === 1) words.splice(at, 0, this.#word());
      else if (kind === 2 && words.length > 8) words.splice(at, 1);
      else words[at] = this.#word();
    }
    return this.#render(words.map((word) => word.toLowerCase()));
  }

  /** `count` more texts: a quarter near-duplicates of earlier ones, 1 in 200 in a script without tokens. */
  next(count: number, duplicates = 0.25): string[] {
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const roll = this.#rng.next();
      const text =
        roll < 0.005
          ? '写一首关于秋天的诗，不超过八行'
          : roll < duplicates && this.#seen.length > 0
            ? this.#nearDuplicate()
            : this.#fresh();
      this.#seen.push(text);
      out.push(text);
    }
    return out;
  }
}

/** Whether two results agree exactly: decision, max, top 10 (texts and scores) and mean, bit for bit. */
export function sameResult(a: GateResult, b: GateResult): boolean {
  return (
    a.instruction === b.instruction &&
    a.accepted === b.accepted &&
    Object.is(a.maxSimilarity, b.maxSimilarity) &&
    Object.is(a.avgSimilarity, b.avgSimilarity) &&
    a.mostSimilar.length === b.mostSimilar.length &&
    a.mostSimilar.every(
      (entry, i) =>
        entry.instruction === b.mostSimilar[i]?.instruction &&
        Object.is(entry.score, b.mostSimilar[i]?.score),
    )
  );
}

interface Run {
  results: GateResult[];
  seconds: number;
  pairs: number;
}

function timeGate(pool: readonly string[], candidates: readonly string[], kernel: 'auto' | 'js'): Run {
  const index = RougeIndex.from(pool);
  let pairs = 0;
  const started = performance.now();
  const results = gate(index, candidates, { kernel });
  const seconds = (performance.now() - started) / 1000;
  let size = pool.length;
  for (const result of results) {
    pairs += size;
    if (result.accepted) size++;
  }
  return { results, seconds, pairs };
}

/**
 * Checks `results` against the reference on the candidates at `sample` positions, each against the pool
 * as it was then (the seeds plus the candidates accepted before it). Returns mismatches, pairs and time.
 */
function checkWithReference(
  pool: readonly string[],
  candidates: readonly string[],
  results: readonly GateResult[],
  sample: ReadonlySet<number>,
): { mismatches: number[]; pairs: number; seconds: number } {
  const current = [...pool];
  const mismatches: number[] = [];
  let pairs = 0;
  let seconds = 0;
  results.forEach((result, i) => {
    if (sample.has(i)) {
      const started = performance.now();
      const expected = referenceScore(current, candidates[i] as string);
      seconds += (performance.now() - started) / 1000;
      pairs += current.length;
      if (!sameResult(result, expected)) mismatches.push(i);
    }
    if (result.accepted) current.push(candidates[i] as string);
  });
  return { mismatches, pairs, seconds };
}

function spread(count: number, size: number): Set<number> {
  if (count >= size) return new Set(Array.from({ length: size }, (_, i) => i));
  return new Set(Array.from({ length: count }, (_, i) => Math.floor(((i + 0.5) * size) / count)));
}

const rate = (pairs: number, seconds: number) => (seconds > 0 ? pairs / seconds : Number.POSITIVE_INFINITY);
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3));
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

function bootstrapPairs(seeds: number, target: number): number {
  // Every candidate is compared with the whole pool; counting accepted ones only (a lower bound).
  let pairs = 0;
  for (let size = seeds; size < target; size++) pairs += size;
  return pairs;
}

function main(argv: string[]): number {
  const integer = (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
    return n;
  };
  const options = new Command('bench:dedup')
    .option('--pool <n>', 'seed pool size', integer, 175)
    .option('--candidates <n>', 'candidates to gate', integer, 5000)
    .option('--seed <seed>', 'workload seed', '1')
    .option('--full', 'check every candidate with the reference DP (otherwise a sample)', false)
    .option('--sample <n>', 'candidates checked with the reference DP without --full', integer, 500)
    .option('--bootstrap', 'also measure a full bootstrap up to --target instructions', false)
    .option('--target <n>', 'pool size of the full bootstrap', integer, 52_000)
    .parse(argv, { from: 'user' })
    .opts<{
      pool: number;
      candidates: number;
      seed: string;
      full: boolean;
      sample: number;
      bootstrap: boolean;
      target: number;
    }>();

  const workload = new Workload(options.seed);
  const pool = workload.next(options.pool, 0);
  const candidates = workload.next(options.candidates);
  const long = candidates.filter((text) => tokenize(text).length > 32).length;
  console.log(
    `workload: seed ${options.seed}, pool ${pool.length}, candidates ${candidates.length} ` +
      `(${long} over 32 tokens), WebAssembly SIMD: ${wasmSimdAvailable() ? 'yes' : 'no'}`,
  );

  timeGate(pool.slice(0, 50), candidates.slice(0, 200), 'auto'); // warm-up
  const fast = timeGate(pool, candidates, 'auto');
  const js = timeGate(pool, candidates, 'js');
  const accepted = fast.results.filter((result) => result.accepted).length;
  const kernelMismatches = fast.results.filter(
    (result, i) => !sameResult(result, js.results[i] as GateResult),
  );
  console.log(`gate accepted ${accepted} of ${candidates.length}; pool grew to ${pool.length + accepted}`);

  const sample = spread(options.full ? candidates.length : options.sample, candidates.length);
  const checked = checkWithReference(pool, candidates, fast.results, sample);
  const scope = options.full ? 'every candidate' : `a sample of ${sample.size} candidates (--full for all)`;
  console.log(`reference DP checked ${scope}: ${checked.mismatches.length} mismatches`);
  console.log(`JavaScript kernel vs WebAssembly kernel: ${kernelMismatches.length} mismatches`);

  const rows: [string, number, number][] = [
    ['gate (WebAssembly SIMD)', fast.pairs, fast.seconds],
    ['gate (JavaScript)', js.pairs, js.seconds],
    ['reference DP', checked.pairs, checked.seconds],
  ];
  for (const [label, pairs, seconds] of rows) {
    console.log(
      `${label.padEnd(24)} ${fmt(pairs).padStart(12)} pairs in ${seconds.toFixed(2)} s: ${fmt(rate(pairs, seconds))} pairs/s`,
    );
  }
  const dpRate = rate(checked.pairs, checked.seconds);
  console.log(
    `speed-up over the DP: ${fmt(rate(fast.pairs, fast.seconds) / dpRate)}x (WebAssembly), ` +
      `${fmt(rate(js.pairs, js.seconds) / dpRate)}x (JavaScript)`,
  );

  // Projection: the cost of a candidate grows linearly with the pool, so a bootstrap from `pool` to
  // `target` costs about (target - pool) candidates at the mean pool size.
  const middle = Math.round((options.pool + options.target) / 2);
  const projectionWorkload = new Workload(`${options.seed}-projection`);
  const bigPool = projectionWorkload.next(middle, 0.1);
  const probe = projectionWorkload.next(640);
  const projectionIndex = RougeIndex.from(bigPool);
  const started = performance.now();
  gate(projectionIndex, probe);
  const perCandidate = (performance.now() - started) / 1000 / probe.length;
  const projected = perCandidate * (options.target - options.pool);
  console.log(
    `projected bootstrap ${options.pool} → ${options.target}: ${fmt(bootstrapPairs(options.pool, options.target))} pairs, ` +
      `${(perCandidate * 1000).toFixed(3)} ms per candidate at ${middle} instructions → ${projected.toFixed(1)} s`,
  );

  let failed = checked.mismatches.length > 0 || kernelMismatches.length > 0;
  if (options.bootstrap) failed = measureBootstrap(options.seed, options.pool, options.target) || failed;

  const memory = process.memoryUsage();
  console.log(
    `memory: peak RSS ${mb(process.resourceUsage().maxRSS * 1024)}, RSS now ${mb(memory.rss)}, heap used ${mb(memory.heapUsed)}`,
  );
  if (failed) {
    console.error(`FAILED: mismatches at candidates ${checked.mismatches.slice(0, 10).join(', ')}`);
    return 1;
  }
  return 0;
}

/** Gates a fresh stream until the pool holds `target` instructions; checks 24 candidates with the DP. */
function measureBootstrap(seed: string, seeds: number, target: number): boolean {
  const workload = new Workload(`${seed}-bootstrap`);
  const pool = workload.next(seeds, 0);
  const index = RougeIndex.from(pool);
  const stream: string[] = [];
  const results: GateResult[] = [];
  let seconds = 0;
  while (index.size < target) {
    // Chunks sized so that the pool ends close to the target.
    const batch = workload.next(Math.min(4096, Math.max(16, Math.ceil((target - index.size) * 1.1))));
    const started = performance.now();
    results.push(...gate(index, batch));
    seconds += (performance.now() - started) / 1000;
    stream.push(...batch);
  }
  let pairs = 0;
  let size = seeds;
  for (const result of results) {
    pairs += size;
    if (result.accepted) size++;
  }
  console.log(
    `measured bootstrap ${seeds} → ${index.size}: ${results.length} candidates, ${fmt(pairs)} pairs in ` +
      `${seconds.toFixed(1)} s (${fmt(rate(pairs, seconds))} pairs/s)`,
  );
  const checked = checkWithReference(pool, stream, results, spread(24, results.length));
  console.log(
    `reference DP on 24 candidates spread over the bootstrap: ${checked.mismatches.length} mismatches`,
  );
  return checked.mismatches.length > 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
