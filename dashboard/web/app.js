// The picos dashboard page: loads the state once (/api/state), then applies
// the deltas its WebSocket (/ws) pushes (dashboard/model.h says their
// form). Views by the URL's hash: #cluster, #node/<uri>, #worker/<uri>,
// #stream, #progress, #events. No library: the page works offline.
"use strict";

const S = { nodes: {}, workers: {}, running: {}, finished: [], fns: {}, events: [],
            seq: 0, csrf: "", computation: {}, loaded: false, maxFinished: 2000 };
// For the browser test: how long after a job ended the page showed it (ms).
window.picosLatency = [];
let pending = [];   // deltas that arrived before the state
let sortKey = "uri", sortUp = true;
let ws = null, renderTimer = null, endedSinceRender = [];

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "style") Object.assign(e.style, v);  // CSSOM: the CSP refuses style attributes
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
const fmtBytes = b => b >= 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GiB" : (b / (1 << 20)).toFixed(0) + " MiB";
const fmtTime = ms => ms ? new Date(ms).toLocaleTimeString() : "";
const ago = ms => ms ? Math.max(0, Math.round((Date.now() - ms) / 1000)) + " s ago" : "never";
function colour(fn) {
  let h = 0;
  for (const c of fn) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h},60%,50%)`;
}
function notice(text) { document.getElementById("notice").textContent = text; }

function apply(d) {
  if (d.t === "hello") return;
  if (d.seq <= S.seq) return;
  S.seq = d.seq;
  const v = d.v;
  if (d.t === "node") S.nodes[v.uri] = v;
  else if (d.t === "worker") S.workers[v.uri] = v;
  else if (d.t === "fn") S.fns[v.fn] = v;
  else if (d.t === "computation") S.computation = v;
  else if (d.t === "event") { S.events.push(v); if (S.events.length > 500) S.events.shift(); }
  else if (d.t === "job") {
    if (v.outcome === "running") S.running[v.id] = v;
    else {
      delete S.running[v.id];
      S.finished.push(v);
      if (S.finished.length > S.maxFinished) S.finished.shift();
      endedSinceRender.push(v.end);
    }
  }
}

function loadState() {
  return fetch("/api/state", { credentials: "same-origin" }).then(r => {
    if (r.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
    return r.json();
  }).then(st => {
    S.nodes = {}; S.workers = {}; S.running = {}; S.fns = {};
    for (const n of st.nodes) S.nodes[n.uri] = n;
    for (const w of st.workers) S.workers[w.uri] = w;
    for (const j of st.running) S.running[j.id] = j;
    for (const f of st.fns) S.fns[f.fn] = f;
    S.finished = st.finished; S.events = st.events; S.seq = st.seq; S.csrf = st.csrf;
    S.computation = st.computation; S.loaded = true;
    for (const d of pending) apply(d);
    pending = [];
    render();
  });
}

function connect() {
  const live = document.getElementById("live");
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { live.textContent = "live"; live.className = ""; loadState().catch(e => notice(String(e))); };
  ws.onmessage = m => {
    const d = JSON.parse(m.data);
    if (!S.loaded) { pending.push(d); return; }
    apply(d);
    scheduleRender();
  };
  ws.onclose = () => {
    live.textContent = "reconnecting"; live.className = "off"; S.loaded = false;
    setTimeout(connect, 2000);
  };
}

function scheduleRender() {
  if (renderTimer === null) renderTimer = setTimeout(render, 50);  // deltas come in bursts: one render each
}

function act(op, body, question) {
  if (!confirm(question)) return;
  body.op = op;
  fetch("/api/action", { method: "POST", credentials: "same-origin",
                         headers: { "Content-Type": "application/json", "X-CSRF-Token": S.csrf },
                         body: JSON.stringify(body) })
    .then(r => r.text().then(t => notice(r.ok ? `${op}: done` : `${op}: ${r.status} ${t}`)))
    .catch(e => notice(`${op}: ${e}`));
}

function table(cols, rows, sortable) {
  const head = el("tr", {}, cols.map(c => el("th", sortable ? { onclick: () => {
    sortUp = sortKey === c[0] ? !sortUp : true; sortKey = c[0]; render(); } } : {},
    c[1] + (sortable && sortKey === c[0] ? (sortUp ? " ▲" : " ▼") : ""))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, rows));
}
const num = x => el("td", { class: "num" }, x);

function clusterView() {
  const nodes = Object.values(S.nodes);
  nodes.sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return sortUp ? c : -c;
  });
  const rows = nodes.map(n => el("tr", { id: "node-" + n.uri, class: "state-" + n.state },
    el("td", {}, el("a", { href: "#node/" + encodeURIComponent(n.uri) }, n.uri)),
    el("td", {}, n.host), el("td", {}, n.state), num(n.workers), num(n.submitted), num(n.done),
    num(n.running), num(n.failed), num(n.cpu_avail.toFixed(0) + " %"),
    num(fmtBytes(n.mem_avail) + " / " + fmtBytes(n.mem_total)), num(fmtBytes(n.disk_free)),
    num(fmtBytes(n.swap_free)), num(n.load.map(x => x.toFixed(2)).join(" ")), el("td", {}, ago(n.pulse)),
    el("td", {}, n.state === "disabled" ? "waits for EnableNode"
      : n.state === "suspended"
      ? el("button", { onclick: () => act("resume_node", { target: n.uri }, `Resume node ${n.uri}?`) }, "Resume")
      : el("button", { onclick: () => act("suspend_node", { target: n.uri }, `Suspend node ${n.uri}?`) }, "Suspend"))));
  return [el("h2", {}, `Cluster: ${nodes.length} nodes`),
    table([["uri", "Node"], ["host", "Host"], ["state", "State"], ["workers", "Workers"],
           ["submitted", "Submitted"], ["done", "Done"], ["running", "Running"], ["failed", "Failed"],
           ["cpu_avail", "CPU avail"], ["mem_avail", "Memory avail"], ["disk_free", "Disk free"],
           ["swap_free", "Swap free"], ["load", "Load"], ["pulse", "Last pulse"], ["", ""]], rows, true)];
}

function jobLabel(id) { const j = S.running[id]; return j ? `${j.id} ${j.fn}` : String(id); }

function nodeView(uri) {
  const n = S.nodes[uri];
  const workers = Object.values(S.workers).filter(w => w.node === uri);
  const rows = workers.map(w => el("tr", { class: "state-" + w.state },
    el("td", {}, el("a", { href: "#worker/" + encodeURIComponent(w.uri) }, w.uri)), el("td", {}, w.state),
    num(w.done), el("td", {}, w.jobs.map(j => `${j.id} ${j.fn}`).join(", ")),
    el("td", {}, w.state === "disabled" ? "waits for EnableWorker"
      : w.state === "suspended"
      ? el("button", { onclick: () => act("resume_worker", { target: w.uri }, `Resume worker ${w.uri}?`) }, "Resume")
      : el("button", { onclick: () => act("suspend_worker", { target: w.uri }, `Suspend worker ${w.uri}?`) }, "Suspend"))));
  return [el("h2", {}, `Node ${uri}` + (n ? ` (${n.host}, ${n.state})` : "")),
    table([["uri", "Worker"], ["state", "State"], ["done", "Done"], ["jobs", "Running jobs"], ["", ""]], rows, false)];
}

function jobRows(jobs) {
  return jobs.map(j => el("tr", { id: "job-" + j.id },
    num(j.id), el("td", {}, j.fn), el("td", {}, j.arg), el("td", {}, fmtTime(j.start)),
    el("td", {}, el("a", { href: "#worker/" + encodeURIComponent(j.worker) }, j.worker)),
    el("td", {}, el("button", { id: "terminate-" + j.id,
      onclick: () => act("terminate_job", { job: j.id }, `Terminate job ${j.id} (${j.fn})?`) }, "Terminate"))));
}

function workerView(uri) {
  const w = S.workers[uri];
  const jobs = Object.values(S.running).filter(j => j.worker === uri);
  return [el("h2", {}, `Worker ${uri}` + (w ? ` (${w.state}, ${w.done} done)` : "")),
    table([["id", "Job"], ["fn", "Function"], ["arg", "Arguments"], ["start", "Started"], ["worker", "Worker"], ["", ""]],
          jobRows(jobs), false)];
}

function streamView() {
  const now = Date.now();
  const jobs = S.finished.concat(Object.values(S.running));
  const workers = [...new Set(jobs.map(j => j.worker))].sort();
  const t0 = Math.min(now - 10000, ...jobs.map(j => j.start));
  const width = 1000, rowH = 22, left = 230, W = width - left - 10;
  const x = t => left + (t - t0) / Math.max(1, now - t0) * W;
  const g = svg("svg", { width, height: rowH * workers.length + 30, id: "stream" });
  workers.forEach((w, i) => {
    g.append(svg("text", { x: 4, y: i * rowH + 15 }, w.length > 36 ? "…" + w.slice(-35) : w));
  });
  for (const j of jobs) {
    const row = workers.indexOf(j.worker);
    const end = j.outcome === "running" ? now : j.end;
    const r = svg("rect", { x: x(j.start), y: row * rowH + 3, height: rowH - 6,
                            width: Math.max(1, x(end) - x(j.start)), fill: colour(j.fn),
                            opacity: j.outcome === "running" ? 0.6 : 1, class: "job-" + j.outcome });
    r.append(svg("title", {}, `job ${j.id} ${j.fn} ${j.outcome} ${((end - j.start) / 1000).toFixed(2)} s`));
    g.append(r);
  }
  g.append(svg("text", { x: left, y: rowH * workers.length + 20 }, fmtTime(t0)));
  g.append(svg("text", { x: width - 80, y: rowH * workers.length + 20 }, fmtTime(now)));
  const fns = [...new Set(jobs.map(j => j.fn))];
  return [el("h2", {}, `Job stream: ${jobs.length} jobs on ${workers.length} workers`),
    el("div", { class: "legend" }, fns.map(f => el("span", {}, el("i", { style: { background: colour(f) } }), f))), g,
    el("h2", {}, "Running jobs"),
    table([["id", "Job"], ["fn", "Function"], ["arg", "Arguments"], ["start", "Started"], ["worker", "Worker"], ["", ""]],
          jobRows(Object.values(S.running)), false)];
}

function progressView() {
  const rows = Object.values(S.fns).map(f => el("tr", { id: "fn-" + f.fn },
    el("td", {}, f.fn), el("td", {}, el("span", { class: "bar" },
      el("span", { style: { width: `${f.total ? 100 * f.done / f.total : 0}%` } })), ` ${f.done} / ${f.total}`),
    num(f.failed), num(f.running), num(f.waiting), num(f.rate.toFixed(2) + " /s"),
    el("td", {}, f.eta >= 0 ? Math.round(f.eta) + " s" : "")));
  return [el("h2", {}, "Progress by function"),
    table([["fn", "Function"], ["done", "Done / total"], ["failed", "Failed"], ["running", "Running"],
           ["waiting", "Waiting"], ["rate", "Rate"], ["eta", "ETA"]], rows, false)];
}

function eventsView() {
  const rows = S.events.slice().reverse().map(e => el("tr", { class: "event-" + e.type }, el("td", {}, fmtTime(e.time)),
    el("td", {}, e.type), el("td", {}, e.text)));
  return [el("h2", {}, "Recent events"), el("table", { class: "events" }, el("tbody", {}, rows))];
}

function render() {
  renderTimer = null;
  const hash = decodeURIComponent(location.hash.slice(1)) || "cluster";
  const [name, ...rest] = hash.split("/");
  const arg = rest.join("/");
  for (const a of document.querySelectorAll("nav a")) a.className = a.id === "nav-" + name ? "active" : "";
  document.getElementById("computation").textContent =
    `computation ${S.computation.id || ""} ${S.computation.state || ""}`;
  const view = name === "node" ? nodeView(arg) : name === "worker" ? workerView(arg)
    : name === "stream" ? streamView() : name === "progress" ? progressView()
    : name === "events" ? eventsView() : clusterView();
  document.getElementById("view").replaceChildren(...view);
  const shown = Date.now();
  for (const end of endedSinceRender) window.picosLatency.push(shown - end);
  endedSinceRender = [];
}

window.addEventListener("hashchange", render);
setInterval(scheduleRender, 1000);  // ages and the stream's time axis
connect();
