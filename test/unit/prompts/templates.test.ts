import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../../functions/shared/errors.ts';
import {
  extractJsonArrayItems,
  extractJsonObject,
  loadTemplate,
  render,
} from '../../../functions/shared/templates.ts';

/** A fake stage folder with `prompt.ts` and a `prompts/` folder holding `files`. */
function stage(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'templates-'));
  mkdirSync(join(dir, 'prompts'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'prompts', name), text);
  return pathToFileURL(join(dir, 'prompt.ts')).href;
}

describe('loadTemplate', () => {
  it('reads ./prompts/<name> next to the module and drops one final newline', () => {
    const moduleUrl = stage({ 'a.txt': 'Line one\nLine two\n\n' });

    expect(loadTemplate(moduleUrl, 'a.txt')).toBe('Line one\nLine two\n');
  });

  it('turns CRLF line endings into LF', () => {
    const moduleUrl = stage({ 'crlf.txt': 'Task:\r\nIs it?\r\n' });

    expect(loadTemplate(moduleUrl, 'crlf.txt')).toBe('Task:\nIs it?');
  });

  it('reads each file once', () => {
    const moduleUrl = stage({ 'c.txt': 'first' });
    loadTemplate(moduleUrl, 'c.txt');
    writeFileSync(new URL('./prompts/c.txt', moduleUrl), 'second');

    expect(loadTemplate(moduleUrl, 'c.txt')).toBe('first');
  });

  it('throws a ConfigurationError naming the file when it is missing', () => {
    const moduleUrl = stage({});

    expect(() => loadTemplate(moduleUrl, 'missing.txt')).toThrow(ConfigurationError);
    expect(() => loadTemplate(moduleUrl, 'missing.txt')).toThrow(/missing\.txt/);
  });
});

describe('render', () => {
  it('replaces each placeholder with its value, without escaping', () => {
    expect(
      render('Task: {{instruction}} ({{ n }}/{{n}})', { instruction: 'Say "<hi>" & $& bye', n: 3 }),
    ).toBe('Task: Say "<hi>" & $& bye (3/3)');
  });

  it('does not expand placeholders inside values', () => {
    expect(render('{{a}}', { a: '{{b}}' })).toBe('{{b}}');
  });

  it('throws when a placeholder has no value or a value no placeholder', () => {
    expect(() => render('{{a}} {{b}}', { a: 'x' })).toThrow(/\{\{b\}\}/);
    expect(() => render('{{a}}', { a: 'x', c: 'y' })).toThrow(/c/);
  });
});

describe('extractJsonObject', () => {
  it('finds the object between prose and fences', () => {
    expect(extractJsonObject('Sure!\n```json\n{"a": {"b": 1}}\n```\nDone.')).toEqual({ a: { b: 1 } });
  });

  it('returns undefined when there is no valid object', () => {
    expect(extractJsonObject('no json here')).toBeUndefined();
    expect(extractJsonObject('{"a": 1')).toBeUndefined();
  });
});

describe('extractJsonArrayItems', () => {
  it('reads a whole object', () => {
    expect(extractJsonArrayItems('{"tasks": [1, {"x": 2}]}', 'tasks')).toEqual({
      found: true,
      items: [1, { x: 2 }],
      unparseable: 0,
      unfinished: false,
    });
  });

  it('keeps the items before a cut one, ignoring brackets and commas inside strings', () => {
    const text = '{"tasks": [{"x": "a, ] } \\" ["}, {"x": [1, 2]}, {"x": "cut her';

    expect(extractJsonArrayItems(text, 'tasks')).toEqual({
      found: true,
      items: [{ x: 'a, ] } " [' }, { x: [1, 2] }],
      unparseable: 0,
      unfinished: true,
    });
  });

  it('counts a broken item among good ones and tolerates a trailing comma', () => {
    expect(extractJsonArrayItems('{"tasks": [{"x": 1}, {"x": nope}, {"x": 3},]}', 'tasks')).toEqual({
      found: true,
      items: [{ x: 1 }, { x: 3 }],
      unparseable: 1,
      unfinished: false,
    });
  });

  it('reports a reply without the array as not found', () => {
    expect(extractJsonArrayItems('{"other": []}', 'tasks').found).toBe(false);
    expect(extractJsonArrayItems('plain text', 'tasks').found).toBe(false);
  });
});
