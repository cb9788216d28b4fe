// Headwise dashboard: plain DOM, SVG and canvas, no libraries. Polls /api/ every two seconds.
'use strict';

const POLL_MS = 2000;
const HISTORY = 20; // forwards of the same layer shown behind the selected one in the heads chart
const PALETTE = ['#5b9cf6', '#f6a05b', '#4cd69b', '#e36bd0', '#f6d55b', '#9d8cf8', '#5bd0e3', '#f65b6e'];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  cluster: null,
  traces: [],
  selectedId: null,
  follow: true,
  details: new Map(),     // traceId -> { view, fetchedAt }
  selectedSpanId: null,
  colors: new Map(),      // silo -> colour
  lastUpdate: 0,
  timer: null,
};

// ---------- helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'style') node.style.cssText = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function siloColor(silo) {
  if (!state.colors.has(silo)) state.colors.set(silo, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(silo);
}

function assignColors(silos) {
  // Stable colours: silos in name order get the palette in order; newcomers take the next free one.
  for (const silo of [...silos].sort()) siloColor(silo);
}

function ms(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

// Axis labels: steps are round numbers, so print them without trailing zeros.
function tick(value) {
  if (value === 0) return '0';
  if (value >= 1000) return `${+(value / 1000).toFixed(3)} s`;
  return `${+value.toFixed(3)} ms`;
}

function clock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function compact(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k';
  return n.toFixed(0);
}

// One row of a silo card for a batcher's passes of one layer: decode steps or small forwards.
function batchRow(kind, b, title) {
  return el('div', { class: `layer ${kind}-batch`, [`data-${kind}-batch`]: b.layer, title },
    el('span', { class: 'label' }, `${kind} ${b.layer}`),
    el('span', { class: 'chip', 'data-figure': 'last' }, `batch ${b.lastSize}`),
    el('span', { class: 'chip', 'data-figure': 'mean' }, `mean ${(b.recentMeanSize || b.steps / Math.max(1, b.batches)).toFixed(1)}`),
    el('span', { class: 'chip', 'data-figure': 'largest' }, `max ${b.largestSize}`),
    el('span', { class: 'chip', 'data-figure': 'tokens' }, `${compact(b.recentTokensPerSecond)} tok/s`));
}

function niceStep(max, count) {
  const raw = max / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * power).find(s => s >= raw);
  return step || power * 10;
}

function selectedSummary() {
  return state.traces.find(t => t.traceId === state.selectedId) || null;
}

// ---------- cluster ----------

function renderCluster() {
  const cluster = state.cluster;
  const silos = document.getElementById('silos');
  silos.replaceChildren();
  const headCount = cluster.silos.reduce((n, s) => n + s.heads.length, 0);
  document.getElementById('cluster-hint').textContent =
    `${cluster.silos.length} silo${cluster.silos.length === 1 ? '' : 's'} · ${headCount} head grain${headCount === 1 ? '' : 's'} active · this page is served by ${cluster.silo}`;

  for (const silo of cluster.silos) {
    const color = siloColor(silo.silo);
    const layers = new Map();
    for (const head of silo.heads) {
      const key = `${head.model}/${head.layer}`;
      if (!layers.has(key)) layers.set(key, []);
      layers.get(key).push(head);
    }
    const uptime = silo.startedUtc ? Math.max(0, (Date.now() - new Date(silo.startedUtc)) / 1000) : null;
    const card = el('div', { class: 'silo' + (silo.reachable ? '' : ' unreachable'), style: `--silo:${color}`, 'data-silo': silo.silo },
      el('div', { class: 'name' },
        silo.silo,
        silo.kernel ? el('span', { class: 'badge kernel' }, silo.kernel) : null,
        silo.status !== 'Active' ? el('span', { class: 'badge' }, silo.status) : null,
        silo.silo === cluster.silo ? el('span', { class: 'here' }, '(this page)') : null,
        silo.webAddress && silo.silo !== cluster.silo ? el('a', { href: silo.webAddress, class: 'here' }, 'open ↗') : null),
      el('div', { class: 'meta' }, silo.reachable
        ? `${silo.host} · ${silo.cores} cores · ${(silo.workingSetBytes / 2 ** 20).toFixed(0)} MiB` + (uptime !== null ? ` · up ${formatUptime(uptime)}` : '')
        : 'did not answer'),
      silo.coordinators.length
        ? el('div', { class: 'layer' }, el('span', { class: 'label' }, 'coordinates'),
            silo.coordinators.map(c => el('span', { class: 'chip coordinator', 'data-coordinator': c }, c)))
        : null,
      [...layers.entries()].map(([layer, heads]) =>
        el('div', { class: 'layer' }, el('span', { class: 'label' }, layer),
          heads.map(h => el('span', { class: 'chip', 'data-head': `${h.model}/${h.layer}/${h.group}`, title: `head group ${h.group} of ${layer} on ${silo.silo}` }, h.group)))),
      silo.heads.length === 0 && silo.reachable ? el('div', { class: 'meta' }, 'no head grains active') : null,
      (silo.decodeBatches || []).map(b => batchRow('decode', b,
        `decode steps of ${b.layer} computed on ${silo.silo}: ${b.steps} steps in ${b.batches} passes over the weights`)),
      (silo.forwardBatches || []).map(b => batchRow('forward', b,
        `small forwards of ${b.layer} coordinated on ${silo.silo}: ${b.steps} forwards in ${b.batches} passes`)));
    silos.append(card);
  }

  const models = document.getElementById('models');
  models.replaceChildren(...cluster.models.map(m => el('span', {},
    el('b', {}, m.name), ` · ${m.layers} layer${m.layers === 1 ? '' : 's'} · ${m.heads} heads` +
    (m.groups !== m.heads ? ` in ${m.groups} groups` : '') + ` · D=${m.modelDim}, dh=${m.headDim}` + (m.ready ? '' : ' · no weights yet'))));
  if (!cluster.models.length) models.replaceChildren(el('span', {}, 'no models yet'));
}

function formatUptime(seconds) {
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// ---------- trace list ----------

function renderTraceList() {
  const body = document.querySelector('#traces tbody');
  body.replaceChildren();
  if (!state.traces.length) {
    body.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No forward passes yet. Run one: dotnet run --project src/Cli -- forward --model demo --tokens 128 --causal')));
    return;
  }
  for (const t of state.traces) {
    const row = el('tr', {
      'data-trace-id': t.traceId,
      class: (t.traceId === state.selectedId ? 'selected ' : '') + (t.status === 'error' ? 'error' : ''),
      onclick: () => selectTrace(t.traceId, true),
      title: `trace ${t.traceId}`,
    },
      el('td', {}, clock(t.start)),
      el('td', {}, `${t.model}/${t.layer}`),
      el('td', {}, `${t.batch}×${t.tokens}`),
      el('td', { class: 'num' }, t.durationMs.toFixed(2)),
      el('td', { class: 'num' }, compact(t.tokensPerSecond)),
      el('td', {}, t.silos.map(s => el('span', { class: 'silo-dot', style: `--silo:${siloColor(s)}`, title: s }))),
      el('td', {}, t.attention ? el('span', { class: 'tag-attn', title: 'has attention heatmaps' }, '▦ attn') : null,
        t.status === 'error' ? el('span', { class: 'tag-err' }, ' error') : null));
    body.append(row);
  }
}

function selectTrace(traceId, byUser) {
  state.selectedId = traceId;
  state.selectedSpanId = null;
  if (byUser) {
    state.follow = traceId === (state.traces[0] && state.traces[0].traceId);
    document.getElementById('follow').checked = state.follow;
  }
  renderTraceList();
  renderHeads();
  refreshDetails().catch(showDown);
}

// ---------- heads chart ----------

function renderHeads() {
  const chart = document.getElementById('heads-chart');
  const legend = document.getElementById('heads-legend');
  const hint = document.getElementById('heads-hint');
  chart.replaceChildren();
  legend.replaceChildren();
  const selected = selectedSummary();
  if (!selected || !selected.heads.length) {
    hint.textContent = '';
    chart.append(el('div', { class: 'empty' }, 'Per-head latency appears here after a forward pass.'));
    return;
  }
  const history = state.traces.filter(t => t.model === selected.model && t.layer === selected.layer && t.traceId !== selected.traceId).slice(0, HISTORY);
  const straggler = selected.heads.find(h => h.group === selected.straggler);
  hint.textContent = `${selected.model}/${selected.layer} · ${selected.heads.length} groups · ` +
    (straggler ? `slowest: group ${straggler.group} on ${straggler.silo}, done at ${ms(straggler.endMs)} of ${ms(selected.durationMs)}` : '');

  const groups = Math.max(...selected.heads.map(h => h.group)) + 1;
  const W = 720, H = 250, left = 58, right = 10, top = 26, bottom = 30;
  // Scale to the selected pass and the bulk of the earlier ones; an outlier (a cold start) sits on the top edge.
  const earlier = history.flatMap(t => t.heads.map(h => h.endMs)).sort((a, b) => a - b);
  const typical = earlier.length ? earlier[Math.floor(earlier.length / 2)] * 1.5 : 0;
  const maxMs = Math.max(...selected.heads.map(h => h.endMs), typical, 0.001) * 1.2;
  const x = g => left + (g + 0.5) * (W - left - right) / groups;
  const band = (W - left - right) / groups;
  const y = v => top + (H - top - bottom) * (1 - v / maxMs);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'per-head latency' });

  const step = niceStep(maxMs, 4);
  for (let v = 0; v <= maxMs; v += step) {
    root.append(svg('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: '#25303a' }));
    root.append(svg('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, tick(v)));
  }

  // Earlier forwards of this layer: one dot per head, where it finished.
  for (const t of history)
    for (const h of t.heads) {
      const cx = x(h.group) + band * 0.32;
      const dot = h.endMs <= maxMs
        ? svg('circle', { cx, cy: y(h.endMs), r: 2.4, fill: siloColor(h.silo), opacity: 0.55 })
        : svg('path', { d: `M ${cx - 3} ${top + 2} L ${cx + 3} ${top + 2} L ${cx} ${top - 3} Z`, fill: siloColor(h.silo), opacity: 0.7 });
      dot.append(svg('title', {}, `group ${h.group} on ${h.silo}: ${ms(h.endMs)} (${clock(t.start)})`));
      root.append(dot);
    }

  const barWidth = Math.max(3, Math.min(36, band * 0.55));
  for (const h of selected.heads) {
    const color = siloColor(h.silo);
    const cx = x(h.group) - band * 0.08;
    const start = Math.max(0, h.endMs - h.durationMs);
    const bar = svg('g', { 'data-group': h.group });
    bar.append(svg('rect', { x: cx - barWidth / 2, y: y(start), width: barWidth, height: Math.max(0, y(0) - y(start)), fill: color, opacity: 0.28 }));
    bar.append(svg('rect', { x: cx - barWidth / 2, y: y(h.endMs), width: barWidth, height: Math.max(1, y(start) - y(h.endMs)), fill: color, rx: 1.5 }));
    const title = svg('title', {}, `group ${h.group} (heads ${h.heads}) on ${h.silo}, ${h.kernel}\nqueue ${ms(h.queueMs)} · in grain ${ms(h.durationMs)} · kernel ${ms(h.computeMs)}\nfinished at ${ms(h.endMs)}`);
    bar.append(title);
    root.append(bar);
    root.append(svg('text', { x: cx, y: H - bottom + 14, 'text-anchor': 'middle' }, groups <= 32 || h.group % 4 === 0 ? h.group : ''));
    if (h.group === selected.straggler) {
      root.append(svg('path', { d: `M ${cx - 6} ${y(h.endMs) - 12} L ${cx + 6} ${y(h.endMs) - 12} L ${cx} ${y(h.endMs) - 4} Z`, fill: '#ffd166' }));
      const labelX = Math.min(Math.max(cx, left + 50), W - right - 50);
      root.append(svg('text', { x: labelX, y: y(h.endMs) - 16, 'text-anchor': 'middle', class: 'straggler-label' }, `slowest · ${ms(h.endMs)}`));
    }
  }
  root.append(svg('text', { x: left + (W - left - right) / 2, y: H - 3, 'text-anchor': 'middle' }, 'head group'));
  chart.append(root);

  const silos = [...new Set(selected.heads.map(h => h.silo))].sort();
  legend.append(...silos.map(s => el('span', {}, el('span', { class: 'swatch', style: `background:${siloColor(s)}` }), s)),
    el('span', {}, 'faint: scatter, network and queue · solid: inside the head grain · dots: the previous forwards of this layer'));
}

// ---------- trace waterfall ----------

async function refreshDetails() {
  const ids = new Set();
  if (state.selectedId) ids.add(state.selectedId);
  const attentionId = attentionTraceId();
  if (attentionId) ids.add(attentionId);
  for (const id of ids) {
    const cached = state.details.get(id);
    const summary = state.traces.find(t => t.traceId === id);
    // A young trace may still be gaining spans (the gateway's ends last): fetch it again for a few seconds.
    const young = summary && Date.now() - new Date(summary.start) < 8000;
    if (!cached || (young && Date.now() - cached.fetchedAt > POLL_MS / 2)) {
      try {
        state.details.set(id, { view: await getJson(`/api/traces/${id}`), fetchedAt: Date.now() });
      } catch (e) {
        if (!cached) state.details.set(id, { view: null, fetchedAt: Date.now() });
      }
    }
  }
  for (const id of [...state.details.keys()]) if (!ids.has(id) && !state.traces.some(t => t.traceId === id)) state.details.delete(id);
  renderWaterfall();
  renderAttention();
}

function renderWaterfall() {
  const box = document.getElementById('waterfall');
  const hint = document.getElementById('trace-hint');
  box.replaceChildren();
  const entry = state.selectedId && state.details.get(state.selectedId);
  if (!entry || !entry.view) {
    hint.textContent = '';
    box.append(el('div', { class: 'empty' }, state.selectedId ? 'Loading the trace…' : 'Pick a forward pass to see its spans across silos.'));
    renderSpanDetails(null);
    return;
  }
  const view = entry.view;
  const showOrleans = document.getElementById('orleans-spans').checked;
  const byId = new Map(view.spans.map(s => [s.spanId, s]));
  const isOrleans = s => s.source.startsWith('Microsoft.Orleans');
  const visible = view.spans.filter(s => showOrleans || !isOrleans(s));
  const visibleIds = new Set(visible.map(s => s.spanId));
  const depthOf = s => {
    let depth = 0;
    for (let p = byId.get(s.parentSpanId); p; p = byId.get(p.parentSpanId)) if (visibleIds.has(p.spanId)) depth++;
    return depth;
  };
  // The call as the coordinator saw it: the outermost Orleans client span between the forward span and a head.
  const callOf = s => {
    let call = null;
    for (let p = byId.get(s.parentSpanId); p && p.name !== 'headwise.forward'; p = byId.get(p.parentSpanId))
      if (p.kind === 'Client') call = p;
    return call;
  };
  const total = Math.max(view.durationMs, 0.001);
  const silos = [...new Set(view.spans.map(s => s.silo))];
  hint.textContent = `${view.traceId} · ${view.spans.length} spans on ${silos.length} silo${silos.length === 1 ? '' : 's'} · ${ms(view.durationMs)}` +
    (view.unreachableSilos.length ? ` · missing: ${view.unreachableSilos.join(', ')}` : '');

  const step = niceStep(total, 6);
  const ticks = el('div', { class: 'ticks' });
  for (let v = 0; v <= total * 1.0001; v += step) {
    const at = (v / total) * 100;
    ticks.append(el('span', { class: 'tick', style: `left:${at}%;transform:translateX(${at > 92 ? -100 : at < 3 ? 0 : -50}%)` }, tick(v)));
  }
  box.append(el('div', { class: 'wf-axis' }, el('span', {}, 'span · silo'), ticks));

  for (const span of visible) {
    const color = siloColor(span.silo);
    const left = (span.startMs / total) * 100;
    const width = Math.max((span.durationMs / total) * 100, 0.15);
    const track = el('div', { class: 'wf-track' });
    for (let v = step; v < total; v += step) track.append(el('span', { class: 'gridline', style: `left:${(v / total) * 100}%` }));
    if (!showOrleans && span.name === 'headwise.head') {
      const call = callOf(span);
      if (call) track.append(el('span', { class: 'wf-bar call', style: `left:${(call.startMs / total) * 100}%;width:${Math.max((call.durationMs / total) * 100, 0.15)}%;--silo:${color}`, title: `call as the coordinator saw it: ${ms(call.durationMs)}` }));
    }
    track.append(el('span', { class: 'wf-bar' + (span.status === 'error' ? ' error' : ''), style: `left:${left}%;width:${width}%;--silo:${color}` }));
    const compute = parseFloat(span.tags['headwise.compute_ms']);
    if (span.name === 'headwise.head' && compute > 0) {
      const computeWidth = Math.min(width, (compute / total) * 100);
      track.append(el('span', { class: 'wf-bar compute', style: `left:${left + width - computeWidth}%;width:${computeWidth}%`, title: `kernel ${ms(compute)}` }));
    }
    const durLeft = left + width < 88 ? `left:calc(${left + width}% + 4px)` : `right:calc(${100 - left}% + 4px)`;
    track.append(el('span', { class: 'wf-dur', style: durLeft }, ms(span.durationMs)));

    const depth = showOrleans ? span.depth : depthOf(span);
    const label = el('div', { class: 'wf-label', style: `padding-left:${depth * 14}px` },
      el('span', { class: 'silo-dot', style: `--silo:${color}` }),
      el('span', { class: isOrleans(span) ? 'orleans' : 'name' }, spanLabel(span)),
      el('span', { class: 'silo-tag' }, span.silo));
    const row = el('div', {
      class: 'wf-row' + (span.spanId === state.selectedSpanId ? ' selected' : ''),
      'data-span-id': span.spanId,
      'data-span-name': span.name,
      'data-silo': span.silo,
      title: `${span.name} on ${span.silo}: ${ms(span.durationMs)}`,
      onclick: () => { state.selectedSpanId = span.spanId; renderWaterfall(); },
    }, label, track);
    box.append(row);
  }
  renderSpanDetails(byId.get(state.selectedSpanId) || null);
}

function spanLabel(span) {
  const t = span.tags;
  switch (span.name) {
    case 'headwise.forward': return `headwise.forward  ${t['headwise.model']}/${t['headwise.layer']}  B=${t['headwise.batch']} T=${t['headwise.tokens']}`;
    case 'headwise.head': return `headwise.head  group ${t['headwise.group']}` + (t['headwise.heads'] && t['headwise.heads'] !== t['headwise.group'] ? ` (heads ${t['headwise.heads']})` : '');
    default: return span.name;
  }
}

function renderSpanDetails(span) {
  const box = document.getElementById('span-details');
  box.replaceChildren();
  if (!span) {
    box.append(el('span', {}, 'Click a span for its tags. Bars are coloured by the silo that ran the span.'));
    return;
  }
  const rows = [
    ['span', `${span.name} (${span.kind}, ${span.source})`],
    ['silo', span.silo],
    ['start', `+${ms(span.startMs)}`],
    ['duration', ms(span.durationMs)],
    ['status', span.status + (span.statusDescription ? `: ${span.statusDescription}` : '')],
    ...span.exceptions.map(e => ['exception', e]),
    ...Object.entries(span.tags).sort(([a], [b]) => a.localeCompare(b)),
  ];
  box.append(el('table', {}, rows.map(([k, v]) => el('tr', {}, el('td', { class: 'k' }, k), el('td', { class: 'v' }, v)))));
}

// ---------- attention ----------

function attentionTraceId() {
  const selected = selectedSummary();
  if (selected && selected.attention) return selected.traceId;
  const newest = state.traces.find(t => t.attention);
  return newest ? newest.traceId : null;
}

function renderAttention() {
  const box = document.getElementById('attention');
  const hint = document.getElementById('attention-hint');
  box.replaceChildren();
  const id = attentionTraceId();
  const entry = id && state.details.get(id);
  if (!entry || !entry.view) {
    hint.textContent = '';
    box.append(el('div', { class: 'empty' }, id ? 'Loading…' :
      'No forward pass asked for attention yet. Ask for it (gRPC return_attention, SDK ReturnAttention = true) and each head\'s attention matrix appears here.'));
    return;
  }
  const heads = entry.view.spans.filter(s => s.name === 'headwise.head' && s.attention)
    .flatMap(s => s.attention.heads.map((head, k) => ({ head, silo: s.silo, group: s.tags['headwise.group'], preview: s.attention, values: s.attention.values[k] })))
    .sort((a, b) => a.head - b.head);
  if (!heads.length) {
    box.append(el('div', { class: 'empty' }, 'This trace has no attention pictures (its silos may have dropped them).'));
    return;
  }
  const p = heads[0].preview;
  hint.replaceChildren(
    `trace ${id.slice(0, 12)}… · sequence 0 · rows are queries, columns keys · T=${p.tokens}` + (p.size < p.tokens ? ` shown as ${p.size}×${p.size} block means` : ''),
    el('span', { class: 'colorbar' }), '√(p / max p) per head');
  for (const h of heads) {
    const canvas = el('canvas', { width: h.preview.size, height: h.preview.size, 'data-head': h.head });
    drawHeatmap(canvas, h.values, h.preview.size);
    box.append(el('div', { class: 'heatmap', style: `--silo:${siloColor(h.silo)}` }, canvas,
      el('div', { class: 'caption' }, el('b', {}, `head ${h.head}`), el('span', {}, h.silo))));
  }
}

function drawHeatmap(canvas, values, size) {
  const context = canvas.getContext('2d');
  const image = context.createImageData(size, size);
  let max = 0;
  for (const v of values) if (v > max) max = v;
  for (let i = 0; i < size * size; i++) {
    const [r, g, b] = viridis(max > 0 ? Math.sqrt(values[i] / max) : 0);
    image.data[i * 4] = r; image.data[i * 4 + 1] = g; image.data[i * 4 + 2] = b; image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
}

// ---------- polling ----------

async function poll() {
  try {
    const [cluster, list] = await Promise.all([getJson('/api/cluster'), getJson('/api/traces?limit=40')]);
    state.cluster = cluster;
    state.traces = list.traces;
    assignColors(cluster.silos.map(s => s.silo));
    if (state.follow && state.traces.length) state.selectedId = state.traces[0].traceId;
    if (state.selectedId && !state.traces.some(t => t.traceId === state.selectedId) && !state.details.has(state.selectedId))
      state.selectedId = state.traces.length ? state.traces[0].traceId : null;
    renderCluster();
    renderTraceList();
    renderHeads();
    await refreshDetails();
    state.lastUpdate = Date.now();
    document.getElementById('live-dot').className = 'dot live';
    tickStatus();
    document.body.dataset.ready = 'true';
  } catch (e) {
    showDown(e);
  }
}

function showDown(e) {
  document.getElementById('live-dot').className = 'dot down';
  document.getElementById('live-text').textContent = `cannot reach the silo (${e.message})`;
}

function tickStatus() {
  if (!state.lastUpdate) return;
  const dot = document.getElementById('live-dot');
  if (dot.classList.contains('down')) return;
  const age = (Date.now() - state.lastUpdate) / 1000;
  document.getElementById('live-text').textContent = document.getElementById('live').checked
    ? `live · updated ${age < 1 ? 'just now' : age.toFixed(0) + ' s ago'}`
    : `paused · updated ${age.toFixed(0)} s ago`;
}

function schedule() {
  clearInterval(state.timer);
  if (document.getElementById('live').checked) state.timer = setInterval(poll, POLL_MS);
}

document.getElementById('live').addEventListener('change', () => { schedule(); if (document.getElementById('live').checked) poll(); });
document.getElementById('follow').addEventListener('change', e => {
  state.follow = e.target.checked;
  if (state.follow && state.traces.length) selectTrace(state.traces[0].traceId, false);
});
document.getElementById('orleans-spans').addEventListener('change', renderWaterfall);
setInterval(tickStatus, 500);
poll();
schedule();

