/**
 * The local stack's record of its executions, in the data folder: each execution's history (the events
 * `GetExecutionHistory` would return, for `status` and `watch`) and, while it runs, an "open" marker.
 * In AWS no execution disappears without an end: it ends as failed, timed out or aborted, and EventBridge
 * says so. A local execution dies with its process (SIGKILL, a crash, a closed laptop): the marker it
 * leaves tells the next process that opens the folder (one at a time: its lock) to end it the AWS way.
 */
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import type { HistoryEvent } from '@aws-sdk/client-sfn';

const folder = (dataDir: string) => path.join(dataDir, 'executions');

/** Where a local run's history is written. */
export const executionLogPath = (dataDir: string, name: string) =>
  path.join(folder(dataDir), `${name}.jsonl`);

const markerPath = (dataDir: string, name: string) => path.join(folder(dataDir), `${name}.open.json`);

/** What an open marker keeps: enough to send the execution's status-change event later. */
export interface OpenExecution {
  name: string;
  input: unknown;
  startDate: number;
}

/** Marks an execution as running in this process. */
export function markOpen(dataDir: string, execution: OpenExecution): void {
  mkdirSync(folder(dataDir), { recursive: true });
  writeFileSync(markerPath(dataDir, execution.name), JSON.stringify(execution));
}

/** The execution ended (its status-change event was delivered). */
export function markClosed(dataDir: string, name: string): void {
  rmSync(markerPath(dataDir, name), { force: true });
}

/** Executions whose process ended before they did. */
export function openExecutions(dataDir: string): OpenExecution[] {
  if (!existsSync(folder(dataDir))) return [];
  return readdirSync(folder(dataDir))
    .filter((file) => file.endsWith('.open.json'))
    .map((file) => JSON.parse(readFileSync(path.join(folder(dataDir), file), 'utf8')) as OpenExecution);
}

/** Appends the end of an execution to its history, if it has one (a run started by the CLI). */
export function appendEnd(
  dataDir: string,
  name: string,
  event: Omit<HistoryEvent, 'id' | 'previousEventId'>,
) {
  const file = executionLogPath(dataDir, name);
  if (!existsSync(file)) return;
  const count = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '').length;
  appendFileSync(file, `${JSON.stringify({ ...event, id: count + 1, previousEventId: count })}\n`);
}
