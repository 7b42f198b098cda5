/**
 * A local run interrupted in the middle of "Generate instances": Ctrl-C (SIGINT) aborts it the way
 * StopExecution would (history ends with ExecutionAborted, the run is marked ABORTED, its pool's lease
 * is given back, so `watch` ends and the next run may start); SIGKILL kills the process outright, leaving
 * a history without an end (what a kill-and-resume test starts from).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { localHistory, statusFromHistory } from '../../infra/cli/status.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { interruptRun } from '../support/kill-run.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-interrupt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
// Several Map items, each slow enough to be interrupted in the middle.
const args = ['--pool', 'p', '--target', '200', '--iterations', '1', '--prompts-per-iteration', '4'];
args.push('--chunk-size', '5', '--concurrency', '2');

describe('a local run interrupted in the middle of "Generate instances"', () => {
  it('by Ctrl-C is aborted: history, run record and pool lease say so', async () => {
    const dataDir = path.join(work, 'sigint');
    const run = await interruptRun(dataDir, ['--fresh', ...args], { signal: 'SIGINT' });
    expect(run.exitCode, run.stderr).toBe(130);
    expect(run.stderr).toMatch(/aborted/);
    expect(run.history.at(-1)?.type).toBe('ExecutionAborted');
    expect(statusFromHistory(run.runId, await localHistory(dataDir, run.runId).history()).status).toBe(
      'ABORTED',
    );
    const stack = await LocalStack.start({ dataDir });
    try {
      expect(await stack.pool.getRun(run.runId)).toMatchObject({ status: 'ABORTED' });
      // Its lease is given back: the next run takes the pool at once.
      expect((await stack.pool.getMeta('p'))?.lease).toBeUndefined();
    } finally {
      await stack.close();
    }
  }, 300_000);

  it('by SIGKILL dies at once, its history cut in the middle of the stage', async () => {
    const run = await interruptRun(path.join(work, 'sigkill'), ['--fresh', ...args]);
    expect(run.signal).toBe('SIGKILL');
    const types = run.history.map((event) => event.type);
    expect(types).toContain('MapIterationStarted');
    expect(types.filter((type) => type?.startsWith('Execution') && type !== 'ExecutionStarted')).toEqual([]);
  }, 300_000);
});
