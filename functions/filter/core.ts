/**
 * Stage "Filter and deduplicate" (Self-Instruct step 4, for instructions): normalizes each candidate
 * with the profile's rules, applies the profile's heuristic filters, then the ROUGE-L gate in order, so
 * that each candidate is compared with the seeds and every instruction accepted before it, including
 * earlier ones of the same batch. This sequential pass is the one place where order matters; the Map
 * after it fans out the per-instruction work in chunks of ids. From a pool of `shardGateAbove` on, the
 * state machine runs it in three steps around the gate's shard Lambdas (`gateShards`, see
 * `shared/gate-shards.ts`), with the same decisions and scores.
 */
import pLimit from 'p-limit';
import { z } from 'zod';
import { committedSample, extendSample } from '../shared/demonstrations.ts';
import { type Decision, DecisionWriter, decide, type Screened, screen } from '../shared/engine/decisions.ts';
import { DEFAULT_TOP_K, type GateResult, gate, type RougeIndex } from '../shared/engine/gate.ts';
import { commitBatch, decideBatch, mergeBatch, prepareBatch } from '../shared/engine/scoring.ts';
import { highestOver, tailScores } from '../shared/engine/sharded.ts';
import {
  GatePhase,
  GateShard,
  GateShardsDisagree,
  planShards,
  readHighest,
  readScores,
  readStep,
} from '../shared/gate-shards.ts';
import { fromJsonLines } from '../shared/json-lines.ts';
import { poolKeys, runKeys } from '../shared/keys.ts';
import { stagedBy } from '../shared/pool-commit.ts';
import { instructionKey, taskId } from '../shared/pool-ids.ts';
import {
  appendSegment,
  type CommittedPool,
  committedPool,
  openPoolIndex,
  readManifest,
} from '../shared/pool-index.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore, PoolTask } from '../shared/ports.ts';
import { createRng } from '../shared/random.ts';
import type { IndexManifest, MachineSample } from '../shared/records.ts';
import { createSafetyScreen, type SafetyScreen, unsafeReason } from '../shared/safety.ts';
import { type Candidate, type Chunk, type Counts, RunState, type SeedTask } from '../shared/schemas.ts';
import { type NearDuplicateDeps, prepareNearDuplicates } from './near-duplicates.ts';

export const FilterInput = RunState.extend({
  candidatesKey: z.string().min(1),
  /**
   * The sharded gate's step (see `shared/gate-shards.ts`), absent for the gate in-process: `plan` stops
   * after the filters, writes the survivors and returns the shards; `decide` decides on the shards'
   * highest scores and writes each decided survivor's pool size; `merge` decides again (the same
   * decisions) and merges the shards' parts where the gate in-process would have scored, then goes on.
   */
  gateShards: z.object({ phase: GatePhase, shards: z.array(GateShard).default([]) }).optional(),
});
export type FilterInput = z.infer<typeof FilterInput>;

/** What the `plan` and `decide` steps of the sharded gate return (the state machine reads `shards`). */
export interface GateStepResult {
  phase: 'plan' | 'decide';
  shards: GateShard[];
  /** Survivors of the filters (`plan`), or those decided (`decide`: the rest are over the quota). */
  candidates: number;
}

export interface FilterResult {
  chunks: Chunk[];
  /** `generated`, `accepted`, and one key per rejection reason. */
  counts: Counts;
  decisionsKey: string;
}

/** The stage without the sharded gate's steps: the Filter stage as tests and benchmarks call it. */
export async function filterAndDeduplicate(
  input: FilterInput,
  deps: Parameters<typeof filterStep>[1],
): Promise<FilterResult> {
  const result = await filterStep({ ...input, gateShards: undefined }, deps);
  if ('chunks' in result) return result;
  throw new Error('the in-process gate stopped at a step of the sharded gate');
}

/**
 * Stage "Filter and deduplicate" and the sharded gate's steps that run in its function (`gateShards`):
 * the filters, the gate (in-process, or from the shards' parts) and the staging of the accepted tasks.
 */
export async function filterStep(
  { runId, config, progress, execution, candidatesKey, gateShards }: FilterInput,
  {
    objects,
    pool,
    now = () => new Date(),
    embedders,
    remainingMs,
    safety = createSafetyScreen(config.safetyScreen, {
      ledger: { pool, runId, iteration: progress.iteration + 1, scope: 'filter' },
      concurrency: config.callConcurrency,
      remainingMs,
    }),
  }: {
    objects: ObjectStore;
    pool: PoolStore;
    now?: () => Date;
    /** The run's safety screen (billed calls in the run's ledger). @default createSafetyScreen(config.safetyScreen, …) */
    safety?: SafetyScreen;
  } & Partial<NearDuplicateDeps>,
): Promise<FilterResult | GateStepResult> {
  await holdPool(pool, { runId, config, progress, execution });
  const candidates = fromJsonLines<Candidate>(await objects.getText(candidatesKey));
  // The pool's index as committed: this iteration's joins it only when "Save iteration" commits, so a
  // retry of this stage sees the same pool and reaches the same decisions.
  const committed = await committedPool(pool, config.pool);
  const manifest = await readManifest(objects, committed.indexKey);
  // The function's cached copy of the index, lent: what the gate adds to it is dropped on release.
  const lease = await openPoolIndex(objects, manifest);
  try {
    return await gateAndStage(
      { runId, config, progress, candidates, gateShards },
      { objects, pool, now, embedders, remainingMs, safety },
      { committed, manifest, index: lease.index },
    );
  } finally {
    lease.release();
  }
}

/** The filters, the gate and the staging of the accepted tasks, on the pool's index as committed. */
async function gateAndStage(
  {
    runId,
    config,
    progress,
    candidates,
    gateShards,
  }: Omit<FilterInput, 'candidatesKey'> & { candidates: Candidate[] },
  {
    objects,
    pool,
    now,
    embedders,
    remainingMs,
    safety,
  }: {
    objects: ObjectStore;
    pool: PoolStore;
    now: () => Date;
    safety: SafetyScreen | undefined;
  } & Partial<NearDuplicateDeps>,
  { committed, manifest, index }: { committed: CommittedPool; manifest: IndexManifest; index: RougeIndex },
): Promise<FilterResult | GateStepResult> {
  const iteration = progress.iteration + 1;
  const keys = runKeys(runId, iteration);

  const counts: Counts = { generated: candidates.length, accepted: 0 };
  const reject = (reason: string) => {
    counts[reason] = (counts[reason] ?? 0) + 1;
  };

  // Heuristic filters first (they don't depend on the pool), then the gate over the survivors in order.
  const screened = screen(
    config.profile,
    candidates.map((candidate) => candidate.instruction),
    { bannedWords: config.bannedWords },
  );
  // Evol-Instruct: the lineage goes into the gate lines, and what an elimination rule dropped before
  // this stage is counted here by its reason, before the filters (`generate-instructions/evol.ts`).
  screened.forEach((candidate, i) => {
    const { lineage, eliminated, gainUnparseable } = candidates[i] as Candidate;
    if (lineage) candidate.lineage = lineage;
    if (eliminated) candidate.filtered = eliminated;
    if (gainUnparseable) counts['evol-gain-unparseable'] = (counts['evol-gain-unparseable'] ?? 0) + 1;
  });
  // Then the safety screen over what the filters passed (see `safety.ts`).
  await screenForSafety(screened, safety);
  const survivors = screened.flatMap((candidate) =>
    candidate.filtered === null ? [candidate.instruction] : [],
  );
  if (gateShards?.phase === 'plan') {
    await objects.put(keys.gateShards.survivors, JSON.stringify(survivors), 'application/json');
    const shards = await planShards(objects, manifest, config.gateShards);
    return { phase: 'plan', shards, candidates: survivors.length };
  }
  // The near-duplicate gate (off unless the run has an embedding model) vetoes, in order, what the
  // ROUGE-L threshold lets through (see `near-duplicates.ts`).
  const poolSize = index.size;
  const nearDuplicates = await prepareNearDuplicates(
    {
      runId,
      iteration,
      config,
      poolInstructions: index.instructions.slice(0, poolSize),
      vectorsKey: committed.meta?.vectorsKey,
      survivors,
    },
    { objects, pool, embedders, remainingMs },
  );
  // The run never adds more than its target: once the accepted instructions fill what is left of it,
  // the later survivors are `surplus`, neither scored nor added to the index. Gating in slices no longer
  // than the quota left gives the same decisions as one pass (the gate is sequential) and never admits
  // an instruction past the quota.
  const quota = Math.max(0, config.target - progress.added);
  const results: GateResult[] = [];
  if (gateShards === undefined) {
    let acceptedByGate = 0;
    while (results.length < survivors.length && acceptedByGate < quota) {
      const from = results.length;
      const slice = survivors.slice(from, from + quota - acceptedByGate);
      const veto = nearDuplicates && ((position: number) => nearDuplicates.veto(from + position));
      for (const result of gate(index, slice, { threshold: config.rougeThreshold, veto })) {
        results.push(result);
        if (result.accepted) acceptedByGate++;
      }
    }
  } else {
    // The sharded gate: the survivors as one batch, decided in order on the shards' highest scores up
    // to the quota (the decisions the slices above reach), then merged from the shards' parts.
    const batch = prepareBatch(index, survivors);
    const highest = highestOver(
      await readHighest(objects, runId, iteration, gateShards.shards),
      survivors.length,
    );
    const veto = nearDuplicates && ((position: number) => nearDuplicates.veto(position));
    const decided = decideBatch(batch, highest, poolSize, config.rougeThreshold, true, veto, quota);
    if (gateShards.phase === 'decide') {
      const sizes = decided.map((decision) => decision.size);
      await objects.put(keys.gateShards.sizes, JSON.stringify(sizes), 'application/json');
      return { phase: 'decide', shards: gateShards.shards, candidates: sizes.length };
    }
    const sizes = await readStep<number[]>(objects, keys.gateShards.sizes);
    if (sizes.length !== decided.length || sizes.some((size, c) => size !== decided[c]?.size))
      throw new GateShardsDisagree(
        `The sharded gate's merge decided ${decided.length} survivors otherwise than its decide step`,
      );
    commitBatch(index, batch, decided);
    const parts = await readScores(objects, runId, iteration, gateShards.shards);
    parts.push({ from: poolSize, scores: tailScores(decided, poolSize, DEFAULT_TOP_K) });
    results.push(...mergeBatch(index, batch, decided, parts, DEFAULT_TOP_K));
  }
  const decisions: Decision[] = [];
  for await (const batch of decide(screened, [results])) decisions.push(...batch);
  // Where each survivor the gate accepted went in the index (after the pool, in order).
  let next = poolSize;
  const positions = results.map((result) => (result.accepted ? next++ : -1));

  // Counted in this order (the counts' key order is the run record's): the filters' reasons, then the
  // outcomes of the survivors.
  for (const { filtered } of screened) if (filtered !== null) reject(filtered);
  const accepted: { candidate: Candidate; decision: Decision }[] = [];
  let survivor = 0;
  decisions.forEach((decision, i) => {
    if (decision.filtered !== null) return;
    const position = positions[survivor] ?? -1;
    const nearest = nearDuplicates?.nearest(survivor);
    survivor++;
    if (nearest) decision.nearest = nearest;
    // Only reachable with a threshold of 1: the same instruction is never stored twice.
    if (decision.reason === null && knownBefore(index, position, decision)) decision.reason = 'duplicate';
    if (decision.reason !== null) {
      reject(decision.reason);
      return;
    }
    decision.id = taskId(decision.instruction);
    accepted.push({ candidate: candidates[i] as Candidate, decision });
    counts.accepted = (counts.accepted ?? 0) + 1;
  });

  // A task's nearest instruction travels into the exports (`most_similar_instruction`): a seed's that the
  // screen flags is left out, so screened text never reaches an export. Only seeds are screened here:
  // machine instructions were when they joined, so a billed screen pays for none of them twice.
  const flaggedNeighbours = await flaggedSeeds(
    accepted.flatMap(({ decision }) => (decision.gated as GateResult).mostSimilar.slice(0, 1)),
    safety,
    async () => fromJsonLines<SeedTask>(await objects.getText(committed.seedsKey)),
  );
  const createdAt = now().toISOString();
  const staged = stagedBy(runId, iteration);
  const limit = pLimit(16);
  await Promise.all(
    accepted.map(({ candidate, decision }) =>
      limit(async () => {
        const gated = decision.gated as GateResult;
        const [top] = gated.mostSimilar;
        const task: PoolTask = {
          id: decision.id as string,
          pool: config.pool,
          instruction: decision.instruction,
          source: 'machine',
          status: 'pending',
          instances: [],
          proposed: {
            input: candidate.input,
            output: candidate.output,
            isClassification: candidate.isClassification,
          },
          runId,
          iteration,
          maxSimilarity: gated.maxSimilarity,
          mostSimilar:
            top && !flaggedNeighbours.has(top.instruction)
              ? { instruction: top.instruction, score: top.score }
              : undefined,
          avgSimilarity: gated.avgSimilarity,
          nearestCosine: decision.nearest?.score,
          ...(candidate.document ? { document: candidate.document } : {}),
          lineage: candidate.lineage,
          staged,
          createdAt,
        };
        if (await pool.putTaskIfAbsent(task)) return;
        // Already there: from an earlier attempt (or a duplicate) of this very stage, fine; staged by an
        // iteration that never committed (a dead run's: this run holds the lease), taken over; else a
        // task of the pool, so a duplicate.
        const [existing] = await pool.getTasks(config.pool, [task.id]);
        if (existing?.staged === staged) return;
        if (existing?.staged !== undefined && (await pool.replaceStaged(task, existing.staged))) return;
        decision.reason = 'duplicate';
      }),
    ),
  );
  const kept = accepted.filter(({ decision }) => decision.reason === null);
  const lateDuplicates = accepted.length - kept.length;
  if (lateDuplicates > 0) {
    counts.accepted = (counts.accepted ?? 0) - lateDuplicates;
    counts.duplicate = (counts.duplicate ?? 0) + lateDuplicates;
  }

  await objects.put(keys.gate, new DecisionWriter().lines(decisions), 'application/jsonl');
  await stageIndex(
    { runId, config, iteration, committed, manifest },
    index.instructions.slice(poolSize, index.size),
    { objects, index: index.instructions, poolSize },
  );
  await nearDuplicates?.save(index.size);

  const ids = kept.map(({ decision }) => decision.id as string);
  const chunks: Chunk[] = [];
  for (let start = 0; start < ids.length; start += config.chunkSize) {
    chunks.push({ index: chunks.length, ids: ids.slice(start, start + config.chunkSize) });
  }
  return { chunks, counts, decisionsKey: keys.gate };
}

/**
 * Whether the instruction at `position` of `index` (the gate just added it) has the comparison form of
 * one before it: the pool's, or one accepted earlier in the batch. Two instructions of the same form
 * have the same tokens, so ROUGE-L 1 (or no tokens at all): only then are the instructions before it
 * compared, first by their token ids (the gate's own index), then by their form. No set of the pool.
 */
function knownBefore(index: RougeIndex, position: number, decision: Decision): boolean {
  if (position < 0) return false;
  const ids = index.tokenIds(position);
  if (ids.length > 0 && (decision.gated?.maxSimilarity ?? 0) < 1) return false;
  const key = instructionKey(decision.instruction);
  const { tokens, offsets } = index.storage();
  for (let p = 0; p < position; p++) {
    const from = offsets[p] as number;
    if ((offsets[p + 1] as number) - from !== ids.length) continue;
    let same = true;
    for (let i = 0; i < ids.length && same; i++) same = tokens[from + i] === ids[i];
    if (same && instructionKey(index.text(p)) === key) return true;
  }
  return false;
}

/**
 * Writes what "Save iteration" promotes to the pool's index with the commit: the segment of the
 * instructions the gate accepted, the demonstrations sample with them, and the manifest listing the
 * committed segments plus this one (under the pool key the segment is promoted to).
 */
async function stageIndex(
  {
    runId,
    config,
    iteration,
    committed,
    manifest,
  }: {
    runId: string;
    config: FilterInput['config'];
    iteration: number;
    committed: CommittedPool;
    manifest: IndexManifest;
  },
  added: readonly string[],
  { objects, index, poolSize }: { objects: ObjectStore; index: readonly string[]; poolSize: number },
): Promise<void> {
  const keys = runKeys(runId, iteration);
  const poolPaths = poolKeys(config.pool);
  const rng = createRng(`${config.seed}:iteration-${iteration}:demonstrations`);
  const previous = await committedSample(
    objects,
    manifest,
    committed.seedsKey,
    () => index.slice(0, poolSize),
    rng,
  );
  const sample = extendSample(previous, added, rng);
  await objects.put(keys.demonstrations, JSON.stringify(sample satisfies MachineSample), 'application/json');
  const next = await appendSegment(
    objects,
    manifest,
    { writeTo: keys.segment, key: poolPaths.segment(runId, iteration) },
    added,
  );
  const staged: IndexManifest = { ...next, demonstrations: poolPaths.demonstrations(runId, iteration) };
  await objects.put(keys.index, JSON.stringify(staged), 'application/json');
}

/** The seed instructions among `neighbours`' that `safety` flags (`seeds` read only when needed). */
async function flaggedSeeds(
  neighbours: readonly { instruction: string }[],
  safety: SafetyScreen | undefined,
  seeds: () => Promise<SeedTask[]>,
): Promise<Set<string>> {
  if (safety === undefined || neighbours.length === 0) return new Set();
  const seedInstructions = new Set((await seeds()).map((task) => task.instruction.trim()));
  const texts = [...new Set(neighbours.map(({ instruction }) => instruction))].filter((text) =>
    seedInstructions.has(text),
  );
  if (texts.length === 0) return new Set();
  const verdicts = await safety.screen(texts);
  return new Set(texts.filter((_, i) => verdicts[i]));
}

/** Marks the candidates the filters passed and `safety` flags as dropped for `unsafe-<category>`. */
async function screenForSafety(screened: Screened[], safety: SafetyScreen | undefined): Promise<void> {
  if (safety === undefined) return;
  const passed = screened.filter((candidate) => candidate.filtered === null);
  const verdicts = await safety.screen(
    passed.map((candidate) => candidate.instruction),
    'instructions',
  );
  passed.forEach((candidate, i) => {
    const category = verdicts[i];
    if (category) candidate.filtered = unsafeReason(category);
  });
}
