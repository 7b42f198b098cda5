import { defineConfig } from 'vitest/config';

/**
 * End-to-end tests too slow for every `npm test` (minutes each on 2 cores): the functions bundled
 * with esbuild as `cdk deploy` would; the fault mixes of the local runtime; runs interrupted by Ctrl-C
 * and SIGKILL; the offline word vectors checked against the 294 MB package they come from; the safety
 * screen (lexicon, moderation endpoint, Bedrock guardrail), the diversity plateau and `export --select`
 * over several iterations each. `npm run test:e2e` runs them; CI runs both.
 */
const SLOW = [
  'test/e2e/bundled.test.ts',
  'test/e2e/local-runtime.test.ts',
  'test/e2e/interrupt.test.ts',
  'test/unit/models/word-vectors.test.ts',
  'test/e2e/safety.test.ts',
  'test/e2e/diversity.test.ts',
  'test/e2e/select.test.ts',
];

export default defineConfig({
  test: {
    // Generous for a loaded 2-core machine: an e2e test runs whole executions.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'main', include: ['test/**/*.test.ts'], exclude: SLOW } },
      { extends: true, test: { name: 'slow', include: SLOW } },
    ],
  },
});
