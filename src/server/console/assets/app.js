// bt's web console: one script, no framework. Every view's state lives in the URL;
// everything from the store is inserted as text (textContent), never as markup.
'use strict';

let ME = null;
const view = () => document.getElementById('view');

// ---------------------------------------------------------------------------
// DOM helpers

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const kid of kids.flat()) if (kid) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

function link(href, ...kids) {
  return h('a', { href, 'data-link': true }, ...kids);
}

function when(ts) {
  if (ts === null || ts === undefined) return '';
  const d = new Date(Number(ts) * 1000);
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

function ago(ts) {
  if (!ts) return '';
  const secs = Math.max(0, Date.now() / 1000 - Number(ts));
  if (secs < 90) return `${Math.round(secs)} s ago`;
  if (secs < 5400) return `${Math.round(secs / 60)} min ago`;
  if (secs < 129600) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}

function projectUrl(p, rest) {
  return `/p/${encodeURIComponent(p)}${rest || ''}`;
}

function params() {
  return new URLSearchParams(location.search);
}

function setParams(p, replace) {
  const q = p.toString();
  const url = location.pathname + (q ? `?${q}` : '');
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

// ---------------------------------------------------------------------------
// The API

class ApiError extends Error {}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
  if (r.status === 401) {
    location.assign(`/login?why=expired&next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError('session expired');
  }
  let body = null;
  try {
    body = await r.json();
  } catch (e) {
    body = null;
  }
  if (!r.ok) throw new ApiError((body && body.error && body.error.message) || `HTTP ${r.status}`);
  return body;
}

function post(path, body) {
  return api(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Bt-Csrf': (ME && ME.csrf) || '' },
    body: JSON.stringify(body),
  });
}

function q(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) {
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else if (v !== undefined && v !== null && v !== '') p.set(k, v);
  }
  return p.toString();
}

// ---------------------------------------------------------------------------
// Charts (SVG)

function sparkline(values, w, hgt) {
  w = w || 120;
  hgt = hgt || 24;
  const vals = (values || []).map(Number);
  const max = Math.max(1, ...vals);
  const step = vals.length > 1 ? w / (vals.length - 1) : w;
  const pts = vals.map((v, i) => `${(i * step).toFixed(1)},${(hgt - 2 - (v / max) * (hgt - 4)).toFixed(1)}`);
  return s('svg', { class: 'spark', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, 'data-points': vals.join(',') },
    s('polyline', { points: pts.join(' '), fill: 'none' }));
}

function jitterPlot(instances, from, to) {
  const W = 560, H = 120, pad = 6;
  const span = Math.max(1, to - from);
  const g = s('svg', { class: 'chart jitter', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-count': instances.length });
  g.append(s('line', { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: 'axis' }));
  instances.forEach((row, i) => {
    const t = Number(row[1][0]);
    const x = pad + ((t - from) / span) * (W - 2 * pad);
    // A fixed pseudo-random jitter per object, so a reload draws the same plot.
    const y = pad + ((Number.parseInt(row[0], 16) * 2654435761) % 1000) / 1000 * (H - 3 * pad);
    const c = s('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, class: 'pt', 'data-object': row[0] });
    c.append(s('title', {}, `${row[0]} ${when(t)} ${row[1][1] || ''}`));
    g.append(c);
  });
  return g;
}

function lineGraph(counts, from, to) {
  const W = 560, H = 120, pad = 6;
  const vals = (counts || []).map((b) => (Array.isArray(b) ? Number(b[2] !== undefined ? b[2] : b[1]) : Number(b)));
  const max = Math.max(1, ...vals);
  const step = vals.length > 1 ? (W - 2 * pad) / (vals.length - 1) : 0;
  const pts = vals.map((v, i) => `${(pad + i * step).toFixed(1)},${(H - pad - (v / max) * (H - 2 * pad)).toFixed(1)}`);
  return s('svg', { class: 'chart line', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-points': vals.join(','), 'data-total': vals.reduce((a, b) => a + b, 0) },
    s('line', { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: 'axis' }),
    s('polyline', { points: pts.join(' '), fill: 'none' }));
}

function heatMap(instances) {
  // Day of week × hour of day (UTC): when the crashes happen.
  const cells = Array.from({ length: 7 }, () => new Array(24).fill(0));
  for (const row of instances) {
    const d = new Date(Number(row[1][0]) * 1000);
    cells[d.getUTCDay()][d.getUTCHours()] += 1;
  }
  const max = Math.max(1, ...cells.flat());
  const C = 16, L = 30, T = 14;
  const g = s('svg', { class: 'chart heat', width: L + 24 * C, height: T + 7 * C, viewBox: `0 0 ${L + 24 * C} ${T + 7 * C}`, 'data-total': cells.flat().reduce((a, b) => a + b, 0) });
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  for (let hr = 0; hr < 24; hr += 6) g.append(s('text', { x: L + hr * C, y: 10, class: 'lbl' }, `${hr}h`));
  days.forEach((d, i) => {
    g.append(s('text', { x: 0, y: T + i * C + 12, class: 'lbl' }, d));
    for (let hr = 0; hr < 24; hr++) {
      const n = cells[i][hr];
      const r = s('rect', { x: L + hr * C, y: T + i * C, width: C - 1, height: C - 1, class: 'cell', 'fill-opacity': n ? (0.15 + 0.85 * n / max).toFixed(2) : 0.04, 'data-n': n });
      r.append(s('title', {}, `${d} ${hr}:00 UTC: ${n}`));
      g.append(r);
    }
  });
  return g;
}

// ---------------------------------------------------------------------------
// Frame

function crumbs(...parts) {
  const nav = document.getElementById('crumbs');
  nav.replaceChildren(...parts.flatMap((p, i) => (i ? [h('span', { class: 'sep' }, '/'), p] : [p])));
}

// Replaces the view's content (nulls, for parts not shown, are left out).
function put(...kids) {
  view().replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}

function fail(e) {
  put(h('p', { class: 'error', role: 'alert' }, e.message || String(e)));
}

function title(text) {
  document.title = `${text} — bt`;
}

// ---------------------------------------------------------------------------
// Overview: every project the user may see

async function overview() {
  crumbs(link('/', 'Projects'));
  title('Projects');
  const d = await api('/api/console/overview');
  const rows = d.projects.map((p) => {
    const a = p.activity;
    return h('tr', { 'data-project': p.name },
      h('td', {}, link(projectUrl(p.name), p.name)),
      a.crashes.map((n, i) => h('td', { class: `num crashes-${['24h', '7d', '30d'][i]}` }, n)),
      a.groups_in.map((n, i) => h('td', { class: `num groups-${['24h', '7d', '30d'][i]}` }, n)),
      h('td', { class: 'num new-groups' }, a.new_groups),
      h('td', { class: 'num objects' }, a.objects),
      h('td', {}, sparkline(a.spark)));
  });
  put(
    h('h1', {}, 'Projects'),
    d.projects.length === 0 ? h('p', {}, 'No project yet (Settings, or bt coroner project create NAME).') : null,
    h('table', { class: 'list', id: 'projects' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Project'), h('th', {}, 'Crashes 24 h'), h('th', {}, '7 d'), h('th', {}, '30 d'),
        h('th', {}, 'Groups 24 h'), h('th', {}, '7 d'), h('th', {}, '30 d'), h('th', {}, 'New groups (7 d)'),
        h('th', {}, 'Objects'), h('th', {}, 'Last 30 days'))),
      h('tbody', {}, rows)));
  keyboardList(document.querySelector('#projects tbody'));
}

// ---------------------------------------------------------------------------
// Filters (triage and explore)

const OPS = ['equal', 'not-equal', 'contains', 'not-contains', 'regular-expression', 'inverse-regular-expression',
  'at-least', 'at-most', 'greater-than', 'less-than', 'is-set', 'is-not-set'];

function filterBar(p, attrs, onApply, extra) {
  const list = h('div', { class: 'filters' });
  const datalist = h('datalist', { id: 'attrs' }, attrs.map((a) => h('option', { value: a })));
  const addRow = (attr, op, value) => {
    const row = h('div', { class: 'filter' },
      h('input', { class: 'f-attr', list: 'attrs', placeholder: 'attribute', value: attr || '', 'aria-label': 'attribute' }),
      h('select', { class: 'f-op', 'aria-label': 'operator' }, OPS.map((o) => h('option', { value: o, selected: o === (op || 'equal') }, o))),
      h('input', { class: 'f-value', placeholder: 'value', value: value || '', 'aria-label': 'value' }),
      h('button', { type: 'button', class: 'f-remove', onclick: () => row.remove(), title: 'remove' }, '×'));
    list.append(row);
  };
  for (const f of p.getAll('filter')) {
    const [a, op, ...rest] = f.split(',');
    addRow(a, op, rest.join(','));
  }
  const form = h('form', { class: 'filterbar', id: 'filterbar' }, datalist, list,
    h('button', { type: 'button', id: 'add-filter', onclick: () => addRow() }, '+ filter'),
    extra || null,
    h('button', { type: 'submit', id: 'apply' }, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const np = new URLSearchParams(p);
    np.delete('filter');
    np.delete('offset');
    for (const row of list.querySelectorAll('.filter')) {
      const a = row.querySelector('.f-attr').value.trim();
      if (!a) continue;
      np.append('filter', `${a},${row.querySelector('.f-op').value},${row.querySelector('.f-value').value}`);
    }
    onApply(np, form);
  });
  return form;
}

function filterJson(p) {
  const f = {};
  for (const spec of p.getAll('filter')) {
    const [a, op, ...rest] = spec.split(',');
    const v = rest.join(',');
    (f[a] = f[a] || []).push(op === 'is-set' || op === 'is-not-set' ? [op] : [op, v]);
  }
  return f;
}

async function attributesOf(project) {
  try {
    const d = await api(`/api/describe?${q({ project })}`);
    return d.attributes.map((a) => a.name);
  } catch (e) {
    return [];
  }
}

// ---------------------------------------------------------------------------
// Triage: the groups of a project

function groupTitle(g) {
  const frames = (g.frames || []).join(' ← ');
  return [g.classifiers ? `[${g.classifiers}] ` : '', frames || g.fingerprint].join('');
}

async function triage(project) {
  const p = params();
  crumbs(link('/', 'Projects'), link(projectUrl(project), project), link(projectUrl(project, '/explore'), 'Explore'));
  title(project);
  const age = p.get('age') || '30d';
  const sort = p.get('sort') || 'count';
  const dir = p.get('dir') || 'desc';
  const offset = Number(p.get('offset') || 0);
  const limit = Number(p.get('limit') || 50);
  const [d, attrs] = await Promise.all([
    api(`/api/console/groups?${q({ project, filter: p.getAll('filter'), age, sort, dir, offset, limit })}`),
    attributesOf(project),
  ]);
  const ageSel = h('select', { id: 'age', 'aria-label': 'time range' },
    ['24h', '7d', '30d', '90d', '1y', 'all'].map((a) => h('option', { value: a, selected: a === age }, a === 'all' ? 'all time' : `last ${a}`)));
  const bar = filterBar(p, attrs, (np) => {
    np.set('age', ageSel.value);
    setParams(np);
  }, ageSel);
  const sortBy = (key) => {
    const np = new URLSearchParams(p);
    np.set('sort', key);
    np.set('dir', sort === key && dir === 'desc' ? 'asc' : 'desc');
    np.delete('offset');
    setParams(np);
  };
  const th = (key, label) => h('th', { class: `sortable${sort === key ? ` sorted ${dir}` : ''}`, 'data-sort': key },
    h('button', { type: 'button', onclick: () => sortBy(key) }, label, sort === key ? (dir === 'desc' ? ' ▼' : ' ▲') : ''));
  const rows = d.groups.map((g) => h('tr', { 'data-fingerprint': g.fingerprint },
    h('td', { class: 'pick' }, h('input', { type: 'checkbox', class: 'select', value: g.fingerprint, 'aria-label': `select ${g.fingerprint}` })),
    h('td', { class: `state state-${g.state}` }, g.state || 'open'),
    h('td', { class: 'title' }, link(projectUrl(project, `/g/${g.fingerprint}`), groupTitle(g)),
      h('div', { class: 'fp' }, g.fingerprint)),
    h('td', { class: 'num count' }, g.count),
    h('td', { class: 'num hosts' }, g.hosts),
    h('td', { class: 'first', title: when(g.first) }, ago(g.first)),
    h('td', { class: 'last', title: when(g.last) }, ago(g.last)),
    h('td', {}, sparkline(g.spark)),
    h('td', { class: 'assignee' }, g.assignee || ''),
    h('td', { class: 'ticket' }, (g.tickets || []).map((t) => (t.url ? h('a', { href: t.url, rel: 'noopener noreferrer', target: '_blank' }, `${t.system}:${t.key}`) : `${t.system}:${t.key}`)))));
  const page = (o) => {
    const np = new URLSearchParams(p);
    np.set('offset', Math.max(0, o));
    setParams(np);
  };
  const total = Number(d.total || 0);
  // Triage of the selected groups, several at once.
  const STATES = { open: 'Open', 'in-progress': 'InProgress', resolved: 'Resolved', muted: 'Muted' };
  const bulkState = h('select', { id: 'bulk-state', 'aria-label': 'state of the selected groups' },
    Object.keys(STATES).map((x) => h('option', { value: x }, x)));
  const bulkStatus = h('span', { id: 'bulk-status', role: 'status' });
  const bulk = h('form', { class: 'bulk', id: 'bulk', onsubmit: async (ev) => {
    ev.preventDefault();
    const fingerprints = Array.from(document.querySelectorAll('#groups input.select:checked')).map((c) => c.value);
    if (!fingerprints.length) {
      bulkStatus.textContent = 'select groups first';
      return;
    }
    try {
      await post(`/api/triage?${q({ project })}`, { fingerprints, change: { State: { state: STATES[bulkState.value], until: null } } });
      route();
    } catch (e) {
      bulkStatus.textContent = e.message;
    }
  } }, 'Selected groups: ', bulkState, h('button', { type: 'submit' }, 'Set state'), bulkStatus);
  put(
    h('h1', {}, project),
    bar,
    bulk,
    h('p', { class: 'summary', id: 'summary' }, `${total} groups, ${d.objects} crashes (${d.server_ms.toFixed(1)} ms)`),
    h('table', { class: 'list', id: 'groups' },
      h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, 'State'), h('th', {}, 'Group'), th('count', 'Count'), th('hosts', 'Hosts'),
        th('first', 'First seen'), th('last', 'Last seen'), h('th', {}, 'Activity'), h('th', {}, 'Assignee'), h('th', {}, 'Ticket'))),
      h('tbody', {}, rows)),
    h('div', { class: 'pager' },
      h('button', { type: 'button', id: 'prev', disabled: offset <= 0, onclick: () => page(offset - limit) }, '← Previous'),
      h('span', {}, total ? `${offset + 1}–${Math.min(total, offset + limit)} of ${total}` : 'no groups'),
      h('button', { type: 'button', id: 'next', disabled: offset + limit >= total, onclick: () => page(offset + limit) }, 'Next →')));
  keyboardList(document.querySelector('#groups tbody'));
}

// j/k or arrows move through a list's rows; Enter opens the row's first link.
function keyboardList(tbody) {
  if (!tbody) return;
  const rows = () => Array.from(tbody.querySelectorAll('tr'));
  let cur = -1;
  const mark = (i) => {
    const rs = rows();
    if (!rs.length) return;
    cur = Math.max(0, Math.min(rs.length - 1, i));
    rs.forEach((r, j) => r.classList.toggle('current', j === cur));
    rs[cur].scrollIntoView({ block: 'nearest' });
  };
  document.onkeydown = (ev) => {
    if (ev.target.closest('input, select, textarea')) return;
    if (ev.key === 'j' || ev.key === 'ArrowDown') { mark(cur + 1); ev.preventDefault(); }
    else if (ev.key === 'k' || ev.key === 'ArrowUp') { mark(cur - 1); ev.preventDefault(); }
    else if (ev.key === 'x' && cur >= 0) {
      const c = rows()[cur] && rows()[cur].querySelector('input.select');
      if (c) c.checked = !c.checked;
    } else if (ev.key === 'Enter' && cur >= 0) {
      const a = rows()[cur] && rows()[cur].querySelector('a[data-link]');
      if (a) a.click();
    }
  };
}

// ---------------------------------------------------------------------------
// Group details

function copyable(text) {
  const code = h('code', {}, text);
  const btn = h('button', { type: 'button', class: 'copy', onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'copied';
    } catch (e) {
      const r = document.createRange();
      r.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
  } }, 'copy');
  return h('span', { class: 'cmd' }, code, btn);
}

async function group(project, fp) {
  const p = params();
  const attr = p.get('attr') || 'hostname';
  const d = await api(`/api/console/group?${q({ project, fingerprint: fp, attr })}`);
  crumbs(link('/', 'Projects'), link(projectUrl(project), project), link(projectUrl(project, `/g/${d.fingerprint}`), d.fingerprint.slice(0, 12)));
  title(`${project} ${d.fingerprint.slice(0, 12)}`);
  const t = d.triage;
  const stateSel = h('select', { id: 'set-state', 'aria-label': 'state' },
    ['open', 'in-progress', 'resolved', 'muted'].map((x) => h('option', { value: x, selected: x === t.state }, x)));
  const assignee = h('input', { id: 'set-assignee', placeholder: 'assignee', value: t.assignee || '', 'aria-label': 'assignee' });
  const comment = h('input', { id: 'comment', placeholder: 'comment', 'aria-label': 'comment' });
  const status = h('span', { id: 'triage-status', role: 'status' });
  const STATES = { open: 'Open', 'in-progress': 'InProgress', resolved: 'Resolved', muted: 'Muted' };
  const apply = async (ev) => {
    ev.preventDefault();
    try {
      const changes = [];
      if (stateSel.value !== t.state) changes.push({ State: { state: STATES[stateSel.value], until: null } });
      if ((assignee.value || null) !== (t.assignee || null)) changes.push({ Assign: assignee.value.trim() || null });
      if (comment.value.trim()) changes.push({ Comment: comment.value.trim() });
      for (const change of changes) await post(`/api/triage?${q({ project })}`, { fingerprints: [d.fingerprint], change });
      status.textContent = changes.length ? 'saved' : 'nothing changed';
      route();
    } catch (e) {
      status.textContent = e.message;
    }
  };
  const attrSel = h('select', { id: 'breakdown-attr', 'aria-label': 'attribute', onchange: () => { const np = new URLSearchParams(p); np.set('attr', attrSel.value); setParams(np, true); } },
    d.attributes.map((a) => h('option', { value: a, selected: a === d.attr }, a)));
  const maxB = Math.max(1, ...d.breakdown.map((r) => Number(r[2])));
  const instances = d.instances || [];
  const ts = instances.map((r) => Number(r[1][0]));
  const from = Math.min(d.first_seen, ...ts), to = Math.max(d.last_seen, ...ts) + 1;
  const ex = d.explain || {};
  put(
    h('h1', { class: 'group-title' }, d.classifiers ? `[${d.classifiers}] ` : '', (d.callstack || []).filter((f) => !f.startsWith('[')).slice(0, 2).join(' ← ') || d.fingerprint),
    h('div', { class: 'facts' },
      h('span', {}, 'fingerprint ', h('code', { id: 'fingerprint' }, d.fingerprint)),
      h('span', {}, 'state ', h('b', { id: 'state' }, t.state)),
      h('span', {}, 'count ', h('b', { id: 'count' }, d.count)),
      h('span', {}, 'first ', h('b', { id: 'first-seen' }, when(d.first_seen))),
      h('span', {}, 'last ', h('b', { id: 'last-seen' }, when(d.last_seen))),
      h('span', {}, 'classifiers ', h('b', { id: 'classifiers' }, d.classifiers || '—'))),
    h('form', { class: 'triage-form', id: 'triage', onsubmit: apply }, stateSel, assignee, comment, h('button', { type: 'submit' }, 'Save'), status),
    h('section', { class: 'graphs' },
      h('figure', {}, h('figcaption', {}, `Instances (${instances.length} of ${d.instances_total})`), jitterPlot(instances, from, to)),
      h('figure', {}, h('figcaption', {}, 'Count over time'), lineGraph(d.bins.counts, d.bins.from, d.bins.to)),
      h('figure', {}, h('figcaption', {}, 'When (UTC)'), heatMap(instances))),
    h('section', {}, h('h2', {}, 'Breakdown by ', attrSel),
      h('table', { class: 'list bars', id: 'breakdown' }, h('tbody', {}, d.breakdown.map((r) => h('tr', {},
        h('td', { class: 'value' }, r[0] === null ? '(not set)' : String(r[0])),
        h('td', { class: 'num' }, r[2]),
        h('td', { class: 'barcell' }, h('div', { class: 'bar', style: null, 'data-w': Math.round(100 * r[2] / maxB) }))))))),
    h('section', {}, h('h2', {}, 'Callstack'), h('ol', { class: 'callstack', id: 'callstack' }, (d.callstack || []).map((f) => h('li', {}, f)))),
    h('section', {}, h('h2', {}, 'Why grouped'),
      ex.error ? h('p', { class: 'error' }, ex.error) : h('div', {},
        h('p', {}, 'Signature: ', h('code', { id: 'signature' }, (ex.signature || []).join(' | ') || '(empty)')),
        h('table', { class: 'list', id: 'why' },
          h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'Frame'), h('th', {}, 'Kind'), h('th', {}, 'Rules'), h('th', {}, 'Outcome'))),
          h('tbody', {}, (ex.frames || []).map((f) => h('tr', {},
            h('td', { class: 'num' }, f.index), h('td', { class: 'frame' }, f.frame), h('td', {}, `${f.lang}, ${f.app ? 'app' : 'system'}`),
            h('td', { class: 'rules' }, f.rules.map((r) => h('div', {}, r))), h('td', { class: 'outcome' }, f.outcome))))))),
    h('section', {}, h('h2', {}, 'History'), h('ul', { id: 'history' }, (t.history || []).map((e) => h('li', {}, `${when(e.time)} ${e.who}: ${e.what}`)))),
    h('section', {}, h('h2', {}, 'Instances'),
      h('table', { class: 'list', id: 'instances' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Object'), h('th', {}, 'Time'), h('th', {}, 'Host'), h('th', {}, 'Application'), h('th', {}, 'Version'), h('th', {}, 'Get it'))),
        h('tbody', {}, instances.slice(0, 200).map((r) => h('tr', { 'data-object': r[0] },
          h('td', {}, link(projectUrl(project, `/o/${r[0]}`), r[0])),
          h('td', {}, when(r[1][0])), h('td', {}, r[1][1] || ''), h('td', {}, r[1][2] || ''), h('td', {}, r[1][3] || ''),
          h('td', { class: 'cmds' },
            copyable(`bt morgue get ${project} ${r[0]} --url ${d.url}`),
            copyable(`bt hydra ${project} ${r[0]} --url ${d.url}`))))))));
  for (const b of document.querySelectorAll('.bar')) b.style.width = `${b.dataset.w}%`;
  keyboardList(document.querySelector('#instances tbody'));
}

// ---------------------------------------------------------------------------
// The debugger: one crash

function hex(n) {
  return `0x${Number(n).toString(16)}`;
}

async function debuggerView(project, object) {
  const p = params();
  const d = await api(`/api/console/object?${q({ project, object })}`);
  crumbs(link('/', 'Projects'), link(projectUrl(project), project), link(projectUrl(project, `/o/${object}`), `object ${object}`));
  title(`${project} object ${object}`);
  const attrTable = h('table', { class: 'list kv', id: 'attributes' }, h('tbody', {}, d.attributes.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))));
  if (d.kind !== 'snapshot') {
    put(h('h1', {}, `Object ${object} (a JSON report)`), h('h2', {}, 'Attributes'), attrTable,
      h('h2', {}, 'Report'), h('pre', { class: 'report' }, JSON.stringify(d.report, null, 2)));
    return;
  }
  const threads = d.threads;
  const faulted = threads.find((t) => t.faulted) || threads[0];
  const tid = Number(p.get('thread') || (faulted && faulted.tid));
  const thread = threads.find((t) => t.tid === tid) || faulted;
  const frameNo = Number(p.get('frame') || 0);
  const tab = p.get('tab') || 'registers';
  const nav = (changes) => {
    const np = new URLSearchParams(p);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) np.delete(k);
      else np.set(k, v);
    }
    setParams(np, true);
  };
  const threadList = h('ul', { class: 'threads', id: 'threads' }, d.stacks.map((members) => {
    const first = threads[members[0]];
    const label = members.length > 1 ? `${members.length} threads with this stack: ${members.map((i) => threads[i].tid).join(', ')}` : '';
    return h('li', { class: members.some((i) => threads[i].tid === thread.tid) ? 'selected' : '' },
      h('button', { type: 'button', 'data-tid': first.tid, class: first.faulted ? 'faulted' : '', onclick: () => nav({ thread: first.tid, frame: 0, var: null, x: null }) },
        first.faulted ? '⚡ ' : '', `${first.tid} ${first.name}`, members.length > 1 ? ` ×${members.length}` : '',
        h('span', { class: 'top' }, (first.frames[0] && (first.frames[0].function || first.frames[0].pc)) || '')),
      label ? h('div', { class: 'members' }, label) : null);
  }));
  const frames = h('ol', { class: 'frames', id: 'frames', start: 0 }, thread.frames.map((f, i) => h('li', { class: i === frameNo ? 'selected' : '' },
    h('button', { type: 'button', 'data-frame': i, onclick: () => nav({ frame: i, var: null, x: null }) },
      h('span', { class: 'fn' }, f.function || f.pc),
      f.file ? h('span', { class: 'loc' }, ` ${f.file}:${f.line || '?'}`) : null,
      h('span', { class: 'mod' }, ` ${f.module || ''}`),
      h('span', { class: `trust trust-${f.trust}` }, f.inlined ? 'inlined' : f.trust)))));
  const expanded = p.getAll('x');
  const selVar = p.get('var');
  const varsBox = h('div', { class: 'vars', id: 'vars' }, h('p', { class: 'loading' }, 'Loading variables…'));
  const sig = d.signal ? `${d.signal.name} (${d.signal.code_name || d.signal.code})${d.signal.fault_address !== null && d.signal.fault_address !== undefined ? ` at ${hex(d.signal.fault_address)}` : ''}` : 'no signal';
  const tabs = {
    registers: () => h('table', { class: 'list kv mono', id: 'registers' }, h('tbody', {}, Object.entries(thread.registers).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, hex(v)))))),
    analysis: () => h('div', { id: 'analysis' }, h('p', {}, 'Classifiers: ', (d.classifiers || []).join(', ') || '—'),
      h('ul', {}, (d.annotations || []).map((a) => h('li', { class: `sev-${a.severity}` }, `${a.severity} ${a.source}: ${a.text}`))),
      (d.problems || []).length ? h('ul', { class: 'problems' }, d.problems.map((x) => h('li', {}, x.message))) : null),
    maps: () => h('table', { class: 'list mono', id: 'maps' }, h('tbody', {}, (d.maps || []).map((m) => h('tr', {}, h('td', {}, `${hex(m.start)}-${hex(m.end)}`), h('td', {}, m.perms), h('td', {}, hex(m.offset)), h('td', {}, m.path))))),
    modules: () => h('table', { class: 'list mono', id: 'modules' }, h('tbody', {}, (d.modules || []).map((m) => h('tr', {}, h('td', {}, m.path), h('td', {}, `${hex(m.start)}-${hex(m.end)}`), h('td', {}, m.build_id || ''), h('td', {}, m.debug && m.debug.found ? 'debug info' : 'no debug info'))))),
    attributes: () => attrTable,
    environment: () => h('table', { class: 'list kv', id: 'environment' }, h('tbody', {},
      h('tr', {}, h('th', {}, 'hostname'), h('td', {}, d.environment.hostname)),
      h('tr', {}, h('th', {}, 'uname'), h('td', {}, Object.values(d.environment.uname || {}).join(' '))),
      h('tr', {}, h('th', {}, 'command line'), h('td', {}, (d.process.cmdline || []).join(' '))),
      h('tr', {}, h('th', {}, 'executable'), h('td', {}, d.process.exe)),
      (d.environment.status || []).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))))),
  };
  put(
    h('h1', {}, `Object ${object}: `, h('span', { id: 'signal' }, sig), ` in ${d.process.comm || d.process.exe}`),
    h('div', { class: 'debugger' },
      h('section', { class: 'pane' }, h('h2', {}, `Threads (${threads.length})`), threadList),
      h('section', { class: 'pane' }, h('h2', {}, `Frames of thread ${thread.tid}`), frames),
      h('section', { class: 'pane' }, h('h2', {}, `Variables of frame ${frameNo}`), varsBox)),
    h('nav', { class: 'tabs', id: 'tabs' }, Object.keys(tabs).map((k) => h('button', { type: 'button', class: k === tab ? 'selected' : '', 'data-tab': k, onclick: () => nav({ tab: k }) }, k))),
    h('section', { class: 'tab' }, (tabs[tab] || tabs.registers)()));
  try {
    const v = await api(`/api/console/vars?${q({ project, object, thread: thread.tid, frame: frameNo, expand: expanded })}`);
    if (!v.rows.length) {
      varsBox.replaceChildren(h('p', {}, 'No variables in this frame.'));
      return;
    }
    varsBox.replaceChildren(h('table', { class: 'list tree mono' }, h('tbody', {}, v.rows.map((r) => {
      const toggle = () => {
        const np = new URLSearchParams(p);
        const xs = np.getAll('x').filter((x) => x !== r.path);
        np.delete('x');
        if (!r.expanded) xs.push(r.path);
        xs.forEach((x) => np.append('x', x));
        np.set('var', r.path);
        setParams(np, true);
      };
      return h('tr', { class: r.path === selVar ? 'selected' : '', 'data-path': r.path },
        h('td', { class: 'name' }, h('span', { class: 'indent', 'data-depth': r.depth }),
          r.expandable ? h('button', { type: 'button', class: 'twisty', onclick: toggle, 'aria-label': r.expanded ? 'collapse' : 'expand' }, r.expanded ? '▾' : '▸') : h('span', { class: 'twisty' }),
          h('button', { type: 'button', class: 'varname', onclick: () => nav({ var: r.path }) }, r.name)),
        h('td', { class: 'type' }, r.type || ''),
        h('td', { class: 'value' }, r.value));
    }))));
    for (const el of varsBox.querySelectorAll('.indent')) el.style.paddingLeft = `${Number(el.dataset.depth) * 14}px`;
  } catch (e) {
    varsBox.replaceChildren(h('p', { class: 'error' }, e.message));
  }
}

// ---------------------------------------------------------------------------
// Explore: group by any attribute with folds

const FOLDS = ['unique', 'histogram', 'range', 'min', 'max', 'sum', 'mean', 'head', 'tail', 'distribution', 'bin'];

async function explore(project) {
  const p = params();
  crumbs(link('/', 'Projects'), link(projectUrl(project), project), link(projectUrl(project, '/explore'), 'Explore'));
  title(`${project} explore`);
  const attrs = await attributesOf(project);
  const groupBy = h('input', { id: 'group-by', list: 'attrs', value: p.get('group') || 'fingerprint', 'aria-label': 'group by' });
  const folds = h('div', { class: 'folds' });
  const addFold = (a, op) => {
    const row = h('div', { class: 'fold' },
      h('input', { class: 'fold-attr', list: 'attrs', placeholder: 'attribute', value: a || '', 'aria-label': 'fold attribute' }),
      h('select', { class: 'fold-op', 'aria-label': 'fold' }, FOLDS.map((o) => h('option', { value: o, selected: o === op }, o))),
      h('button', { type: 'button', onclick: () => row.remove() }, '×'));
    folds.append(row);
  };
  for (const f of p.getAll('fold')) {
    const [a, op] = f.split(',');
    addFold(a, op);
  }
  const limit = h('input', { id: 'limit', type: 'number', min: 1, max: 1000, value: p.get('limit') || 50, 'aria-label': 'rows' });
  const bar = filterBar(p, attrs, (np) => {
    np.set('group', groupBy.value.trim());
    np.delete('fold');
    for (const row of folds.querySelectorAll('.fold')) {
      const a = row.querySelector('.fold-attr').value.trim();
      if (a) np.append('fold', `${a},${row.querySelector('.fold-op').value}`);
    }
    np.set('limit', limit.value);
    np.set('run', '1');
    setParams(np);
  }, h('span', { class: 'explore-extra' }, h('label', {}, 'Group by ', groupBy), folds,
    h('button', { type: 'button', id: 'add-fold', onclick: () => addFold() }, '+ fold'), h('label', {}, 'Rows ', limit)));
  const results = h('div', { id: 'results' });
  put(h('h1', {}, `Explore ${project}`), bar, results);
  if (!p.get('run')) return;
  const fold = {};
  for (const f of p.getAll('fold')) {
    const [a, op] = f.split(',');
    (fold[a] = fold[a] || []).push([op]);
  }
  const body = { filter: [filterJson(p)], group: [p.get('group') || 'fingerprint'], fold, limit: Number(p.get('limit') || 50) };
  try {
    const d = await post(`/api/query?${q({ project })}`, body);
    const cols = d.columns || [];
    results.replaceChildren(
      h('p', { id: 'result-summary' }, `${d.total} groups, ${d.objects} objects`),
      h('table', { class: 'list', id: 'result' },
        h('thead', {}, h('tr', {}, h('th', {}, body.group[0]), h('th', {}, 'count'), cols.map((c) => h('th', {}, `${c[1]}(${c[0]})`)))),
        h('tbody', {}, (d.rows || []).map((r) => h('tr', {},
          h('td', {}, r[0] === null ? '(not set)' : String(r[0])), h('td', { class: 'num' }, r[2]),
          (r[1] || []).map((v) => h('td', {}, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v === null ? '' : v))))))));
  } catch (e) {
    results.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

// ---------------------------------------------------------------------------
// Settings (admins)

async function settings() {
  crumbs(link('/', 'Projects'), link('/settings', 'Settings'));
  title('Settings');
  if (!ME.admin) {
    put(h('p', { class: 'error' }, 'Settings are for admins.'));
    return;
  }
  const [pr, tk, us] = await Promise.all([api('/api/admin/projects'), api('/api/admin/tokens'), api('/api/admin/users')]);
  const msg = h('p', { id: 'settings-status', role: 'status' });
  const act = async (path, body, after) => {
    try {
      const r = await post(path, body);
      msg.textContent = 'saved';
      if (after) after(r);
      else route();
    } catch (e) {
      msg.textContent = e.message;
    }
  };
  const val = (form, name) => form.elements[name].value.trim();
  const projectForm = h('form', { id: 'new-project' }, h('input', { name: 'name', placeholder: 'new project', 'aria-label': 'project name' }), h('button', { type: 'submit' }, 'Create project'));
  projectForm.onsubmit = (ev) => { ev.preventDefault(); act('/api/admin/projects', { create: val(projectForm, 'name') }); };
  const retForm = h('form', { id: 'retention' },
    h('select', { name: 'project', 'aria-label': 'project' }, pr.projects.map((x) => h('option', { value: x.name }, x.name))),
    h('input', { name: 'max_age', placeholder: 'max age (30d, 0 = none)', 'aria-label': 'max age' }),
    h('input', { name: 'max_size', placeholder: 'max size (10G, 0 = none)', 'aria-label': 'max size' }),
    h('button', { type: 'submit' }, 'Set retention'));
  retForm.onsubmit = (ev) => {
    ev.preventDefault();
    act('/api/admin/projects', { retention: { project: val(retForm, 'project'), max_age: val(retForm, 'max_age') || null, max_size: val(retForm, 'max_size') || null } });
  };
  const shownToken = h('p', { id: 'new-token', class: 'token' });
  const tokenForm = h('form', { id: 'token-form' },
    h('select', { name: 'project', 'aria-label': 'project' }, pr.projects.map((x) => h('option', { value: x.name }, x.name))),
    ['submit', 'query', 'object', 'symbols', 'admin'].map((sc) => h('label', {}, h('input', { type: 'checkbox', name: `scope-${sc}`, checked: sc === 'submit' }), sc)),
    h('button', { type: 'submit' }, 'Create token'));
  tokenForm.onsubmit = (ev) => {
    ev.preventDefault();
    const scopes = ['submit', 'query', 'object', 'symbols', 'admin'].filter((sc) => tokenForm.elements[`scope-${sc}`].checked);
    act('/api/admin/tokens', { create: { project: val(tokenForm, 'project'), scopes } }, (r) => {
      settings().then(() => { document.getElementById('new-token').textContent = `New token (shown once): ${r.token}`; });
    });
  };
  const userForm = h('form', { id: 'user-form' },
    h('input', { name: 'name', placeholder: 'user', 'aria-label': 'user name' }),
    h('input', { name: 'password', type: 'password', placeholder: 'password (8+ characters)', 'aria-label': 'password', autocomplete: 'new-password' }),
    h('label', {}, h('input', { type: 'checkbox', name: 'admin' }), 'admin'),
    h('input', { name: 'projects', placeholder: 'projects (comma separated; empty: all)', 'aria-label': 'projects' }),
    h('button', { type: 'submit' }, 'Add user'));
  userForm.onsubmit = (ev) => {
    ev.preventDefault();
    const projects = val(userForm, 'projects').split(',').map((x) => x.trim()).filter(Boolean);
    act('/api/admin/users', { add: { name: val(userForm, 'name'), password: userForm.elements.password.value, admin: userForm.elements.admin.checked, projects } });
  };
  const days = (secs) => (secs ? `${Math.round(secs / 86400)} d` : 'none');
  const size = (b) => (b ? `${(b / 1e9).toFixed(2)} GB` : 'none');
  put(
    h('h1', {}, 'Settings'), msg,
    h('h2', {}, 'Projects'),
    h('table', { class: 'list', id: 'admin-projects' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Project'), h('th', {}, 'Objects'), h('th', {}, 'Max age'), h('th', {}, 'Max size'), h('th', {}, ''))),
      h('tbody', {}, pr.projects.map((x) => h('tr', { 'data-project': x.name }, h('td', {}, x.name), h('td', { class: 'num' }, x.objects), h('td', {}, days(x.max_age)), h('td', {}, size(x.max_size)),
        h('td', {}, h('button', { type: 'button', onclick: () => { if (confirm(`Remove project ${x.name} and all its crashes?`)) act('/api/admin/projects', { remove: x.name }); } }, 'Remove')))))),
    projectForm, retForm,
    h('h2', {}, 'Tokens'), shownToken,
    h('table', { class: 'list', id: 'admin-tokens' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Project'), h('th', {}, 'Scopes'), h('th', {}, 'Created'), h('th', {}, ''))),
      h('tbody', {}, tk.tokens.map((x) => h('tr', { 'data-token': x.id }, h('td', { class: 'mono' }, x.id), h('td', {}, x.project), h('td', {}, x.scopes.join(' ')), h('td', {}, when(x.created)),
        h('td', {}, h('button', { type: 'button', class: 'revoke', onclick: () => act('/api/admin/tokens', { revoke: x.id }) }, 'Revoke')))))),
    tokenForm,
    h('h2', {}, 'Users'),
    h('table', { class: 'list', id: 'admin-users' },
      h('thead', {}, h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Role'), h('th', {}, 'Projects'), h('th', {}, ''))),
      h('tbody', {}, us.users.map((x) => h('tr', { 'data-user': x.name }, h('td', {}, x.name), h('td', {}, x.admin ? 'admin' : 'member'), h('td', {}, x.admin || !x.projects ? 'all' : x.projects.join(', ')),
        h('td', {},
          h('button', { type: 'button', onclick: () => { const pw = prompt(`New password for ${x.name}`); if (pw) act('/api/admin/users', { password: { name: x.name, password: pw } }); } }, 'Reset password'),
          x.name === ME.user ? null : h('button', { type: 'button', onclick: () => { if (confirm(`Remove user ${x.name}?`)) act('/api/admin/users', { remove: x.name }); } }, 'Remove')))))),
    userForm);
}

// ---------------------------------------------------------------------------
// Router

async function route() {
  const parts = location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  document.onkeydown = null;
  try {
    if (parts.length === 0) await overview();
    else if (parts[0] === 'settings') await settings();
    else if (parts[0] === 'p' && parts.length === 2) await triage(parts[1]);
    else if (parts[0] === 'p' && parts[2] === 'explore') await explore(parts[1]);
    else if (parts[0] === 'p' && parts[2] === 'g') await group(parts[1], parts[3]);
    else if (parts[0] === 'p' && parts[2] === 'o') await debuggerView(parts[1], parts[3]);
    else put(h('p', { class: 'error' }, 'No such page.'));
    view().setAttribute('data-ready', location.pathname + location.search);
  } catch (e) {
    if (!(e instanceof ApiError && e.message === 'session expired')) fail(e);
    view().setAttribute('data-ready', location.pathname + location.search);
  }
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-link]');
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  history.pushState(null, '', a.getAttribute('href'));
  route();
});
window.addEventListener('popstate', route);

document.addEventListener('DOMContentLoaded', async () => {
  try {
    ME = await api('/api/console/me');
  } catch (e) {
    if (!(e instanceof ApiError && e.message === 'session expired')) fail(e);
    return;
  }
  document.getElementById('who').textContent = `${ME.user}${ME.admin ? ' (admin)' : ''}`;
  document.getElementById('logout-csrf').value = ME.csrf || '';
  document.getElementById('settings-link').hidden = !ME.admin;
  route();
});
