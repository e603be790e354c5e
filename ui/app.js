// The web UI of `modelreg ui`: plain JavaScript over the REST API at /api/v1 (README.md, "Web UI").
//
// Every string that comes from the registry (names, notes, tags, reasons, metric and feature
// names) reaches the page through textContent or an attribute set with setAttribute on an element
// built with createElement: nothing here assigns innerHTML, so no stored text can become markup.
// Pages follow changes made elsewhere by polling one cheap route while the tab is visible.
'use strict';

const TOKEN_KEY = 'modelreg.token';
const POLL_MS = 1500;
const SVG_NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const MAX_LINEAGE_NODES = 80;
const LINEAGE_DEPTH = 3;  // generations drawn each way at first; "more" adds as many again

// ---- DOM ----------------------------------------------------------------------------------

// h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child...): an element; strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function fmtNumber(x) {
  if (x === null || x === undefined) return '–';
  if (typeof x !== 'number') return String(x);
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-4 || a >= 1e6) ? x.toExponential(4) : String(Number(x.toPrecision(6)));
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function fmtTime(iso) {
  if (!iso) return '–';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function versionHref(model, version) {
  return `#/m/${encodeURIComponent(model)}/v/${encodeURIComponent(version)}`;
}

function modelHref(model) { return `#/m/${encodeURIComponent(model)}`; }

// "fraud@3" -> ["fraud", "3"]
function splitRef(ref) {
  const at = ref.lastIndexOf('@');
  return at < 0 ? [ref, 'active'] : [ref.slice(0, at), ref.slice(at + 1)];
}

function notice(message, ok) {
  const el = document.getElementById('notice');
  el.textContent = message;
  el.className = ok ? 'notice ok' : 'notice';
  el.hidden = !message;
}

// ---- the API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, {method = 'GET', body, signal} = {}) {
  const headers = {Accept: 'application/json'};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, {
    method, headers, signal, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!res.ok) {
    const err = data && data.error ? data.error : {code: 'http', message: `HTTP ${res.status}`};
    throw new ApiError(res.status, err.code, err.message);
  }
  return {data, headers: res.headers};
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, v === true ? 'true' : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---- who the caller is --------------------------------------------------------------------

const session = {who: null};

async function loadIdentity() {
  session.authError = null;
  try {
    session.who = (await api('/whoami')).data;
  } catch (e) {
    session.who = null;
    if (!(e instanceof ApiError) || (e.status !== 401 && e.status !== 429)) throw e;
    session.authError = e.message;
  }
  renderIdentity();
}

function renderIdentity() {
  const el = clear(document.getElementById('identity'));
  const who = session.who;
  if (who && !who.anonymous) {
    append(el, [h('span', {id: 'whoami', 'data-role': who.role},
      `${who.name} (${who.role}${who.model_glob ? `, models ${who.model_glob}` : ''})`),
    h('button', {class: 'secondary', id: 'forget-token', type: 'button', onclick: () => {
      sessionStorage.removeItem(TOKEN_KEY);
      start();
    }}, 'Forget token')]);
    return;
  }
  const input = h('input', {type: 'password', id: 'token-input', placeholder: 'token (mrt_…)', autocomplete: 'off',
    'aria-label': 'Access token'});
  const form = h('form', {id: 'token-form', onsubmit: (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    start();
  }}, who ? h('span', {id: 'whoami', 'data-role': 'anonymous'}, 'anonymous (read only)') : null, input,
  h('button', {type: 'submit'}, 'Use token'),
  // A stored token the server refused (revoked, mistyped): let it go, to read anonymously.
  sessionStorage.getItem(TOKEN_KEY) ? h('button', {type: 'button', class: 'secondary', id: 'forget-token', onclick: () => {
    sessionStorage.removeItem(TOKEN_KEY);
    start();
  }}, 'Forget token') : null);
  el.appendChild(form);
  if (session.authError) el.appendChild(h('span', {class: 'muted', id: 'auth-error'}, session.authError));
}

function may(what) {
  return !!(session.who && session.who.may && session.who.may[what]);
}

// ---- polling and routing ------------------------------------------------------------------

// One poller for the page shown: `probe` returns a value that changes when the page must be
// redrawn (the newest event id, the overview's text); `refresh` redraws it. A page draws into its
// own `view`, which route() replaces: a page still loading when another is opened, or its poller,
// then writes only into a detached view and stops.
const poller = {timer: null, last: undefined, generation: 0};

function stopPolling() {
  clearTimeout(poller.timer);
  poller.timer = null;
  poller.generation++;
}

// `baseline`: the probe's value read before the page loaded what it shows, so that a change made
// while it loaded is redrawn too.
function startPolling(view, probe, refresh, baseline) {
  if (!view.isConnected) return;
  stopPolling();
  const generation = poller.generation;
  poller.last = baseline;
  const tick = async () => {
    if (generation !== poller.generation || !view.isConnected) return;
    if (document.visibilityState === 'visible') {
      try {
        const value = await probe();
        if (generation !== poller.generation) return;
        if (poller.last !== undefined && value !== poller.last) await refresh();
        poller.last = value;
        document.body.dataset.polled = String(Date.now());
      } catch (e) { /* the next tick tries again; the page keeps what it shows */ }
    }
    if (generation === poller.generation) poller.timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function parseHash() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return {parts, params: new URLSearchParams(qs || '')};
}

async function route() {
  stopPolling();
  notice('');
  const main = document.getElementById('app');
  const view = h('div', {class: 'view'});
  clear(main).appendChild(view);
  const {parts, params} = parseHash();
  try {
    if (parts.length === 0) await modelsPage(view);
    else if (parts[0] === 'm' && parts.length === 2) await modelPage(view, parts[1], params);
    else if (parts[0] === 'm' && parts.length === 4 && parts[2] === 'v') await versionPage(view, parts[1], parts[3]);
    else if (parts[0] === 'm' && parts.length === 3 && parts[2] === 'compare') await comparePage(view, parts[1], params);
    else if (parts[0] === 'webhooks' && parts.length === 1) await webhooksPage(view);
    else view.appendChild(h('p', {}, 'No such page. ', h('a', {href: '#/'}, 'Models')));
  } catch (e) {
    showLoadError(view, e);
  }
}

function showLoadError(main, e) {
  clear(main);
  if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
    main.appendChild(h('p', {class: 'refusal', id: 'auth-needed'}, e.message));
    main.appendChild(h('p', {class: 'muted'}, 'Enter a token above (from `modelreg token create NAME --role reader`).'));
  } else {
    main.appendChild(h('p', {class: 'refusal', id: 'load-error'}, e.message || String(e)));
  }
}

async function start() {
  try {
    await loadIdentity();
  } catch (e) {
    notice(e.message || String(e));
  }
  await route();
}

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', start);

// ---- the models page ----------------------------------------------------------------------

async function modelsPage(main) {
  const draw = (models) => {
    clear(main);
    main.appendChild(h('h1', {}, 'Models'));
    if (models.length === 0) {
      main.appendChild(h('p', {class: 'muted'}, 'No models yet (register one with `modelreg register`).'));
      return;
    }
    const rows = models.map((m) => {
      const last = m.last_event;
      return h('tr', {'data-model': m.model},
        h('td', {}, h('a', {href: modelHref(m.model), class: 'model-link'}, m.model)),
        h('td', {class: 'num active-version'}, m.active_version === null ? '–'
          : h('a', {href: versionHref(m.model, m.active_version)}, String(m.active_version))),
        h('td', {class: 'aliases'}, m.aliases.filter((a) => a.alias !== 'active').map((a) =>
          h('a', {class: 'badge alias', href: versionHref(m.model, a.version)}, `${a.alias} → ${a.version}`))),
        h('td', {class: 'num'}, String(m.versions)),
        h('td', {class: 'num'}, m.latest_version === null ? '–' : String(m.latest_version)),
        h('td', {class: 'last-change'}, last ? [h('span', {class: 'badge'}, last.kind), ' ',
          last.version !== null ? `v${last.version} ` : '', `by ${last.actor}`, h('span', {class: 'muted'}, ` ${fmtTime(last.at)}`),
          last.reason ? h('div', {class: 'muted'}, last.reason) : null] : '–'));
    });
    main.appendChild(h('table', {id: 'models'},
      h('thead', {}, h('tr', {}, h('th', {}, 'Model'), h('th', {class: 'num'}, 'Active'), h('th', {}, 'Aliases'),
        h('th', {class: 'num'}, 'Versions'), h('th', {class: 'num'}, 'Latest'), h('th', {}, 'Last change'))),
      h('tbody', {}, rows)));
  };
  let text = '';
  const load = async () => {
    const {data} = await api('/overview');
    text = JSON.stringify(data);
    draw(data);
  };
  await load();
  startPolling(main, async () => JSON.stringify((await api('/overview')).data), load, text);
}

// ---- the webhooks page --------------------------------------------------------------------

// Every webhook (removed ones too) with its latest delivery attempts, newest first: what was sent,
// when, the answer or the error. A registry-wide token is needed (webhooks reach every model).
async function webhooksPage(main) {
  const draw = (hooks, deliveries) => {
    clear(main);
    main.appendChild(h('h1', {}, 'Webhooks'));
    if (hooks.length === 0) {
      main.appendChild(h('p', {class: 'muted'}, 'No webhooks (add one with `modelreg webhook add URL --events promote`).'));
      return;
    }
    for (const w of hooks) {
      const rows = (deliveries.get(w.id) || []).map((d) => h('tr', {class: `outcome-${d.outcome}`, 'data-delivery': d.id},
        h('td', {class: 'num'}, String(d.event)),
        h('td', {}, d.model), h('td', {}, h('span', {class: 'badge'}, d.kind)),
        h('td', {class: 'num'}, String(d.attempt)), h('td', {}, fmtTime(d.at)),
        h('td', {class: 'outcome'}, d.outcome),
        h('td', {class: 'num'}, d.http_status === null ? '–' : String(d.http_status)),
        h('td', {class: 'num'}, `${d.duration_ms} ms`),
        h('td', {class: 'error'}, d.error || '')));
      main.appendChild(h('section', {class: 'webhook', 'data-webhook': w.id},
        h('h2', {}, `#${w.id} `, h('span', {class: 'url'}, w.url), w.removed_at ? h('span', {class: 'badge'}, 'removed') : null),
        h('p', {class: 'muted'}, `events: ${w.events.join(', ')} · delivered through event ${w.delivered_through} · added by `,
          h('strong', {}, w.created_by), ` ${fmtTime(w.created_at)}`,
          w.removed_at ? ` · removed by ${w.removed_by} ${fmtTime(w.removed_at)}` : ''),
        rows.length === 0 ? h('p', {class: 'muted'}, 'No delivery attempts yet.')
          : h('table', {class: 'deliveries'},
            h('thead', {}, h('tr', {}, h('th', {class: 'num'}, 'Event'), h('th', {}, 'Model'), h('th', {}, 'Kind'),
              h('th', {class: 'num'}, 'Attempt'), h('th', {}, 'At'), h('th', {}, 'Outcome'), h('th', {class: 'num'}, 'HTTP'),
              h('th', {class: 'num'}, 'Took'), h('th', {}, 'Error'))),
            h('tbody', {}, rows))));
    }
  };
  const read = async () => {
    const {data: hooks} = await api(`/webhooks${query({all: 'true'})}`);
    const deliveries = new Map();
    for (const w of hooks) deliveries.set(w.id, (await api(`/webhooks/${w.id}/deliveries${query({limit: 20})}`)).data);
    return {hooks, deliveries, text: JSON.stringify([hooks, [...deliveries]])};
  };
  let first = await read();
  draw(first.hooks, first.deliveries);
  startPolling(main, async () => (await read()).text, async () => {
    const now = await read();
    draw(now.hooks, now.deliveries);
  }, first.text);
}

// ---- the model page -----------------------------------------------------------------------

// The filters of the versions table, kept in the URL (#/m/NAME?where=f1>0.8&order_by=f1...).
function filtersOf(params) {
  return {
    where: params.getAll('where'),
    tag: params.get('tag') || '',
    status: params.get('status') || 'ready',
    order_by: params.get('order_by') || '',
    ascending: params.get('ascending') === 'true',
    oldest: params.get('oldest') === 'true',  // by number: oldest first (the default is newest first)
    limit: Number(params.get('limit') || 50),
  };
}

function filtersHash(model, f) {
  return modelHref(model) + query({where: f.where, tag: f.tag, status: f.status === 'ready' ? '' : f.status,
    order_by: f.order_by, ascending: f.order_by && f.ascending, oldest: !f.order_by && f.oldest,
    limit: f.limit === 50 ? '' : f.limit});
}

async function modelPage(main, model, params) {
  const f = filtersOf(params);
  clear(main);
  const summary = h('div', {id: 'model-summary'});
  const tableBox = h('div', {id: 'versions-box'});
  const chartBox = h('div', {class: 'chart', id: 'chart'});
  const timelineBox = h('div', {id: 'timeline-box'});
  const actionsBox = h('div', {class: 'actions', id: 'model-actions'});
  main.append(h('h1', {}, h('span', {id: 'model-name'}, model)), summary, actionsBox,
    h('h2', {}, 'Versions'), filterForm(model, f), tableBox,
    h('h2', {}, 'Metrics across versions'), chartBox,
    h('h2', {}, 'Audit log'), timelineBox);

  const page = {cursors: [null], index: 0, rows: [], next: null, chosen: null};

  const loadSummary = async () => {
    const [{data: aliases}, {data: models}] = await Promise.all([
      api(`/models/${encodeURIComponent(model)}/aliases`), api('/models')]);
    const m = models.find((x) => x.model === model);
    clear(summary).append(
      h('p', {}, 'Active version: ', h('strong', {id: 'active-version'}, m && m.active_version !== null
        ? h('a', {href: versionHref(model, m.active_version)}, String(m.active_version)) : 'none'),
      ` · ${m ? m.versions : 0} versions · latest ${m && m.latest_version !== null ? m.latest_version : '–'} · `,
      h('span', {id: 'alias-list'}, aliases.filter((a) => a.alias !== 'active').map((a) =>
        h('a', {class: 'badge alias', href: versionHref(model, a.version)}, `${a.alias} → ${a.version}`)))));
    clear(actionsBox);
    if (may('promote')) {
      actionsBox.appendChild(h('button', {type: 'button', id: 'rollback-button', onclick: () => actionDialog({
        title: `Roll back ${model}`,
        fields: [{name: 'to', label: 'To version (empty: where active pointed before)'}],
        submit: (v) => api(`/models/${encodeURIComponent(model)}/rollback`, {method: 'POST',
          body: {reason: v.reason, ...(v.to ? {to: v.to} : {})}}),
        done: (r) => `rolled back ${model}: now @${r.data.to_version} (was ${r.data.from_version ?? 'none'})`,
      })}, 'Roll back…'));
    }
  };

  const loadPage = async () => {
    const path = `/models/${encodeURIComponent(model)}/versions` + query({
      where: f.where, tag: f.tag, status: f.status, order_by: f.order_by,
      ascending: f.order_by && f.ascending, newest_first: !f.order_by && !f.oldest, limit: f.limit,
      cursor: page.cursors[page.index]});
    const {data, headers} = await api(path);
    page.rows = data;
    page.next = headers.get('X-Next-Cursor');
    drawTable();
    drawChart();
  };

  const sortBy = (metric) => {
    const g = {...f};
    if (metric === null) { g.oldest = !f.order_by && !f.oldest; g.order_by = ''; g.ascending = false; }
    else if (f.order_by === metric) g.ascending = !f.ascending;
    else { g.order_by = metric; g.ascending = false; }
    location.hash = filtersHash(model, g);
  };

  const drawTable = () => {
    const metrics = [...new Set(page.rows.flatMap((v) => Object.keys(v.metrics)))].sort();
    if (f.order_by && !metrics.includes(f.order_by)) metrics.unshift(f.order_by);
    const selected = new Set();
    const compare = h('button', {type: 'button', id: 'compare-button', disabled: true, onclick: () => {
      const [a, b] = [...selected].sort((x, y) => x - y);
      location.hash = `#/m/${encodeURIComponent(model)}/compare${query({a, b})}`;
    }}, 'Compare selected');
    const arrow = (m) => (f.order_by === m ? (f.ascending ? ' ▲' : ' ▼') : '');
    const head = h('tr', {}, h('th', {}, ''),
      h('th', {class: 'num'}, h('button', {class: 'sort', type: 'button', 'data-sort': '#', onclick: () => sortBy(null)},
        `Version${f.order_by ? '' : (f.oldest ? ' ▲' : ' ▼')}`)),
      h('th', {}, 'Status'), h('th', {}, 'Created'), h('th', {}, 'Tags'),
      metrics.map((m) => h('th', {class: 'num'}, h('button', {class: 'sort', type: 'button', 'data-sort': m,
        onclick: () => sortBy(m)}, m + arrow(m)))));
    const body = page.rows.map((v) => h('tr', {'data-version': v.version},
      h('td', {}, h('input', {type: 'checkbox', 'aria-label': `select ${v.ref}`, class: 'pick', onchange: (ev) => {
        if (ev.target.checked) selected.add(v.version); else selected.delete(v.version);
        compare.disabled = selected.size !== 2;
      }})),
      h('td', {class: 'num'}, h('a', {href: versionHref(model, v.version), class: 'version-link'}, String(v.version)),
        v.label ? h('span', {class: 'muted'}, ` ${v.label}`) : null),
      h('td', {}, statusBadges(v)),
      h('td', {}, fmtTime(v.created_at), h('span', {class: 'muted'}, ` ${v.created_by}`)),
      h('td', {class: 'tags'}, Object.entries(v.tags).map(([k, val]) => h('span', {class: 'badge'}, val ? `${k}=${val}` : k))),
      metrics.map((m) => h('td', {class: 'num', 'data-metric': m}, fmtNumber(v.metrics[m])))));
    append(clear(tableBox), [
      page.rows.length === 0 ? h('p', {class: 'muted', id: 'no-versions'}, 'No version matches.') : null,
      h('table', {id: 'versions'}, h('thead', {}, head), h('tbody', {}, body)),
      h('div', {class: 'pager'},
        h('button', {type: 'button', class: 'secondary', id: 'first-page', disabled: page.index === 0,
          onclick: () => { page.index = 0; loadPage().catch(showError); }}, '« First'),
        h('button', {type: 'button', class: 'secondary', id: 'prev-page', disabled: page.index === 0,
          onclick: () => { page.index--; loadPage().catch(showError); }}, '‹ Previous'),
        h('span', {id: 'page-number'}, `page ${page.index + 1}`),
        h('button', {type: 'button', class: 'secondary', id: 'next-page', disabled: !page.next, onclick: () => {
          page.cursors[page.index + 1] = page.next;
          page.index++;
          loadPage().catch(showError);
        }}, 'Next ›'),
        compare)]);
  };

  const drawChart = () => {
    const metrics = [...new Set(page.rows.flatMap((v) => Object.keys(v.metrics)))].sort();
    if (page.chosen === null) page.chosen = new Set(metrics.slice(0, 2));
    const choose = h('div', {class: 'choose', id: 'chart-metrics'}, metrics.map((m) => h('label', {},
      h('input', {type: 'checkbox', value: m, checked: page.chosen.has(m), onchange: (ev) => {
        if (ev.target.checked) page.chosen.add(m); else page.chosen.delete(m);
        drawChart();
      }}), ` ${m}`)));
    const shown = metrics.filter((m) => page.chosen.has(m));
    clear(chartBox).append(choose, lineChart(page.rows, shown, (v) => { location.hash = versionHref(model, v); }),
      h('p', {class: 'muted'}, 'The versions of this page, by number; click a point to open its version.'));
  };

  const loadTimeline = async () => {
    const items = h('ol', {class: 'timeline', id: 'timeline'});
    let before = null;
    const more = h('button', {type: 'button', class: 'secondary', id: 'older-events', onclick: () => loadMore().catch(showError)},
      'Older events');
    const loadMore = async () => {
      const {data, headers} = await api(`/models/${encodeURIComponent(model)}/events` + query({limit: 20, before}));
      data.forEach((e) => items.appendChild(timelineItem(model, e)));
      before = headers.get('X-Next-Cursor');
      more.hidden = !before;
    };
    await loadMore();
    clear(timelineBox).append(items, more);
  };

  const newest = async () => {
    const {data} = await api(`/models/${encodeURIComponent(model)}/events?limit=1`);
    return data.length ? data[0].id : 0;
  };

  const refresh = () => Promise.all([loadSummary(), loadPage(), loadTimeline()]);
  const baseline = await newest();
  await Promise.all([loadPage(), loadSummary()]);
  loadTimeline().catch(showError);
  startPolling(main, newest, refresh, baseline);
}

function showError(e) { notice(e.message || String(e)); }

function statusBadges(v) {
  return [
    v.status === 'archived' ? h('span', {class: 'badge archived'}, 'archived') : null,
    v.aliases.map((a) => h('span', {class: a === 'active' ? 'badge active' : 'badge alias'}, a)),
  ];
}

function filterForm(model, f) {
  const where = h('input', {type: 'text', name: 'where', id: 'filter-where', placeholder: 'f1>=0.8, auc>0.9',
    value: f.where.join(', ')});
  const tag = h('input', {type: 'text', name: 'tag', id: 'filter-tag', placeholder: 'stage=prod', value: f.tag});
  const status = h('select', {name: 'status', id: 'filter-status'},
    ['ready', 'archived', 'all'].map((s) => h('option', {value: s, selected: s === f.status}, s)));
  const limit = h('select', {name: 'limit', id: 'filter-limit'},
    [25, 50, 100, 500].map((n) => h('option', {value: n, selected: n === f.limit}, String(n))));
  return h('form', {class: 'filters', id: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = filtersHash(model, {...f, where: where.value.split(',').map((s) => s.trim()).filter(Boolean),
      tag: tag.value.trim(), status: status.value, limit: Number(limit.value)});
  }},
  h('label', {}, 'Metric conditions', where), h('label', {}, 'Tag', tag), h('label', {}, 'Status', status),
  h('label', {}, 'Per page', limit), h('button', {type: 'submit', id: 'apply-filters'}, 'Apply'),
  h('a', {href: modelHref(model)}, 'Clear'));
}

function timelineItem(model, e) {
  const what = {
    register: `registered v${e.version}`,
    promote: `${e.alias && e.alias !== 'active' ? `${e.alias}` : 'active'}: ${e.from_version ?? 'none'} → ${e.to_version}`,
    rollback: `rolled back ${e.alias || 'active'}: ${e.from_version ?? 'none'} → ${e.to_version}`,
  }[e.kind] || [e.kind, e.alias ? ` ${e.alias}` : '', e.version !== null ? ` v${e.version}` : '',
    e.to_version !== null && e.version === null ? ` → ${e.to_version}` : ''].join('');
  const target = e.version ?? e.to_version;
  return h('li', {class: `kind-${e.kind}`, 'data-event': e.id},
    h('span', {class: 'badge'}, e.kind), ' ',
    target !== null && target !== undefined ? h('a', {href: versionHref(model, target)}, what) : what,
    ' by ', h('strong', {class: 'who'}, e.actor), h('span', {class: 'when'}, fmtTime(e.at)),
    e.reason ? h('span', {class: 'why'}, e.reason) : null);
}

// ---- the chart ----------------------------------------------------------------------------

// Lines of `metrics` over the versions' numbers, one colour each, with axes and a legend.
function lineChart(versions, metrics, open) {
  const W = 900, H = 280, L = 60, R = 20, T = 14, B = 36;
  const rows = [...versions].sort((a, b) => a.version - b.version);
  const box = h('div', {});
  const chart = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', id: 'metric-chart',
    'aria-label': `${metrics.join(', ')} across versions`});
  box.appendChild(chart);
  const values = rows.flatMap((v) => metrics.map((m) => v.metrics[m]).filter((x) => typeof x === 'number'));
  if (rows.length === 0 || metrics.length === 0 || values.length === 0) {
    chart.appendChild(svg('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#5b6570'},
      metrics.length === 0 ? 'Choose a metric to draw' : 'No values to draw'));
    return box;
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const x0 = rows[0].version, x1 = rows[rows.length - 1].version;
  const sx = (n) => L + (x1 === x0 ? (W - L - R) / 2 : ((n - x0) / (x1 - x0)) * (W - L - R));
  const sy = (y) => T + (1 - (y - lo) / (hi - lo)) * (H - T - B);
  chart.appendChild(svg('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#8c959f'}));
  chart.appendChild(svg('line', {x1: L, y1: T, x2: L, y2: H - B, stroke: '#8c959f'}));
  for (let i = 0; i <= 4; i++) {
    const y = lo + ((hi - lo) * i) / 4;
    chart.appendChild(svg('line', {x1: L, y1: sy(y), x2: W - R, y2: sy(y), stroke: '#eef0f2'}));
    chart.appendChild(svg('text', {x: L - 6, y: sy(y) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6570'}, fmtNumber(y)));
  }
  const ticks = Math.min(8, rows.length);
  for (let i = 0; i < ticks; i++) {
    const v = rows[Math.round((i * (rows.length - 1)) / Math.max(1, ticks - 1))].version;
    chart.appendChild(svg('text', {x: sx(v), y: H - B + 16, 'text-anchor': 'middle', 'font-size': 11, fill: '#5b6570'}, String(v)));
  }
  chart.appendChild(svg('text', {x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', 'font-size': 11, fill: '#5b6570'}, 'version'));
  const legend = h('div', {class: 'legend'});
  metrics.forEach((m, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = rows.filter((v) => typeof v.metrics[m] === 'number');
    const g = svg('g', {class: 'series', 'data-metric': m});
    if (pts.length > 1) {
      g.appendChild(svg('polyline', {fill: 'none', stroke: color, 'stroke-width': 1.8,
        points: pts.map((v) => `${sx(v.version).toFixed(1)},${sy(v.metrics[m]).toFixed(1)}`).join(' ')}));
    }
    if (pts.length <= 200) {
      pts.forEach((v) => {
        const dot = svg('circle', {cx: sx(v.version), cy: sy(v.metrics[m]), r: 3.5, fill: color, class: 'point',
          'data-version': v.version},
        svg('title', {}, `${m} = ${fmtNumber(v.metrics[m])} (version ${v.version})`));
        dot.addEventListener('click', () => open(v.version));
        g.appendChild(dot);
      });
    }
    chart.appendChild(g);
    const key = h('span', {}, m);
    key.style.setProperty('--c', color);
    legend.appendChild(key);
  });
  box.appendChild(legend);
  return box;
}

// ---- the version page ---------------------------------------------------------------------

async function versionPage(main, model, version) {
  const base = `/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}`;
  let depth = LINEAGE_DEPTH;
  const lineageBox = h('div', {});
  const drawLineage = async () => {
    const {data} = await api(`${base}/neighbours${query({depth})}`);
    clear(lineageBox).appendChild(lineageGraph(data, depth, () => {
      depth = Math.min(100, depth * 2);
      drawLineage().catch(showError);
    }));
  };
  const draw = async () => {
    const [{data: v}, {data: probe}] = await Promise.all([api(base), api(`${base}/probe`), drawLineage()]);
    clear(main);
    main.append(
      h('p', {}, h('a', {href: modelHref(model)}, `← ${model}`)),
      h('h1', {}, h('span', {id: 'version-ref'}, v.ref), v.label ? h('span', {class: 'muted'}, ` ${v.label}`) : null, ' ',
        h('span', {id: 'version-status'}, statusBadges(v))),
      versionActions(v),
      h('div', {class: 'grid2'},
        h('div', {},
          h('h2', {}, 'Metadata'), kvTable('metadata', [
            ['Format', v.format], ['Type', v.type_name || '–'], ['Task', v.task || '–'],
            ['Classes', v.classes ? v.classes.join(', ') : '–'], ['Created', fmtTime(v.created_at)], ['By', v.created_by],
            ['Status', v.status], ['Aliases', v.aliases.length ? v.aliases.join(', ') : '–']]),
          h('h2', {}, 'Notes'), v.notes ? h('div', {class: 'notes', id: 'notes'}, v.notes) : h('p', {class: 'muted'}, 'None.'),
          h('h2', {}, 'Bytes'), kvTable('sizes', [
            ['SHA-256', h('code', {}, v.blob.sha256)], ['Size', fmtBytes(v.blob.raw_size)], ['Stored', fmtBytes(v.blob.stored_size)],
            ['Compression ratio', `${fmtNumber(v.blob.ratio)}×`], ['Codec', `${v.blob.codec} (level ${v.blob.level})`],
            ['Chunks', String(v.blob.chunk_count)]]),
          h('h2', {}, 'Signature'), h('p', {id: 'signature'}, v.signature
            ? [h('span', {class: 'badge signed'}, 'signed'),
              ` ${v.signature.algorithm}, key ${v.signature.key_id}, by ${v.signature.signed_by} at ${fmtTime(v.signature.signed_at)}`]
            : h('span', {class: 'badge unsigned'}, 'unsigned'))),
        h('div', {},
          h('h2', {}, 'Metrics'), kvTable('metrics', Object.entries(v.metrics).map(([k, x]) => [k, fmtNumber(x)])),
          h('h2', {}, 'Hyperparameters'), kvTable('params', Object.entries(v.params)),
          h('h2', {}, 'Tags'), kvTable('tags', Object.entries(v.tags)))),
      h('h2', {}, 'Lineage'), lineageBox,
      h('h2', {}, 'Features'), v.features.length === 0 ? h('p', {class: 'muted'}, 'None recorded.')
        : h('table', {id: 'features'}, h('thead', {}, h('tr', {}, h('th', {class: 'num'}, '#'), h('th', {}, 'Name'), h('th', {}, 'Type'))),
          h('tbody', {}, v.features.map((x, i) => h('tr', {}, h('td', {class: 'num'}, String(i)), h('td', {}, x.name), h('td', {}, x.dtype))))),
      h('h2', {}, 'Data sets'), v.datasets.length === 0 ? h('p', {class: 'muted'}, 'None recorded.')
        : h('table', {id: 'datasets'}, h('thead', {}, h('tr', {}, h('th', {}, 'Role'), h('th', {}, 'URI'), h('th', {}, 'SHA-256'))),
          h('tbody', {}, v.datasets.map((d) => h('tr', {}, h('td', {}, d.role), h('td', {}, d.uri), h('td', {}, h('code', {}, d.sha256 || '–')))))),
      h('h2', {}, 'Validation probe'), probeTable(probe.probe, v),
      h('h2', {}, 'Events'), h('ol', {class: 'timeline', id: 'version-events'},
        [...v.events].reverse().map((e) => timelineItem(model, e))));
    return v;
  };
  const newest = async () => {
    const {data} = await api(`/models/${encodeURIComponent(model)}/events?limit=1`);
    return data.length ? data[0].id : 0;
  };
  const baseline = await newest();
  await draw();
  startPolling(main, newest, draw, baseline);
}

function kvTable(id, rows) {
  if (rows.length === 0) return h('p', {class: 'muted', id}, 'None.');
  return h('table', {class: 'kv', id}, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))));
}

function probeTable(probe, v) {
  if (!probe) return h('p', {class: 'muted', id: 'probe'}, 'No probe (opaque bytes are not validated on load).');
  const names = v.features.map((x) => x.name);
  const cols = probe.inputs.length ? probe.inputs[0].length : 0;
  return h('table', {id: 'probe'},
    h('thead', {}, h('tr', {}, Array.from({length: cols}, (_, i) => h('th', {class: 'num'}, names[i] || `x${i}`)),
      h('th', {class: 'num'}, 'saved output'))),
    h('tbody', {}, probe.inputs.map((row, r) => h('tr', {}, row.map((x) => h('td', {class: 'num'}, x === null ? 'missing' : fmtNumber(x))),
      h('td', {class: 'num'}, probe.outputs[r].map(fmtNumber).join(', '))))));
}

// The buttons the caller's token allows, each asking for a reason in a dialog.
function versionActions(v) {
  const box = h('div', {class: 'actions', id: 'version-actions'});
  const base = `/models/${encodeURIComponent(v.model)}/versions/${v.version}`;
  if (may('promote') && v.status === 'ready' && !v.active) {
    box.appendChild(h('button', {type: 'button', id: 'promote-button', onclick: () => actionDialog({
      title: `Promote ${v.ref}`,
      fields: [{name: 'require_better', label: 'Require at least as good a value of metric (empty: no guard)',
        options: ['', ...Object.keys(v.metrics)]}],
      submit: (x) => api(`${base}/promote`, {method: 'POST',
        body: {reason: x.reason, ...(x.require_better ? {require_better: x.require_better} : {})}}),
      done: (r) => `promoted ${v.model}: @${r.data.to_version} is now active (was ${r.data.from_version ?? 'none'})`,
    })}, 'Promote…'));
  }
  if (may('promote')) {
    box.appendChild(v.status === 'archived'
      ? h('button', {type: 'button', id: 'unarchive-button', onclick: () => actionDialog({
        title: `Unarchive ${v.ref}`, fields: [],
        submit: (x) => api(`${base}/unarchive`, {method: 'POST', body: {reason: x.reason}}),
        done: () => `unarchived ${v.ref}`})}, 'Unarchive…')
      : h('button', {type: 'button', id: 'archive-button', class: 'secondary', onclick: () => actionDialog({
        title: `Archive ${v.ref}`, fields: [],
        submit: (x) => api(`${base}/archive`, {method: 'POST', body: {reason: x.reason}}),
        done: () => `archived ${v.ref}`})}, 'Archive…'));
  }
  if (may('write')) {
    box.appendChild(h('button', {type: 'button', id: 'tag-button', class: 'secondary', onclick: () => actionDialog({
      title: `Tag ${v.ref}`,
      fields: [{name: 'set', label: 'Set tag (KEY=VALUE)'}, {name: 'remove', label: 'Remove tag (KEY)'}],
      submit: (x) => {
        const body = {reason: x.reason};
        if (x.set) {
          const eq = x.set.indexOf('=');
          body.set = {[eq < 0 ? x.set : x.set.slice(0, eq)]: eq < 0 ? '' : x.set.slice(eq + 1)};
        }
        if (x.remove) body.remove = [x.remove];
        return api(`${base}/tags`, {method: 'POST', body});
      },
      done: () => `tags of ${v.ref} changed`})}, 'Tag…'));
  }
  return box;
}

// A dialog asking for `fields` and a reason; on submit calls `submit`, shows its refusal (the
// API's message, e.g. a failed guard's 409) in the dialog, or closes and redraws the page.
function actionDialog({title, fields, submit, done}) {
  const inputs = {};
  const reason = h('textarea', {name: 'reason', id: 'action-reason', rows: 3, required: true, placeholder: 'Why (kept in the audit log)'});
  const refusal = h('p', {class: 'refusal', id: 'action-refusal', role: 'alert', hidden: true});
  const ok = h('button', {type: 'submit', id: 'action-submit'}, 'Confirm');
  const dialog = h('dialog', {id: 'action-dialog'});
  const form = h('form', {method: 'dialog', onsubmit: async (ev) => {
    ev.preventDefault();
    const values = {reason: reason.value.trim()};
    for (const [k, el] of Object.entries(inputs)) values[k] = el.value.trim();
    ok.disabled = true;
    refusal.hidden = true;
    try {
      const r = await submit(values);
      dialog.close();
      dialog.remove();
      notice(done(r), true);
      await route();
      notice(done(r), true);
    } catch (e) {
      refusal.textContent = e instanceof ApiError ? `Refused (${e.status} ${e.code}): ${e.message}` : String(e);
      refusal.hidden = false;
      ok.disabled = false;
    }
  }},
  h('h3', {}, title),
  fields.map((fd) => {
    const el = fd.options
      ? h('select', {name: fd.name, id: `action-${fd.name}`}, fd.options.map((o) => h('option', {value: o}, o || '(none)')))
      : h('input', {type: 'text', name: fd.name, id: `action-${fd.name}`});
    inputs[fd.name] = el;
    return h('label', {}, fd.label, h('br', {}), el);
  }),
  h('label', {}, 'Reason', h('br', {}), reason), refusal,
  h('div', {class: 'buttons'},
    h('button', {type: 'button', class: 'secondary', id: 'action-cancel', onclick: () => { dialog.close(); dialog.remove(); }}, 'Cancel'),
    ok));
  dialog.appendChild(form);
  document.body.appendChild(dialog);
  dialog.showModal();
  reason.focus();
}

// ---- the lineage graph --------------------------------------------------------------------

// Columns by generation: ancestors to the left (depth 1 nearest), the version in the middle,
// descendants to the right; an edge from each parent to its child; every node opens its version.
function lineageGraph(lineage, depthShown, more) {
  const root = lineage.ref;
  const depth = new Map([[root, 0]]);
  const edges = [];
  for (const e of lineage.ancestors || []) {
    if (!depth.has(e.parent)) depth.set(e.parent, -e.depth);
    if (!depth.has(e.child)) depth.set(e.child, -(e.depth - 1));
    edges.push(e);
  }
  for (const e of lineage.descendants || []) {
    if (!depth.has(e.child)) depth.set(e.child, e.depth);
    if (!depth.has(e.parent)) depth.set(e.parent, e.depth - 1);
    edges.push(e);
  }
  const box = h('div', {class: 'lineage', id: 'lineage'});
  if (edges.length === 0) {
    box.appendChild(h('p', {class: 'muted'}, 'No parents and no children.'));
    return box;
  }
  // The nearest generations first, when there are too many to draw.
  const nodes = [...depth.keys()].sort((a, b) => Math.abs(depth.get(a)) - Math.abs(depth.get(b))).slice(0, MAX_LINEAGE_NODES);
  const shown = new Set(nodes);
  const columns = new Map();
  for (const n of nodes) {
    const d = depth.get(n);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(n);
  }
  const ds = [...columns.keys()].sort((a, b) => a - b);
  const NW = 150, NH = 30, GX = 60, GY = 16;
  const tallest = Math.max(...[...columns.values()].map((c) => c.length));
  const W = ds.length * (NW + GX) + GX, Hh = tallest * (NH + GY) + GY;
  const pos = new Map();
  ds.forEach((d, i) => {
    const col = columns.get(d).sort();
    const top = (Hh - col.length * (NH + GY) + GY) / 2;
    col.forEach((n, j) => pos.set(n, {x: GX / 2 + i * (NW + GX), y: top + j * (NH + GY)}));
  });
  const graph = svg('svg', {viewBox: `0 0 ${W} ${Hh}`, width: W, height: Hh, role: 'img', 'aria-label': `lineage of ${root}`});
  graph.appendChild(svg('defs', {}, svg('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: 'auto-start-reverse'}, svg('path', {d: 'M 0 0 L 10 5 L 0 10 z', fill: '#8c959f'}))));
  const seen = new Set();
  for (const e of edges) {
    const key = `${e.parent}\u0000${e.child}`;
    if (seen.has(key) || !shown.has(e.parent) || !shown.has(e.child)) continue;
    seen.add(key);
    const a = pos.get(e.parent), b = pos.get(e.child);
    graph.appendChild(svg('line', {x1: a.x + NW, y1: a.y + NH / 2, x2: b.x, y2: b.y + NH / 2, stroke: '#8c959f',
      'marker-end': 'url(#arrow)'}, svg('title', {}, e.relation)));
  }
  for (const n of nodes) {
    const p = pos.get(n);
    const [m, ver] = splitRef(n);
    const g = svg('g', {class: 'node', tabindex: 0, role: 'link', 'data-ref': n, 'aria-label': `open ${n}`},
      svg('rect', {x: p.x, y: p.y, width: NW, height: NH, rx: 5, fill: n === root ? '#1f4e79' : '#eaf1f8',
        stroke: '#1f4e79'}),
      svg('text', {x: p.x + NW / 2, y: p.y + NH / 2 + 4, 'text-anchor': 'middle', 'font-size': 12,
        fill: n === root ? '#ffffff' : '#1b1f24'}, n.length > 22 ? `${n.slice(0, 21)}…` : n),
      svg('title', {}, n));
    const open = () => { location.hash = versionHref(m, ver); };
    g.addEventListener('click', open);
    g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') open(); });
    graph.appendChild(g);
  }
  box.appendChild(graph);
  if (depth.size > nodes.length) {
    box.appendChild(h('p', {class: 'muted'}, `${depth.size - nodes.length} more versions further away are not drawn.`));
  }
  // A generation at the edge of what was asked for may have more beyond it.
  const edge = [...depth.values()].some((d) => Math.abs(d) >= depthShown);
  if (edge && depthShown < 100 && depth.size <= nodes.length) {
    box.appendChild(h('button', {type: 'button', class: 'secondary', id: 'lineage-more', onclick: more},
      `Show ${Math.min(100, depthShown * 2)} generations each way`));
  }
  return box;
}

// ---- the compare page ---------------------------------------------------------------------

async function comparePage(main, model, params) {
  const a = params.get('a') || '', b = params.get('b') || '';
  clear(main);
  const ia = h('input', {type: 'text', id: 'compare-a', value: a, 'aria-label': 'first version'});
  const ib = h('input', {type: 'text', id: 'compare-b', value: b, 'aria-label': 'second version'});
  main.append(h('p', {}, h('a', {href: modelHref(model)}, `← ${model}`)), h('h1', {}, `Compare versions of ${model}`),
    h('form', {class: 'filters', onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = `#/m/${encodeURIComponent(model)}/compare${query({a: ia.value.trim(), b: ib.value.trim()})}`;
    }}, h('label', {}, 'Version A', ia), h('label', {}, 'Version B', ib), h('button', {type: 'submit'}, 'Compare')));
  if (!a || !b) return;
  const base = `/models/${encodeURIComponent(model)}`;
  const [{data: c}, {data: va}, {data: vb}] = await Promise.all([
    api(`${base}/compare${query({a, b})}`), api(`${base}/versions/${encodeURIComponent(a)}`),
    api(`${base}/versions/${encodeURIComponent(b)}`)]);
  const side = (label, f) => h('tr', {}, h('th', {}, label), h('td', {}, f(va)), h('td', {}, f(vb)));
  main.append(h('h2', {}, 'Metrics'),
    h('table', {id: 'compare-metrics'},
      h('thead', {}, h('tr', {}, h('th', {}, 'Metric'), h('th', {class: 'num'}, h('a', {href: versionHref(model, va.version)}, c.a)),
        h('th', {class: 'num'}, h('a', {href: versionHref(model, vb.version)}, c.b)), h('th', {class: 'num'}, 'B − A'),
        h('th', {}, 'Better'))),
      h('tbody', {}, c.metrics.map((r) => {
        const cls = r.improvement === null || r.improvement === undefined || r.improvement === 0 ? ''
          : r.improvement > 0 ? 'better' : 'worse';
        return h('tr', {'data-metric': r.metric}, h('td', {}, r.metric), h('td', {class: 'num'}, fmtNumber(r.a)),
          h('td', {class: 'num'}, fmtNumber(r.b)),
          h('td', {class: `num ${cls}`, 'data-difference': r.difference ?? ''},
            r.difference === null ? '–' : `${r.difference > 0 ? '+' : ''}${fmtNumber(r.difference)}`),
          h('td', {}, r.better ? `${r.better} is better` : '–'));
      }))),
    h('h2', {}, 'Side by side'),
    h('table', {id: 'compare-side'},
      h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, va.ref), h('th', {}, vb.ref))),
      h('tbody', {},
        side('Status', (v) => (v.aliases.length || v.status === 'archived' ? statusBadges(v) : v.status)),
        side('Label', (v) => v.label || '–'), side('Format', (v) => v.format), side('Type', (v) => v.type_name || '–'),
        side('Created', (v) => `${fmtTime(v.created_at)} by ${v.created_by}`),
        side('Size', (v) => `${fmtBytes(v.blob.raw_size)} (stored ${fmtBytes(v.blob.stored_size)})`),
        side('Hyperparameters', (v) => Object.entries(v.params).map(([k, x]) => h('div', {}, `${k} = ${x}`))),
        side('Tags', (v) => Object.entries(v.tags).map(([k, x]) => h('span', {class: 'badge'}, x ? `${k}=${x}` : k))),
        side('Features', (v) => String(v.features.length)),
        side('Parents', (v) => v.parents.map((p) => h('div', {}, h('a', {href: versionHref(p.model, p.version)}, p.ref), ` (${p.relation})`))),
        side('Notes', (v) => h('div', {class: 'notes'}, v.notes || '–')))));
}
