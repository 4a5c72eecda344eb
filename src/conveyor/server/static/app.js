// The Conveyor dashboard: plain DOM, fed by the API and its Server-Sent
// Events. Job data is untrusted, so everything goes in through textContent.
"use strict";

const ROOT = document.documentElement.dataset.root || "";  // where the API is mounted
const STATES = ["waiting", "active", "delayed", "completed", "failed", "waiting-children"];
const VIEWS = [...STATES, "dead letters", "schedules", "workers", "groups"];
const EVENTS = ["added", "delayed", "waiting", "waiting-children", "active", "progress", "completed",
  "retrying", "failed", "dead-lettered", "stalled", "removed", "deduplicated", "debounced", "gap"];
const PAGE = 50;
const WINDOW_MS = 120_000; // the throughput charts show the last two minutes
const BUCKET_MS = 2_000;

const ui = { queues: [], queue: null, view: "waiting", start: 0, search: "", job: null,
  events: null, history: {}, refresh: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(ROOT + path, { credentials: "same-origin", ...options,
    headers: { "content-type": "application/json", ...(options.headers || {}) } });
  if (response.status === 401) { window.location = `${ROOT}/dashboard/login`; throw new Error("signed out"); }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.status === 204 ? null : response.json();
}

const q = (name) => encodeURIComponent(name);
const when = (t) => (t ? new Date(t).toLocaleString() : "");
const json = (v) => JSON.stringify(v, null, 2);

// -- queues, live ---------------------------------------------------------------

function connectQueues() {
  const live = document.getElementById("live");
  const source = new EventSource(`${ROOT}/api/live/queues`);
  source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "reconnecting"; live.classList.remove("on"); });
  source.addEventListener("queues", (event) => {
    ui.queues = JSON.parse(event.data);
    const now = Date.now();
    for (const queue of ui.queues) {
      const samples = (ui.history[queue.name] = ui.history[queue.name] || []);
      samples.push({ t: now, done: queue.completed_total, failed: queue.failed_total });
      while (samples.length > 2 && samples[1].t < now - WINDOW_MS) samples.shift();
    }
    renderQueues();
    if (!ui.queue && ui.queues.length) selectQueue(firstQueue(ui.queues));
    else renderHead();
  });
}

// The queue the page opens on: one with live workers, the busiest first;
// else the one with the most jobs waiting or running; a queue left from an
// earlier run with nothing going on comes last.
function firstQueue(queues) {
  const busy = (queue) => ["waiting", "active", "delayed"].reduce((n, s) => n + (queue.counts[s] || 0), 0);
  const rank = (queue) => [queue.workers_alive > 0 ? 1 : 0, busy(queue), queue.completed_last_minute];
  const better = (a, b) => { const [x, y] = [rank(a), rank(b)];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] > y[i] ? a : b;
    return a; };
  return queues.reduce(better).name;
}

function renderQueues() {
  const nav = document.getElementById("queues");
  nav.replaceChildren(...ui.queues.map((queue) => el("div",
    { class: "q" + (queue.name === ui.queue ? " sel" : ""), "data-queue": queue.name,
      onclick: () => selectQueue(queue.name) },
    el("div", { class: "name" }, queue.name, queue.paused ? el("span", { class: "paused" }, " paused") : null),
    el("div", { class: "counts" }, STATES.map((s) =>
      el("span", { "data-state": s }, s + " ", el("b", {}, queue.counts[s] ?? 0)))),
    chart(queue.name, 220, 24, false))));
}

function current() { return ui.queues.find((queue) => queue.name === ui.queue); }

function selectQueue(name) {
  ui.queue = name; ui.view = "waiting"; ui.start = 0; ui.job = null;
  if (ui.events) ui.events.close();
  ui.events = new EventSource(`${ROOT}/api/queues/${q(name)}/events`);
  for (const type of EVENTS) ui.events.addEventListener(type, (event) => onJobEvent(type, event));
  renderQueues(); renderQueue(); renderDetail();
}

function onJobEvent(type, event) {
  const data = JSON.parse(event.data);
  if (type === "progress") {
    const bar = document.querySelector(`[data-progress="${CSS.escape(data.job_id || "")}"]`);
    if (bar) bar.style.width = percent(data.progress) + "%";
  }
  if (ui.job && data.job_id === ui.job) scheduleRefresh(true);
  scheduleRefresh(false);
}

function scheduleRefresh(detail) {
  if (detail) setTimeout(renderDetail, 150);
  if (ui.refresh) return;
  ui.refresh = setTimeout(() => { ui.refresh = null; renderList(); }, 250);
}

// -- one queue --------------------------------------------------------------------

function renderHead() {
  const queue = current();
  const head = document.getElementById("queue-head");
  if (!queue || !head) return;
  head.replaceChildren(
    el("h2", {}, queue.name),
    el("span", { class: "hint" }, `${queue.workers_alive} workers alive · ${queue.completed_last_minute} done, `
      + `${queue.failed_last_minute} failed in the last minute`),
    chart(queue.name, 360, 70, true),
    el("div", { class: "actions" },
      el("button", { onclick: () => act(`/api/queues/${q(queue.name)}/${queue.paused ? "resume" : "pause"}`) },
        queue.paused ? "Resume" : "Pause"),
      el("button", { class: "danger", onclick: () => confirmAct("Remove every completed job?",
        `/api/queues/${q(queue.name)}/clean`, { state: "completed", limit: 100000 }) }, "Clean completed"),
      el("button", { onclick: () => confirmAct("Replay every dead letter?",
        `/api/queues/${q(queue.name)}/dead-letters/replay`) }, "Replay dead letters")));
}

// Jobs finished per second over the last two minutes, from the totals the
// live feed carries: each rise is counted in the 2 s bucket it was seen in.
function throughput(name) {
  const samples = ui.history[name] || [];
  const now = Date.now();
  const buckets = WINDOW_MS / BUCKET_MS;
  const done = new Array(buckets).fill(0);
  const failed = new Array(buckets).fill(0);
  for (let i = 1; i < samples.length; i++) {
    const age = now - samples[i].t;
    if (age >= WINDOW_MS) continue;
    const slot = buckets - 1 - Math.floor(age / BUCKET_MS);
    done[slot] += Math.max(0, samples[i].done - samples[i - 1].done) / (BUCKET_MS / 1000);
    failed[slot] += Math.max(0, samples[i].failed - samples[i - 1].failed) / (BUCKET_MS / 1000);
  }
  return { done, failed };
}

function chart(name, width, height, labelled) {
  const { done, failed } = throughput(name);
  const canvas = el("canvas", { width, height, class: "chart", "data-chart": name,
    title: "jobs completed (blue) and failed (red) per second, last two minutes" });
  const ctx = canvas.getContext("2d");
  const top = Math.max(1, ...done, ...failed);
  const x = (i) => (i / (done.length - 1)) * (width - 2) + 1;
  const y = (v) => height - 2 - (v / top) * (height - (labelled ? 16 : 4));
  ctx.fillStyle = "rgba(74, 163, 255, 0.25)";
  ctx.beginPath(); ctx.moveTo(x(0), height);
  done.forEach((v, i) => ctx.lineTo(x(i), y(v)));
  ctx.lineTo(x(done.length - 1), height); ctx.fill();
  for (const [series, colour] of [[done, "#4aa3ff"], [failed, "#ff6b6b"]]) {
    if (!series.some((v) => v > 0) && series === failed) continue;
    ctx.strokeStyle = colour; ctx.beginPath();
    series.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
  }
  if (labelled) {
    const recent = (series) => series.slice(-3).reduce((a, b) => a + b, 0) / 3;
    ctx.fillStyle = "#9aa7b4"; ctx.font = "11px system-ui, sans-serif";
    const label = `${rate(recent(done))} done/s · ${rate(recent(failed))} failed/s · peak ${rate(top)}/s`;
    ctx.fillText(label, 4, 11);
    canvas.dataset.rate = rate(recent(done));
  }
  return canvas;
}

const rate = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

// The charts scroll with time even when no event arrives.
setInterval(() => { if (ui.queues.length) { renderQueues(); renderHead(); } }, BUCKET_MS);

function renderQueue() {
  const section = document.getElementById("queue");
  section.replaceChildren(
    el("div", { id: "queue-head", class: "head" }),
    el("div", { class: "tabs" }, VIEWS.map((view) => el("button",
      { class: view === ui.view ? "sel" : "", "data-view": view,
        onclick: () => { ui.view = view; ui.start = 0; renderQueue(); } }, view))),
    el("div", { id: "list" }),
    el("div", { class: "actions", id: "pager" },
      el("button", { onclick: () => { ui.start = Math.max(0, ui.start - PAGE); renderList(); } }, "Previous"),
      el("button", { onclick: () => { ui.start += PAGE; renderList(); } }, "Next")));
  renderHead();
  renderList();
}

async function renderList() {
  const list = document.getElementById("list");
  if (!list || !ui.queue) return;
  const base = `/api/queues/${q(ui.queue)}`;
  try {
    if (STATES.includes(ui.view)) {
      const params = new URLSearchParams({ state: ui.view, start: ui.start, count: PAGE, search: ui.search });
      list.replaceChildren(jobTable((await api(`${base}/jobs?${params}`)).jobs));
    } else if (ui.view === "dead letters") {
      const params = new URLSearchParams({ start: ui.start, count: PAGE, search: ui.search });
      list.replaceChildren(jobTable(await api(`${base}/dead-letters?${params}`)));
    } else if (ui.view === "schedules") {
      list.replaceChildren(table(["key", "job", "when", "runs", "next run", ""], (await api(`${base}/schedules`)).map(
        (s) => [s.key, s.name, s.cron ? `${s.cron} (${s.tz})` : `every ${s.every}s`, s.runs, when(s.next_run),
          el("button", { class: "danger", onclick: () => confirmAct(`Remove schedule ${s.key}?`,
            `${base}/schedules/${q(s.key)}`, null, "DELETE") }, "Remove")])));
    } else if (ui.view === "workers") {
      list.replaceChildren(table(["worker", "host", "pid", "alive", "jobs", "done", "failed", "last seen"],
        (await api(`${base}/workers`)).map((w) => [w.id, w.host, w.pid, w.alive ? "yes" : "no",
          w.jobs.join(", "), w.processed, w.failed, when(w.last_seen)])));
    } else {
      list.replaceChildren(table(["group", "waiting", "active", "state"],
        (await api(`${base}/groups`)).map((g) => [g.name, g.waiting, g.active, g.state])));
    }
  } catch (error) {
    list.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

function table(columns, rows) {
  if (!rows.length) return el("p", { class: "hint" }, "Nothing here.");
  return el("table", {}, el("tr", {}, columns.map((c) => el("th", {}, c))),
    rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell)))));
}

function percent(progress) {
  if (typeof progress === "number") return Math.max(0, Math.min(100, progress));
  if (progress && typeof progress.percent === "number") return Math.max(0, Math.min(100, progress.percent));
  return null;
}

function progressBar(job) {
  const value = percent(job.progress) ?? (job.state === "active" ? 0 : null);
  if (value === null) return "";
  // a failed job's progress stopped where it failed: shown as failed, not as running
  const failed = job.state === "failed";
  return el("div", { class: failed ? "bar failed" : "bar", title: failed ? `failed at ${value}%` : `${value}%` },
    el("div", { style: `width:${value}%`, "data-progress": job.id }));
}

// A job's error cell: a failed job's error; a job that will be retried
// shows its last attempt's error as a hint; a completed one shows none.
function errorCell(job) {
  if (job.outcome_error) return el("span", { class: "error" }, job.outcome_error.slice(0, 80));
  if (job.error && ["waiting", "delayed", "active"].includes(job.state))
    return el("span", { class: "hint" }, "last attempt: " + job.error.slice(0, 66));
  return "";
}

function jobTable(jobs) {
  if (!jobs.length) return el("p", { class: "hint" }, "No jobs.");
  return el("table", {},
    el("tr", {}, ["id", "name", "state", "attempt", "progress", "created", "error"].map((c) => el("th", {}, c))),
    jobs.map((job) => el("tr", { class: "job", "data-job": job.id, onclick: () => { ui.job = job.id; renderDetail(); } },
      el("td", {}, job.id), el("td", {}, job.name), el("td", { class: "state-" + job.state }, job.state),
      el("td", { "data-attempt": job.id }, job.attempt), el("td", {}, progressBar(job)),
      el("td", {}, when(job.created_at)), el("td", { "data-error": job.id }, errorCell(job)))));
}

// -- one job ------------------------------------------------------------------------

async function renderDetail() {
  const aside = document.getElementById("detail");
  if (!ui.job || !ui.queue) { aside.replaceChildren(el("p", { class: "hint" }, "Pick a job.")); return; }
  const base = `/api/queues/${q(ui.queue)}/jobs/${q(ui.job)}`;
  let job;
  try { job = await api(base); } catch (error) {
    aside.replaceChildren(el("p", { class: "error" }, error.message)); return;
  }
  const actions = [];
  if (job.state === "failed") actions.push(el("button", { onclick: () => act(`${base}/retry`) }, "Retry"));
  if (job.state === "delayed") actions.push(el("button", { onclick: () => act(`${base}/promote`) }, "Run now"));
  if (["waiting", "delayed", "active"].includes(job.state))
    actions.push(el("button", { class: "danger", onclick: () => confirmAct("Cancel this job?", `${base}/cancel`, {}) }, "Cancel"));
  if (job.state !== "active")
    actions.push(el("button", { class: "danger", onclick: () => confirmAct("Remove this job?", base, null, "DELETE")
      .then(() => { ui.job = null; renderDetail(); }) }, "Remove"));
  aside.replaceChildren(...[
    el("h3", {}, `${job.name} · ${job.id}`),
    el("div", { class: "actions" }, actions),
    el("dl", {}, [
      ["state", el("span", { class: "state-" + job.state, id: "job-state" }, job.state)],
      ["attempt", el("span", { id: "job-attempt" }, job.attempt
        + (job.attempts_made ? ` (${job.attempts_made} failed)` : ""))],
      ["created", when(job.created_at)], ["started", when(job.started_at)], ["finished", when(job.finished_at)],
      ["run at", when(job.run_at)], ["worker", job.worker_id || ""], ["progress", progressBar(job)],
    ].flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("h4", {}, "Data"), el("pre", {}, json(job.data)),
    el("h4", {}, "Options"), el("ul", { class: "options", id: "job-options" },
      job.options_summary.map((line) => el("li", {}, line))),
    job.result !== null ? [el("h4", {}, "Result"), el("pre", {}, json(job.result))] : [],
    job.outcome_error ? [el("h4", {}, "Error"), el("pre", { class: "error", id: "job-error" }, job.outcome_error)] : [],
    job.outcome_error && job.traceback
      ? [el("h4", {}, "Traceback"), el("pre", { class: "traceback" }, job.traceback)] : [],
    job.history.length ? [el("h4", {}, "Attempts"), table(["attempt", "error", "at"],
      job.history.map((h) => [h.attempt, h.error, when(h.at)]))] : [],
    job.logs && job.logs.length ? [el("h4", {}, "Logs"), el("pre", {}, job.logs.join("\n"))] : [],
  ].flat());
}

async function act(path, body = null, method = "POST") {
  try {
    await api(path, { method, body: body === null ? undefined : JSON.stringify(body) });
  } catch (error) { alert(error.message); }
  renderList(); renderDetail();
}

function confirmAct(question, path, body = null, method = "POST") {
  if (!window.confirm(question)) return Promise.resolve();
  return act(path, body, method);
}

document.getElementById("search").addEventListener("input", (event) => {
  ui.search = event.target.value.trim(); ui.start = 0; scheduleRefresh(false);
});
connectQueues();
