/**
 * The export's three files (`dataset.jsonl`, `alpaca.json`, `tasks.jsonl`) gathered in one pass over the
 * paged pool query and read back as streams, in memory bounded however large the pool.
 *
 * The files list the tasks oldest first: by run, then iteration, then id. The query returns id order, so
 * each (run, iteration) group is in order as it fills, but the groups arrive interleaved: a task's lines
 * are kept by group until the pass ends. Past `memoryChars` of kept text, every group's text so far is
 * appended, gzipped, to a file of its own in a temporary folder (the Lambda's `/tmp`; the gzip members
 * of one file are read back as one stream), and reading a file streams each group's spilled text, then
 * what is still in memory. A pool whose files fit in `memoryChars` never touches the disk.
 */
import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { createGunzip, gzip } from 'node:zlib';
import { ExportTooLarge } from '../shared/errors.ts';
import {
  joinedChunks,
  jsonArrayEntry,
  toAlpacaRecord,
  toRecords,
  toSeedFormat,
} from '../shared/exports/formats.ts';
import type { PoolTask } from '../shared/ports.ts';

const gzipAsync = promisify(gzip);

/** The files of a run's export, by their name in `exportKeys`. */
export const POOL_FILES = ['dataset', 'alpaca', 'tasks'] as const;
export type PoolFile = (typeof POOL_FILES)[number];

/** Text kept in memory before it goes to disk: about 2 × this many bytes of heap at most. */
export const POOL_FILES_MEMORY_CHARS = 8 * 1024 * 1024;

/** The gathered files: read each as a stream of text, then `dispose` of the spilled text. */
export interface PoolFiles {
  taskCount: number;
  recordCount: number;
  /** Whether some text went to disk (the pool's files were larger than the memory allowed). */
  spilled: boolean;
  /** Bytes of gzipped text it wrote to disk. */
  spilledBytes: number;
  /** The file's text, in chunks, from the start; may be read several times, and files at once. */
  read(file: PoolFile): AsyncIterable<string>;
  /** Removes the spilled text. */
  dispose(): Promise<void>;
}

/** How much text stays in memory, and how much may go to disk. */
export interface GatherOptions {
  /** Text kept in memory before it goes to disk. @default POOL_FILES_MEMORY_CHARS */
  memoryChars?: number;
  /**
   * Gzipped bytes the spill may write (the function's ephemeral storage, `spill-size.ts`); past it, or
   * past the free space of the temporary folder, the gathering stops with `ExportTooLarge`. @default no limit
   */
  spillLimitBytes?: number;
}

interface Group {
  runId: string;
  iteration: number;
  /** Its number, naming its spill files. */
  index: number;
  /** Text not spilled yet, per file. `alpaca` holds entries each preceded by `,\n`. */
  kept: Record<PoolFile, string[]>;
  spilled: Set<PoolFile>;
}

/**
 * Gathers the export's files from the pool's items (`listTasks`: committed tasks, in id order): its
 * machine tasks with valid instances, in `toSeedFormat` (`tasks.jsonl`), one `toRecords` record per
 * instance (`dataset.jsonl`) and Alpaca's array of them, pretty-printed as `JSON.stringify(records, null, 2)`
 * writes it (`alpaca.json`).
 */
export async function gatherPoolFiles(
  items: AsyncIterable<PoolTask>,
  { memoryChars = POOL_FILES_MEMORY_CHARS, spillLimitBytes = Number.POSITIVE_INFINITY }: GatherOptions = {},
): Promise<PoolFiles> {
  const groups = new Map<string, Group>();
  let taskCount = 0;
  let recordCount = 0;
  let keptChars = 0;
  let spilledBytes = 0;
  let folder: string | undefined;
  /** The bytes the spill may reach: `spillLimitBytes`, or less when the disk has less room. */
  let limit = spillLimitBytes;
  let limitName = '';
  const spillPath = (group: Group, file: PoolFile) => path.join(folder ?? '', `${group.index}.${file}.gz`);

  const spill = async () => {
    if (folder === undefined) {
      folder = await mkdtemp(path.join(tmpdir(), 'selfinstruct-export-'));
      const disk = await statfs(folder);
      const free = disk.bavail * disk.bsize;
      limitName =
        free < limit
          ? `the ${mib(free)} free in ${tmpdir()}`
          : `the spill limit of ${mib(limit)} (the function's ephemeral storage)`;
      limit = Math.min(limit, free);
    }
    for (const group of groups.values()) {
      for (const file of POOL_FILES) {
        if (group.kept[file].length === 0) continue;
        const gzipped = await gzipAsync(group.kept[file].join(''));
        if (spilledBytes + gzipped.length > limit) {
          throw new ExportTooLarge(
            `the export does not fit its temporary space: after ${taskCount} tasks its files take ` +
              `${mib(spilledBytes + gzipped.length)} gzipped, over ${limitName}; ` +
              'give "Export dataset" more ephemeral storage (functions/stages.ts, up to 10,240 MB) ' +
              'or export the pool with the CLI (selfinstruct export <pool> --pool)',
          );
        }
        await appendFile(spillPath(group, file), gzipped);
        spilledBytes += gzipped.length;
        group.kept[file] = [];
        group.spilled.add(file);
      }
    }
    keptChars = 0;
  };

  try {
    for await (const item of items) {
      if (item.source !== 'machine' || item.status !== 'complete') continue;
      const task = toSeedFormat(item);
      const runId = task.run_id ?? '';
      const iteration = task.iteration ?? 0;
      const name = `${runId}\u0000${iteration}`;
      let group = groups.get(name);
      if (group === undefined) {
        group = {
          runId,
          iteration,
          index: groups.size,
          kept: { dataset: [], alpaca: [], tasks: [] },
          spilled: new Set(),
        };
        groups.set(name, group);
      }
      const keep = (file: PoolFile, text: string) => {
        group.kept[file].push(text);
        keptChars += text.length;
      };
      keep('tasks', `${JSON.stringify(task)}\n`);
      taskCount++;
      for (const record of toRecords(task)) {
        keep('dataset', `${JSON.stringify(record)}\n`);
        // An entry of the pretty-printed array: its lines indented one level, after the separator.
        keep('alpaca', `,\n${jsonArrayEntry(toAlpacaRecord(record))}`);
        recordCount++;
      }
      if (keptChars > memoryChars) await spill();
    }
  } catch (error) {
    if (folder !== undefined) await rm(folder, { recursive: true, force: true });
    throw error;
  }

  const ordered = [...groups.values()].sort(
    (a, b) => a.runId.localeCompare(b.runId) || a.iteration - b.iteration,
  );

  async function* body(file: PoolFile): AsyncIterable<string> {
    for (const group of ordered) {
      if (group.spilled.has(file)) {
        const text = createReadStream(spillPath(group, file)).pipe(createGunzip());
        text.setEncoding('utf8');
        yield* text as AsyncIterable<string>;
      }
      yield* joinedChunks(group.kept[file]);
    }
  }

  async function* read(file: PoolFile): AsyncIterable<string> {
    if (file !== 'alpaca') {
      yield* body(file);
      return;
    }
    if (recordCount === 0) {
      yield '[]\n';
      return;
    }
    yield '[\n';
    // Every entry is preceded by `,\n`: all but the first need it.
    let skip = 2;
    for await (const chunk of body(file)) {
      const text = chunk.slice(skip);
      skip = Math.max(0, skip - chunk.length);
      if (text !== '') yield text;
    }
    yield '\n]\n';
  }

  return {
    taskCount,
    recordCount,
    spilled: folder !== undefined,
    spilledBytes,
    read,
    async dispose() {
      if (folder !== undefined) await rm(folder, { recursive: true, force: true });
    },
  };
}

const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;

/** A file's whole text (tests, small pools). */
export async function readPoolFile(files: PoolFiles, file: PoolFile): Promise<string> {
  let text = '';
  for await (const chunk of files.read(file)) text += chunk;
  return text;
}
