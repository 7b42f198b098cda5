/**
 * `selfinstruct dedup`: the instruction filter and ROUGE-L gate on files, outside any run. Normalizes
 * and filters each candidate with the profile's rules, then gates the survivors in file order against the
 * pool, growing it with each accepted candidate, as Self-Instruct's bootstrap loop does. Writes one JSON
 * line per candidate (the fields of the original's records) and a summary to stderr.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import {
  checkInstruction,
  FILTER_REASONS,
  normalizeInstruction,
} from '../../functions/shared/engine/filters.ts';
import { DEFAULT_THRESHOLD, type GateResult, gate, RougeIndex } from '../../functions/shared/engine/gate.ts';
import {
  type FileProblem,
  InputFileInvalid,
  NotFound,
  SelfInstructError,
} from '../../functions/shared/errors.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';
import { ProfileName } from '../../functions/shared/schemas.ts';

/** A record with an instruction: a seed task, an Alpaca task, a generated candidate; other fields kept. */
const InstructionRecord = z.looseObject({ instruction: z.string() });

/** Where the command writes: its output lines (without `--out`) and its summary. */
export interface DedupIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** The command's options, as commander parses them. */
export interface DedupOptions {
  pool: string;
  candidates: string;
  profile: ProfileName;
  threshold: number;
  out?: string;
}

/** One output line, with the field names of the Self-Instruct code's records. */
export interface DedupLine {
  instruction: string;
  status: 'accepted' | 'rejected';
  /** `rouge`, a filter reason, or null when accepted. */
  reason: string | null;
  /** Null for a candidate dropped by a filter (never compared). */
  max_similarity: number | null;
  /** Instruction → score, at most 10, highest first. */
  most_similar: [string, number][] | null;
  avg_similarity_score: number | null;
}

/** The `dedup` command, for the main CLI. */
export function dedupCommand(io: DedupIo = process): Command {
  return new Command('dedup')
    .requiredOption(
      '--pool <file>',
      'pool: JSON Lines with an "instruction" field (seed files work), or an Alpaca JSON array',
    )
    .requiredOption('--candidates <file>', 'candidates, same formats, instructions as the model wrote them')
    .addOption(
      new Option('--profile <name>', 'normalization and filters')
        .choices(ProfileName.options)
        .default('default'),
    )
    .option(
      '--threshold <number>',
      'reject when the highest ROUGE-L F is above this',
      parseThreshold,
      DEFAULT_THRESHOLD,
    )
    .option('--out <file>', 'write the JSON lines here instead of stdout')
    .action(async (options: DedupOptions) => {
      await runDedup(options, io);
    });
}

function parseThreshold(value: string): number {
  const threshold = Number(value);
  if (value.trim() === '' || !Number.isFinite(threshold) || threshold < 0 || threshold > 1) {
    throw new InvalidArgumentError('expected a number between 0 and 1');
  }
  return threshold;
}

async function readInstructions(file: string, label: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new NotFound(`${label} file not found: ${file}`);
    throw new SelfInstructError(`cannot read ${label} file ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const fail = (problems: FileProblem[]) =>
    new InputFileInvalid(problems, `${label[0]?.toUpperCase()}${label.slice(1)} file`);
  return parseRecords(text, InstructionRecord, file, fail).map((record) => record.instruction);
}

/** Runs the command: reads both files, filters and gates, writes the lines and the summary. */
export async function runDedup(options: DedupOptions, io: DedupIo): Promise<DedupLine[]> {
  const started = performance.now();
  const pool = await readInstructions(options.pool, 'pool');
  const candidates = await readInstructions(options.candidates, 'candidates');

  // The filters don't depend on the pool, so filtering everything first and gating the survivors in one
  // call decides exactly as interleaving would, and lets the gate scan the pool once per 16 candidates.
  const normalized = candidates.map((raw) => normalizeInstruction(options.profile, raw));
  const filtered = normalized.map((instruction) => checkInstruction(options.profile, instruction));
  const index = RougeIndex.from(pool);
  const gated = gate(
    index,
    normalized.filter((_, i) => filtered[i] === null),
    { threshold: options.threshold },
  );

  let next = 0;
  const lines = normalized.map((instruction, i): DedupLine => {
    const reason = filtered[i] ?? null;
    if (reason !== null) {
      return {
        instruction,
        status: 'rejected',
        reason,
        max_similarity: null,
        most_similar: null,
        avg_similarity_score: null,
      };
    }
    const result = gated[next++] as GateResult;
    return {
      instruction,
      status: result.accepted ? 'accepted' : 'rejected',
      reason: result.accepted ? null : 'rouge',
      max_similarity: result.maxSimilarity,
      most_similar: result.mostSimilar.map((entry) => [entry.instruction, entry.score]),
      avg_similarity_score: result.avgSimilarity,
    };
  });

  const text = lines.map(serialize).join('');
  if (options.out === undefined) io.stdout.write(text);
  else await writeFile(options.out, text);

  const counts = new Map<string, number>([
    ['accepted', 0],
    ['rouge', 0],
    ...FILTER_REASONS.map((r) => [r, 0] as const),
  ]);
  for (const line of lines) {
    const key = line.reason ?? 'accepted';
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const seconds = (performance.now() - started) / 1000;
  const summary = [...counts]
    .filter(([key, n]) => n > 0 || key === 'accepted')
    .map(([key, n]) => `${key} ${n}`);
  io.stderr.write(
    `dedup: ${lines.length} candidates against a pool of ${pool.length} (profile ${options.profile}, threshold ` +
      `${options.threshold}): ${summary.join(', ')}; pool now ${index.size}; ${seconds.toFixed(2)} s\n`,
  );
  return lines;
}

/**
 * One JSON line. `most_similar` is written as an object in descending order; it is built by hand because
 * `JSON.stringify` puts integer-like keys ("42") first. A text that occurs twice in the pool appears once,
 * at its first (highest) place, as in the original's Python dict.
 */
function serialize(line: DedupLine): string {
  let similar = 'null';
  if (line.most_similar !== null) {
    const seen = new Set<string>();
    const entries: string[] = [];
    for (const [instruction, score] of line.most_similar) {
      if (seen.has(instruction)) continue;
      seen.add(instruction);
      entries.push(`${JSON.stringify(instruction)}:${JSON.stringify(score)}`);
    }
    similar = `{${entries.join(',')}}`;
  }
  const head = JSON.stringify({
    instruction: line.instruction,
    status: line.status,
    reason: line.reason,
    max_similarity: line.max_similarity,
  });
  return `${head.slice(0, -1)},"most_similar":${similar},"avg_similarity_score":${JSON.stringify(line.avg_similarity_score)}}\n`;
}
