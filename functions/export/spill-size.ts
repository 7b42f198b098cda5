/**
 * How much `/tmp` "Export dataset" needs. While it reads the pool it spills the export's files, gzipped,
 * to the function's ephemeral storage (`pool-files.ts`): nearly all of their text, whatever the memory
 * keeps. Lambda gives 512 MB of it free and bills more per GB-second, up to 10,240 MB. Pure arithmetic,
 * so the stage registry, the pricing model and the stage itself agree on it.
 */

/** Lambda's ephemeral storage: what every function has without paying, and the most it can have. */
export const LAMBDA_FREE_EPHEMERAL_MB = 512;
export const LAMBDA_MAX_EPHEMERAL_MB = 10_240;

/**
 * Spilled bytes per exported task (its three files' text, gzipped), measured with realistic text:
 * `npm run bench:export -- --sizes 100000` printed 622 B a task, `--sizes 200000` 633 B (the seed
 * tasks' shapes and words, shuffled; README "Iterations at scale"), rounded up.
 */
export const SPILL_BYTES_PER_TASK = 700;

/** The pool the Export function is sized for: a pool of this many machine tasks fits with `SPILL_HEADROOM`. */
export const EXPORT_SIZED_FOR_TASKS = 1_000_000;

/** Margin over the measured spill: text longer than the seeds', and the bench's sampling. */
export const SPILL_HEADROOM = 1.5;

/** Space of `/tmp` the spill leaves to anything else (the runtime, a crashed attempt's leftovers). */
export const TMP_RESERVE_MB = 64;

/**
 * The ephemeral storage (MB) a pool of `tasks` needs: its spill × `headroom`, plus `TMP_RESERVE_MB`,
 * rounded up to a multiple of 512 MB, at least Lambda's free 512 MB. Throws `RangeError` past Lambda's
 * maximum: that pool needs another way out (the CLI's `export --pool`).
 */
export function ephemeralStorageMbFor(
  tasks: number,
  { bytesPerTask = SPILL_BYTES_PER_TASK, headroom = SPILL_HEADROOM } = {},
): number {
  const needed = (tasks * bytesPerTask * headroom) / (1024 * 1024) + TMP_RESERVE_MB;
  const mb = Math.max(LAMBDA_FREE_EPHEMERAL_MB, Math.ceil(needed / 512) * 512);
  if (mb > LAMBDA_MAX_EPHEMERAL_MB) {
    throw new RangeError(
      `${tasks} tasks need ${mb} MB of ephemeral storage to export, over Lambda's ${LAMBDA_MAX_EPHEMERAL_MB} MB`,
    );
  }
  return mb;
}

/** The bytes the export may spill in a function with `ephemeralMb` of `/tmp`: all of it but the reserve. */
export function spillLimitBytes(ephemeralMb: number): number {
  return (ephemeralMb - TMP_RESERVE_MB) * 1024 * 1024;
}
