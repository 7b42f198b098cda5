/**
 * Benchmark of the ROUGE-L gate against two baselines, on a reproducible synthetic workload: a seed pool
 * plus a stream of candidates of realistic instruction length (8–40 words, median 14) drawn from a
 * Zipf-like vocabulary, a share of them near-duplicates (adjacent swaps, insertions, deletions,
 * substitutions) of earlier ones, tuned so that about `--acceptance` of the candidates pass the gate.
 *
 *   npm run bench:dedup -- [--pool 175] [--candidates 5000] [--acceptance 0.44] [--seed 1] [--sample 200]
 *                          [--full] [--threads 2] [--bootstrap] [--target 52000] [--write-stream <dir>]
 *
 * Baselines, both exact: `rouge-reference.ts`, the paper's code path (rouge-score tokenizes both texts again and
 * fills the whole (m+1)×(n+1) table for every pair), and the honest one, the pool tokenized once and a
 * one-row dynamic programming per pair (what Stanford Alpaca's code effectively does). Checks every
 * decision, max, top 10 and mean of the gate (WebAssembly and JavaScript kernels, one thread and worker
 * threads) against the reference on a sample of candidates (all with `--full`) and exits 1 on any
 * difference; prints pairs per second of each, per CPU-second and per wall-second, and the speed-ups.
 * `--bootstrap` gates a fresh stream (the candidates the `default` profile's filters keep) on worker
 * threads until the pool holds `--target` instructions, as `selfinstruct dedup` does, and prints its pairs,
 * wall and CPU time and peak RSS; `--write-stream <dir>` also writes that pool and stream as
 * `pool.jsonl` and `candidates.jsonl`, for timing `selfinstruct dedup` on them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { checkInstruction, normalizeInstruction } from '../../functions/shared/engine/filters.ts';
import { DEFAULT_TOP_K, gate, RougeIndex } from '../../functions/shared/engine/gate.ts';
import { wasmSimdAvailable } from '../../functions/shared/engine/lcs-wasm.ts';
import { numpyMean } from '../../functions/shared/engine/mean.ts';
import { fMeasure, lcsLength, tokenize } from '../../functions/shared/engine/rouge.ts';
import type { GateResult } from '../../functions/shared/engine/scoring.ts';
import { createRng, type Rng } from '../../functions/shared/random.ts';
import { gateInThreads } from '../../infra/cli/gate-threads.ts';
import { referenceScore } from '../support/rouge-reference.ts';

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
        entry.position === b.mostSimilar[i]?.position &&
        Object.is(entry.score, b.mostSimilar[i]?.score),
    )
  );
}

/**
 * Share of near-duplicates giving about `acceptance` accepted candidates: measured on this generator,
 * about 90% of its near-duplicates are rejected and nearly every fresh text is accepted.
 */
export function duplicateShare(acceptance: number): number {
  return Math.min(1, Math.max(0, (1 - acceptance) / 0.9));
}

/**
 * The honest baseline: the pool tokenized once (token ids), then per pair rouge-score's F-measure from a
 * one-row dynamic programming LCS; the max, the top 10 (ties in pool order, in one pass) and `np.mean`.
 */
export function oneRowScore(
  pool: readonly string[],
  poolIds: readonly Int32Array[],
  candidate: string,
  ids: Int32Array,
): GateResult {
  const scores = new Float64Array(poolIds.length);
  const best: number[] = [];
  let maxSimilarity = 0;
  poolIds.forEach((other, i) => {
    const score = fMeasure(lcsLength(ids, other), ids.length, other.length);
    scores[i] = score;
    if (score > maxSimilarity) maxSimilarity = score;
    if (best.length < DEFAULT_TOP_K || score > (scores[best[best.length - 1] as number] as number)) {
      let at = best.length;
      while (at > 0 && (scores[best[at - 1] as number] as number) < score) at--;
      best.splice(at, 0, i);
      if (best.length > DEFAULT_TOP_K) best.pop();
    }
  });
  return {
    instruction: candidate,
    accepted: !(maxSimilarity > 0.7),
    maxSimilarity,
    mostSimilar: best.map((i) => ({
      instruction: pool[i] as string,
      position: i,
      score: scores[i] as number,
    })),
    avgSimilarity: scores.length > 0 ? numpyMean(scores) : 0,
  };
}

/** Wall and CPU seconds (all threads) of `run`, and its result. */
async function timed<T>(run: () => T | Promise<T>): Promise<{ value: T; wall: number; cpu: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = await run();
  const used = process.cpuUsage(cpu);
  return { value, wall: (performance.now() - started) / 1000, cpu: (used.user + used.system) / 1e6 };
}

/** Pairs compared by a gate run: each candidate against the pool as it stood then. */
function pairsOf(poolSize: number, results: readonly GateResult[]): number {
  let pairs = 0;
  let size = poolSize;
  for (const result of results) {
    pairs += size;
    if (result.accepted) size++;
  }
  return pairs;
}

async function threaded(pool: readonly string[], candidates: readonly string[], threads: number) {
  const results: GateResult[] = [];
  for await (const batch of gateInThreads(RougeIndex.from(pool), candidates, { threads }))
    results.push(...batch);
  return results;
}

/**
 * Checks the gate's results at the `sampled` positions against a baseline, each candidate against the pool
 * as it was then (the seeds plus the candidates `accepted` before it). Returns mismatches, pairs and CPU time.
 */
function checkAgainst(
  baseline: (
    pool: readonly string[],
    poolIds: readonly Int32Array[],
    candidate: string,
    ids: Int32Array,
  ) => GateResult,
  pool: readonly string[],
  candidates: readonly string[],
  accepted: ArrayLike<boolean>,
  sampled: ReadonlyMap<number, GateResult>,
): { mismatches: number[]; pairs: number; cpu: number } {
  const vocabulary = new Map<string, number>();
  const idsOf = (text: string) =>
    Int32Array.from(tokenize(text), (token) => {
      let id = vocabulary.get(token);
      if (id === undefined) {
        id = vocabulary.size;
        vocabulary.set(token, id);
      }
      return id;
    });
  const current = [...pool];
  const currentIds = current.map(idsOf);
  const mismatches: number[] = [];
  let pairs = 0;
  let cpu = 0;
  for (let i = 0; i < accepted.length; i++) {
    const candidate = candidates[i] as string;
    const ids = idsOf(candidate);
    const result = sampled.get(i);
    if (result !== undefined) {
      const started = process.cpuUsage();
      const expected = baseline(current, currentIds, candidate, ids);
      const used = process.cpuUsage(started);
      cpu += (used.user + used.system) / 1e6;
      pairs += current.length;
      if (!sameResult(result, expected)) mismatches.push(i);
    }
    if (accepted[i]) {
      current.push(candidate);
      currentIds.push(ids);
    }
  }
  return { mismatches, pairs, cpu };
}

/** The paper's code path as a baseline of `checkAgainst` (it tokenizes the texts itself). */
const referenceBaseline = (pool: readonly string[], _ids: readonly Int32Array[], candidate: string) =>
  referenceScore(pool, candidate);

/** The results at `positions`, by position. */
const pick = (results: readonly GateResult[], positions: ReadonlySet<number>) =>
  new Map([...positions].map((i) => [i, results[i] as GateResult]));

function spread(count: number, size: number): Set<number> {
  if (count >= size) return new Set(Array.from({ length: size }, (_, i) => i));
  return new Set(Array.from({ length: count }, (_, i) => Math.floor(((i + 0.5) * size) / count)));
}

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3));
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const peakRss = () => process.resourceUsage().maxRSS * 1024;

interface Options {
  pool: number;
  candidates: number;
  acceptance: number;
  seed: string;
  full: boolean;
  sample: number;
  threads: number;
  bootstrap: boolean;
  target: number;
  writeStream?: string;
}

function parseOptions(argv: string[]): Options {
  const integer = (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
    return n;
  };
  const rate = (value: string) => {
    const n = Number(value);
    if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('expected a number in (0, 1]');
    return n;
  };
  return new Command('bench:dedup')
    .option('--pool <n>', 'seed pool size', integer, 175)
    .option('--candidates <n>', 'candidates to gate', integer, 5000)
    .option(
      '--acceptance <rate>',
      'about this share of candidates accepted (tunes the near-duplicates)',
      rate,
      0.44,
    )
    .option('--seed <seed>', 'workload seed', '1')
    .option('--full', 'check every candidate with the baselines (otherwise a sample)', false)
    .option('--sample <n>', 'candidates checked with the baselines without --full', integer, 200)
    .option('--threads <n>', 'worker threads of the threaded gate', integer, 2)
    .option('--bootstrap', 'also gate a full bootstrap up to --target instructions on worker threads', false)
    .option('--target <n>', 'pool size of the full bootstrap', integer, 52_000)
    .option('--write-stream <dir>', 'with --bootstrap: write its pool.jsonl and candidates.jsonl there')
    .parse(argv, { from: 'user' })
    .opts<Options>();
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  const duplicates = duplicateShare(options.acceptance);
  const workload = new Workload(options.seed);
  const pool = workload.next(options.pool, 0);
  const candidates = workload.next(options.candidates, duplicates);
  const long = candidates.filter((text) => tokenize(text).length > 32).length;
  console.log(
    `workload: seed ${options.seed}, pool ${pool.length}, candidates ${candidates.length} (${long} over 32 ` +
      `tokens, ${(100 * duplicates).toFixed(0)}% near-duplicates), WebAssembly SIMD: ${wasmSimdAvailable() ? 'yes' : 'no'}`,
  );

  gate(RougeIndex.from(pool.slice(0, 50)), candidates.slice(0, 200)); // warm-up
  const wasm = await timed(() => gate(RougeIndex.from(pool), candidates));
  const js = await timed(() => gate(RougeIndex.from(pool), candidates, { kernel: 'js' }));
  const threads = await timed(() => threaded(pool, candidates, options.threads));
  const results = wasm.value;
  const pairs = pairsOf(pool.length, results);
  const accepted = results.filter((result) => result.accepted).length;
  console.log(
    `gate accepted ${accepted} of ${candidates.length} (${((100 * accepted) / candidates.length).toFixed(0)}%); ` +
      `pool grew to ${pool.length + accepted}; ${fmt(pairs)} pairs`,
  );

  const sample = spread(options.full ? candidates.length : options.sample, candidates.length);
  const acceptedAt = results.map((result) => result.accepted);
  const sampled = pick(results, sample);
  const literal = checkAgainst(referenceBaseline, pool, candidates, acceptedAt, sampled);
  const oneRow = checkAgainst(oneRowScore, pool, candidates, acceptedAt, sampled);
  const differ = (other: readonly GateResult[]) =>
    results.filter((r, i) => !sameResult(r, other[i] as GateResult));
  const checks: [string, number][] = [
    ['reference (rouge-score code path)', literal.mismatches.length],
    ['one-row DP, pre-tokenized', oneRow.mismatches.length],
    ['JavaScript kernel', differ(js.value).length],
    [`${options.threads} worker threads`, differ(threads.value).length],
  ];
  const scope = options.full
    ? 'every candidate'
    : `${sample.size} candidates spread over the run (--full: all)`;
  console.log(`checked against the gate, on ${scope} for the baselines:`);
  for (const [label, n] of checks) console.log(`  ${label.padEnd(34)} ${n} mismatches`);

  const rows: [string, number, number, number][] = [
    ['gate, WebAssembly SIMD, 1 thread', pairs, wasm.cpu, wasm.wall],
    ['gate, JavaScript kernel, 1 thread', pairs, js.cpu, js.wall],
    [`gate, ${options.threads} worker threads`, pairs, threads.cpu, threads.wall],
    ['one-row DP, pre-tokenized', oneRow.pairs, oneRow.cpu, oneRow.cpu],
    ['reference (rouge-score code path)', literal.pairs, literal.cpu, literal.cpu],
  ];
  console.log(
    `${''.padEnd(36)}${'pairs'.padStart(14)}${'M pairs/CPU-s'.padStart(15)}${'M pairs/s'.padStart(11)}`,
  );
  for (const [label, n, cpu, wall] of rows) {
    console.log(
      `${label.padEnd(36)}${fmt(n).padStart(14)}${fmt(n / cpu / 1e6).padStart(15)}${fmt(n / wall / 1e6).padStart(11)}`,
    );
  }
  const baseline = (cpu: number, n: number) => n / cpu;
  for (const [label, n, cpu] of [
    ['reference', literal.pairs, literal.cpu],
    ['one-row DP', oneRow.pairs, oneRow.cpu],
  ] as const) {
    const base = baseline(cpu, n);
    console.log(
      `speed-up over the ${label}: ${fmt(pairs / wasm.cpu / base)}× per CPU-second (WebAssembly, 1 thread), ` +
        `${fmt(pairs / threads.wall / base)}× in wall time (${options.threads} threads)`,
    );
  }

  let failed = checks.some(([, n]) => n > 0);
  if (options.bootstrap) {
    const baselines = { reference: literal.pairs / literal.cpu, oneRow: oneRow.pairs / oneRow.cpu };
    failed = (await measureBootstrap(options, duplicates, baselines)) || failed;
  }
  const memory = process.memoryUsage();
  console.log(
    `memory: peak RSS ${mb(peakRss())}, RSS now ${mb(memory.rss)}, heap used ${mb(memory.heapUsed)}`,
  );
  if (failed) {
    console.error('FAILED: the gate and a baseline disagree');
    return 1;
  }
  return 0;
}

/**
 * Gates a fresh stream on worker threads until the pool holds `target` instructions; checks 24
 * candidates spread over it against the reference. Returns whether any disagrees.
 */
async function measureBootstrap(
  options: Options,
  duplicates: number,
  baselines: { reference: number; oneRow: number },
): Promise<boolean> {
  const workload = new Workload(`${options.seed}-bootstrap`);
  const pool = workload.next(options.pool, 0);
  // What `selfinstruct dedup` gates: the candidates that pass the default profile's filters.
  const kept = (text: string) => checkInstruction('default', normalizeInstruction('default', text)) === null;
  const stream: string[] = [];
  const needed = Math.ceil(((options.target - options.pool) / options.acceptance) * 1.2) + 1024;
  while (stream.length < needed) stream.push(...workload.next(4096, duplicates).filter(kept));
  const peakBefore = peakRss();
  const index = RougeIndex.from(pool);
  // Only what the checks need is kept: the decisions, and the results of 24 candidates spread over it.
  const expected = Math.round((options.target - options.pool) / options.acceptance);
  const sample = spread(24, expected);
  const accepted: boolean[] = [];
  const sampled = new Map<number, GateResult>();
  let pairs = 0;
  const run = await timed(async () => {
    let size = pool.length;
    for await (const batch of gateInThreads(index, stream, { threads: options.threads })) {
      for (const result of batch) {
        if (sample.has(accepted.length)) sampled.set(accepted.length, result);
        accepted.push(result.accepted);
        pairs += size;
        if (result.accepted) size++;
      }
      if (size >= options.target) break;
    }
  });
  const count = accepted.filter(Boolean).length;
  const rate = pairs / run.wall;
  console.log(
    `bootstrap ${pool.length} → ${pool.length + count} on ${options.threads} worker threads: ${fmt(accepted.length)} ` +
      `candidates (${((100 * count) / accepted.length).toFixed(0)}% accepted), ${fmt(pairs)} pairs; ` +
      `wall ${run.wall.toFixed(1)} s, CPU ${run.cpu.toFixed(1)} s, ${fmt(rate / 1e6)} M pairs/s; peak RSS ` +
      `${mb(peakRss())}${peakRss() > peakBefore ? '' : ' (reached before the bootstrap)'}`,
  );
  console.log(
    `bootstrap speed-up in wall time: ${fmt(rate / baselines.reference)}× the reference, ` +
      `${fmt(rate / baselines.oneRow)}× the one-row DP (their pairs per CPU-second above)`,
  );
  const used = stream.slice(0, accepted.length);
  const checked = checkAgainst(referenceBaseline, pool, used, accepted, sampled);
  console.log(
    `reference on ${sampled.size} candidates spread over the bootstrap: ${checked.mismatches.length} mismatches`,
  );
  if (options.writeStream !== undefined) {
    const lines = (texts: readonly string[]) =>
      texts.map((instruction) => `${JSON.stringify({ instruction })}\n`).join('');
    await mkdir(options.writeStream, { recursive: true });
    await writeFile(join(options.writeStream, 'pool.jsonl'), lines(pool));
    await writeFile(join(options.writeStream, 'candidates.jsonl'), lines(used));
    console.log(
      `wrote ${options.writeStream}/pool.jsonl and candidates.jsonl (${fmt(used.length)} candidates)`,
    );
  }
  return checked.mismatches.length > 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
