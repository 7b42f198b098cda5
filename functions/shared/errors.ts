/**
 * Named errors. Handlers throw them; the state machine's Retry/Catch rules match on `name`,
 * and the CLI prints their message without a stack trace.
 */

/** Base class: sets `name` from the subclass so Step Functions sees e.g. `SeedFileInvalid`. */
export class SelfInstructError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One problem in an input file: where it is and what is wrong. */
export interface FileProblem {
  file: string;
  /** 1-based line number, when the file is line-oriented. */
  line?: number;
  /** Dotted path of the offending field, e.g. `instances.0.output`. */
  field?: string;
  message: string;
}

/** Formats a problem as `file:line: field: message`. */
export function formatProblem(p: FileProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  return p.field ? `${where}: ${p.field}: ${p.message}` : `${where}: ${p.message}`;
}

/** An input file (seed file, candidates, pool) that can't be used; lists every problem found. */
export class InputFileInvalid extends SelfInstructError {
  constructor(
    readonly problems: FileProblem[],
    label = 'Input file',
  ) {
    super(
      `${label} is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems
          .slice(0, 20)
          .map((p) => `  ${formatProblem(p)}`)
          .join('\n') +
        (problems.length > 20 ? `\n  … and ${problems.length - 20} more` : ''),
    );
  }
}

/** A JSON file that does not parse: names the file, line and column, as a compiler would. */
export class JsonFileInvalid extends SelfInstructError {}

/** A seed file that can't start a run. */
export class SeedFileInvalid extends InputFileInvalid {
  constructor(problems: FileProblem[]) {
    super(problems, 'Seed file');
  }
}

/** The run input does not match the schema. */
export class RunInputInvalid extends SelfInstructError {}

/** Another run is growing the pool (it holds the pool's lease). */
export class PoolBusy extends SelfInstructError {}

/** Another process has the local data folder open (one process at a time can: LevelDB's lock). */
export class DataFolderBusy extends SelfInstructError {}

/** A file or object that should exist does not. */
export class NotFound extends SelfInstructError {}

/** The model provider throttled the request (retried with backoff by the state machine). */
export class ModelThrottled extends SelfInstructError {}

/** A transient model/provider failure (timeout, 5xx): retried by the state machine. */
export class ModelUnavailable extends SelfInstructError {}

/** A permanent model error (bad model id, access denied, bad request): fails the run. */
export class ModelRequestFailed extends SelfInstructError {}

/** A `replay:` model has no recorded reply for a call and no fallback: the stage counts it, the run goes on. */
export class NotRecorded extends SelfInstructError {}

/** A batch job (batch mode) failed, expired or was stopped: the run fails, naming the job and why. */
export class BatchJobFailed extends SelfInstructError {}

/** A missing or malformed configuration value (environment variable, context key). */
export class ConfigurationError extends SelfInstructError {}

/** An iteration's Map reported success but left tasks unfinished: it is not committed. */
export class IterationIncomplete extends SelfInstructError {}

/** A document under `documents/<pool>/` that can't be read as its file type says (a broken PDF, say). */
export class DocumentInvalid extends SelfInstructError {}

/**
 * The export's files, spilled to the function's `/tmp` while the pool is read, would cross the space it
 * has: names the limit and how far the export got.
 */
export class ExportTooLarge extends SelfInstructError {}
