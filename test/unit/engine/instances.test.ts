import { describe, expect, it } from 'vitest';
import { filterInstances } from '../../../functions/shared/engine/instances.ts';

const instance = (input: string, output: string) => ({ input, output });

describe('filterInstances', () => {
  it('keeps valid instances in order', () => {
    const instances = [instance('2 + 2', '4'), instance('', 'A haiku'), instance('3 + 3', '6')];

    const result = filterInstances(instances);

    expect(result).toEqual({ kept: instances, dropped: {} });
  });

  it('drops instances whose input equals the output, whose output is empty, or that end with a colon', () => {
    const result = filterInstances([
      instance('same', 'same'),
      instance('question', '  '),
      instance('Input:', 'answer'),
      instance('question', 'Output :'),
      instance('fine', 'ok'),
    ]);

    expect(result.kept).toEqual([instance('fine', 'ok')]);
    expect(result.dropped).toEqual({ 'input-equals-output': 1, 'empty-output': 1, 'ends-with-colon': 2 });
    expect(result.taskRejected).toBeUndefined();
  });

  it('rejects the whole task when one non-empty input has two different outputs', () => {
    const result = filterInstances([
      instance('Is 7 prime?', 'Yes'),
      instance('x', 'y'),
      instance('Is 7 prime?', 'No'),
    ]);

    expect(result).toEqual({
      kept: [],
      dropped: { 'conflicting-outputs': 3 },
      taskRejected: 'conflicting-outputs',
    });
  });

  it('does not treat empty inputs with different outputs as a conflict', () => {
    const result = filterInstances([instance('', 'A poem'), instance('', 'Another poem')]);

    expect(result.kept).toHaveLength(2);
  });

  it('removes exact duplicates, keeping the first occurrence in place', () => {
    const result = filterInstances([
      instance('a', '1'),
      instance('b', '2'),
      instance('a ', '1'),
      instance('c', '3'),
    ]);

    expect(result.kept).toEqual([instance('a', '1'), instance('b', '2'), instance('c', '3')]);
    expect(result.dropped).toEqual({ duplicate: 1 });
  });

  it('keeps the first maxInstances (default 5)', () => {
    const instances = Array.from({ length: 7 }, (_, i) => instance(`q${i}`, `a${i}`));

    expect(filterInstances(instances).kept).toEqual(instances.slice(0, 5));
    expect(filterInstances(instances).dropped).toEqual({ 'over-limit': 2 });
    expect(filterInstances(instances, { maxInstances: 1 }).kept).toEqual(instances.slice(0, 1));
  });

  it('marks a task left without instances', () => {
    expect(filterInstances([instance('x', 'x')]).taskRejected).toBe('no-valid-instances');
    expect(filterInstances([]).taskRejected).toBe('no-valid-instances');
  });
});
