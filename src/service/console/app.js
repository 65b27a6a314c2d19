// ferry console: a client of the task service's REST API and nothing else. Plain JavaScript,
// hash routes: #/login, #/ (tasks), #/new, #/task/NAME, #/edit/NAME.
"use strict";

const main = document.getElementById("main");
const STATES = ["initialized", "checking", "check-error", "running", "stopping", "paused", "stopped", "finished", "failed", "operating"];
// What a start may be from, by state (the service answers 409 with the same list otherwise).
const STARTS = {
  initialized: ["default"], paused: ["savepoint", "default"], stopped: ["latest", "default"],
  failed: ["latest", "default"], finished: ["default"],
};
let timer = null;
// The page shown; an answer that comes back after the page changed is dropped.
let page = 0;
// Run when the page is left (the edit page releases its lock).
let onLeave = null;
const holder = sessionStorage.getItem("ferry-holder") || ("console-" + Math.random().toString(36).slice(2, 8));
sessionStorage.setItem("ferry-holder", holder);

function token() { return sessionStorage.getItem("ferry-token") || ""; }

async function api(method, path, body, headers) {
  const h = Object.assign({ Authorization: "Bearer " + token() }, headers || {});
  const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : body });
  if (r.status === 401) { location.hash = "#/login"; throw new Error("log in first"); }
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { json = null; }
  return { status: r.status, json, text };
}

function esc(s) {
  return String(s === undefined || s === null ? "" : s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function stateBadge(s) { return `<span class="state state-${esc(s)}">${esc(s)}</span>`; }
function num(v, digits) { return v === undefined || v === null ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits || 0 }); }
function lag(v) { return v === undefined || v === null ? "–" : Number(v).toFixed(1) + " s"; }
function when(micros) { return micros ? new Date(micros / 1000).toISOString().replace("T", " ").slice(0, 19) : "–"; }
function short(s, n) { s = s || ""; return s.length > n ? s.slice(0, n - 1) + "…" : s; }
function msg(el, text, kind) { el.innerHTML = text ? `<div class="msg ${kind || "error"}" role="status">${esc(text)}</div>` : ""; }

function confirmAction(text) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise(resolve => {
    d.addEventListener("close", () => resolve(d.returnValue === "yes"), { once: true });
    d.showModal();
  });
}

// ---- login
function loginPage() {
  main.innerHTML = `<h1>Log in</h1>
    <form id="login-form" class="row">
      <label for="token">API token</label>
      <input id="token" type="password" autocomplete="current-password" size="50" required>
      <button type="submit" id="login-btn">Log in</button>
    </form>
    <p><small>The token is in the service's token file (<code>&lt;state&gt;/token</code>); it is kept for this browser tab only.</small></p>
    <div id="login-msg" aria-live="polite"></div>`;
  document.getElementById("login-form").addEventListener("submit", async e => {
    e.preventDefault();
    sessionStorage.setItem("ferry-token", document.getElementById("token").value.trim());
    const r = await fetch("/api/tasks", { headers: { Authorization: "Bearer " + token() } });
    if (r.status === 200) { location.hash = "#/"; } else { msg(document.getElementById("login-msg"), "The service refused this token."); }
  });
}

// ---- tasks
function tasksPage() {
  main.innerHTML = `<h1>Tasks</h1>
    <div class="row">
      <label for="state-filter">State</label>
      <select id="state-filter"><option value="">all</option>${STATES.map(s => `<option>${s}</option>`).join("")}</select>
      <label for="name-filter">Name</label><input id="name-filter" type="search" placeholder="filter">
      <a href="#/new">New task</a>
    </div>
    <div class="scroll"><table id="tasks"><thead><tr><th>Task</th><th>State</th><th>Phase</th><th class="num">Version</th>
      <th class="num">Rows/s</th><th class="num">Lag</th><th class="num">Dirty</th><th class="hide-narrow">Last error</th></tr></thead><tbody></tbody></table></div>
    <div id="tasks-msg" aria-live="polite"></div>`;
  let all = [];
  const render = () => {
    const st = document.getElementById("state-filter").value;
    const name = document.getElementById("name-filter").value.toLowerCase();
    const rows = all.filter(t => (!st || t.state === st) && (!name || t.task.toLowerCase().includes(name)));
    document.querySelector("#tasks tbody").innerHTML = rows.map(t => `<tr data-task="${esc(t.task)}">
      <td><a class="task-link" href="#/task/${encodeURIComponent(t.task)}">${esc(t.task)}</a></td><td>${stateBadge(t.state)}</td>
      <td>${esc(t.phase || "–")}</td><td class="num">${esc(t.version)}</td><td class="num">${num(t.rows_per_second)}</td>
      <td class="num">${lag(t.lag_seconds)}</td><td class="num">${num(t.dirty)}</td>
      <td class="hide-narrow" title="${esc(t.last_error)}">${esc(short(t.last_error, 80))}</td></tr>`).join("")
      || `<tr><td colspan="8">No task${all.length ? " matches" : " yet: create one"}.</td></tr>`;
  };
  document.getElementById("state-filter").addEventListener("change", render);
  document.getElementById("name-filter").addEventListener("input", render);
  const me = page;
  const load = async () => {
    const r = await api("GET", "/api/tasks");
    if (me !== page) return;
    if (r.status === 200) { all = r.json.tasks; render(); } else { msg(document.getElementById("tasks-msg"), r.text); }
  };
  load();
  timer = setInterval(load, 2000);
}

// ---- plan form (new and edit)
function showPlanErrors(text, located) {
  const lines = text.split("\n");
  const bad = new Map((located || []).map(e => [e.line, e]));
  const list = (located || []).map(e => `<li class="error-line" data-line="${e.line}">line ${e.line}${e.key ? ` (${esc(e.key)})` : ""}: ${esc(e.message)}</li>`).join("");
  document.getElementById("plan-errors").innerHTML = located && located.length
    ? `<div class="msg error" role="alert">${located.length} error(s) in the plan<ul>${list}</ul></div>
       <ol class="lines" id="plan-view">${lines.map((l, i) => `<li${bad.has(i + 1) ? ` class="bad" title="${esc(bad.get(i + 1).message)}"` : ""}>${esc(l) || " "}</li>`).join("")}</ol>`
    : "";
}

function showChecks(j) {
  const checks = (j.checks || []).map(c => `<tr class="check" data-name="${esc(c.name)}"><td>${esc(c.name)}</td>
    <td class="level-${esc(c.level)}">${esc(c.level)}${c.acknowledged ? " (acknowledged)" : ""}</td><td>${esc(c.message).replace(/\n/g, "<br>")}</td></tr>`).join("");
  const preview = (Array.isArray(j.preview) ? j.preview : []).map(p => `<tr><td>${esc(p.source)}</td><td>${esc(p.target)}</td>
    <td>${p.target_exists === true ? "exists" : p.target_exists === false ? "will be created" : "–"}</td>
    <td>${esc(p.key && (p.key.columns || p.key.name) ? JSON.stringify(p.key.columns || p.key.name) : "")}</td>
    <td class="${p.verdict ? "level-error" : "level-ok"}">${esc(p.verdict || "runs")}</td><td class="num">${(p.losses || []).length}</td></tr>`).join("");
  document.getElementById("checks").innerHTML = `<h2>Checks</h2><div class="scroll"><table id="check-table"><thead><tr><th>Check</th><th>Verdict</th><th>Message</th></tr></thead><tbody>${checks}</tbody></table></div>
    ${preview ? `<h2>Mapping</h2><div class="scroll"><table id="preview"><thead><tr><th>Source</th><th>Target</th><th>Target table</th><th>Key</th><th>Verdict</th><th class="num">Type losses</th></tr></thead><tbody>${preview}</tbody></table></div>` : ""}`;
}

function planForm(title, text, onSave, extra) {
  main.innerHTML = `<h1>${esc(title)}</h1>
    ${extra || ""}
    <label for="plan">Plan (YAML)</label>
    <textarea id="plan" spellcheck="false">${esc(text)}</textarea>
    <div class="row"><label for="plan-file">or upload</label><input id="plan-file" type="file" accept=".yaml,.yml">
      <button type="button" id="check-btn" class="secondary">Check</button><button type="button" id="save-btn">Save</button></div>
    <div id="form-msg" aria-live="polite"></div><div id="plan-errors"></div><div id="checks"></div>`;
  const area = document.getElementById("plan");
  document.getElementById("plan-file").addEventListener("change", async e => { const f = e.target.files[0]; if (f) area.value = await f.text(); });
  document.getElementById("check-btn").addEventListener("click", async () => {
    msg(document.getElementById("form-msg"), "Checking…", "ok");
    const r = await api("POST", "/api/check", area.value);
    msg(document.getElementById("form-msg"), r.status === 200 ? (r.json.ok ? "The checks passed." : "The checks found errors.") : r.text, r.status === 200 && r.json.ok ? "ok" : "error");
    if (r.json) { showPlanErrors(area.value, r.json.located); showChecks(r.json); }
  });
  document.getElementById("save-btn").addEventListener("click", () => onSave(area.value));
}

// Plan errors first (the check answers 200 with them): a plan that does not parse is shown on
// its lines without being sent to be saved.
async function planErrors(text) {
  const c = await api("POST", "/api/check", text);
  const located = c.json && c.json.located ? c.json.located : [];
  if (located.length) {
    msg(document.getElementById("form-msg"), `The plan has ${located.length} error(s).`);
    showPlanErrors(text, located);
    return true;
  }
  return false;
}

function newPage() {
  planForm("New task", "", async text => {
    if (await planErrors(text)) return;
    const r = await api("POST", "/api/tasks", text);
    if (r.status === 201) { location.hash = "#/task/" + encodeURIComponent(r.json.task); return; }
    msg(document.getElementById("form-msg"), r.json ? r.json.error : r.text);
    if (r.json) showPlanErrors(text, r.json.located);
  });
}

async function editPage(task) {
  const me = page;
  const t = await api("GET", `/api/tasks/${encodeURIComponent(task)}`);
  if (me !== page) return;
  if (t.status !== 200) { main.innerHTML = `<p>${esc(t.text)}</p>`; return; }
  const version = t.json.version;
  const v = await api("GET", `/api/tasks/${encodeURIComponent(task)}/versions/${version}`);
  const lock = await api("POST", `/api/tasks/${encodeURIComponent(task)}/lock`, JSON.stringify({ holder, ttl_seconds: 900 }));
  if (me !== page) return;
  const locked = lock.status === 200;
  if (locked) {
    onLeave = () => api("DELETE", `/api/tasks/${encodeURIComponent(task)}/lock`, undefined, { "Ferry-Lock-Holder": holder });
  }
  planForm(`Edit ${task} (version ${version})`, v.text, async text => {
    if (await planErrors(text)) return;
    const r = await api("PUT", `/api/tasks/${encodeURIComponent(task)}/plan`, text, { "If-Match": String(version), "Ferry-Lock-Holder": holder });
    if (r.status === 200) {
      // Leaving the page releases the lock.
      location.hash = "#/task/" + encodeURIComponent(task);
      return;
    }
    msg(document.getElementById("form-msg"), r.json ? r.json.error : r.text);
    if (r.json) showPlanErrors(text, r.json.located);
  }, locked ? `<p class="msg ok">You hold the edit lock (as ${esc(holder)}).</p>`
            : `<p class="msg error" role="alert">${esc(lock.json ? lock.json.error : lock.text)}: saving will be refused.</p>`);
  if (!locked) document.getElementById("save-btn").disabled = true;
}

// ---- task
function chart(series) {
  if (!series || series.length < 2) return `<p><small>The chart fills as the task runs (a point every 10 s, the last hour).</small></p>`;
  const w = 600, h = 140, t0 = series[0][0], t1 = series[series.length - 1][0];
  const maxR = Math.max(1, ...series.map(s => s[1] || 0)), maxL = Math.max(1, ...series.map(s => s[2] || 0));
  const x = t => ((t - t0) / Math.max(1, t1 - t0)) * (w - 10) + 5;
  const line = (f, max) => series.map(s => `${x(s[0]).toFixed(1)},${(h - 5 - ((f(s) || 0) / max) * (h - 20)).toFixed(1)}`).join(" ");
  return `<svg class="chart" viewBox="0 0 ${w} ${h}" role="img" aria-label="rows per second (blue, up to ${num(maxR)}) and lag (red, up to ${maxL.toFixed(1)} s) over the last hour">
    <polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="${line(s => s[1], maxR)}"/>
    <polyline fill="none" stroke="#b42318" stroke-width="2" points="${line(s => s[2], maxL)}"/>
    <text x="8" y="14" font-size="11" fill="#1f5fbf">rows/s ≤ ${num(maxR)}</text><text x="160" y="14" font-size="11" fill="#b42318">lag ≤ ${maxL.toFixed(1)} s</text></svg>`;
}

function diffLines(a, b) {
  // Longest common subsequence of lines: rows of [left, right, kind].
  const n = a.length, m = b.length, dp = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = []; let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push([a[i], b[j], ""]); i++; j++; }
    else if (j < m && (i >= n || dp[i][j + 1] >= dp[i + 1][j])) { out.push(["", b[j], "add"]); j++; }
    else { out.push([a[i], "", "del"]); i++; }
  }
  return out;
}

async function taskPage(task) {
  const me = page;
  const path = `/api/tasks/${encodeURIComponent(task)}`;
  main.innerHTML = `<h1>${esc(task)} <span id="task-state"></span></h1>
    <div id="summary" class="cards"></div>
    <div class="row" id="actions"></div><div id="action-msg" aria-live="polite"></div><div id="checks"></div>
    <h2>Tables</h2><div class="scroll"><table id="progress"><thead><tr><th>Source</th><th>Target</th><th>Snapshot chunks</th><th class="num">Rows</th><th class="hide-narrow">Last change</th></tr></thead><tbody></tbody></table></div>
    <h2>Throughput and lag</h2><div id="chart"></div>
    <h2>Dirty data</h2><div id="dirty"></div>
    <h2>Alerts</h2><div id="alerts"></div>
    <h2>History</h2><ol id="history"></ol>
    <h2>Versions</h2><div id="versions"></div>`;
  let state = null;
  const act = async (label, method, p, body, danger) => {
    if (danger && !(await confirmAction(`${label} task ${task}?`))) return;
    const r = await api(method, path + p, body);
    if (me !== page) return;
    msg(document.getElementById("action-msg"), `${label}: ${r.status < 300 ? "done" : (r.json ? r.json.error : r.text)}`, r.status < 300 ? "ok" : "error");
    if (r.status < 300 && method === "DELETE" && p === "") { location.hash = "#/"; return; }
    if (p === "/check" && r.json) showChecks(r.json);
    refresh();
  };
  const actions = s => {
    const starts = STARTS[s] || [];
    const el = document.getElementById("actions");
    el.innerHTML = `${starts.length ? `<label for="start-from">Start from</label><select id="start-from">${starts.map(f => `<option>${f}</option>`).join("")}</select><button id="start-btn">Start</button>` : ""}
      ${s === "running" ? `<button id="stop-btn">Stop with savepoint</button><button id="cancel-btn" class="danger">Forced stop</button><button id="restart-btn" class="secondary">Restart</button>` : ""}
      ${["paused", "stopped", "failed"].includes(s) ? `<button id="resume-btn">Resume</button>` : ""}
      ${["running", "stopping", "operating", "checking"].includes(s) ? "" : `<button id="taskcheck-btn" class="secondary">Check</button>`}
      <a href="#/edit/${encodeURIComponent(task)}" id="edit-link">Edit plan</a>
      ${["running", "stopping", "operating", "checking"].includes(s) ? "" : `<button id="delete-btn" class="danger">Delete</button>`}`;
    const on = (id, f) => { const b = document.getElementById(id); if (b) b.addEventListener("click", f); };
    on("start-btn", () => act("Start", "POST", "/start", JSON.stringify({ from: document.getElementById("start-from").value })));
    on("stop-btn", () => act("Stop with savepoint", "POST", "/stop", JSON.stringify({ mode: "savepoint" })));
    on("cancel-btn", () => act("Forced stop", "POST", "/stop", JSON.stringify({ mode: "cancel" }), true));
    on("restart-btn", () => act("Restart", "POST", "/restart", undefined, true));
    on("resume-btn", () => act("Resume", "POST", "/resume"));
    on("taskcheck-btn", () => act("Check", "POST", "/check", "{}"));
    on("delete-btn", () => act("Delete", "DELETE", "", undefined, true));
  };
  const refresh = async () => {
    const r = await api("GET", path);
    if (me !== page) return;
    if (r.status !== 200) { msg(document.getElementById("action-msg"), r.text); return; }
    const t = r.json;
    document.getElementById("task-state").innerHTML = stateBadge(t.state);
    if (t.state !== state) { state = t.state; actions(state); }
    const card = (label, v, id) => `<div class="card"${id ? ` id="${id}"` : ""}><small>${label}</small><b>${v}</b></div>`;
    document.getElementById("summary").innerHTML = card("Phase", esc(t.phase || "–")) + card("Version", `${esc(t.version)}${t.run_version ? ` (runs ${esc(t.run_version)})` : ""}`)
      + card("Workers", num(t.workers)) + card("Rows in", num(t.rows_in)) + card("Rows out", num(t.rows_out), "rows-out")
      + card("Rows/s", num(t.rows_per_second)) + card("Lag", lag(t.lag_seconds)) + card("Dirty rows", num(t.dirty))
      + (t.last_error ? `<div class="card" style="grid-column: 1 / -1"><small>Last error</small><span id="last-error">${esc(t.last_error)}</span></div>` : "");
    document.querySelector("#progress tbody").innerHTML = (t.tables || []).map(p => {
      const pct = p.chunks_total ? Math.round(100 * p.chunks_done / p.chunks_total) : 100;
      return `<tr class="table-row" data-table="${esc(p.source)}"><td>${esc(p.source)}</td><td>${esc(p.target)}</td>
        <td><div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${pct}" aria-label="snapshot of ${esc(p.source)}"><span style="width:${pct}%"></span></div>
        <small>${p.chunks_total ? `${p.chunks_done}/${p.chunks_total}` : "no snapshot chunks"}</small></td>
        <td class="num rows">${num(p.rows)}</td><td class="hide-narrow">${when(p.last_change_micros)}</td></tr>`;
    }).join("") || `<tr><td colspan="5">No run yet.</td></tr>`;
    document.getElementById("chart").innerHTML = chart(t.series);
    document.getElementById("history").innerHTML = (t.history || []).map(h => `<li>${when(h.at_micros)} ${stateBadge(h.state)} ${esc(h.note)}</li>`).join("");
    const al = await api("GET", path + "/alerts");
    if (me !== page) return;
    document.getElementById("alerts").innerHTML = al.json && al.json.alerts.length
      ? `<div class="scroll"><table><thead><tr><th>Rule</th><th>Message</th><th>Fired</th><th>Resolved</th></tr></thead><tbody>${al.json.alerts.map(a => `<tr><td>${esc(a.rule)}</td><td>${esc(a.message)}</td><td>${when(a.fired_micros)}</td><td>${when(a.resolved_micros)}</td></tr>`).join("")}</tbody></table></div>`
      : "<p>No alerts.</p>";
  };
  const loadDirty = async () => {
    const d = await api("GET", path + "/dirty");
    if (me !== page) return;
    const j = d.json || { total: 0, per: [], rows: [] };
    document.getElementById("dirty").innerHTML = j.total
      ? `<p id="dirty-total">${num(j.total)} dirty row(s)</p><div class="scroll"><table id="dirty-per"><thead><tr><th>Table</th><th>Reason</th><th class="num">Rows</th></tr></thead><tbody>
          ${j.per.map(p => `<tr><td>${esc(p.table)}</td><td>${esc(p.reason)}</td><td class="num">${num(p.rows)}</td></tr>`).join("")}</tbody></table></div>
         <pre class="rows" id="dirty-rows">${esc(j.rows.map(r => JSON.stringify(r)).join("\n"))}</pre>
         <div class="row"><button id="replay-btn">Replay the dirty rows</button><small>once the cause is fixed, with the task stopped</small></div><div id="replay-msg" aria-live="polite"></div>`
      : `<p id="dirty-total">No dirty rows.</p>`;
    const b = document.getElementById("replay-btn");
    if (b) b.addEventListener("click", async () => {
      if (!(await confirmAction(`Replay the dirty rows of ${task} into its target?`))) return;
      const r = await api("POST", path + "/dirty/replay");
      if (me !== page) return;
      msg(document.getElementById("replay-msg"), r.json ? (r.json.output || r.json.error) : r.text, r.status === 200 ? "ok" : "error");
      setTimeout(loadDirty, 300);
    });
  };
  const loadVersions = async () => {
    const v = await api("GET", path + "/versions");
    if (me !== page) return;
    const list = v.json ? v.json.versions : [];
    const opts = sel => list.map(n => `<option${n === sel ? " selected" : ""}>${n}</option>`).join("");
    const last = list[list.length - 1], prev = list.length > 1 ? list[list.length - 2] : last;
    document.getElementById("versions").innerHTML = `<div class="row"><label for="diff-a">Compare version</label><select id="diff-a">${opts(prev)}</select>
      <label for="diff-b">with</label><select id="diff-b">${opts(last)}</select><button id="diff-btn" class="secondary">Show</button></div><div id="diff"></div>`;
    document.getElementById("diff-btn").addEventListener("click", async () => {
      const a = document.getElementById("diff-a").value, b = document.getElementById("diff-b").value;
      const [ta, tb] = await Promise.all([api("GET", `${path}/versions/${a}`), api("GET", `${path}/versions/${b}`)]);
      if (me !== page) return;
      const rows = diffLines(ta.text.split("\n"), tb.text.split("\n"));
      document.getElementById("diff").innerHTML = `<div class="scroll"><table class="diff" id="diff-table"><thead><tr><th>version ${esc(a)}</th><th>version ${esc(b)}</th></tr></thead><tbody>
        ${rows.map(([l, r, k]) => `<tr><td class="${k === "del" ? "del" : ""}">${esc(l)}</td><td class="${k === "add" ? "add" : ""}">${esc(r)}</td></tr>`).join("")}</tbody></table></div>`;
    });
  };
  await refresh();
  loadDirty();
  loadVersions();
  timer = setInterval(refresh, 2000);
}

// ---- routes
function route() {
  if (timer) { clearInterval(timer); timer = null; }
  if (onLeave) { const f = onLeave; onLeave = null; f(); }
  page++;
  const h = location.hash || "#/";
  if (!token() && h !== "#/login") { location.hash = "#/login"; return; }
  const [, which, arg] = h.match(/^#\/([a-z]*)\/?(.*)$/) || [];
  const name = decodeURIComponent(arg || "");
  const pages = { login: loginPage, "": tasksPage, new: newPage, task: () => taskPage(name), edit: () => editPage(name) };
  (pages[which] || tasksPage)();
  main.focus();
}
document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem("ferry-token"); location.hash = "#/login"; });
window.addEventListener("hashchange", route);
route();
