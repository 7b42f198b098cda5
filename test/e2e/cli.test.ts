/**
 * End to end: the `selfinstruct` command as a user runs it, in child processes. A local run writes its
 * dataset and its report, and its history from the command's start; then `status`, `export`, `report`,
 * `estimate` and `seeds validate` work on it without synthesizing the stack or loading CDK (an import
 * hook fails the process if they do); a second process on a folder in use stops with one line naming
 * the run that holds it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRunResult, runLocal } from '../../infra/cli/run.ts';
import { localHistory, statusFromHistory } from '../../infra/cli/status.ts';
import { lockPath } from '../../infra/local/lock.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-cli-e2e-'));
const dataDir = path.join(work, 'data');
const out = path.join(work, 'out');
let result: LocalRunResult;

beforeAll(async () => {
  result = await runLocal(
    { dataDir, out, fresh: true, pool: 'cli', target: '20', iterations: '1', promptsPerIteration: '3' },
    () => {},
  );
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
}, 180_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs the CLI in a child process that fails on any import of aws-cdk-lib or of the synthesis. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // As `npm run cli` runs it: from the CLI's bundle (`infra/cli/bundle.mjs`).
  const node = ['--import', './test/support/forbid-cdk.mjs', 'infra/cli/bin.mjs'];
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [...node, ...args], {
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('a local run', () => {
  it('writes the report next to its dataset', () => {
    const folder = path.join(out, result.runId);
    expect(result.outDir).toBe(folder);
    expect(result.report).toEqual({
      html: path.join(folder, 'report.html'),
      stats: path.join(folder, 'stats.json'),
    });
    expect(readFileSync(path.join(folder, 'report.html'), 'utf8')).toContain(result.runId);
    const stats = JSON.parse(readFileSync(path.join(folder, 'stats.json'), 'utf8'));
    expect(stats.totals.added).toBe(result.summary?.added);
    expect(existsSync(path.join(folder, 'dataset.jsonl'))).toBe(true);
  });

  it('counts its start-up in the elapsed time `status` shows', async () => {
    const events = await localHistory(dataDir, result.runId).history();
    const { elapsedMs, status } = statusFromHistory(result.runId, events);
    expect(status).toBe('SUCCEEDED');
    expect(elapsedMs).toBeGreaterThan(result.timings.executionMs);
    expect(elapsedMs).toBeLessThanOrEqual(result.timings.totalMs);
  });
});

describe('the commands that read a run', () => {
  it('check that the import hook really stops CDK', async () => {
    const { code, stderr } = await cli('run', '--data-dir', path.join(work, 'other'), '--bundled');
    expect(code).toBe(1);
    expect(stderr).toMatch(/forbidden import: (aws-cdk-lib|.*synth\.ts|.*synth-\w+\.mjs)/);
  }, 60_000);

  it('print the help without loading CDK', async () => {
    const { code, stdout } = await cli('--help');
    expect(code).toBe(0);
    expect(stdout).toMatch(/status.*\n.*watch/s);
  });

  it('show a run’s status, export it, report it, calibrate an estimate on it and import into a pool, without CDK', async () => {
    const status = await cli('status', result.runId, '--data-dir', dataDir);
    expect(status.stderr).not.toMatch(/error|forbidden/i);
    expect(status.stdout).toMatch(/status +SUCCEEDED/);

    const exported = await cli('export', result.runId, '--data-dir', dataDir, '--out', path.join(work, 'x'));
    expect(exported.stderr).not.toMatch(/error|forbidden/i);
    expect(exported.stdout).toContain(`Exported run ${result.runId} (pool cli)`);

    const report = await cli('report', result.runId, '--data-dir', dataDir, '--out', path.join(work, 'r'));
    expect(report.stderr).not.toMatch(/error|forbidden/i);
    expect(existsSync(path.join(work, 'r', result.runId, 'report.html'))).toBe(true);

    const estimate = await cli('estimate', '--model', 'offline', '--target', '50', '--data-dir', dataDir);
    expect(estimate.stderr).not.toMatch(/error|forbidden/i);
    expect(estimate.stdout).toMatch(/1 default run of offline in /);
    // One iteration gives one pool size: the default curve's shape through the run's own rate.
    expect(estimate.stdout).toMatch(/the default curve's shape through the overall rate of 1 default run/);

    const seeds = await cli('seeds', 'validate', 'seeds/seed_tasks.jsonl');
    expect(seeds.stdout).toMatch(/^seeds\/seed_tasks\.jsonl: valid Self-Instruct JSON Lines: \d+ seed tasks/);

    const imported = await cli(
      'import',
      'cli-import',
      'test/fixtures/import/alpaca_data.json',
      '--data-dir',
      dataDir,
    );
    expect(imported.stderr).not.toMatch(/error|forbidden/i);
    expect(imported.stdout).toContain('Imported into pool "cli-import" as import-');
    for (const { code } of [status, exported, report, estimate, seeds, imported]) expect(code).toBe(0);
  }, 120_000);
});

describe('a data folder in use', () => {
  let holder: ChildProcess;
  afterAll(() => {
    holder?.kill();
  });

  it('stops a second command with one line naming the run that holds it', async () => {
    holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const startedAt = new Date().toISOString();
    const lock = { pid: holder.pid, holder: 'run run-held', host: hostname(), startedAt };
    writeFileSync(lockPath(dataDir), JSON.stringify(lock));
    try {
      const { code, stdout, stderr } = await cli('export', result.runId, '--data-dir', dataDir);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toBe(
        `error: the data folder ${dataDir} is in use by run run-held (pid ${holder.pid}, since ${startedAt}): wait for it to end, or use another --data-dir\n`,
      );
    } finally {
      rmSync(lockPath(dataDir));
    }
  }, 60_000);
});
