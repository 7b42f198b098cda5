import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { InputFileInvalid, NotFound } from '../../functions/shared/errors.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { createRng } from '../../functions/shared/random.ts';
import type { GateRecord } from '../../functions/shared/records.ts';
import { dedupCommand } from '../../infra/cli/dedup.ts';

let dir: string;
let stderr: string[];
let stdout: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dedup-'));
  stderr = [];
  stdout = [];
});

const file = (name: string, lines: unknown[] | string) => {
  const path = join(dir, name);
  writeFileSync(
    path,
    typeof lines === 'string' ? lines : `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`,
  );
  return path;
};

async function dedup(...args: string[]) {
  const io = {
    stdout: { write: (text: string) => stdout.push(text) },
    stderr: { write: (text: string) => stderr.push(text) },
  };
  await dedupCommand(io).parseAsync(args, { from: 'user' });
}

const seed = (instruction: string) => ({
  id: 'seed_task_0',
  name: 'poem',
  instruction,
  instances: [{ input: '', output: 'Leaves fall' }],
  is_classification: false,
});

describe('selfinstruct dedup', () => {
  it('filters and gates candidates in order, writing one line per candidate', async () => {
    const pool = file('seeds.jsonl', [seed('Write a poem about the autumn leaves falling')]);
    const candidates = file('candidates.jsonl', [
      { instruction: 'write a  poem about the autumn leaves falling down' },
      { instruction: 'Draw a picture of a cat' },
      { instruction: 'explain the theory of relativity to a child' },
      { instruction: 'Explain the theory of relativity to a small child' },
      { instruction: 'hi' },
    ]);
    const out = join(dir, 'out.jsonl');

    await dedup('--pool', pool, '--candidates', candidates, '--profile', 'self-instruct', '--out', out);

    const lines = fromJsonLines<GateRecord>(readFileSync(out, 'utf8'));
    expect(lines.map((line) => [line.instruction, line.status, line.reason])).toEqual([
      ['Write a poem about the autumn leaves falling down', 'rejected', 'rouge'],
      ['Draw a picture of a cat', 'rejected', 'banned-word'],
      ['Explain the theory of relativity to a child', 'accepted', null],
      ['Explain the theory of relativity to a small child', 'rejected', 'rouge'],
      ['Hi', 'rejected', 'too-short'],
    ]);
    expect(lines[0]).toMatchObject({
      max_similarity: 0.9411764705882353,
      most_similar: { 'Write a poem about the autumn leaves falling': 0.9411764705882353 },
      avg_similarity_score: 0.9411764705882353,
    });
    expect(Object.keys(lines[3]?.most_similar ?? {})).toEqual([
      'Explain the theory of relativity to a child',
      'Write a poem about the autumn leaves falling',
    ]);
    expect(lines[1]).toMatchObject({ max_similarity: null, most_similar: null, avg_similarity_score: null });
    expect(stdout).toEqual([]);
    expect(stderr.join('')).toMatch(
      /5 candidates .* accepted 1, rouge 2, too-short 1, banned-word 1; pool now 2/,
    );
  });

  it('reads an Alpaca JSON array and writes to stdout, keeping most_similar in score order', async () => {
    const pool = file(
      'alpaca.json',
      JSON.stringify([
        { instruction: '2024', input: '', output: '' },
        { instruction: 'Give three tips for staying healthy.', input: '', output: '1. Eat well' },
      ]),
    );
    const candidates = file('candidates.jsonl', [
      { instruction: 'Give three tips for staying healthy at work.' },
    ]);

    await dedup('--pool', pool, '--candidates', candidates, '--profile', 'alpaca', '--threshold', '0.8');

    const [line] = stdout.join('').trimEnd().split('\n');
    expect(line).toContain(
      '"most_similar":{"Give three tips for staying healthy.":0.8571428571428571,"2024":0}',
    );
    expect(JSON.parse(line as string)).toMatchObject({ status: 'rejected', reason: 'rouge' });
  });

  it('writes the same lines with worker threads as in one thread', async () => {
    const rng = createRng('threads');
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`);
    const texts: string[] = [];
    const text = () => {
      const earlier = texts[rng.int(texts.length)];
      const made =
        earlier !== undefined && rng.next() < 0.3
          ? `${earlier} word${rng.int(40)}`
          : Array.from({ length: 4 + rng.int(40) }, () => words[Math.floor(40 * rng.next() ** 2)]).join(' ');
      texts.push(made);
      return made;
    };
    const pool = file(
      'pool.jsonl',
      Array.from({ length: 300 }, () => ({ instruction: text() })),
    );
    const candidates = file('candidates.jsonl', [
      ...Array.from({ length: 700 }, () => ({
        instruction: rng.next() < 0.05 ? 'Draw a map of the old town' : text(),
      })),
      { instruction: 'hi' },
    ]);
    const one = join(dir, 'one.jsonl');
    const three = join(dir, 'three.jsonl');

    await dedup('--pool', pool, '--candidates', candidates, '--threads', '0', '--out', one);
    await dedup('--pool', pool, '--candidates', candidates, '--threads', '3', '--out', three);

    const lines = readFileSync(one, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(701);
    expect(new Set(lines.map((line) => JSON.parse(line).reason))).toEqual(
      new Set([null, 'rouge', 'banned-word', 'too-short']),
    );
    expect(readFileSync(three, 'utf8')).toBe(readFileSync(one, 'utf8'));
  });

  it('names a missing file', async () => {
    const candidates = file('candidates.jsonl', [{ instruction: 'Explain gravity to a child' }]);

    await expect(dedup('--pool', join(dir, 'missing.jsonl'), '--candidates', candidates)).rejects.toThrow(
      NotFound,
    );
    await expect(dedup('--pool', join(dir, 'missing.jsonl'), '--candidates', candidates)).rejects.toThrow(
      /pool file not found: .*missing\.jsonl/,
    );
  });

  it('names the file, line and field of a bad record', async () => {
    const pool = file('seeds.jsonl', [seed('Write a poem')]);
    const candidates = file(
      'candidates.jsonl',
      '{"instruction": "Explain gravity"}\n\n{"instruction": 42}\nnot json\n',
    );

    const failure = dedup('--pool', pool, '--candidates', candidates);

    await expect(failure).rejects.toThrow(InputFileInvalid);
    await expect(failure).rejects.toThrow(/Candidates file is invalid \(2 problems\)/);
    await expect(failure).rejects.toThrow(/candidates\.jsonl:3: instruction: .*expected string/);
    await expect(failure).rejects.toThrow(/candidates\.jsonl:4: not valid JSON/);
  });

  it('refuses an empty pool', async () => {
    const pool = file('empty.json', '[]');
    const candidates = file('candidates.jsonl', [{ instruction: 'Explain gravity to a child' }]);

    await expect(dedup('--pool', pool, '--candidates', candidates)).rejects.toThrow(
      /Pool file is invalid.*\n.*no records/,
    );
  });
});
