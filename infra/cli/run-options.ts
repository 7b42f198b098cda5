/**
 * The flags of `run` and the run input they describe, shared by the local run (`run.ts`) and the run
 * started on the deployed stack (`deployed.ts`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { NotFound } from '../../functions/shared/errors.ts';
import { parseJsonFile } from '../../functions/shared/input-files.ts';
import { documentsPrefix, runTemplatesPrefix } from '../../functions/shared/keys.ts';
import type { ObjectStore } from '../../functions/shared/ports.ts';
import { checkTemplates, type TemplateOverrides } from '../../functions/shared/prompt-templates.ts';
import type { RunInput } from '../../functions/shared/schemas.ts';

/** The flags of `run` as commander gives them (strings, as typed). */
export interface RunOptions {
  pool?: string;
  profile?: string;
  method?: string;
  model?: string;
  target?: string;
  iterations?: string;
  seeds?: string;
  concurrency?: string;
  callConcurrency?: string;
  chunkSize?: string;
  instructionBatchSize?: string;
  promptsPerIteration?: string;
  threshold?: string;
  judgeModel?: string;
  minQuality?: string;
  responseStyle?: string;
  teacherModel?: string;
  temperature?: string;
  maxCost?: string;
  prices?: string;
  batch?: boolean;
  batchPollSeconds?: string;
  /** A folder of prompt template files (`*.txt`) replacing the shipped ones by name. */
  templates?: string;
  /** A folder of documents (method backtranslate), uploaded to `documents/<pool>/`. */
  documents?: string;
  groundedQuestions?: string;
  seed?: string;
  input?: string;
  fresh?: boolean;
  dataDir: string;
  out: string;
  verbose?: boolean;
  bundled?: boolean;
  /** `--no-iam` sets this false: the local stack stops enforcing the functions' roles. */
  iam?: boolean;
  dryRun?: boolean;
  deployed?: boolean;
  stateMachineArn?: string;
  bucket?: string;
  stack?: string;
}

const num = (value: string | undefined) => (value === undefined ? undefined : Number(value));

/** The run input the flags describe (validated later by the same schema the console input uses). */
export function runInputFromOptions(options: RunOptions): RunInput {
  const base = options.input
    ? (parseJsonFile(readFileSync(options.input, 'utf8'), options.input) as RunInput)
    : {};
  const flags: Record<string, unknown> = {
    pool: options.pool,
    profile: options.profile,
    method: options.method,
    model: options.model,
    target: num(options.target),
    maxIterations: num(options.iterations),
    mapConcurrency: num(options.concurrency),
    callConcurrency: num(options.callConcurrency),
    chunkSize: num(options.chunkSize),
    instructionBatchSize: num(options.instructionBatchSize),
    promptsPerIteration: num(options.promptsPerIteration),
    rougeThreshold: num(options.threshold),
    judgeModel: options.judgeModel,
    minQuality: num(options.minQuality),
    responseStyle: options.responseStyle,
    teacherModel: options.teacherModel,
    temperature: num(options.temperature),
    maxCostUsd: num(options.maxCost),
    batch: options.batch,
    batchPollSeconds: num(options.batchPollSeconds),
    seed: options.seed,
    groundedQuestions: num(options.groundedQuestions),
    // A documents folder makes it a backtranslation run on that pool's documents folder.
    ...(options.documents
      ? {
          method: options.method ?? 'backtranslate',
          documents: documentsPrefix(options.pool ?? base.pool ?? 'default'),
        }
      : {}),
  };
  const defined = Object.fromEntries(Object.entries(flags).filter(([, value]) => value !== undefined));
  return { trigger: 'cli', ...base, ...defined } as RunInput;
}

/**
 * The `*.txt` files of a `--templates` folder, by file name, checked as "Prepare run" checks them (so a
 * bad template stops the command before anything starts); other files in the folder are left out.
 * `files` are the texts as read (what a run uploads), `templates` as rendered.
 */
export function readTemplatesFolder(dir: string): {
  files: Record<string, string>;
  templates: TemplateOverrides;
} {
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.txt'));
  } catch {
    throw new NotFound(`Templates folder ${dir} does not exist or can't be read`);
  }
  const files = Object.fromEntries(names.map((name) => [name, readFileSync(path.join(dir, name), 'utf8')]));
  return { files, templates: checkTemplates(files, `${dir.replace(/\/+$/, '')}/`) };
}

/**
 * Uploads a `--templates` folder's files to the run's own folder, `templates/<run id>/`, and returns that
 * prefix (the run input `templates`): a later run's templates never change what this one (or a replay of
 * it) renders.
 */
export async function uploadTemplates(
  objects: Pick<ObjectStore, 'put'>,
  files: Readonly<Record<string, string>>,
  runId: string,
): Promise<string> {
  const prefix = runTemplatesPrefix(runId);
  for (const [name, text] of Object.entries(files)) {
    await objects.put(`${prefix}${name}`, text, 'text/plain; charset=utf-8');
  }
  return prefix;
}

/**
 * The CDK context a deployment for this run's models would have: `selfinstruct:model`,
 * `selfinstruct:judgeModel` and `selfinstruct:teacherModel` for the Bedrock ones (the functions may invoke
 * those only), none otherwise.
 */
export function bedrockContext(model: string, judgeModel: string | undefined, teacherModel?: string) {
  const context: Record<string, string> = {};
  if (model.startsWith('bedrock:')) context['selfinstruct:model'] = model;
  if (judgeModel?.startsWith('bedrock:') && judgeModel !== model)
    context['selfinstruct:judgeModel'] = judgeModel;
  if (teacherModel?.startsWith('bedrock:') && teacherModel !== model)
    context['selfinstruct:teacherModel'] = teacherModel;
  return Object.keys(context).length > 0 ? context : undefined;
}

/** A new run id: `run-<UTC yyyymmdd-hhmmss>-<4 random characters>`, sortable by start time. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `run-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * Uploads the files of a `--documents` folder (not its subfolders) to `documents/<pool>/`, as a user's
 * upload in AWS would put them (there, the upload itself starts the run), and returns their keys. Files
 * that are not documents are uploaded too: "Prepare run" says which it did not read.
 */
export async function uploadDocuments(objects: ObjectStore, dir: string, pool: string): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name)
      .sort();
  } catch {
    throw new NotFound(`Documents folder ${dir} does not exist or can't be read`);
  }
  if (names.length === 0) throw new NotFound(`Documents folder ${dir} holds no file`);
  const keys: string[] = [];
  for (const name of names) {
    const key = `${documentsPrefix(pool)}${name}`;
    await objects.put(key, readFileSync(path.join(dir, name)));
    keys.push(key);
  }
  return keys;
}
