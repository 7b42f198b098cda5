/**
 * End to end: `--method evol --target 200` on the offline model through the synthesized state machine
 * and the local stack (fixed seed): the run completes, every exported task carries its lineage, and
 * `stats.json` counts every operation and elimination rule, each rule having dropped something.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonlRecord } from '../../functions/shared/exports/schemas.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { TaskLine } from '../../functions/shared/records.ts';
import { EvolElimination, EvolOperation } from '../../functions/shared/schemas.ts';
import { ReportStats } from '../../infra/cli/report/schema.ts';
import { type LocalRunResult, runLocal } from '../../infra/cli/run.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-evol-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let result: LocalRunResult;
const file = (name: string) => readFileSync(path.join(result.outDir as string, name), 'utf8');

beforeAll(async () => {
  result = await runLocal(
    {
      dataDir: path.join(work, 'data'),
      out: path.join(work, 'out'),
      method: 'evol',
      target: '200',
      // The offline model's replies follow the seed (else the run id): the same run every time.
      seed: 'evol-test',
    },
    () => {},
  );
}, 600_000);

describe('method evol, target 200, offline', () => {
  it('completes and adds evolved tasks', () => {
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect(result.summary?.added).toBeGreaterThan(0);
    expect(result.summary?.exportedTasks).toBe(result.summary?.added);
  });

  it('exports every task and record with its lineage: a parent, an operation, a depth of at least 1', () => {
    const tasks = fromJsonLines(file('tasks.jsonl')).map((line) => TaskLine.parse(line));
    const records = fromJsonLines(file('dataset.jsonl')).map((line) => JsonlRecord.parse(line));

    expect(tasks.length).toBe(result.summary?.exportedTasks);
    for (const { lineage } of [...tasks, ...records]) {
      expect(lineage?.parent).toMatch(/^[0-9a-f]{16}$/);
      expect(EvolOperation.options).toContain(lineage?.operation);
      expect(lineage?.depth).toBeGreaterThanOrEqual(1);
    }
    // Parents are pool tasks: seeds or tasks exported by this run (or evolved ones it eliminated).
    expect(new Set(tasks.map((task) => task.lineage?.operation)).size).toBe(EvolOperation.options.length);
  });

  it('has counts per operation and per elimination rule in stats.json, each rule dropping something', () => {
    const stats = ReportStats.parse(JSON.parse(file('stats.json')));
    const evolution = stats.evolution;

    expect(evolution).not.toBeNull();
    expect(Object.keys(evolution?.operations ?? {}).sort()).toEqual([...EvolOperation.options].sort());
    for (const counts of Object.values(evolution?.operations ?? {})) {
      expect(counts.generated).toBeGreaterThan(0);
    }
    const added = Object.values(evolution?.operations ?? {}).reduce((sum, counts) => sum + counts.added, 0);
    expect(added).toBe(result.summary?.added);
    expect(Object.keys(evolution?.eliminations ?? {}).sort()).toEqual([...EvolElimination.options].sort());
    for (const reason of EvolElimination.options) {
      expect(evolution?.eliminations[reason], reason).toBeGreaterThan(0);
      // The same counts as the run's (the summary's counts by reason).
      expect(evolution?.eliminations[reason], reason).toBe(result.summary?.counts[reason]);
    }
    const depths = evolution?.depths ?? [];
    expect(depths.reduce((sum, { tasks }) => sum + tasks, 0)).toBe(result.summary?.added);
    expect(file('report.html')).toContain('<section id="evolution">');
  });
});
