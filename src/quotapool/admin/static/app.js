// The dashboard: one Alpine.js component over the admin API (same origin, session cookie,
// CSRF token in a header on every change).
"use strict";

const API = "/quotapool/api";
const RANGES = {
  minute: { seconds: 60, span: 2 * 3600 },
  hour: { seconds: 3600, span: 2 * 86400 },
  day: { seconds: 86400, span: 30 * 86400 },
};
const PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

document.addEventListener("alpine:init", () => {
  window.Alpine.data("dashboard", () => ({
    tabs: ["Accounts", "Routing", "Requests", "Charts", "Keys", "Audit"],
    tab: "Accounts",
    problem: "",
    notice: "",
    credentials: [],
    serverOffset: 0, // server clock minus this browser's, in seconds
    clock: Date.now() / 1000,
    routing: {},
    requests: [],
    selected: null,
    filters: { credential: "", model: "", key: "", profile: "", status: "" },
    live: true,
    keys: [],
    newKey: { name: "", models: "", profile: "", limits: "", expires: "" },
    issued: null,
    confirming: "",
    probing: "",
    range: "hour",
    charts: [],
    forecast: null,
    forecastAt: 0,
    audit: [],

    init() {
      const wanted = location.hash.slice(1);
      if (this.tabs.includes(wanted)) this.tab = wanted;
      this.refresh();
      setInterval(() => { this.clock = Date.now() / 1000 + this.serverOffset; }, 1000);
      setInterval(() => this.refresh(), 3000);
    },

    async call(method, path, body) {
      const headers = { "x-csrf-token": document.querySelector('meta[name="csrf-token"]').content };
      if (body !== undefined) headers["content-type"] = "application/json";
      const response = await fetch(API + path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (response.status === 401) { location.reload(); throw new Error("signed out"); }
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        const message = (data.error && data.error.message) || `${method} ${path}: ${response.status}`;
        this.problem = message;
        throw new Error(message);
      }
      return data;
    },

    show(name) {
      this.tab = name;
      history.replaceState(null, "", "#" + name);
      this.refresh();
    },

    async refresh() {
      try {
        const pool = await this.call("GET", "/credentials");
        this.serverOffset = pool.now - Date.now() / 1000;
        this.clock = pool.now;
        this.credentials = pool.credentials;
        this.routing = await this.call("GET", "/routing");
        if (this.tab === "Accounts" && pool.now - this.forecastAt >= 60) {
          this.forecast = await this.call("GET", "/forecast");
          this.forecastAt = pool.now;
        }
        if (this.tab === "Requests" && this.live) await this.newerRequests();
        if (this.tab === "Keys") this.keys = await this.call("GET", "/keys");
        if (this.tab === "Audit") this.audit = (await this.call("GET", "/audit?limit=200")).reverse();
        if (this.tab === "Charts" && this.charts.length === 0) await this.drawCharts();
      } catch (error) { /* shown in this.problem */ }
    },

    // Accounts
    activeStrategy() {
      const d = this.routing.profiles && this.routing.profiles.default;
      return d ? d.strategy : "…";
    },
    poolSummary() {
      const active = this.credentials.filter((c) => c.status === "active").length;
      return `${this.credentials.length} credential(s), ${active} active`;
    },
    until(at) {
      let left = Math.max(0, Math.round(at - this.clock));
      const d = Math.floor(left / 86400); left -= d * 86400;
      const h = Math.floor(left / 3600); left -= h * 3600;
      const m = Math.floor(left / 60); const s = left - m * 60;
      if (d) return `${d}d ${h}h`;
      if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
      return `${m}m ${String(s).padStart(2, "0")}s`;
    },
    bar(percent) {
      const p = Math.max(0, Math.min(100, percent || 0));
      const level = p >= 95 ? "full" : p >= 75 ? "high" : "ok";
      return `<div class="bar ${level}" role="meter" aria-valuenow="${Math.round(p)}" aria-valuemin="0" aria-valuemax="100"><span style="width:${p}%"></span></div>`;
    },
    // A subscription's 5-hour or weekly window; an API key's busiest rate limit (it has no
    // such windows: requests and tokens per minute or day, from its rate-limit headers).
    quota(c, which) {
      const window = c[which];
      const rateLimit = c.kind !== "codex" && !(window && window.window_minutes);
      const limited = which === "primary" && (c.status === "quota_exceeded" || c.status === "rate_limited");
      if (rateLimit && which === "secondary") return '<span class="muted">—</span>';
      const label = rateLimit ? "rate limit " : "";
      if (!window && limited) return `${this.bar(100)}<small>${rateLimit ? "rate limit" : "limit"} reached</small>`;
      if (!window) return `<span class="muted">${rateLimit ? "no rate limit seen yet" : "not known yet"}</span>`;
      let resets = "";
      if (window.resets_at && window.resets_at > this.clock) {
        resets = ` · resets in <span class="countdown">${this.until(window.resets_at)}</span>`;
      } else if (window.resets_at) {
        resets = " · reset";
      }
      return `${this.bar(window.used_percent)}<small>${label}${Math.round(window.used_percent)}% used${resets}</small>`;
    },
    // The forecast (GET /forecast, once a minute): at the pace of the last day.
    runsOut(name) {
      const account = this.forecast && this.forecast.accounts.find((a) => a.name === name);
      const week = account && account.weekly;
      if (!week || week.pace === null) return "";
      if (week.runs_out_at) return `runs out in ${this.until(week.runs_out_at)} at this pace`;
      return week.at_reset_percent === null ? "" : `${Math.round(week.at_reset_percent)}% used at its reset at this pace`;
    },
    poolForecast() {
      const pool = this.forecast && this.forecast.pool;
      if (!pool || !this.forecast.accounts.length) return "";
      const n = (v) => Math.round(v).toLocaleString("en");
      const out = pool.runs_out_at
        ? `runs out in ${this.until(pool.runs_out_at)}`
        : "does not run out in the next two weeks";
      return `Forecast: the pool spends ${n(pool.demand_credits_per_hour)} weekly credits an hour and ${out} at this pace; `
        + `${n(pool.expiring_credits)} credits (${Math.round(pool.expiring_percent)}%) are on course to expire unused at the next resets.`;
    },
    // The audit log, newest first: what changed from what to what.
    change(a) {
      const before = a.before || {};
      const after = a.after || {};
      const names = [...new Set([...Object.keys(before), ...Object.keys(after)])];
      const shown = (v) => (v === null || v === undefined ? "—" : Array.isArray(v) ? v.join(", ") || "—" : String(v));
      const changed = names.filter((n) => JSON.stringify(before[n]) !== JSON.stringify(after[n]));
      if (a.before && changed.length) return changed.map((n) => `${n}: ${shown(before[n])} → ${shown(after[n])}`).join("; ");
      return names.map((n) => `${n}: ${shown(after[n])}`).join("; ");
    },
    latency(c) {
      const values = Object.values(c.latency_ms || {});
      return values.length ? `${Math.round(Math.min(...values))} ms` : "—";
    },
    async act(name, action) {
      await this.call("POST", `/credentials/${encodeURIComponent(name)}/${action}`);
      this.notice = `${name}: ${action === "pause" ? "paused" : "back in rotation"}`;
      await this.refresh();
    },
    async probe(name) {
      this.probing = name;
      try {
        const row = await this.call("POST", `/credentials/${encodeURIComponent(name)}/probe`);
        const p = row.probe;
        this.notice = `${name}: probe with ${p.model} answered ${p.status}${p.error ? " (" + p.error + ")" : ""}`;
        await this.refresh();
      } finally { this.probing = ""; }
    },

    // Routing
    async choose(profile, strategy) {
      this.routing = await this.call("PUT", `/routing/${encodeURIComponent(profile)}`, { strategy });
      const now = this.routing.profiles[profile].strategy;
      this.notice = `${profile} now routes with ${now}`;
    },
    pairs(map) {
      const entries = Object.entries(map || {});
      return entries.length ? entries.map(([k, v]) => `${k}: ${v}`).join(", ") : "—";
    },

    // Requests
    query(extra) {
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries({ ...this.filters, ...extra })) {
        if (value !== "" && value !== null && value !== undefined) params.set(name, value);
      }
      return "/requests?" + params.toString();
    },
    async reloadRequests() {
      const rows = await this.call("GET", this.query({ limit: 100 }));
      this.requests = rows.reverse();
      this.selected = null;
    },
    async newerRequests() {
      if (this.requests.length === 0) return this.reloadRequests();
      const rows = await this.call("GET", this.query({ after_id: this.requests[0].id, limit: 200 }));
      this.requests = rows.reverse().concat(this.requests).slice(0, 500);
    },
    async older() {
      const oldest = this.requests[this.requests.length - 1];
      const rows = await this.call("GET", this.query({ before_id: oldest.id, limit: 100 }));
      this.requests = this.requests.concat(rows.reverse());
    },
    time(at) { return new Date(at * 1000).toLocaleTimeString(); },
    date(at) { return new Date(at * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }); },
    model(r) { return r.model || (r.route === "websocket" ? "(socket: a row per turn)" : "—"); },
    num(value) { return typeof value === "number" ? (Math.round(value * 1000) / 1000).toString() : String(value); },

    // Charts
    async drawCharts() {
      const range = RANGES[this.range];
      const until = this.clock;
      const since = until - range.span;
      const [usage, activity, history, forecast] = await Promise.all([
        this.call("GET", `/usage?by=credential&period=${this.range}&since=${since}`),
        this.call("GET", `/activity?period=${this.range}&since=${since}`),
        this.call("GET", `/quota-history?since=${since}`),
        this.call("GET", "/forecast"),
      ]);
      const ahead = range.span / 2; // the weekly chart goes on at the current pace
      const grid = [];
      for (let at = Math.floor(since / range.seconds) * range.seconds; at <= until; at += range.seconds) grid.push(at);
      const span = { min: since, max: until };
      for (const chart of this.charts) chart.destroy();
      this.charts = [
        this.plot("chart-requests", series(usage, grid, "credential", (r) => r.requests), span),
        this.plot("chart-tokens", series(usage, grid, "credential", (r) => r.input_tokens + r.output_tokens), span),
        this.plot("chart-primary", steps(history, "primary", until), span, 100),
        this.plot("chart-secondary", projected(steps(history, "secondary", until), forecast, until, ahead),
          { min: since, max: until + ahead }, 100),
        this.plot("chart-activity", {
          xs: grid,
          lines: {
            errors: series(activity, grid, null, (r) => r.errors).lines["(all)"] || grid.map(() => 0),
            failovers: series(activity, grid, null, (r) => r.failovers).lines["(all)"] || grid.map(() => 0),
          },
        }, span),
      ];
    },
    // One colour per credential on every chart: its place among the pool's names.
    colour(name) {
      const names = this.credentials.map((c) => c.name).sort();
      let i = names.indexOf(name);
      if (i < 0) i = names.length + [...name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 0);
      return PALETTE[i % PALETTE.length];
    },
    plot(id, data, span, max) {
      const element = document.getElementById(id);
      element.replaceChildren();
      const names = Object.keys(data.lines);
      const width = Math.max(260, element.clientWidth || 560);
      return new window.uPlot({
        width, height: 220,
        scales: {
          x: { time: true, range: () => [span.min, span.max] },
          y: max ? { range: [0, max] } : { range: (u, lo, hi) => [0, Math.max(1, hi)] },
        },
        series: [{}, ...names.map((name) => {
          const account = name.replace(PROJECTED, "");
          const ahead = account !== name; // a forecast: dashed, no points
          return {
            label: name, stroke: this.colour(account), width: 2, dash: ahead ? [6, 4] : undefined,
            spanGaps: ahead, // from now to its end, across the other forecasts' points
            points: { show: Boolean(max) && !ahead, size: 6 }, // quota: a point at each reading
          };
        })],
        axes: [{}, { size: 60 }],
      }, [data.xs, ...names.map((name) => data.lines[name])], element);
    },

    // Keys
    async createKey() {
      const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
      const body = {
        name: this.newKey.name.trim(), models: list(this.newKey.models),
        profile: this.newKey.profile || null, limits: list(this.newKey.limits),
        expires: this.newKey.expires.trim() || null,
      };
      this.issued = await this.call("POST", "/keys", body);
      this.newKey = { name: "", models: "", profile: "", limits: "", expires: "" };
      this.keys = await this.call("GET", "/keys");
    },
    async keyAction(name, action) {
      if (this.confirming !== `${name}:${action}`) { this.confirming = `${name}:${action}`; return; }
      this.confirming = "";
      const answer = await this.call("POST", `/keys/${encodeURIComponent(name)}/${action}`);
      this.issued = action === "rotate" ? answer : null;
      this.notice = `${name}: ${action === "rotate" ? "rotated; the old secret no longer works" : "revoked"}`;
      this.keys = await this.call("GET", "/keys");
    },
    usageText(u) {
      const used = u.limit.startsWith("cost") ? `$${u.used.toFixed(2)}` : Math.round(u.used);
      return `${used} of ${u.limit} · resets in ${this.until(u.resets_at)}`;
    },

    async logout() {
      const token = document.querySelector('meta[name="csrf-token"]').content;
      await fetch("/quotapool/logout", { method: "POST", headers: { "x-csrf-token": token } });
      location.reload();
    },
  }));
});

// Rows per (period start, name) → a line per name over every period of the grid (0 where none).
function series(rows, grid, by, value) {
  const index = new Map(grid.map((x, i) => [x, i]));
  const lines = {};
  for (const row of rows) {
    const name = by ? row[by] || "(none)" : "(all)";
    const i = index.get(row.at);
    if (i === undefined) continue;
    lines[name] = lines[name] || grid.map(() => 0);
    lines[name][i] += value(row);
  }
  return { xs: grid, lines };
}

// The weekly chart's lines carried on from now at each account's pace (GET /forecast): dashed,
// to its reset or `ahead` seconds, whichever comes first.
const PROJECTED = / \(at this pace\)$/;
function projected(data, forecast, until, ahead) {
  const accounts = (forecast && forecast.accounts) || [];
  if (!data.xs.length) return data;
  const now = data.xs.length - 1; // `steps` ends every line at now
  // Each account's line: now, when it runs out (if it does first), its end.
  const points = {};
  for (const account of accounts) {
    const week = account.weekly;
    if (!week || week.pace === null || !(account.name in data.lines)) continue;
    const end = Math.round(Math.min(until + ahead, week.resets_at || Infinity));
    if (end <= data.xs[now]) continue;
    const at = (t) => Math.min(100, week.used_percent + (week.pace * (t - until)) / 3600);
    const out = week.runs_out_at && week.runs_out_at < end ? [Math.round(week.runs_out_at)] : [];
    points[account.name] = [...out, end].map((t) => [t, at(t)]);
  }
  const laterXs = [...new Set(Object.values(points).flat().map(([t]) => t))].filter((t) => t > data.xs[now]).sort((a, b) => a - b);
  const xs = [...data.xs, ...laterXs];
  const lines = {};
  for (const [name, values] of Object.entries(data.lines)) lines[name] = [...values, ...laterXs.map(() => null)];
  for (const [name, laterPoints] of Object.entries(points)) {
    const line = xs.map(() => null);
    line[now] = data.lines[name][now];
    for (const [t, value] of laterPoints) if (t > data.xs[now]) line[xs.indexOf(t)] = value;
    lines[`${name} (at this pace)`] = line;
  }
  return { xs, lines };
}

// Quota readings of one window kind → a line per credential, each reading held until the next
// (and until now).
function steps(history, window, until) {
  const rows = history.filter((r) => r.window === window);
  const xs = [...new Set(rows.map((r) => Math.round(r.at)))].sort((a, b) => a - b);
  if (xs.length) xs.push(Math.max(Math.round(until), xs[xs.length - 1] + 1));
  const index = new Map(xs.map((x, i) => [x, i]));
  const lines = {};
  for (const row of rows) {
    lines[row.credential] = lines[row.credential] || xs.map(() => null);
    lines[row.credential][index.get(Math.round(row.at))] = row.used_percent;
  }
  for (const values of Object.values(lines)) {
    for (let i = 1; i < values.length; i++) if (values[i] === null) values[i] = values[i - 1];
  }
  return { xs, lines };
}
