/**
 * What an import will add, decided from the files alone before anything is written: every file read and
 * checked (`formats.ts`), Self-Instruct's instances prepared as the paper's preparation step does
 * (`paper.ts`) with the classification its `is_clf_or_not` files give, and one task per instruction (task
 * ids are hashes of the instruction, as the pool's). Any problem in any file stops the import with one
 * `ImportFileInvalid` listing each with its file, line and field.
 */

import { pyStrip } from '../../../functions/shared/engine/filters.ts';
import { type FileProblem, InputFileInvalid } from '../../../functions/shared/errors.ts';
import { parseSeedFile } from '../../../functions/shared/input-files.ts';
import { taskId } from '../../../functions/shared/pool-ids.ts';
import type { TaskQuality } from '../../../functions/shared/ports.ts';
import type { TaskLine } from '../../../functions/shared/records.ts';
import type { AlpacaTask, Counts, Instance, SeedTask } from '../../../functions/shared/schemas.ts';
import {
  type ClassificationLine,
  type ImportFormat,
  type InstanceLine,
  type InstructionLine,
  readImportFile,
} from './formats.ts';
import { prepareInstances } from './paper.ts';

/** Files given to `import` that can't be imported: every problem, with its file, line and field. */
export class ImportFileInvalid extends InputFileInvalid {
  constructor(problems: FileProblem[]) {
    super(problems, 'Import');
  }
}

/** The largest task (instruction and instances as JSON) an import stores: a DynamoDB item holds 400 KB. */
export const MAX_IMPORTED_TASK_BYTES = 256 * 1024;

/** Why a task read from an instructions file alone is kept out of the dataset: it has no instance. */
export const NO_INSTANCES = 'no-instances';

/** One task the import will add, in the order the files give it. */
export interface PlannedTask {
  id: string;
  /** Stripped (Python's `strip()`), as the paper's preparation step writes it. */
  instruction: string;
  isClassification: boolean;
  instances: Instance[];
  /** Set when it has no instance: the stage's reasons, or `no-instances` (an instructions file's line). */
  rejectReason?: string;
  /** What preparing its instances dropped, by the stage's outcome keys. */
  outcome: Counts;
  name?: string;
  mostSimilar?: { instruction: string; score: number };
  avgSimilarity?: number;
  quality?: TaskQuality;
  /** Where it was read (its first line). */
  from: { file: string; line: number; format: ImportFormat };
}

/** What an import will add. */
export interface ImportPlan {
  files: { file: string; format: ImportFormat; records: number }[];
  tasks: PlannedTask[];
  /** The `--seeds` file's tasks (none without it). */
  seeds: SeedTask[];
  seedsFile?: string;
  /** Records read, and records of an instruction read before (`duplicate`). */
  counts: Counts;
}

/** A file given: its name as the user gave it, and its bytes. */
export interface ImportInput {
  file: string;
  bytes: Uint8Array;
}

/**
 * Plans an import of `inputs` (in order) with `seeds` as the pool's seed file; `seed` seeds the paper's
 * draw of 5 instances among more. Throws `ImportFileInvalid` listing every problem of every file.
 */
export function planImport(
  inputs: readonly ImportInput[],
  { seeds, seed }: { seeds?: ImportInput; seed: string },
): ImportPlan {
  const problems: FileProblem[] = [];
  const files = inputs.flatMap((input) => readImportFile(input.bytes, input.file, problems) ?? []);
  let seedTasks: SeedTask[] = [];
  if (seeds) {
    try {
      seedTasks = parseSeedFile(seeds.bytes, seeds.file).tasks;
    } catch (error) {
      if (!(error instanceof InputFileInvalid)) throw error;
      problems.push(...error.problems);
    }
  }

  // The paper's classification of each instruction: `is_classification.strip() in ["Yes", "yes", "YES"]`,
  // the last file's answer for an instruction given twice (a Python dict).
  const classification = new Map<string, boolean>();
  for (const { records } of files.filter((file) => file.format === 'classification')) {
    for (const { value } of records) {
      const { instruction, is_classification } = value as ClassificationLine;
      classification.set(instruction, ['Yes', 'yes', 'YES'].includes(pyStrip(is_classification)));
    }
  }

  const tasks = new Map<string, PlannedTask>();
  const counts: Counts = { read: 0 };
  const add = (task: PlannedTask, carriesInstances: boolean) => {
    counts.read = (counts.read ?? 0) + 1;
    const earlier = tasks.get(task.id);
    if (earlier === undefined) {
      tasks.set(task.id, task);
      return;
    }
    // An instructions file's line and the instances of the same instruction make one task.
    if (!carriesInstances || earlier.rejectReason === NO_INSTANCES) {
      const [withInstances, other] = carriesInstances ? [task, earlier] : [earlier, task];
      tasks.set(task.id, {
        ...withInstances,
        mostSimilar: withInstances.mostSimilar ?? other.mostSimilar,
        avgSimilarity: withInstances.avgSimilarity ?? other.avgSimilarity,
        from: earlier.from,
      });
      return;
    }
    // Alpaca's format has one instance per record: records of one instruction are one task.
    if (earlier.from.format === 'alpaca' && task.from.format === 'alpaca') {
      const known = new Set(earlier.instances.map((instance) => JSON.stringify(instance)));
      earlier.instances.push(...task.instances.filter((instance) => !known.has(JSON.stringify(instance))));
      return;
    }
    counts.duplicate = (counts.duplicate ?? 0) + 1;
  };

  for (const { file, format, records } of files) {
    const classifies = files.some((other) => other.format === 'classification');
    if (format === 'instances' && !classifies && records.length > 0) {
      problems.push({
        file,
        message:
          'Self-Instruct instances need the classification of their instructions: give the is_clf_or_not_*.jsonl file of the same batch too',
      });
      continue;
    }
    for (const { line, value } of records) {
      const from = { file, line, format };
      const problem = (field: string, message: string) => problems.push({ file, line, field, message });
      const task = TASK_READERS[format]?.(value, { from, classification, seed, problem });
      if (task === undefined) continue;
      const bytes = Buffer.byteLength(
        JSON.stringify({ instruction: task.instruction, instances: task.instances }),
      );
      if (bytes > MAX_IMPORTED_TASK_BYTES) {
        problem('instances', `the task is ${bytes} bytes, over the limit of ${MAX_IMPORTED_TASK_BYTES}`);
        continue;
      }
      add(task, format !== 'instructions');
    }
  }
  if (problems.length > 0) throw new ImportFileInvalid(problems);
  return {
    files: files.map(({ file, format, records }) => ({ file, format, records: records.length })),
    tasks: [...tasks.values()],
    seeds: seedTasks,
    seedsFile: seeds?.file,
    counts,
  };
}

interface ReadContext {
  from: PlannedTask['from'];
  classification: ReadonlyMap<string, boolean>;
  seed: string;
  problem(field: string, message: string): void;
}

/** A task of a record, by format (a classification file's lines make none: they classify the others'). */
const TASK_READERS: Partial<
  Record<ImportFormat, (value: unknown, context: ReadContext) => PlannedTask | undefined>
> = {
  instructions: (value, { from, classification }) => {
    const line = value as InstructionLine;
    return {
      ...base(line.instruction, from),
      isClassification: classification.get(line.instruction) ?? false,
      rejectReason: NO_INSTANCES,
      ...similarity(line),
    };
  },
  instances: (value, { from, classification, seed, problem }) => {
    const line = value as InstanceLine;
    const isClassification = classification.get(line.instruction);
    if (isClassification === undefined) {
      problem('instruction', 'no is_classification for this instruction in the is_clf_or_not files given');
      return undefined;
    }
    const response = line.instance_metadata.response;
    if (response === null && pyStrip(line.raw_instances) !== '') {
      problem('instance_metadata.response', 'null (the request failed), yet raw_instances is not empty');
      return undefined;
    }
    const task = base(line.instruction, from);
    const prepared = prepareInstances(line.raw_instances, {
      isClassification,
      finishReason: response?.choices[0]?.finish_reason ?? null,
      seed: `${seed}:${task.id}`,
    });
    return {
      ...task,
      isClassification,
      instances: prepared.kept,
      rejectReason: prepared.rejected,
      outcome: prepared.outcome,
      ...similarity(line),
    };
  },
  alpaca: (value, { from }) => {
    const { instruction, input, output } = value as AlpacaTask;
    return { ...base(instruction, from), instances: [{ input, output }] };
  },
  tasks: (value, { from }) => {
    const line = value as TaskLine;
    const { quality_score, instruction_valid, input_appropriate, output_correct, quality_reason } = line;
    return {
      ...base(line.instruction, from),
      isClassification: line.is_classification,
      instances: line.instances,
      name: line.name,
      mostSimilar:
        line.most_similar_instruction === undefined || line.most_similar_score === undefined
          ? undefined
          : { instruction: line.most_similar_instruction, score: line.most_similar_score },
      avgSimilarity: line.avg_similarity_score,
      quality:
        quality_score === undefined ||
        instruction_valid === undefined ||
        input_appropriate === undefined ||
        output_correct === undefined ||
        quality_reason === undefined
          ? undefined
          : {
              score: quality_score,
              instructionValid: instruction_valid,
              inputAppropriate: input_appropriate,
              outputCorrect: output_correct,
              reason: quality_reason,
            },
    };
  },
};

function base(instruction: string, from: PlannedTask['from']): PlannedTask {
  const stripped = pyStrip(instruction);
  return {
    id: taskId(stripped),
    instruction: stripped,
    isClassification: false,
    instances: [],
    outcome: {},
    from,
  };
}

/** The most similar instruction and the mean similarity a Self-Instruct line records (against its own pool). */
function similarity(line: Pick<InstructionLine, 'most_similar' | 'avg_similarity_score'>) {
  const [top] = Object.entries(line.most_similar ?? {}).sort(([, a], [, b]) => b - a);
  return {
    mostSimilar: top && { instruction: top[0], score: top[1] },
    avgSimilarity: line.avg_similarity_score,
  };
}
