/**
 * End to end: a short local run, then its report, opened in headless Chromium (the build the
 * @sparticuz/chromium package ships) from disk with every network request blocked. Every chart must
 * render with data, the tables must hold the samples, and an instruction carrying a <script> must show
 * as text and never run. `UPDATE_SCREENSHOT=1` also saves the top of the page as docs/report.png.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import serverlessChromium from '@sparticuz/chromium';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { NotFound } from '../../functions/shared/errors.ts';
import { toJsonLines } from '../../functions/shared/json-lines.ts';
import { runKeys } from '../../functions/shared/keys.ts';
import type { GateRecord, RunSummary } from '../../functions/shared/records.ts';
import { CHART_IDS, chartIdsOf, renderReport } from '../../infra/cli/report/html.ts';
import { buildReport, reportKeys } from '../../infra/cli/report/report.ts';
import { ReportStats } from '../../infra/cli/report/schema.ts';
import { reportCommand } from '../../infra/cli/report.ts';
import { LocalStack } from '../../infra/local/stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-report-'));
const dataDir = path.join(work, 'data');
const outDir = path.join(work, 'out');

// Untrusted model output as it could come back: it must show as text, and never run.
const PAYLOAD = 'Rewrite the note </script><script>window.__pwned = 1</script> as <b>bold</b> & "quoted"';
const REASON = '<img src=x onerror="window.__pwned = 2">';
const NEIGHBOUR = '<script>window.__pwned = 3</script>';

let runId: string;
let clean: { html: string; stats: ReportStats; storedHtml?: string; storedStats?: string };
let browser: Browser;

beforeAll(async () => {
  const stack = await LocalStack.start({ dataDir, fresh: true });
  try {
    // A fixed seed (by default the run id's, random): the offline model's replies are the same each time.
    const result = await stack.execute({
      target: 60,
      maxIterations: 2,
      promptsPerIteration: 4,
      pool: 'r',
      seed: 'report-e2e',
    });
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    runId = (result.output as RunSummary).runId;

    const report = await buildReport(stack.objects, stack.pool, runId);
    clean = {
      ...report,
      storedHtml: await stack.objects.getText(reportKeys(runId).html),
      storedStats: await stack.objects.getText(reportKeys(runId).stats),
    };

    // A crafted rejection in the run's gate log: its unique reason puts it in the rejected sample.
    const gateKey = runKeys(runId, 1).gate;
    const crafted: GateRecord = {
      instruction: PAYLOAD,
      raw: PAYLOAD,
      status: 'rejected',
      reason: REASON,
      max_similarity: 0.9,
      most_similar: { [NEIGHBOUR]: 0.9 },
      avg_similarity_score: 0.1,
    };
    await stack.objects.put(
      gateKey,
      `${(await stack.objects.getText(gateKey)) ?? ''}${toJsonLines([crafted])}`,
    );
  } finally {
    await stack.close();
  }
  browser = await chromium.launch({
    // The Chromium build @sparticuz/chromium ships inside its npm package (unpacked to the temp folder
    // on first use): no system browser needed. CHROMIUM_PATH picks another one.
    executablePath: process.env.CHROMIUM_PATH ?? (await serverlessChromium.executablePath()),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Opens a report file with every request that is not file:// aborted; collects errors and requests. */
async function open(file: string) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  const blocked: string[] = [];
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console error: ${message.text()}`);
  });
  await page.route('**', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:')) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  return { page, errors, blocked };
}

type ChartStatus = Record<string, { rendered: boolean; points: number }>;
const charts = async (page: Page): Promise<ChartStatus> =>
  (await page.evaluate(() => (globalThis as unknown as { __charts?: ChartStatus }).__charts)) ?? {};

describe('the run report', () => {
  it('is stored in S3 next to the export', () => {
    expect(clean.storedHtml).toBe(clean.html);
    expect(ReportStats.parse(JSON.parse(clean.storedStats ?? ''))).toEqual(clean.stats);
    expect(clean.stats.totals.added).toBeGreaterThan(0);
  });

  it('renders every chart with data from a file, with no network and no errors', async () => {
    const file = path.join(work, 'clean.html');
    writeFileSync(file, clean.html);
    const { page, errors, blocked } = await open(file);
    try {
      expect(errors).toEqual([]);
      expect(blocked).toEqual([]);
      const status = await charts(page);
      expect(Object.keys(status).sort()).toEqual([...CHART_IDS].sort());
      for (const id of CHART_IDS) {
        expect(status[id]?.rendered, id).toBe(true);
        expect(status[id]?.points ?? 0, id).toBeGreaterThan(0);
      }
      expect(await page.locator('.no-data').count()).toBe(0);
      // The default run has every quality check: the audit table and the near-duplicate examples.
      expect(chartIdsOf(clean.stats)).toEqual([...CHART_IDS]);
      expect(await page.locator('#audit tbody tr').count()).toBe(4);
      expect(clean.stats.nearDuplicates?.count ?? 0).toBeGreaterThan(0);
      expect(await page.locator('#near-duplicates tbody tr').count()).toBe(
        clean.stats.nearDuplicates?.examples.length ?? -1,
      );
      expect(await page.locator('#sample-added tbody tr').count()).toBe(clean.stats.samples.added.length);
      expect(await page.locator('#sample-rejected tbody tr').count()).toBe(
        clean.stats.samples.rejected.length,
      );
      expect(clean.stats.samples.added).toHaveLength(12);
      expect(clean.stats.samples.rejected.length).toBeGreaterThan(0);
      expect(await page.locator('#sample-added tbody tr').first().textContent()).toContain(
        clean.stats.samples.added[0]?.instruction.slice(0, 40) ?? 'a sampled instruction',
      );

      if (process.env.UPDATE_SCREENSHOT === '1') {
        // The top of the page: the summary and the first charts.
        await page.screenshot({
          path: 'docs/report.png',
          fullPage: true,
          clip: { x: 0, y: 0, width: 1200, height: 1250 },
        });
      }
    } finally {
      await page.close();
    }
  }, 60_000);

  it('marks a plateau stop and shows "not measured" for the checks a run did not have', async () => {
    const { stats } = clean;
    const last = stats.iterations.at(-1)?.iteration ?? 1;
    const plateau = stats.plateau ?? expect.unreachable('the default run has a plateau rule');
    const stopped: ReportStats = {
      ...stats,
      plateau: { ...plateau, belowFloor: [last], stoppedAt: last },
      totals: { ...stats.totals, safety: { instructions: { profanity: 2 }, instances: { violence: 1 } } },
    };
    const unchecked: ReportStats = {
      ...stats,
      run: { ...stats.run, judgeModel: null, embeddingModel: null, safetyScreen: null },
      totals: { ...stats.totals, quality: null, safety: null },
      iterations: stats.iterations.map((it) => ({
        ...it,
        quality: null,
        safety: null,
        diversity: it.diversity && { ...it.diversity, newClusterShare: null, meanNearestCosine: null },
      })),
      nearDuplicates: null,
    };
    for (const [name, variant] of [
      ['stopped', stopped],
      ['unchecked', unchecked],
    ] as const) {
      const file = path.join(work, `${name}.html`);
      writeFileSync(file, renderReport(variant));
      const { page, errors, blocked } = await open(file);
      try {
        expect(errors, name).toEqual([]);
        expect(blocked, name).toEqual([]);
        const status = await charts(page);
        expect(Object.keys(status).sort(), name).toEqual(chartIdsOf(variant).sort());
        for (const id of chartIdsOf(variant)) expect(status[id]?.rendered, `${name}: ${id}`).toBe(true);
        if (name === 'stopped') {
          expect(
            await page.locator('#diversity-curves svg text', { hasText: 'plateau: stopped' }).count(),
          ).toBe(1);
          expect(await page.locator('#safety tbody tr').count()).toBe(2);
        } else {
          expect(await page.locator('#quality-scores, #audit').count()).toBe(0);
          expect(await page.locator('#judge-not-measured').textContent()).toBe(
            'not measured: judgeModel none',
          );
          expect(await page.locator('#near-duplicates').textContent()).toBe(
            'not measured: embeddingModel none',
          );
          expect(await page.locator('#safety').textContent()).toBe('not measured: safetyScreen none');
          // The new verb–noun pairs are measured without embeddings.
          expect(status['diversity-curves']?.points).toBe(stats.iterations.length);
        }
      } finally {
        await page.close();
      }
    }
  }, 60_000);

  it('is written by `selfinstruct report` and shows injected markup as text without running it', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    let printed: string;
    try {
      await reportCommand().exitOverride().parseAsync([runId, '--out', outDir, '--data-dir', dataDir], {
        from: 'user',
      });
      printed = log.mock.calls.map((call) => call.join(' ')).join('\n');
    } finally {
      log.mockRestore();
    }
    const file = path.join(outDir, runId, 'report.html');
    expect(printed).toContain(path.join(runId, 'report.html'));
    expect(printed).toContain(path.join(runId, 'stats.json'));
    const stats = ReportStats.parse(JSON.parse(readFileSync(path.join(outDir, runId, 'stats.json'), 'utf8')));
    expect(stats.samples.rejected.map((task) => task.instruction)).toContain(PAYLOAD);

    const { page, errors, blocked } = await open(file);
    try {
      expect(errors).toEqual([]);
      expect(blocked).toEqual([]);
      expect(
        await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned),
      ).toBeUndefined();
      const rejected = page.locator('#sample-rejected');
      const text = await rejected.textContent();
      expect(text).toContain(PAYLOAD);
      expect(text).toContain(REASON);
      expect(text).toContain(NEIGHBOUR);
      expect(await page.locator('#sample-rejected b, #sample-rejected img, main script').count()).toBe(0);
      // The page still read its stats, the crafted one included, from the JSON island.
      const status = await charts(page);
      expect(Object.keys(status).sort()).toEqual([...CHART_IDS].sort());
      expect(Object.values(status).every((chart) => chart.rendered)).toBe(true);
    } finally {
      await page.close();
    }
  }, 120_000);

  it('says which run is missing', async () => {
    const error = await reportCommand()
      .exitOverride()
      .parseAsync(['run-that-never-was', '--out', outDir, '--data-dir', dataDir], { from: 'user' })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFound);
    expect((error as Error).message).toMatch(/^Run run-that-never-was does not exist/);
    expect(existsSync(path.join(outDir, 'run-that-never-was'))).toBe(false);
  }, 60_000);
});
