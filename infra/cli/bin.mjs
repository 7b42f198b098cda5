#!/usr/bin/env node
// `npx selfinstruct`, `npm start`, `npm run cli`: the CLI from its bundle (`bundle.mjs`), built again
// first when a source changed. `SELFINSTRUCT_FROM_SOURCES=1` runs the TypeScript sources through tsx.
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUNDLE_GLOBAL, cliBundle } from './bundle.mjs';

let main;
if (process.env.SELFINSTRUCT_FROM_SOURCES === '1') {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('./main.ts'));
} else {
  const dir = await cliBundle(undefined, {
    // On a terminal, say why this start takes seconds.
    onBuild: () => process.stderr.isTTY && process.stderr.write('Sources changed: bundling the CLI…\n'),
  });
  globalThis[BUNDLE_GLOBAL] = dir;
  ({ main } = await import(pathToFileURL(path.join(dir, 'infra', 'cli', 'main.mjs')).href));
}
process.exitCode = await main();
