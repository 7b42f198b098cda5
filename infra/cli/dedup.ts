/**
 * `selfinstruct dedup`: the instruction filter and ROUGE-L gate on files, outside any run. Normalizes
 * and filters each candidate with the profile's rules, then gates the survivors in file order against the
 * pool, growing it with each accepted candidate, as Self-Instruct's bootstrap loop does. Writes one JSON
 * line per candidate (the fields of the original's records) as the gate goes, and a summary to stderr.
 * Large inputs are gated on worker threads (`gate-threads.ts`), with the same results.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import { DecisionWriter, decide, screen } from '../../functions/shared/engine/decisions.ts';
import { FILTER_REASONS } from '../../functions/shared/engine/filters.ts';
import { DEFAULT_THRESHOLD, type GateResult, gate, RougeIndex } from '../../functions/shared/engine/gate.ts';
import {
  type FileProblem,
  InputFileInvalid,
  NotFound,
  SelfInstructError,
} from '../../functions/shared/errors.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';
import { ProfileName } from '../../functions/shared/schemas.ts';
import { autoThreads, gateInThreads } from './gate-threads.ts';

/** A record with an instruction: a seed task, an Alpaca task, a generated candidate; other fields kept. */
const InstructionRecord = z.looseObject({ instruction: z.string() });

/** A stream the command writes to; one with `once` is waited for when it asks to (`drain`). */
interface Output {
  write(text: string): unknown;
  once?(event: 'drain', listener: () => void): unknown;
}

/** Where the command writes: its output lines (without `--out`) and its summary. */
export interface DedupIo {
  stdout: Output;
  stderr: { write(text: string): unknown };
}

/** The command's options, as commander parses them. */
export interface DedupOptions {
  pool: string;
  candidates: string;
  profile: ProfileName;
  threshold: number;
  out?: string;
  /** Worker threads gating (0: in this thread), or `auto`: every core when the work pays for them. */
  threads: number | 'auto';
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
    .addOption(
      new Option('--threads <n>', 'worker threads gating (0: none); default: every core for large inputs')
        .argParser(parseThreads)
        .default('auto'),
    )
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

function parseThreads(value: string): number | 'auto' {
  if (value === 'auto') return value;
  const threads = Number(value);
  if (!/^\d+$/.test(value) || threads > 256)
    throw new InvalidArgumentError('expected a whole number up to 256');
  return threads;
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

/** What the command decided: candidates per outcome (`accepted`, `rouge`, the filters' reasons). */
export type DedupCounts = Map<string, number>;

/** Runs the command: reads both files, filters and gates, writes the lines as it goes and the summary. */
export async function runDedup(options: DedupOptions, io: DedupIo): Promise<DedupCounts> {
  const started = performance.now();
  const pool = await readInstructions(options.pool, 'pool');
  const candidates = await readInstructions(options.candidates, 'candidates');

  const screened = screen(options.profile, candidates);
  const survivors = screened.flatMap((candidate) =>
    candidate.filtered === null ? [candidate.instruction] : [],
  );
  const index = RougeIndex.from(pool);
  const threads = options.threads === 'auto' ? autoThreads(index.size, survivors.length) : options.threads;
  const results =
    threads > 0
      ? gateInThreads(index, survivors, { threshold: options.threshold, threads })
      : inThisThread(index, survivors, options.threshold);

  const out = options.out === undefined ? io.stdout : createWriteStream(options.out);
  const counts: DedupCounts = new Map([
    ['accepted', 0],
    ['rouge', 0],
    ...FILTER_REASONS.map((r) => [r, 0] as const),
  ]);
  // The lines of the Self-Instruct code's records, without `raw` (the input file has it).
  const writer = new DecisionWriter({ raw: false });
  for await (const batch of decide(screened, results)) {
    let text = '';
    for (const decision of batch) {
      const outcome = decision.reason ?? 'accepted';
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      text += writer.line(decision);
    }
    await write(out, text);
  }
  if (out !== io.stdout && 'end' in out) {
    out.end();
    await finished(out);
  }

  const seconds = (performance.now() - started) / 1000;
  const summary = [...counts]
    .filter(([key, n]) => n > 0 || key === 'accepted')
    .map(([key, n]) => `${key} ${n}`);
  io.stderr.write(
    `dedup: ${candidates.length} candidates against a pool of ${pool.length} (profile ${options.profile}, threshold ` +
      `${options.threshold}): ${summary.join(', ')}; pool now ${index.size}; ${seconds.toFixed(2)} s\n`,
  );
  return counts;
}

/** The gate in this thread, in slices, so that lines are written as it goes. */
function* inThisThread(
  index: RougeIndex,
  texts: readonly string[],
  threshold: number,
): Generator<GateResult[]> {
  for (let start = 0; start < texts.length; start += 1024) {
    yield gate(index, texts.slice(start, start + 1024), { threshold });
  }
}

/** Writes `text`, waiting while the stream asks to. */
async function write(out: Output, text: string): Promise<void> {
  if (text === '' || out.write(text) !== false || out.once === undefined) return;
  const once = out.once.bind(out);
  await new Promise<void>((resolve) => {
    once('drain', resolve);
  });
}
