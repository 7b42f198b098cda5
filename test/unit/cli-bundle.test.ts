/**
 * The CLI's bundle (`infra/cli/bundle.mjs`), on a small project of its own: modules keep their sources'
 * `import.meta.url`, the handlers share the CLI's modules, and the bundle is built again exactly when a
 * source it was built from changes.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cliBundle } from '../../infra/cli/bundle.mjs';

const root = mkdtempSync(path.join(tmpdir(), 'selfinstruct-bundle-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function write(file: string, text: string): void {
  mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  writeFileSync(path.join(root, file), text);
}

write('package-lock.json', '{}');
write('tsconfig.json', '{}');
write('functions/shared/registry.ts', 'export const registered: string[] = [];\n');
write('functions/shared/greeting.ts', "export const greeting: string = 'hello';\n");
write(
  'infra/cli/main.ts',
  [
    "import { registered } from '../../functions/shared/registry.ts';",
    'export const where = import.meta.url;',
    "export const banner = 'createRequire(import.meta.url)';",
    'export function register(name: string): void {',
    '  registered.push(name);',
    '}',
  ].join('\n'),
);
write(
  'functions/echo/handler.ts',
  [
    "import { greeting } from '../shared/greeting.ts';",
    "import { registered } from '../shared/registry.ts';",
    'export const handler = async () => ({ greeting, registered, where: import.meta.url });',
  ].join('\n'),
);

/** Imports a module of a fresh copy of the bundle (a query string defeats the module cache). */
const load = async (dir: string, file: string) =>
  import(`${pathToFileURL(path.join(dir, file)).href}?${Date.now()}`);

const current = () => path.join(root, 'node_modules', '.cache', 'selfinstruct', 'cli-current.json');

describe('the CLI bundle', () => {
  it('gives each module its source file’s import.meta.url, and leaves the words in strings alone', async () => {
    const dir = await cliBundle(root);
    const main = await load(dir, 'infra/cli/main.mjs');
    expect(main.where).toBe(pathToFileURL(path.join(root, 'infra/cli/main.ts')).href);
    expect(main.banner).toBe('createRequire(import.meta.url)');
    const { handler } = await load(dir, 'functions/echo/handler.mjs');
    expect((await handler()).where).toBe(pathToFileURL(path.join(root, 'functions/echo/handler.ts')).href);
  });

  it('shares one copy of a module between the CLI and the handlers', async () => {
    const dir = await cliBundle(root);
    const stamp = `${Date.now()}`;
    const main = await import(pathToFileURL(path.join(dir, 'infra/cli/main.mjs')).href);
    const { handler } = await import(pathToFileURL(path.join(dir, 'functions/echo/handler.mjs')).href);
    main.register(stamp);
    expect((await handler()).registered).toContain(stamp);
  });

  it('is reused while no source changes', async () => {
    const first = await cliBundle(root);
    const recorded = statSync(current()).mtimeMs;
    const builds: string[] = [];
    expect(await cliBundle(root, { onBuild: () => builds.push('build') })).toBe(first);
    expect(builds).toEqual([]);
    expect(statSync(current()).mtimeMs).toBe(recorded);
  });

  it('is built again after an edit to a module it was built from', async () => {
    const before = await cliBundle(root);
    write('functions/shared/greeting.ts', "export const greeting: string = 'hello again';\n");
    const builds: string[] = [];
    const after = await cliBundle(root, { onBuild: () => builds.push('build') });
    expect(after).not.toBe(before);
    expect(builds).toEqual(['build']);
    const { handler } = await load(after, 'functions/echo/handler.mjs');
    expect((await handler()).greeting).toBe('hello again');
    expect(JSON.parse(readFileSync(current(), 'utf8')).inputs).toContain('functions/shared/greeting.ts');
  });
});
