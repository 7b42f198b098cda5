/**
 * The CLI's pieces that need no server: the template cache key, the data folder's lock, JSON input
 * errors, money, free local models, seed file summaries, the lazy program and the progress bar.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { prepareRun } from '../../functions/prepare/core.ts';
import { DataFolderBusy, JsonFileInvalid, SeedFileInvalid } from '../../functions/shared/errors.ts';
import { MAX_SEED_RECORD_BYTES, parseJsonFile } from '../../functions/shared/input-files.ts';
import { formatUsd } from '../../functions/shared/pricing/money.ts';
import { isFreeModel } from '../../functions/shared/pricing/pricing.ts';
import { RunState } from '../../functions/shared/schemas.ts';
import { COMMANDS, main, program, VERSION } from '../../infra/cli/main.ts';
import { liveView, plainView } from '../../infra/cli/progress.ts';
import { formatSeedFileSummary, validateSeedFile } from '../../infra/cli/seeds.ts';
import { lockDataFolder, lockPath, readLock } from '../../infra/local/lock.ts';
import { templateCacheKey, templateInputs } from '../../infra/local/template.ts';
import { MemoryObjects, MemoryPool } from './fakes.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the template cache key', () => {
  // A project tree with one file of each kind that shapes the template, and some that don't.
  const root = path.join(work, 'project');
  const files: Record<string, string> = {
    'infra/app.ts': 'app',
    'infra/local/synth.ts': 'synth options',
    'infra/local/stack.ts': 'local runner',
    'infra/cli/main.ts': 'cli',
    'functions/shared/keys.ts': 'keys',
    'seeds/seed_tasks.jsonl': '{}',
    'cdk.json': '{"context":{}}',
    'package-lock.json': '{"aws-cdk-lib":"2.276.0"}',
    'node_modules/aws-cdk-lib/package.json': '{"version":"2.276.0"}',
    'out/run-1/dataset.jsonl': 'output',
    '.local/data/s3/x': 'data',
  };
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
  const key = (extra: Parameters<typeof templateCacheKey>[0] = {}) =>
    templateCacheKey({ root, env: {}, ...extra });
  const withChanged = (file: string) => {
    const before = readFileSync(path.join(root, file), 'utf8');
    writeFileSync(path.join(root, file), `${before} changed`);
    try {
      return key();
    } finally {
      writeFileSync(path.join(root, file), before);
    }
  };

  it('reads the CDK app, the functions, the seeds, cdk.json, the lockfile and the installed CDK', () => {
    expect(templateInputs(root)).toEqual(
      [
        'cdk.json',
        'functions/shared/keys.ts',
        'infra/app.ts',
        'infra/local/synth.ts',
        'node_modules/aws-cdk-lib/package.json',
        'package-lock.json',
        'seeds/seed_tasks.jsonl',
      ].map((file) => file.split('/').join(path.sep)),
    );
  });

  it('changes when any of them changes, and with the context or a CDK_ variable', () => {
    const base = key();
    expect(key()).toBe(base);
    for (const file of templateInputs(root)) expect(withChanged(file), file).not.toBe(base);
    expect(key({ context: { 'selfinstruct:model': 'bedrock:x' } })).not.toBe(base);
    expect(key({ env: { CDK_CONTEXT_JSON: '{"a":1}' } })).not.toBe(base);
  });

  it('stays when only the CLI, the local runner, outputs or data change', () => {
    const base = key();
    for (const file of ['infra/cli/main.ts', 'infra/local/stack.ts', 'out/run-1/dataset.jsonl']) {
      expect(withChanged(file), file).toBe(base);
    }
    expect(key({ env: { HOME: '/elsewhere', AWS_REGION: 'eu-west-1' } })).toBe(base);
  });
});

describe('the data folder lock', () => {
  it('names the run that holds the folder to a second opener, until it is given up', () => {
    const dir = path.join(work, 'locked');
    const release = lockDataFolder(dir, { holder: 'run run-1' });
    try {
      expect(() => lockDataFolder(dir, { holder: 'export' })).toThrow(DataFolderBusy);
      expect(() => lockDataFolder(dir, { holder: 'export' })).toThrow(
        new RegExp(`in use by run run-1 \\(pid ${process.pid}, since `),
      );
    } finally {
      release();
    }
    expect(readLock(dir)).toBeUndefined();
    lockDataFolder(dir, { holder: 'export' })();
  });

  it('takes over a lock whose process is gone', () => {
    const dir = path.join(work, 'stale');
    mkdirSync(dir, { recursive: true });
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    const stale = { pid: gone, holder: 'run crashed', host: hostname(), startedAt: '' };
    writeFileSync(lockPath(dir), JSON.stringify(stale));
    expect(readLock(dir)).toBeUndefined();
    const release = lockDataFolder(dir, { holder: 'run run-2' });
    expect(readLock(dir)?.holder).toBe('run run-2');
    release();
  });

  it('empties the folder for a fresh run only once it holds the lock', () => {
    const dir = path.join(work, 'fresh');
    mkdirSync(path.join(dir, 's3'), { recursive: true });
    writeFileSync(path.join(dir, 's3', 'object'), 'x');
    const release = lockDataFolder(dir, { holder: 'run a' });
    expect(() => lockDataFolder(dir, { holder: 'run b', fresh: true })).toThrow(DataFolderBusy);
    expect(readFileSync(path.join(dir, 's3', 'object'), 'utf8')).toBe('x');
    release();
    lockDataFolder(dir, { holder: 'run b', fresh: true })();
    expect(() => readFileSync(path.join(dir, 's3', 'object'))).toThrow(/ENOENT/);
  });
});

describe('a JSON input file that does not parse', () => {
  it('is reported with its file, line and column', () => {
    const text = '{\n  "target": 10,\n  "pool": }\n';
    expect(() => parseJsonFile(text, 'input.json')).toThrow(JsonFileInvalid);
    expect(() => parseJsonFile(text, 'input.json')).toThrow(
      /^input\.json:3:11: not valid JSON \(ValueExpected\)$/,
    );
    expect(() => parseJsonFile('{"a": 1,}', 'b.json')).toThrow(/^b\.json:1:9: /);
    expect(() => parseJsonFile('', 'c.json')).toThrow(/^c\.json:1:1: /);
    expect(parseJsonFile('{"a": [1, "é"]}', 'd.json')).toEqual({ a: [1, 'é'] });
  });
});

describe('money', () => {
  it('is printed at one precision, and a tiny amount is never shown as zero', () => {
    expect(formatUsd(0.00205)).toBe('$0.0021');
    expect(formatUsd(0.0133)).toBe('$0.0133');
    expect(formatUsd(2.2986)).toBe('$2.2986');
    expect(formatUsd(0)).toBe('$0.0000');
    expect(formatUsd(0.000001)).toBe('<$0.0001');
  });
});

describe('a model on this machine', () => {
  it('has no per-token bill when it is served on loopback', () => {
    expect(isFreeModel('openai-compatible:llama3.1@http://127.0.0.1:11434/v1')).toBe(true);
    expect(isFreeModel('openai-compatible:qwen@http://localhost:8000/v1')).toBe(true);
    expect(isFreeModel('openai-completions:qwen@http://[::1]:8000/v1')).toBe(true);
    expect(isFreeModel('openai-compatible:llama@https://api.together.xyz/v1')).toBe(false);
    expect(isFreeModel('openai:gpt-4o-mini')).toBe(false);
    expect(isFreeModel('foo')).toBe(false);
  });
});

describe('seeds validate', () => {
  it('says what a run takes from an Alpaca file, and how many instructions repeat', async () => {
    const records = [
      { instruction: 'Name a colour.', input: '', output: 'Blue' },
      { instruction: 'Add the numbers.', input: '1, 2', output: '3' },
      { instruction: 'Name a colour.', input: '', output: 'Red' },
    ];
    const summary = validateSeedFile(Buffer.from(JSON.stringify(records)), 'alpaca.json');
    expect(summary).toEqual({
      format: 'Alpaca JSON',
      tasks: 3,
      classification: 0,
      instances: 3,
      repeated: 1,
    });
    expect(formatSeedFileSummary('alpaca.json', summary)).toBe(
      "alpaca.json: valid Alpaca JSON: 3 records, each a seed task with its one instance (classification left to the model); 1 repeat an earlier task's instruction and are added once",
    );
  });

  it('rejects what the prepare stage rejects: a repeated id', async () => {
    const task = { id: 's1', name: 'a', instruction: 'Say hi.', instances: [{ input: '', output: 'hi' }] };
    const text = `${JSON.stringify({ ...task, is_classification: false })}\n${JSON.stringify({ ...task, name: 'b', instruction: 'Say bye.', is_classification: false })}\n`;
    expect(() => validateSeedFile(Buffer.from(text), 'dup.jsonl')).toThrow(SeedFileInvalid);
    expect(() => validateSeedFile(Buffer.from(text), 'dup.jsonl')).toThrow(/duplicate id "s1"/);
  });

  const seedLine = (id: string, instruction: string, extra: object = {}) =>
    `${JSON.stringify({ id, name: id, instruction, instances: [{ input: '', output: 'x' }], is_classification: false, ...extra })}\n`;
  const alpaca = (records: object[]) => JSON.stringify(records);
  it.each([
    ['a repeated id', seedLine('s1', 'Say hi.') + seedLine('s1', 'Say bye.')],
    [
      'a repeated id in the third task',
      seedLine('a', 'One.') + seedLine('b', 'Two.') + seedLine('a', 'Three.'),
    ],
    ['a missing field and bad JSON', `${seedLine('s1', 'Say hi.')}{"id":"s2"}\n{not json\n`],
    ['an Alpaca record without output', alpaca([{ instruction: 'Name a colour.', input: '' }])],
    ['a record over the size limit', seedLine('s1', 'x'.repeat(MAX_SEED_RECORD_BYTES))],
    ['an empty file', '  \n'],
    ['a valid file', seedLine('s1', 'Say hi.') + seedLine('s2', 'Say bye.')],
    ['a valid Alpaca file', alpaca([{ instruction: 'Name a colour.', input: '', output: 'Blue' }])],
  ])('judges %s exactly as a run does: same problems, same tasks', async (_, text) => {
    const outcome = async (read: () => Promise<unknown>) => {
      try {
        return { tasks: await read() };
      } catch (error) {
        expect(error).toBeInstanceOf(SeedFileInvalid);
        return { problems: (error as SeedFileInvalid).problems };
      }
    };
    const bytes = Buffer.from(text);
    const objects = new MemoryObjects();
    await objects.put('seeds/demo/file.jsonl', bytes);

    const validated = await outcome(async () => validateSeedFile(bytes, 'seeds/demo/file.jsonl').tasks);
    const prepared = await outcome(async () => {
      const pool = new MemoryPool();
      const state = await prepareRun(
        { runId: 'r', input: { seedKey: 'seeds/demo/file.jsonl' } },
        { objects, pool },
      );
      return state.progress.poolSize;
    });

    expect(validated).toEqual(prepared);
  });

  it('rejects a byte that is not UTF-8, naming its line', () => {
    const line = JSON.stringify({
      id: 's1',
      name: 'a',
      instruction: 'Say hi.',
      instances: [{ input: '', output: 'hi' }],
      is_classification: false,
    });
    const bytes = Buffer.concat([Buffer.from(`${line}\n`), Buffer.from([0x7b, 0xff, 0x7d, 0x0a])]);
    expect(() => validateSeedFile(bytes, 'bad.jsonl')).toThrow(/bad\.jsonl:2/);
  });
});

describe('the program', () => {
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    const error = vi.spyOn(console, 'error').mockImplementation((line) => {
      out.push(`${line}\n`);
    });
    try {
      return { code: await main(['node', 'main.ts', ...args]), out: out.join('') };
    } finally {
      write.mockRestore();
      error.mockRestore();
    }
  };

  it('prints its version', async () => {
    const { code, out } = await run('--version');
    expect(code).toBe(0);
    expect(out.trim()).toBe(VERSION);
    expect(VERSION).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });

  it('lists every command in its help, loading none but the one named', async () => {
    const { out } = await run('--help');
    for (const command of COMMANDS) expect(out).toContain(command.name);
    const cli = await program(['node', 'main.ts', 'status', 'run-1']);
    const loaded = cli.commands.filter((command) => command.options.length > 0).map((c) => c.name());
    expect(loaded).toEqual(['status']);
  });

  it('says in one line which model id is unknown to estimate, as run does', async () => {
    const { code, out } = await run('estimate', '--model', 'foo', '--target', '10');
    expect(code).toBe(1);
    expect(out.split('\n').filter((line) => line.startsWith('error:'))).toEqual([
      'error: Unknown model "foo": no provider prefix. Use one of:',
    ]);
  });

  it('estimates a model on loopback at $0 for the model share', async () => {
    const model = 'openai-compatible:llama3.1@http://127.0.0.1:11434/v1';
    const { code, out } = await run('estimate', '--model', model, '--target', '100');
    expect(code).toBe(0);
    expect(out).toMatch(/^ {2}model {15}\$0\.0000$/m);
    expect(out).toMatch(/^ {2}total {15}\$0\.\d{4}$/m);
  });

  it('names the file, line and column of a run input that is not JSON', async () => {
    const file = path.join(work, 'input.json');
    writeFileSync(file, '{\n  "target": 10,\n  "pool": }\n');
    const { code, out } = await run('run', '--input', file, '--data-dir', path.join(work, 'unused'));
    expect(code).toBe(1);
    expect(out).toBe(`error: ${file}:3:11: not valid JSON (ValueExpected)\n`);
  });
});

describe('the progress view', () => {
  const terminal = () => {
    const written: string[] = [];
    const stream = {
      columns: 120,
      isTTY: true,
      write: (text: string) => written.push(text),
    } as unknown as NodeJS.WriteStream;
    return {
      stream,
      written,
      screen: () => written.join('').split('\r\u001b[2K').at(-1) ?? '',
    };
  };

  it('shows what start-up is doing on a terminal from the start, then the run as watch does', () => {
    const { stream, written, screen } = terminal();
    const view = liveView(stream, { intervalMs: 60_000 });
    view.phase('starting local S3 and DynamoDB');
    expect(screen()).toMatch(/^. starting local S3 and DynamoDB · \d+\.\d s$/);
    view.line('Run run-1 on pool "default"');
    expect(written.join('')).toContain('Run run-1 on pool "default"\n');
    const at = new Date();
    const runState = RunState.parse({
      runId: 'run-1',
      config: { pool: 'default', seed: 'run-1', target: 300, maxIterations: 3 },
      progress: { iteration: 0, added: 0, poolSize: 192 },
    });
    view.event({
      id: 1,
      timestamp: at,
      type: 'ExecutionStarted',
      executionStartedEventDetails: { input: '{}' },
    });
    view.event({
      id: 2,
      timestamp: at,
      type: 'TaskStateExited',
      stateExitedEventDetails: { name: 'Prepare run', output: JSON.stringify(runState) },
    });
    view.phase('running');
    expect(screen()).toMatch(/^\[-{24}\] 0\/300 tasks · iteration 0 · /);
    view.done();
    expect(screen()).toBe('');
  });

  it('prints start-up phases as plain lines elsewhere', () => {
    const lines: string[] = [];
    const view = plainView((line) => lines.push(line));
    view.phase('loading the stack template');
    view.phase('running');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[ +\d+\.\ds\] loading the stack template$/);
  });
});
