/*
 * The run report's charts, inlined into report.html after ECharts (Apache-2.0). Reads the stats from the
 * page's JSON island and draws each chart into its element, as SVG, without animation (crisp in print,
 * the same in a screenshot). Every chart records `window.__charts[id] = { rendered, points }` (points:
 * the data points drawn), so a browser test can check that each one rendered with data; a chart without
 * data shows "No data" instead (rendered false, points 0). Text from the data goes only into SVG text
 * nodes and escaped tooltips: it is untrusted model output.
 */
(() => {
  const stats = JSON.parse(document.getElementById('report-data').textContent);
  const charts = {};
  window.__charts = charts;
  const instances = [];

  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const COLORS = {
    added: '#4477aa',
    dropped: '#88ccee',
    rejected: '#cc6677',
    pool: '#333333',
    output: '#ddcc77',
  };
  const REASON_COLORS = [
    '#cc6677',
    '#ddcc77',
    '#aa4499',
    '#999933',
    '#882255',
    '#44aa99',
    '#117733',
    '#332288',
  ];
  const PALETTE = ['#4477aa', '#66ccee', '#228833', '#ccbb44', '#ee6677', '#aa3377', '#bbbbbb', '#332288'];

  const escapeHtml = (value) =>
    String(value).replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
    );
  const integer = (n) => Number(n).toLocaleString('en-US');
  const percent = (x) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);
  const usd = (x) => `$${x < 0.01 ? x.toFixed(6) : x.toFixed(4)}`;
  /** An axis label: three significant digits at most ($0.0003, $0.018). */
  const usdAxis = (x) => `$${Number(x.toPrecision(3))}`;
  const nonZero = (values) => values.filter((v) => typeof v === 'number' && v !== 0).length;
  const finite = (values) => values.filter((v) => typeof v === 'number' && Number.isFinite(v)).length;

  /** An axis tooltip: the category, then one escaped line per series. */
  const axisTooltip =
    (format = integer) =>
    (params) => {
      const list = Array.isArray(params) ? params : [params];
      const head = escapeHtml(list[0]?.axisValueLabel ?? list[0]?.name ?? '');
      const lines = list
        .filter((p) => p.value !== null && p.value !== undefined)
        .map((p) => `${p.marker}${escapeHtml(p.seriesName)}: ${escapeHtml(format(p.value, p))}`);
      return [head, ...lines].join('<br>');
    };

  const base = {
    animation: false,
    color: PALETTE,
    textStyle: { fontFamily: FONT, color: '#222' },
    aria: { enabled: true },
    grid: { left: 56, right: 24, top: 48, bottom: 48, containLabel: false },
    legend: { top: 4, textStyle: { fontSize: 11 } },
    tooltip: { confine: true },
  };
  /** Room above the plot for a legend of these names, which wraps onto more lines in a 550px chart. */
  const legendHeight = (names) => {
    const width = names.reduce((sum, name) => sum + 38 + 6.2 * String(name).length, 0);
    return 22 * Math.ceil(width / 500);
  };
  const axisName = (name) => ({
    name,
    nameLocation: 'middle',
    nameGap: 36,
    nameTextStyle: { color: '#555' },
  });

  /** Draws one chart, or the "no data" note when `points` is 0, and records its status. */
  function draw(id, points, option) {
    const element = document.getElementById(id);
    if (!element) {
      console.error(`report: no element for chart ${id}`);
      return;
    }
    if (points === 0) {
      element.classList.add('empty');
      const note = document.createElement('p');
      note.className = 'no-data';
      note.textContent = 'No data';
      element.replaceChildren(note);
      charts[id] = { rendered: false, points: 0 };
      return;
    }
    try {
      const chart = echarts.init(element, null, { renderer: 'svg' });
      chart.setOption({ ...base, ...option });
      instances.push(chart);
      charts[id] = { rendered: element.querySelector('svg') !== null, points };
    } catch (error) {
      charts[id] = { rendered: false, points: 0 };
      console.error(`report: chart ${id} failed`, error);
    }
  }

  // The print stylesheet narrows the wide charts to the page: redraw them at the size they get.
  const resize = () => {
    for (const chart of instances) chart.resize();
  };
  window.addEventListener('beforeprint', resize);
  window.addEventListener('afterprint', resize);
  window.addEventListener('resize', resize);

  const iterations = stats.iterations;
  const iterationNames = iterations.map((it) => `Iteration ${it.iteration}`);

  // Pool growth: every candidate of an iteration by outcome, stacked; the pool size on the right axis.
  {
    const reasons = Object.keys(stats.totals.rejected);
    const bar = (name, color, values) => ({
      name,
      type: 'bar',
      stack: 'outcome',
      color,
      barMaxWidth: 56,
      data: values,
    });
    const series = [
      bar(
        'added (valid instances)',
        COLORS.added,
        iterations.map((it) => it.added),
      ),
      bar(
        'dropped at instances',
        COLORS.dropped,
        iterations.map((it) => Object.values(it.droppedAtInstances).reduce((a, b) => a + b, 0)),
      ),
      ...reasons.map((reason, i) =>
        bar(
          `rejected: ${reason}`,
          REASON_COLORS[i % REASON_COLORS.length],
          iterations.map((it) => it.rejected[reason] ?? 0),
        ),
      ),
    ];
    const pool = {
      name: 'pool size',
      type: 'line',
      yAxisIndex: 1,
      color: COLORS.pool,
      symbolSize: 7,
      data: iterations.map((it) => it.poolSize),
    };
    const generated = iterations.reduce((sum, it) => sum + it.generated, 0);
    draw(
      'pool-growth',
      generated === 0 ? 0 : series.reduce((n, s) => n + nonZero(s.data), 0) + finite(pool.data),
      {
        grid: { ...base.grid, right: 64, top: 24 + legendHeight([...series, pool].map((s) => s.name)) },
        tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, formatter: axisTooltip() },
        xAxis: { type: 'category', data: iterationNames },
        yAxis: [
          { type: 'value', ...axisName('candidates'), minInterval: 1 },
          {
            type: 'value',
            ...axisName('pool size'),
            nameGap: 44,
            splitLine: { show: false },
            minInterval: 1,
          },
        ],
        series: [...series, pool],
      },
    );
  }

  /** Line series of shares (0 to 1) per iteration, on a percent axis named `yName`. */
  function shareChart(id, series, yName) {
    draw(
      id,
      series.reduce((n, s) => n + finite(s.data), 0),
      {
        tooltip: { trigger: 'axis', formatter: axisTooltip(percent) },
        xAxis: { type: 'category', data: iterationNames, boundaryGap: false },
        yAxis: {
          type: 'value',
          min: 0,
          max: 1,
          ...axisName(yName),
          nameGap: 44,
          axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` },
        },
        series,
      },
    );
  }

  // Acceptance rate: of the candidates generated, the share that passed the gate and the share added.
  {
    const series = [
      {
        name: 'passed filters and ROUGE-L',
        type: 'line',
        color: COLORS.added,
        symbolSize: 7,
        data: iterations.map((it) => it.acceptanceRate),
      },
      {
        name: 'added with valid instances',
        type: 'line',
        color: COLORS.rejected,
        symbolSize: 7,
        lineStyle: { type: 'dashed' },
        data: iterations.map((it) => it.yieldRate),
      },
    ];
    shareChart('acceptance-rate', series, 'share of candidates');
  }

  // The judge's scores per iteration, stacked 1 to 5 and unscored (drawn when the run had a judge).
  if (document.getElementById('quality-scores')) {
    const SCORE_COLORS = ['#cc6677', '#ee9977', '#ddcc77', '#88bbdd', '#4477aa', '#bbbbbb'];
    const judged = iterations.filter((it) => it.quality);
    const series = ['1', '2', '3', '4', '5', 'unscored'].map((key, i) => ({
      name: key === 'unscored' ? 'unscored' : `score ${key}`,
      type: 'bar',
      stack: 'scores',
      color: SCORE_COLORS[i],
      barMaxWidth: 56,
      data: judged.map((it) => it.quality.scores[key]),
    }));
    draw(
      'quality-scores',
      series.reduce((n, s) => n + nonZero(s.data), 0),
      {
        tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, formatter: axisTooltip() },
        xAxis: { type: 'category', data: judged.map((it) => `Iteration ${it.iteration}`) },
        yAxis: { type: 'value', ...axisName('tasks judged'), minInterval: 1 },
        series,
      },
    );
  }

  // New diversity per iteration, with the plateau rule's floor and the iteration the run stopped after.
  if (document.getElementById('diversity-curves')) {
    const { plateau } = stats;
    const figures = [
      ['newPairShare', 'new verb–noun pairs', COLORS.added],
      ['newClusterShare', 'new clusters (embeddings)', COLORS.rejected],
    ];
    const series = figures
      .map(([figure, name, color]) => {
        const watched = plateau?.figure === figure;
        const marks = [];
        if (watched) {
          marks.push({
            yAxis: plateau.floor,
            name: 'plateau floor',
            label: { formatter: `floor ${percent(plateau.floor)}`, position: 'insideEndTop' },
          });
        }
        if (watched && plateau.stoppedAt !== null) {
          marks.push({
            xAxis: `Iteration ${plateau.stoppedAt}`,
            name: 'stopped',
            lineStyle: { type: 'solid', color: COLORS.pool },
            label: { formatter: 'plateau: stopped', position: 'end' },
          });
        }
        return {
          name: watched ? `${name} (watched)` : name,
          type: 'line',
          color,
          symbolSize: 7,
          data: iterations.map((it) => it.diversity?.[figure] ?? null),
          markLine:
            marks.length === 0
              ? undefined
              : { symbol: 'none', silent: true, lineStyle: { type: 'dashed', color }, data: marks },
        };
      })
      .filter((s) => finite(s.data) > 0);
    shareChart('diversity-curves', series, 'share of added tasks');
  }

  /** A histogram as bars over its bins; several series are stacked. */
  function histogramChart(id, series, { xName, yName = 'tasks', labels, subtitle }) {
    const data = series.map((s) => ({
      name: s.name,
      type: 'bar',
      stack: series.length > 1 ? 'all' : undefined,
      color: s.color,
      barCategoryGap: '8%',
      data: s.histogram.counts,
    }));
    const total = series.reduce((n, s) => n + s.histogram.counts.reduce((a, b) => a + b, 0), 0);
    draw(id, total === 0 ? 0 : data.reduce((n, s) => n + nonZero(s.data), 0), {
      title: subtitle
        ? { subtext: subtitle, left: 'right', top: -8, subtextStyle: { color: '#555', fontSize: 11 } }
        : undefined,
      legend: series.length > 1 ? base.legend : { show: false },
      grid: { ...base.grid, top: series.length > 1 ? 48 : 32 },
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, formatter: axisTooltip() },
      xAxis: { type: 'category', data: labels, ...axisName(xName), axisLabel: { hideOverlap: true } },
      yAxis: { type: 'value', ...axisName(yName), minInterval: 1 },
      series: data,
    });
  }

  const scoreLabels = (h) => h.counts.map((_, i) => `${h.edges[i].toFixed(1)}–${h.edges[i + 1].toFixed(1)}`);
  const lengthLabels = (h) =>
    h.counts.map((_, i) => {
      const from = h.edges[i];
      const to = h.edges[i + 1] - 1;
      return from === to ? String(from) : `${from}–${to}`;
    });
  const summary = (d) =>
    d.count === 0 ? '' : `n = ${integer(d.count)}, median ${d.median.toFixed(2)}, mean ${d.mean.toFixed(2)}`;

  const { similarity, lengths } = stats;
  histogramChart(
    'rouge-seeds',
    [{ name: 'added instructions', color: COLORS.added, ...similarity.toSeeds }],
    {
      xName: 'highest ROUGE-L F to a seed instruction',
      yName: 'instructions',
      labels: scoreLabels(similarity.toSeeds.histogram),
      subtitle: summary(similarity.toSeeds),
    },
  );
  histogramChart(
    'rouge-pool',
    [
      { name: 'added', color: COLORS.added, ...similarity.toPool.added },
      { name: 'rejected by the gate', color: COLORS.rejected, ...similarity.toPool.rejected },
    ],
    {
      xName: `highest ROUGE-L F to the pool (rejected above ${similarity.threshold})`,
      yName: 'instructions',
      labels: scoreLabels(similarity.toPool.added.histogram),
    },
  );
  for (const [id, distribution, xName, yName] of [
    ['length-instructions', lengths.instructions, 'words per instruction', 'instructions'],
    ['length-inputs', lengths.inputs, 'words per non-empty input', 'inputs'],
    ['length-outputs', lengths.outputs, 'words per output', 'outputs'],
  ]) {
    histogramChart(id, [{ name: yName, color: COLORS.added, ...distribution }], {
      xName,
      yName,
      labels: lengthLabels(distribution.histogram),
      subtitle: summary(distribution),
    });
  }

  // Verb–noun sunburst: root verbs inside, their direct objects outside.
  {
    const data = stats.verbNoun.verbs.map((v) => ({
      name: v.verb,
      children: v.nouns.map((n) => ({ name: n.noun, value: n.count })),
    }));
    const points = data.reduce((n, v) => n + 1 + v.children.length, 0);
    draw('verb-noun', points, {
      color: [...PALETTE, '#77aadd', '#ee8866', '#eedd88', '#ffaabb', '#99ddff', '#44bb99', '#aaaa00'],
      tooltip: {
        trigger: 'item',
        formatter: (p) =>
          `${escapeHtml(
            p.treePathInfo
              .slice(1)
              .map((node) => node.name)
              .join(' → '),
          )}: ${escapeHtml(integer(p.value))}`,
      },
      series: {
        type: 'sunburst',
        data,
        radius: ['12%', '96%'],
        itemStyle: { borderColor: '#fff', borderWidth: 1 },
        emphasis: { focus: 'ancestor' },
        levels: [
          {},
          { r0: '12%', r: '52%', label: { rotate: 'radial', fontSize: 11, minAngle: 6 } },
          {
            r0: '52%',
            r: '96%',
            label: { align: 'right', fontSize: 10, minAngle: 3 },
            itemStyle: { opacity: 0.75 },
          },
        ],
      },
    });
  }

  // Tokens (stacked in / out) and cost per iteration.

  /** Options of a chart with token bars on the left axis and a USD line on the right, per iteration. */
  function tokensAndCost(tokens, cost, tokensNameGap) {
    return {
      grid: { ...base.grid, left: 72, right: 80 },
      tooltip: {
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: axisTooltip((value, p) => (p.seriesName === cost.name ? usd(value) : integer(value))),
      },
      xAxis: { type: 'category', data: iterationNames },
      yAxis: [
        { type: 'value', ...axisName('tokens'), nameGap: tokensNameGap },
        {
          type: 'value',
          ...axisName('USD (estimated)'),
          nameGap: 60,
          splitLine: { show: false },
          axisLabel: { formatter: usdAxis },
        },
      ],
      series: [...tokens, cost],
    };
  }

  {
    const tokens = [
      {
        name: 'input tokens',
        type: 'bar',
        stack: 'tokens',
        color: COLORS.added,
        barMaxWidth: 56,
        data: iterations.map((it) => it.usage.inputTokens),
      },
      {
        name: 'output tokens',
        type: 'bar',
        stack: 'tokens',
        color: COLORS.output,
        barMaxWidth: 56,
        data: iterations.map((it) => it.usage.outputTokens),
      },
    ];
    const cost = {
      name: 'cost (USD)',
      type: 'line',
      yAxisIndex: 1,
      color: COLORS.pool,
      symbolSize: 7,
      data: iterations.map((it) => it.cost.totalUsd),
    };
    const used = iterations.some((it) => it.usage.inputTokens + it.usage.outputTokens > 0);
    draw(
      'tokens-cost',
      used ? tokens.reduce((n, s) => n + nonZero(s.data), 0) + finite(cost.data) : 0,
      tokensAndCost(tokens, cost, 52),
    );
  }

  // Tokens and cost per 1,000 added tasks, per iteration.
  {
    const per = iterations.map((it) => it.per1000Added);
    const tokens = {
      name: 'tokens per 1,000 added',
      type: 'bar',
      color: COLORS.added,
      barMaxWidth: 56,
      data: per.map((p) => (p === null ? null : Math.round(p.tokens))),
    };
    const cost = {
      name: 'USD per 1,000 added',
      type: 'line',
      yAxisIndex: 1,
      color: COLORS.pool,
      symbolSize: 7,
      data: per.map((p) => (p === null ? null : p.usd)),
    };
    draw(
      'per-1000',
      per.some((p) => p !== null) ? nonZero(tokens.data) + finite(cost.data) : 0,
      tokensAndCost([tokens], cost, 60),
    );
  }
})();
