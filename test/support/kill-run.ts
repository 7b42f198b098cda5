/**
 * Runs `selfinstruct run` (the CLI, in a child process, as a user would) and interrupts it when its
 * execution history, which the run writes as it goes, shows a chosen point: SIGKILL for a crash of the
 * whole local process (nothing of it runs on), SIGINT for Ctrl-C (the run aborts itself).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { STAGES } from '../../functions/stages.ts';
import { executionLogPath } from '../../infra/local/executions.ts';
import { PROJECT_ROOT } from '../../infra/project.ts';

/** What happened to the interrupted run. */
export interface InterruptedRun {
  runId: string;
  /** The process's exit code (`null` when a signal killed it) and the signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The run's history as written before and after the signal. */
  history: HistoryEvent[];
}

/** Events of a local run's history file (the lines written so far). */
export function readHistory(dataDir: string, runId: string): HistoryEvent[] {
  const file = executionLogPath(dataDir, runId);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as HistoryEvent];
      } catch {
        return []; // A line cut by the kill.
      }
    });
}

/**
 * True once the history shows a Map item of "Generate instances" started: the middle of that stage (not
 * an item of the instruction batches' Map, which comes first in an iteration).
 */
export const inGenerateInstances = (history: readonly HistoryEvent[]) =>
  history.some(
    (event) =>
      event.type === 'MapIterationStarted' &&
      event.mapIterationStartedEventDetails?.name === STAGES.generateInstances.mapState,
  );

/**
 * Spawns `npm run cli -- run <args> --data-dir <dataDir>` (the CLI's bundle, as `npm start` runs it) and sends `signal` once `when(history)` holds
 * (default: in the middle of "Generate instances"), then waits for the process to end.
 */
export async function interruptRun(
  dataDir: string,
  args: readonly string[],
  {
    signal = 'SIGKILL',
    when = inGenerateInstances,
    timeoutMs = 240_000,
    env = {},
  }: {
    signal?: NodeJS.Signals;
    when?: (history: readonly HistoryEvent[]) => boolean;
    timeoutMs?: number;
    env?: Record<string, string>;
  } = {},
): Promise<InterruptedRun> {
  const child: ChildProcess = spawn(
    process.execPath,
    [path.join(PROJECT_ROOT, 'infra/cli/bin.mjs'), 'run', ...args, '--data-dir', dataDir],
    { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, sig) => resolve({ code, signal: sig })),
  );
  let exited = false;
  void ended.then(() => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  let runId = '';
  while (!exited && Date.now() < deadline) {
    runId ||= /Run (run-[\w-]+) on pool/.exec(stdout)?.[1] ?? '';
    if (runId && when(readHistory(dataDir, runId))) {
      child.kill(signal);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (!exited && Date.now() >= deadline) child.kill('SIGKILL');
  const { code, signal: killedBy } = await ended;
  if (!runId) throw new Error(`the run never started:\n${stdout}\n${stderr}`);
  return { runId, exitCode: code, signal: killedBy, stdout, stderr, history: readHistory(dataDir, runId) };
}
