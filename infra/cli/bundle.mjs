/**
 * The CLI runs from an esbuild bundle of its TypeScript sources (the CLI, the local stack, every stage's
 * handler) and of most of their dependencies, so that plain Node loads a few large modules: no TypeScript
 * loader transpiling and resolving every module of every command on the fly (about 1.5 s of a local run's
 * CPU, twice that with its loader thread), and none of the resolving, format detection and CommonJS
 * export scanning of the SDK's many files (about 15% of a `report`'s CPU).
 *
 * The bundle lives in `node_modules/.cache/selfinstruct/cli-<hash>/`, keyed by a hash of the content of
 * every source file it was built from (esbuild's own list of its inputs), of the lockfiles (the
 * project's, and npm's record of what is installed) and of this file: a command after any edit to a
 * handler, the CLI or the local stack builds it again first (seconds), so a bundle is never stale.
 * `SELFINSTRUCT_FROM_SOURCES=1` runs the sources through tsx instead (`bin.mjs`), e.g. for a debugger.
 *
 * What a source module finds next to itself stays where it was: each `import.meta.url` of a bundled
 * module is its source file's URL (prompt templates, the servers' process, the gate worker, package
 * resolution). A stage's handler is imported by its source path, which the local stack maps into the
 * bundle (`importEntry` in `infra/local/stack.ts`). Packages that read their own files, native code,
 * and CDK (loaded only to synthesize) stay in `node_modules` (`EXTERNAL`).
 *
 * Plain JavaScript, run by plain Node before any TypeScript can be loaded.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The project root (this file is `infra/cli/bundle.mjs`). */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the bundles are kept, below a project root (the folder build tools share for their caches). */
const cacheDir = (root) => path.join(root, 'node_modules', '.cache', 'selfinstruct');
/** The record of the newest bundle: its folder's name, its inputs and their hash. */
const currentFile = (root) => path.join(cacheDir(root), 'cli-current.json');
/** Besides the sources: what decides how they resolve and compile. */
const ALSO_HASHED = [
  'package-lock.json',
  'node_modules/.package-lock.json',
  'tsconfig.json',
  'infra/cli/bundle.mjs',
];
/** Packages Node loads from `node_modules`: CDK, packages that read their own files, native code. */
const EXTERNAL = [
  'aws-cdk-lib',
  'aws-cdk-lib/*',
  'constructs',
  'cdk-nag',
  'esbuild',
  'tsx',
  'tsx/*',
  '@cloud-copilot/*',
  'echarts',
  's3rver',
  'dynalite',
];
/** Lets the bundled CommonJS code `require` what stays external and Node's built-in modules. */
const REQUIRE =
  "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);";
/** The identifier each bundled module's `import.meta.url` becomes, bound to its source URL. */
const SOURCE_URL = '__selfinstructSourceUrl';
/** A bundle folder no longer current is removed after this long (a process started from it may still run). */
const STALE_MS = 24 * 3_600_000;

/** The modules the CLI enters by: the command, and each stage's handler (imported by path at run time). */
function entryPoints(root = PROJECT_ROOT) {
  const stages = readdirSync(path.join(root, 'functions'), { withFileTypes: true })
    .filter(
      (entry) => entry.isDirectory() && existsSync(path.join(root, 'functions', entry.name, 'handler.ts')),
    )
    .map((entry) => path.join(root, 'functions', entry.name, 'handler.ts'));
  return [path.join(root, 'infra', 'cli', 'main.ts'), ...stages];
}

/**
 * The hash of `files` (relative to the root): names and contents (`read`, by default from the disk); a
 * missing file counts as such.
 */
function hashFiles(root, files, read = (full) => readFileSync(full)) {
  const hash = createHash('sha256').update('selfinstruct-cli-v1\0');
  for (const file of [...files].sort()) {
    hash.update(`${file}\0`);
    const full = path.join(root, file);
    hash.update(existsSync(full) ? read(full) : '\0missing\0');
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 24);
}

/** The current bundle's folder, when every file it was built from is as it was. */
function currentBundle(root) {
  try {
    const current = JSON.parse(readFileSync(currentFile(root), 'utf8'));
    if (hashFiles(root, current.inputs) !== current.hash) return undefined;
    const dir = path.join(cacheDir(root), current.name);
    return existsSync(path.join(dir, 'infra', 'cli', 'main.mjs')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/**
 * esbuild plugin: `import.meta.url` in a project source is that source's URL (see the module comment).
 * `loaded` receives each source's text as bundled, for the hash.
 */
const sourceUrls = (loaded) => ({
  name: 'source-urls',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      loaded.set(args.path, text);
      const url = JSON.stringify(pathToFileURL(args.path).href);
      // The binding `define` points `import.meta.url` at; unused (and dropped) where a file has none.
      return { contents: `const ${SOURCE_URL} = ${url};\n${text}`, loader: 'ts' };
    });
  },
});

/** Builds the bundle into a new folder, makes it the current one and returns that folder. */
async function buildBundle(root) {
  const { build } = await import('esbuild');
  const cache = cacheDir(root);
  mkdirSync(cache, { recursive: true });
  const partial = path.join(cache, `cli-partial-${process.pid}-${Date.now()}`);
  const loaded = new Map();
  const result = await build({
    entryPoints: entryPoints(root),
    absWorkingDir: root,
    outbase: root,
    outdir: partial,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    // A package's ES module build where it has one (a UMD build's `require`s hide from the bundler).
    mainFields: ['module', 'main'],
    banner: { js: REQUIRE },
    metafile: true,
    logLevel: 'error',
    define: { 'import.meta.url': SOURCE_URL },
    plugins: [sourceUrls(loaded)],
  });
  // Relative to `absWorkingDir`; the lockfile pins esbuild's version too.
  const inputs = [
    ...Object.keys(result.metafile.inputs).filter((input) => !input.startsWith('node_modules/')),
    ...ALSO_HASHED,
  ];
  // Hashed as bundled: a source edited during the build makes the next command build again.
  const hash = hashFiles(root, inputs, (full) => loaded.get(full) ?? readFileSync(full));
  const name = `cli-${hash}`;
  const dir = path.join(cache, name);
  // A process that started at the same time may have built the same bundle: either copy will do.
  if (existsSync(dir)) rmSync(partial, { recursive: true, force: true });
  else renameSync(partial, dir);
  const current = currentFile(root);
  writeFileSync(`${current}.${process.pid}`, JSON.stringify({ name, hash, inputs }));
  renameSync(`${current}.${process.pid}`, current);
  removeStale(cache, dir);
  return dir;
}

/** Removes bundle folders other than `keep` built over a day ago (a process may still run from a recent one). */
function removeStale(cache, keep) {
  for (const entry of readdirSync(cache, { withFileTypes: true })) {
    const dir = path.join(cache, entry.name);
    if (!entry.isDirectory() || !entry.name.startsWith('cli-') || dir === keep) continue;
    if (Date.now() - statSync(dir).mtimeMs > STALE_MS) rmSync(dir, { recursive: true, force: true });
  }
}

/** The global through which the bundled code finds its bundle's folder (`importSource`, `infra/project.ts`). */
export const BUNDLE_GLOBAL = Symbol.for('selfinstruct.cliBundle');

/**
 * The folder of an up-to-date bundle of the CLI of the project at `root`, built first when a source
 * changed since the last one (`onBuild` is called first: a build takes seconds): `infra/cli/main.mjs`
 * in it is the CLI's `main.ts`, and `functions/<stage>/handler.mjs` each stage's handler.
 */
export async function cliBundle(root = PROJECT_ROOT, { onBuild } = {}) {
  const current = currentBundle(root);
  if (current) return current;
  onBuild?.();
  return buildBundle(root);
}
