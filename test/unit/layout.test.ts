/**
 * The layout tells the architecture (README, "Development"): `functions/` holds what the Lambda
 * functions load and nothing else; it never imports the tools in `infra/` or the tests; a stage folder
 * imports only shared code, not another stage; and no module of `functions/` or `infra/` imports itself
 * through a chain of imports.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { STAGES, type StageSpec } from '../../functions/stages.ts';

/** Files under `functions/` that no Lambda loads, and why they are there all the same. */
const NOT_LOADED: Record<string, string> = {
  'functions/shared/engine/kernel.wat': 'the source `npm run build:kernel` assembles into kernel.wasm.ts',
  'functions/shared/engine/vectors.wat': 'the source `npm run build:kernel` assembles into vectors.wasm.ts',
};

const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name).split(path.sep).join('/'));

const isModule = (file: string) => /\.(ts|mjs|js)$/.test(file);

/** The project modules a module imports, type-only and dynamic imports included (comments are not read). */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles
    .map(({ fileName }) => fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => path.posix.normalize(path.posix.join(path.posix.dirname(file), name)));
}

/** Every module reachable from `entries` through imports of any kind, data files imported as JSON included. */
function reachable(entries: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const queue = [...entries];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    if (isModule(file)) queue.push(...importsOf(file));
  }
  return seen;
}

/** The cycles of a directed graph: its strongly connected components of more than one node (Tarjan). */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    index.set(node, index.size);
    low.set(node, index.get(node) as number);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) as number, low.get(next) as number));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node) as number, index.get(next) as number));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

const stages = Object.values(STAGES as Record<string, StageSpec>);
const handlers = stages.map((stage) => `functions/${stage.folder}/handler.ts`);
const inFunctions = files('functions');

describe('the layout', () => {
  it('keeps in functions/ only what a stage function loads', () => {
    const loaded = reachable(handlers);
    const isPrompt = (file: string) =>
      stages.some((stage) => file.startsWith(`functions/${stage.folder}/prompts/`));
    const unloaded = inFunctions.filter((file) => !loaded.has(file) && !isPrompt(file));
    expect(unloaded.sort()).toEqual(Object.keys(NOT_LOADED).sort());
  });

  it('never imports infra/ or test/ from functions/, nor one stage folder from another', () => {
    const wrong = inFunctions.filter(isModule).flatMap((file) => {
      const [, folder] = file.split('/');
      return importsOf(file)
        .filter(
          (target) =>
            !target.startsWith('functions/') ||
            (folder !== 'shared' &&
              folder !== 'stages.ts' &&
              !target.startsWith(`functions/${folder}/`) &&
              !target.startsWith('functions/shared/') &&
              target !== 'functions/stages.ts'),
        )
        .map((target) => `${file} → ${target}`);
    });
    expect(wrong).toEqual([]);
  });

  it('has no import cycle in functions/ or infra/ (as esbuild resolves the imports)', async () => {
    const entries = [...inFunctions, ...files('infra')].filter(isModule);
    const { metafile } = await build({
      entryPoints: entries,
      bundle: true,
      write: false,
      metafile: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      outdir: 'unused',
      logLevel: 'silent',
    });
    const graph = new Map(
      Object.entries(metafile.inputs).map(([file, { imports }]) => [
        file,
        imports.filter((entry) => !entry.external).map((entry) => entry.path),
      ]),
    );
    expect(graph.size).toBeGreaterThan(entries.length / 2);
    expect(cycles(graph)).toEqual([]);
  });
});
