"use strict";
// The dashboard: every number comes from the usage API's own documents, fetched through
// /dashboard/api/* (the same queries as /v1/usage). Client strings (model names, users, keys)
// only ever reach the page as text nodes, never as markup.

const DIMS = ["model", "provider", "key", "team", "user", "feature", "status", "route"];
const BREAKDOWNS = ["model", "user", "feature", "key", "route"];
const TOP = 8;
const SVG = "http://www.w3.org/2000/svg";
const state = {refresh: 10, timer: null, loading: false, again: false, filters: {}, evaluations: []};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- formatting -------------------------------------------------------------------------

const integer = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});
function usd(value) {
  const v = Number(value || 0);
  if (v === 0) return "$0";
  if (Math.abs(v) < 0.01) return "$" + v.toFixed(6).replace(/0+$/, "");
  return "$" + v.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 4});
}
function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 10000 ? (value / 1000).toFixed(1) + " s" : Math.round(value) + " ms";
}
function pct(part, whole) {
  return whole ? (100 * part / whole).toFixed(1) + "%" : "–";
}
function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
  if (a > 0 && a < 1) return v.toPrecision(2);
  return String(Math.round(v * 100) / 100);
}
function clock(seconds, span) {
  const d = new Date(seconds * 1000);
  if (span > 2 * 86400) return d.toLocaleDateString([], {month: "short", day: "numeric"});
  return d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
}

// -- the query --------------------------------------------------------------------------

function windowParams() {
  const range = $("range").value;
  const params = new URLSearchParams();
  let span;
  if (range === "custom") {
    const start = Date.parse($("range-start").value);
    const end = Date.parse($("range-end").value) || Date.now();
    if (!start || end <= start) return null;
    params.set("start", String(Math.floor(start / 1000)));
    params.set("end", String(Math.floor(end / 1000)));
    span = (end - start) / 1000;
  } else {
    // The last N whole buckets (1m, 1h or 1d): the rollup of each width then answers
    // whole, which keeps a 30-day page to ~30 rows per combination of dimensions.
    span = {last_hour: 3600, last_24_hours: 86400, last_7_days: 7 * 86400, last_30_days: 30 * 86400}[range];
    const width = bucketFor(span)[1];
    const end = Math.ceil(Date.now() / 1000 / width) * width;
    params.set("start", String(end - span));
    params.set("end", String(end));
  }
  return {params, span};
}

function bucketFor(span) {
  if (span <= 3 * 3600) return ["1m", 60];
  if (span <= 8 * 86400) return ["1h", 3600];
  return ["1d", 86400];
}

function withFilters(params) {
  for (const [dim, value] of Object.entries(state.filters)) {
    if (value) params.set(dim, value);
  }
  return params;
}

async function getJSON(path, params) {
  const reply = await fetch(path + (params ? "?" + params.toString() : ""), {credentials: "same-origin"});
  if (reply.status === 401) {
    window.location.replace("/dashboard");
    throw new Error("signed out");
  }
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error((body.error && body.error.message) || `HTTP ${reply.status}`);
  return body;
}

// -- charts (SVG, drawn here) -------------------------------------------------------------

function chart(container, buckets, series, options) {
  container.replaceChildren();
  const width = 560, height = 170, left = 46, right = 8, top = 8, bottom = 22;
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img"});
  const values = [];
  for (const s of series) for (const b of buckets) {
    const v = s.stack ? s.stack.reduce((sum, f) => sum + (f(b) || 0), 0) : s.value(b);
    if (v !== null && v !== undefined) values.push(v);
  }
  const max = Math.max(0, ...values);
  root.append(svg("line", {x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis"}));
  if (!buckets.length || max === 0) {
    root.append(svg("text", {x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty"}, "No data in this range"));
    container.append(root);
    return;
  }
  const plotW = width - left - right, plotH = height - top - bottom;
  const x0 = buckets[0].start, x1 = buckets[buckets.length - 1].start + options.width;
  const xs = (t) => left + plotW * (t - x0) / (x1 - x0);
  const ys = (v) => top + plotH * (1 - v / max);
  for (let i = 0; i <= 3; i++) {
    const v = max * i / 3, y = ys(v);
    root.append(svg("line", {x1: left, y1: y, x2: width - right, y2: y, class: "axis", "stroke-dasharray": i ? "2 3" : ""}));
    root.append(svg("text", {x: left - 4, y: y + 3, "text-anchor": "end"}, options.format(v)));
  }
  const ticks = Math.min(6, buckets.length);
  for (let i = 0; i < ticks; i++) {
    const b = buckets[Math.floor(i * (buckets.length - 1) / Math.max(1, ticks - 1))];
    root.append(svg("text", {x: xs(b.start + options.width / 2), y: height - 6, "text-anchor": "middle"}, clock(b.start, x1 - x0)));
  }
  const barW = Math.max(1, plotW / buckets.length - 1);
  for (const [index, s] of series.entries()) {
    if (s.stack) {  // stacked bars
      for (const b of buckets) {
        let base = 0;
        s.stack.forEach((f, k) => {
          const v = f(b) || 0;
          if (v <= 0) return;
          const rect = svg("rect", {x: xs(b.start) + 0.5, y: ys(base + v), width: barW, height: ys(base) - ys(base + v), class: s.classes[k]});
          rect.append(svg("title", {}, `${clock(b.start, x1 - x0)} · ${s.names[k]}: ${options.format(v)}`));
          root.append(rect);
          base += v;
        });
      }
    } else {  // a line, broken where a bucket has no value
      let d = "";
      let pen = false;
      for (const b of buckets) {
        const v = s.value(b);
        if (v === null || v === undefined) { pen = false; continue; }
        const x = xs(b.start + options.width / 2), y = ys(v);
        d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
        pen = true;
        const dot = svg("circle", {cx: x.toFixed(1), cy: y.toFixed(1), r: 2, class: `s${index}`});
        dot.append(svg("title", {}, `${clock(b.start, x1 - x0)} · ${options.format(v)}`));
        root.append(dot);
      }
      root.append(svg("path", {d, class: `line s${index}`}));
    }
  }
  container.append(root);
  if (options.legend) {
    const legend = el("div", {class: "legend"});
    options.legend.forEach(([name, cls]) => legend.append(el("span", {}, el("i", {class: cls}), name)));
    container.append(legend);
  }
}

function filled(series, start, end, width) {
  // One entry per bucket of the range, so quiet buckets show as gaps, not as a squeezed axis.
  const byStart = new Map(series.map((b) => [b.start, b]));
  const out = [];
  const first = Math.floor(start / width) * width;
  for (let t = first; t < end; t += width) out.push(byStart.get(t) || {start: t, empty: true});
  return out;
}

// -- the panels ---------------------------------------------------------------------------

function setKpi(id, text, value) {
  const node = $(id);
  node.textContent = text;
  node.dataset.value = String(value);
}

function renderTotals(u) {
  setKpi("kpi-cost", usd(u.total_cost), u.total_cost);
  $("kpi-unpriced").textContent = u.unpriced_requests ? `${integer.format(u.unpriced_requests)} unpriced` : "";
  setKpi("kpi-requests", integer.format(u.requests), u.requests);
  setKpi("kpi-tokens", integer.format(u.total_tokens), u.total_tokens);
  $("kpi-tokens-split").textContent = `${integer.format(u.input_tokens)} in · ${integer.format(u.output_tokens)} out`;
  setKpi("kpi-errors", pct(u.errors, u.requests), u.errors);
  $("kpi-errors-count").textContent = `${integer.format(u.errors)} errors`;
  setKpi("kpi-cache", pct(u.cache_hits, u.requests), u.cache_hits);
  setKpi("kpi-saved", usd(u.cost_saved), u.cost_saved);
  setKpi("kpi-latency", `${ms(u.latency_ms.p50)} / ${ms(u.latency_ms.p95)}`, u.latency_ms.p50);
  setKpi("kpi-ttft", ms(u.ttft_ms.p50), u.ttft_ms.p50);
}

function renderCharts(u, start, end, width) {
  const buckets = filled(u.series || [], start, end, width);
  const opt = (format, legend) => ({width, format, legend});
  chart($("chart-cost"), buckets, [{stack: [(b) => Number(b.total_cost ?? b.cost ?? 0)], classes: ["s0"], names: ["cost"]}], opt(usd));
  chart($("chart-requests"), buckets, [{stack: [(b) => (b.requests || 0) - (b.errors || 0), (b) => b.errors || 0], classes: ["s0", "bad"], names: ["ok", "errors"]}],
    opt(compact, [["ok", "s0"], ["errors", "bad"]]));
  chart($("chart-tokens"), buckets, [{stack: [(b) => b.input_tokens || 0, (b) => b.output_tokens || 0], classes: ["s0", "s1"], names: ["input", "output"]}],
    opt(compact, [["input", "s0"], ["output", "s1"]]));
  const lat = (key, q) => (b) => (b[key] ? b[key][q] : null);
  chart($("chart-latency"), buckets, ["p50", "p95", "p99"].map((q) => ({value: lat("latency_ms", q)})),
    opt(compact, [["p50", "s0"], ["p95", "s1"], ["p99", "s2"]]));
  chart($("chart-ttft"), buckets, ["p50", "p95"].map((q) => ({value: lat("ttft_ms", q)})),
    opt(compact, [["p50", "s0"], ["p95", "s1"]]));
}

function renderFaults(u) {
  const box = $("faults");
  box.replaceChildren();
  const faults = u.errors_by_fault || {};
  const total = Object.values(faults).reduce((a, b) => a + b, 0);
  const table = el("table", {id: "faults-table"});
  table.append(el("tr", {}, el("th", {}, "Fault"), el("th", {class: "num"}, "Errors"), el("th", {}, "")));
  for (const [name, count] of Object.entries(faults)) {
    const bar = el("div", {class: "meter"}, el("div", {class: "over", style: `width:${total ? 100 * count / total : 0}%`}));
    table.append(el("tr", {"data-fault": name}, el("td", {}, name), el("td", {class: "num"}, integer.format(count)), el("td", {}, bar)));
  }
  box.append(table);
}

function renderBreakdown(u, dim) {
  const table = $(`by-${dim}`);
  table.replaceChildren();
  table.append(el("tr", {}, el("th", {}, dim), el("th", {class: "num"}, "Requests"), el("th", {class: "num"}, "Tokens"),
    el("th", {class: "num"}, "Cost"), el("th", {class: "num"}, "Errors")));
  const entries = Object.entries(u[`by_${dim}`] || {});
  if (!entries.length) {
    table.append(el("tr", {class: "empty-row"}, el("td", {colspan: 5}, "No requests")));
    return;
  }
  const row = (name, m, cls) => el("tr", {class: cls || "", "data-name": name},
    el("td", {class: "name", title: name}, name), el("td", {class: "num"}, integer.format(m.requests)),
    el("td", {class: "num"}, integer.format(m.tokens)), el("td", {class: "num"}, usd(m.cost)),
    el("td", {class: "num"}, integer.format(m.errors)));
  entries.slice(0, TOP).forEach(([name, m]) => table.append(row(name, m)));
  const rest = entries.slice(TOP);
  if (rest.length) {
    const sum = {requests: 0, tokens: 0, cost: 0, errors: 0};
    for (const [, m] of rest) for (const k of Object.keys(sum)) sum[k] += Number(m[k] || 0);
    table.append(row(`${rest.length} more`, sum, "rest"));
  }
}

const ratioText = (v) => (v === null || v === undefined ? "–" : `${Math.round(100 * v)}%`);
const millis = (v) => `${Number(v).toFixed(0)} ms`;

function renderEvaluationTable(id, heads, rows, cells) {
  const table = $(id);
  table.replaceChildren();
  table.append(el("tr", {}, ...heads.map(([h, cls]) => el("th", cls ? {class: cls} : {}, h))));
  if (!rows.length) {
    table.append(el("tr", {class: "empty-row"}, el("td", {colspan: heads.length}, "None in this range")));
    return;
  }
  for (const row of rows) {
    table.append(el("tr", {"data-name": cells(row)[0]}, ...cells(row).map((c, i) =>
      el("td", heads[i][1] ? {class: heads[i][1]} : {class: "name", title: c}, c))));
  }
}

function renderShadow(found) {
  renderEvaluationTable("shadow", [["Model"], ["Candidate"], ["Requests", "num"], ["Cost", "num"],
    ["Candidate cost", "num"], ["Latency", "num"], ["Candidate latency", "num"], ["Similarity", "num"],
    ["Exact", "num"]], found.data, (g) => [g.model, g.candidate, integer.format(g.requests), usd(g.incumbent_cost),
    usd(g.candidate_cost), millis(g.incumbent_latency_ms), millis(g.candidate_latency_ms),
    g.mean_similarity === null ? "–" : Number(g.mean_similarity).toFixed(2), ratioText(g.exact_rate)]);
}

function renderFeedback(found) {
  renderEvaluationTable("feedback", [["Model"], ["Route"], ["Feedback", "num"], ["Mean score", "num"],
    ["Cost", "num"]], found.data, (g) => [g.model, g.route || "–", integer.format(g.feedback),
    g.mean_score === null ? "–" : Number(g.mean_score).toFixed(2), usd(g.cost)]);
}

function renderBudgets(list) {
  const table = $("budgets");
  table.replaceChildren();
  table.append(el("tr", {}, el("th", {}, "Kind"), el("th", {}, "Name"), el("th", {class: "num"}, "Spent"),
    el("th", {class: "num"}, "Budget"), el("th", {}, "Use"), el("th", {}, "Period ends")));
  if (!list.length) {
    table.append(el("tr", {class: "empty-row"}, el("td", {colspan: 6}, "No key or team has a budget")));
    return;
  }
  for (const item of list) {
    const b = item.budget;
    const share = b.max_budget ? Math.min(1, (b.spent + b.held) / b.max_budget) : 1;
    const cls = share >= 1 ? "over" : share >= 0.8 ? "warn" : "";
    table.append(el("tr", {"data-scope": item.scope},
      el("td", {}, item.kind), el("td", {class: "name", title: item.name}, item.name),
      el("td", {class: "num"}, usd(b.spent)), el("td", {class: "num"}, usd(b.max_budget)),
      el("td", {}, el("div", {class: "meter", title: pct(b.spent + b.held, b.max_budget)}, el("div", {class: cls, style: `width:${100 * share}%`}))),
      el("td", {}, b.period_end || "never resets")));
  }
}

function renderRequests(rows) {
  const body = $("requests-table").tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {class: "empty-row"}, el("td", {colspan: 9}, "No requests in this range yet")));
    return;
  }
  for (const r of rows) {
    const tr = el("tr", {"data-request-id": r.request_id},
      el("td", {}, new Date(r.ts * 1000).toLocaleTimeString()), el("td", {class: "name"}, r.request_id),
      el("td", {class: "name", title: r.model}, r.model), el("td", {}, r.provider),
      el("td", {class: r.status >= 400 ? "status-bad" : ""}, r.status),
      el("td", {class: "num"}, integer.format(r.input_tokens + r.output_tokens)),
      el("td", {class: "num"}, r.cost === null ? "unpriced" : usd(r.cost)),
      el("td", {class: "num"}, ms(r.latency_ms)), el("td", {}, r.cache || ""));
    tr.addEventListener("click", () => openRequest(r.request_id));
    body.append(tr);
  }
}

const FIELDS = [
  ["request_id", "Request id"], ["ts", "Time"], ["endpoint", "Endpoint"], ["model", "Model asked"],
  ["served_model", "Model served"], ["provider", "Provider"], ["status", "Status"], ["error_type", "Error"],
  ["fault", "Fault"], ["attempts", "Attempts"], ["fallback", "Fallback path"], ["cache", "Cache"],
  ["guardrails", "Guardrails"], ["input_tokens", "Input tokens"], ["cached_tokens", "Cached tokens"],
  ["cache_write_tokens", "Cache-write tokens"], ["output_tokens", "Output tokens"],
  ["reasoning_tokens", "Reasoning tokens"], ["counted", "Tokens counted by the gateway"],
  ["cost", "Cost (USD)"], ["saved", "Saved (USD)"], ["price_id", "Price"], ["latency_ms", "Latency (ms)"],
  ["ttft_ms", "First token (ms)"], ["key_id", "Key"], ["team", "Team"], ["user", "User"],
  ["feature", "Feature"], ["tags", "Tags"], ["request_body", "Request body"],
  ["response_body", "Response body"],
];

async function openRequest(id) {
  const found = await getJSON("/dashboard/api/requests", new URLSearchParams({request_id: id, time_range: "last_90_days", limit: "10"}));
  const panel = $("drilldown");
  const list = $("drilldown-fields");
  list.replaceChildren();
  $("drilldown-title").textContent = `Request ${id}`;
  for (const row of found.data) {
    for (const [key, label] of FIELDS) {
      let value = row[key];
      if (value === null || value === undefined || value === "") value = "–";
      else if (key === "ts") value = new Date(value * 1000).toISOString();
      else if (key === "latency_ms" || key === "ttft_ms") value = Number(value).toFixed(1);
      else if (Array.isArray(value)) value = value.join(", ");
      const shown = key.endsWith("_body") && value !== "–" ? el("pre", {class: "body"}, value) : value;
      list.append(el("dt", {}, label), el("dd", {"data-field": key}, shown));
    }
  }
  if (!found.data.length) list.append(el("dt", {}, "Not found"), el("dd", {}, "This request is no longer in the ledger."));
  panel.hidden = false;
}

function fillFilters(u) {
  for (const dim of DIMS) {
    const select = $(`filter-${dim}`);
    const current = state.filters[dim] || "";
    const names = new Set(Object.keys(u[`by_${dim}`] || {}));
    if (current) names.add(current);
    const sorted = [...names].sort();
    const existing = [...select.options].slice(1).map((o) => o.value);
    if (existing.join("\u0000") === sorted.join("\u0000")) continue;
    select.replaceChildren(el("option", {value: ""}, "all"), ...sorted.map((n) => el("option", {value: n}, n)));
    select.value = current;
  }
}

async function load() {
  if (state.loading) {  // one more load once this one ends, with what is chosen by then
    state.again = true;
    return;
  }
  const win = windowParams();
  if (!win) return;
  state.loading = true;
  try {
    const [bucket, width] = bucketFor(win.span);
    const params = withFilters(new URLSearchParams(win.params));
    params.set("group_by", DIMS.join(","));
    params.set("bucket", bucket);
    const requests = withFilters(new URLSearchParams(win.params));
    requests.set("order", "desc");
    requests.set("limit", "50");
    const [usage, latest, budgets] = await Promise.all([
      getJSON("/dashboard/api/usage", params),
      getJSON("/dashboard/api/requests", requests),
      getJSON("/dashboard/api/budgets"),
    ]);
    renderTotals(usage);
    renderCharts(usage, usage.start, usage.end, width);
    renderFaults(usage);
    BREAKDOWNS.forEach((dim) => renderBreakdown(usage, dim));
    renderBudgets(budgets.data);
    renderRequests(latest.data);
    fillFilters(usage);
    for (const [name, render] of [["shadow", renderShadow], ["feedback", renderFeedback]]) {
      if (state.evaluations.includes(name)) render(await getJSON(`/dashboard/api/${name}`, new URLSearchParams(win.params)));
    }
    $("notice").hidden = usage.requests > 0;
    $("notice").textContent = "No requests in this range yet: send one through the gateway and it appears here.";
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = String(Date.now());
  } catch (err) {
    $("notice").hidden = false;
    $("notice").textContent = "Could not load usage: " + err.message;
  } finally {
    state.loading = false;
    if (state.again) {
      state.again = false;
      load();
    }
  }
}

function schedule() {
  clearInterval(state.timer);
  if ($("auto-refresh").checked) state.timer = setInterval(load, state.refresh * 1000);
}

async function main() {
  const config = await getJSON("/dashboard/api/config");
  state.refresh = config.refresh_seconds;
  state.evaluations = config.evaluations || [];
  $("evaluation").hidden = !state.evaluations.length;
  $("shadow-box").hidden = !state.evaluations.includes("shadow");
  $("feedback-box").hidden = !state.evaluations.includes("feedback");
  $("role").textContent = `${config.role} · v${config.version}`;
  if (!config.usage) {
    $("notice").hidden = false;
    $("notice").textContent = "The usage ledger is off (usage.enabled: false): there is nothing to show.";
    return;
  }
  $("range").addEventListener("change", () => {
    $("custom-range").hidden = $("range").value !== "custom";
    load();
  });
  $("range-start").addEventListener("change", load);
  $("range-end").addEventListener("change", load);
  for (const dim of DIMS) {
    $(`filter-${dim}`).addEventListener("change", (event) => {
      state.filters[dim] = event.target.value;
      load();
    });
  }
  $("clear-filters").addEventListener("click", () => {
    state.filters = {};
    DIMS.forEach((dim) => { $(`filter-${dim}`).value = ""; });
    load();
  });
  $("auto-refresh").addEventListener("change", schedule);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("search-request").value.trim();
    if (id) openRequest(id);
  });
  $("drilldown-close").addEventListener("click", () => { $("drilldown").hidden = true; });
  $("logout").addEventListener("click", async () => {
    await fetch("/dashboard/logout", {method: "POST", credentials: "same-origin"});
    window.location.replace("/dashboard");
  });
  await load();
  schedule();
}

main();
