/**
 * End to end: a run never adds more than its `target`, whatever the profile (the Filter stage stops
 * accepting at the quota the run has left; later candidates are counted as `surplus`), and reaches it
 * when the iteration cap allows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../functions/shared/records.ts';
import { runLocal } from '../../infra/cli/run.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-target-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function run(profile: string, iterations: string) {
  const result = await runLocal(
    {
      dataDir: path.join(work, 'data'),
      out: path.join(work, 'out'),
      pool: `${profile}-${iterations}`,
      profile,
      target: '20',
      iterations,
      // The offline model's replies follow the seed (else the run id): the same run every time.
      seed: 'target-test',
    },
    () => {},
  );
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  return result.summary as RunSummary;
}

describe.each(['default', 'alpaca', 'self-instruct'])('profile %s, target 20', (profile) => {
  it('accepts exactly 20 instructions in one iteration that generates more (the rest is surplus)', async () => {
    const summary = await run(profile, '1');
    // The offline model proposes more than 20 new instructions in the first iteration of every profile.
    expect(summary.counts.surplus).toBeGreaterThan(0);
    const { accepted, complete } = summary.counts;
    expect(accepted).toBe(20);
    expect(summary.added).toBe(complete);
  }, 120_000);

  it('reaches exactly 20 before its iteration cap, and stops there', async () => {
    const summary = await run(profile, '10');
    expect(summary.added).toBe(20);
    expect(summary.stopReason).toMatch(/target/);
  }, 180_000);
});
