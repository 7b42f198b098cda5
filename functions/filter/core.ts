/**
 * Stage "Filter and deduplicate" (Self-Instruct step 4, for instructions): normalizes each candidate
 * with the profile's rules, applies the profile's heuristic filters, then the ROUGE-L gate in order, so
 * that each candidate is compared with the seeds and every instruction accepted before it, including
 * earlier ones of the same batch. This sequential pass is the one place where order matters; the Map
 * after it fans out the per-instruction work in chunks of ids.
 */
import pLimit from 'p-limit';
import { z } from 'zod';
import { checkInstruction, normalizeInstruction } from '../shared/engine/filters.ts';
import { type GateResult, gate, RougeIndex } from '../shared/engine/gate.ts';
import { runKeys } from '../shared/keys.ts';
import { fromJsonLines, toJsonLines } from '../shared/model-calls.ts';
import { stagedBy } from '../shared/pool-commit.ts';
import { instructionKey, taskId } from '../shared/pool-ids.ts';
import { committedPool, loadIndex } from '../shared/pool-index.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore, PoolTask } from '../shared/ports.ts';
import { type Candidate, type Chunk, type Counts, RunState } from '../shared/schemas.ts';
import { NEAR_DUPLICATE, type NearDuplicateDeps, rejectNearDuplicates } from './near-duplicates.ts';

export const FilterInput = RunState.extend({ candidatesKey: z.string().min(1) });
export type FilterInput = z.infer<typeof FilterInput>;

/** One gate decision, as stored in `gate.jsonl` (field names follow the Self-Instruct code's records). */
export interface GateDecision {
  instruction: string;
  raw: string;
  status: 'accepted' | 'rejected';
  reason: string | null;
  id?: string;
  max_similarity?: number;
  most_similar?: Record<string, number>;
  avg_similarity_score?: number;
  /** The nearest instruction by embedding (pool or earlier in the batch) and its cosine. */
  nearest_instruction?: string;
  nearest_cosine?: number;
}

export interface FilterResult {
  chunks: Chunk[];
  /** `generated`, `accepted`, and one key per rejection reason. */
  counts: Counts;
  decisionsKey: string;
}

export async function filterAndDeduplicate(
  { runId, config, progress, candidatesKey }: FilterInput,
  {
    objects,
    pool,
    now = () => new Date(),
    embedders,
    remainingMs,
  }: { objects: ObjectStore; pool: PoolStore; now?: () => Date } & Partial<NearDuplicateDeps>,
): Promise<FilterResult> {
  const iteration = progress.iteration + 1;
  const keys = runKeys(runId, iteration);
  await holdPool(pool, config.pool, runId, progress.fence);
  const candidates = fromJsonLines<Candidate>(await objects.getText(candidatesKey));
  // The pool's index as committed: this iteration's joins it only when "Save iteration" commits, so a
  // retry of this stage sees the same pool and reaches the same decisions.
  const committed = await committedPool(pool, config.pool);
  const index = (await loadIndex(objects, committed.indexKey)) ?? new RougeIndex();
  const known = new Set(index.instructions.map(instructionKey));

  const counts: Counts = { generated: candidates.length, accepted: 0 };
  const reject = (reason: string) => {
    counts[reason] = (counts[reason] ?? 0) + 1;
  };
  const decisions: GateDecision[] = [];
  const accepted: { candidate: Candidate; decision: GateDecision }[] = [];

  // Heuristic filters first (they don't depend on the pool), then the gate over the survivors in order.
  const survivors: { candidate: Candidate; instruction: string; decision: number }[] = [];
  for (const candidate of candidates) {
    const instruction = normalizeInstruction(config.profile, candidate.instruction);
    const filtered = checkInstruction(config.profile, instruction, { bannedWords: config.bannedWords });
    decisions.push({ instruction, raw: candidate.instruction, status: 'rejected', reason: filtered });
    if (filtered) reject(filtered);
    else survivors.push({ candidate, instruction, decision: decisions.length - 1 });
  }
  // The run never adds more than its target: once the accepted instructions fill what is left of it,
  // the later survivors are `surplus`, neither scored nor added to the index. Gating in slices no longer
  // than the quota left gives the same decisions as one pass (the gate is sequential) and never admits
  // an instruction past the quota.
  const quota = Math.max(0, config.target - progress.added);
  const results: GateResult[] = [];
  let acceptedByGate = 0;
  while (results.length < survivors.length && acceptedByGate < quota) {
    const slice = survivors.slice(results.length, results.length + quota - acceptedByGate);
    for (const result of gate(
      index,
      slice.map((survivor) => survivor.instruction),
      { threshold: config.rougeThreshold },
    )) {
      results.push(result);
      if (result.accepted) acceptedByGate++;
    }
  }
  survivors.forEach(({ candidate, instruction, decision: position }, i) => {
    const score = results[i];
    if (!score) {
      decisions[position] = {
        instruction,
        raw: candidate.instruction,
        status: 'rejected',
        reason: 'surplus',
      };
      reject('surplus');
      return;
    }
    const key = instructionKey(instruction);
    const decision: GateDecision = {
      instruction,
      raw: candidate.instruction,
      status: 'accepted',
      reason: null,
      max_similarity: score.maxSimilarity,
      most_similar: Object.fromEntries(score.mostSimilar.map((entry) => [entry.instruction, entry.score])),
      avg_similarity_score: score.avgSimilarity,
    };
    if (!score.accepted) decision.reason = 'rouge';
    // Only reachable with a threshold of 1: the same instruction is never stored twice.
    else if (known.has(key)) decision.reason = 'duplicate';
    decisions[position] = decision;
    if (decision.reason) {
      decision.status = 'rejected';
      reject(decision.reason);
      return;
    }
    known.add(key);
    decision.id = taskId(instruction);
    accepted.push({ candidate, decision });
    counts.accepted = (counts.accepted ?? 0) + 1;
  });

  // Then the near-duplicate gate, on what the ROUGE-L gate accepted (see `near-duplicates.ts`).
  const nearDuplicates = await rejectNearDuplicates(
    {
      runId,
      iteration,
      config,
      poolInstructions: index.instructions.slice(0, index.size - acceptedByGate),
      synced: index.size,
      vectorsKey: committed.meta?.vectorsKey,
      accepted: accepted.map(({ decision }) => decision),
    },
    { objects, pool, embedders, remainingMs },
  );
  if (nearDuplicates.size > 0) {
    counts[NEAR_DUPLICATE] = nearDuplicates.size;
    counts.accepted = (counts.accepted ?? 0) - nearDuplicates.size;
  }
  accepted.splice(0, accepted.length, ...accepted.filter((_, i) => !nearDuplicates.has(i)));

  const createdAt = now().toISOString();
  const staged = stagedBy(runId, iteration);
  const limit = pLimit(16);
  await Promise.all(
    accepted.map(({ candidate, decision }) =>
      limit(async () => {
        const top = Object.entries(decision.most_similar ?? {})[0];
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
          maxSimilarity: decision.max_similarity,
          mostSimilar: top ? { instruction: top[0], score: top[1] } : undefined,
          avgSimilarity: decision.avg_similarity_score,
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
        decision.status = 'rejected';
        decision.reason = 'duplicate';
      }),
    ),
  );
  const kept = accepted.filter(({ decision }) => decision.status === 'accepted');
  const lateDuplicates = accepted.length - kept.length;
  if (lateDuplicates > 0) {
    counts.accepted = (counts.accepted ?? 0) - lateDuplicates;
    counts.duplicate = (counts.duplicate ?? 0) + lateDuplicates;
  }

  await objects.put(keys.gate, toJsonLines(decisions), 'application/jsonl');
  await objects.put(keys.index, index.toBuffer());

  const ids = kept.map(({ decision }) => decision.id as string);
  const chunks: Chunk[] = [];
  for (let start = 0; start < ids.length; start += config.chunkSize) {
    chunks.push({ index: chunks.length, ids: ids.slice(start, start + config.chunkSize) });
  }
  return { chunks, counts, decisionsKey: keys.gate };
}
