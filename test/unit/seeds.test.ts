import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkInstruction } from '../../functions/shared/engine/filters.ts';
import { filterInstances } from '../../functions/shared/engine/instances.ts';
import { rougeL } from '../../functions/shared/engine/rouge.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';
import { SeedTask } from '../../functions/shared/schemas.ts';

const tasks = parseRecords(
  readFileSync('seeds/seed_tasks.jsonl', 'utf8'),
  SeedTask,
  'seeds/seed_tasks.jsonl',
);

describe('the bundled seed tasks', () => {
  it('are at least 175 valid tasks with unique ids and names', () => {
    expect(tasks.length).toBeGreaterThanOrEqual(175);
    expect(new Set(tasks.map((task) => task.id)).size).toBe(tasks.length);
    expect(new Set(tasks.map((task) => task.name)).size).toBe(tasks.length);
  });

  it('are about 15% classification', () => {
    const share = tasks.filter((task) => task.is_classification).length / tasks.length;
    expect(share).toBeGreaterThan(0.12);
    expect(share).toBeLessThan(0.18);
  });

  it("pass the paper's instruction filters and instance filters untouched", () => {
    for (const task of tasks) {
      expect(checkInstruction('self-instruct', task.instruction), task.name).toBeNull();
      expect(checkInstruction('alpaca', task.instruction), task.name).toBeNull();
      const filtered = filterInstances(task.instances, { maxInstances: 5 });
      expect(filtered.kept, task.name).toHaveLength(task.instances.length);
    }
  });

  it('are diverse: no two instructions have a ROUGE-L F above 0.7', () => {
    let max = 0;
    for (let i = 0; i < tasks.length; i++) {
      for (let j = i + 1; j < tasks.length; j++) {
        max = Math.max(max, rougeL((tasks[i] as SeedTask).instruction, (tasks[j] as SeedTask).instruction));
      }
    }
    expect(max).toBeLessThanOrEqual(0.7);
  });
});
