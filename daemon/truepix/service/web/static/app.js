// truepix's page: the queue, live, and a finished job's report and before/after.
// It reads the daemon's own /v1 API (docs/protocol.md), signed in by its session cookie; it polls
// once a second (no websockets: one small JSON answer a second costs the daemon nothing).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { selected: null, reportFor: null, point: { x: 0.5, y: 0.5 }, zoom: 1, paused: false };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(method, path) {
  const answer = await fetch(path, { method, credentials: "same-origin" });
  if (answer.status === 401) {
    $("#signed-out").hidden = false;
    throw new Error("signed out");
  }
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error ? body.error.message : `HTTP ${answer.status}`);
  return body;
}

const baseName = (path) => path.split(/[\\/]/).pop();
const shown = new Map();  // job id -> {key, node}: the items on screen

// -- the queue -------------------------------------------------------------------------------------

const STATE_WORDS = { queued: "waiting", running: "working", done: "done", failed: "failed",
                      cancelled: "cancelled" };

function jobItem(job, current) {
  const running = job.state === "running";
  const progress = running && current && current.id === job.id ? current.progress : (job.state === "done" ? 1 : 0);
  const label = running && current && current.id === job.id
    ? `${current.phase} ${Math.round(progress * 100)}%` : STATE_WORDS[job.state] || job.state;
  const item = el("li", { class: "job", "data-id": String(job.id), "data-state": job.state },
    el("div", { class: "top" },
      el("span", { class: "name", title: job.source }, baseName(job.source)),
      el("span", { class: "recipe quiet" }, job.recipe),
      el("span", { class: "state" }, job.cancel_requested && running ? "cancelling" : label)));
  if (running || job.state === "queued") {
    const fill = el("span");
    fill.style.width = `${Math.round(progress * 100)}%`;  // CSSOM, which the page's CSP allows (no inline style)
    item.append(el("div", { class: "bar" }, fill));
  }
  if (job.state === "failed" || job.state === "cancelled") {
    if (job.error) item.append(el("p", { class: "why" }, job.error));
  }
  const buttons = el("div", { class: "buttons" });
  if (running || job.state === "queued") buttons.append(el("button", { class: "cancel", type: "button" }, "Cancel"));
  if (job.state === "failed" || job.state === "cancelled") {
    buttons.append(el("button", { class: "retry", type: "button" }, "Retry"));
  }
  if (buttons.childElementCount) item.append(buttons);
  if (job.id === state.selected) item.classList.add("selected");
  return item;
}

function renderQueue(status, jobs) {
  state.paused = status.paused;
  const pill = $("#daemon-state");
  pill.textContent = status.paused ? "paused" : (status.current ? "working" : "idle");
  pill.classList.toggle("paused", status.paused);
  const c = status.counts;
  $("#counts").textContent = `${c.queued} waiting · ${c.running} working · ${c.done} done · ${c.failed} failed`;
  const pause = $("#pause");
  pause.disabled = false;
  pause.textContent = status.paused ? "Resume" : "Pause";
  pause.setAttribute("aria-pressed", String(status.paused));
  // An item is rebuilt only when what it shows changed: a button under the pointer stays the same node.
  const items = jobs.map((job) => {
    const cur = status.current && status.current.id === job.id ? status.current : null;
    const key = JSON.stringify([job.state, job.error, job.cancel_requested, cur && cur.phase,
                                cur && Math.round(cur.progress * 100), job.id === state.selected]);
    const kept = shown.get(job.id);
    if (kept && kept.key === key) return kept.node;
    const node = jobItem(job, status.current);
    shown.set(job.id, { key, node });
    return node;
  });
  const list = $("#jobs");
  if (items.length !== list.children.length || items.some((node, i) => list.children[i] !== node)) {
    list.replaceChildren(...items);
  }
  $("#no-jobs").hidden = jobs.length > 0;
  renderFolders(status.folders);
  const selected = jobs.find((job) => job.id === state.selected);
  if (selected && selected.state === "done" && state.reportFor !== selected.id) showReport(selected.id);
}

function renderFolders(folders) {
  $("#folders").replaceChildren(...(folders.length ? folders.map((f) => el("li", {},
    el("code", {}, f.path), ` → ${f.recipe}`, f.watching ? "" : " (missing: not watched)"))
    : [el("li", { class: "quiet" }, "none")]));
}

async function refresh() {
  try {
    const [status, list] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/jobs?limit=50")]);
    renderQueue(status, list.jobs);
  } catch (err) {
    if (err.message !== "signed out") $("#daemon-state").textContent = `not answering (${err.message})`;
  }
}

$("#jobs").addEventListener("click", async (event) => {
  const item = event.target.closest(".job");
  if (!item) return;
  const id = Number(item.dataset.id);
  if (event.target.matches("button.cancel, button.retry")) {
    event.target.disabled = true;
    const action = event.target.classList.contains("cancel") ? "cancel" : "retry";
    try { await api("POST", `/v1/jobs/${id}/${action}`); } catch (err) { alert(err.message); }
    refresh();
    return;
  }
  state.selected = id;
  state.reportFor = null;
  for (const other of document.querySelectorAll(".job.selected")) other.classList.remove("selected");
  item.classList.add("selected");
  showReport(id);
});

$("#pause").addEventListener("click", async () => {
  $("#pause").disabled = true;
  try { await api("POST", state.paused ? "/v1/resume" : "/v1/pause"); } catch (err) { alert(err.message); }
  refresh();
});

// -- one job ---------------------------------------------------------------------------------------

async function showReport(id) {
  state.reportFor = id;
  const report = await api("GET", `/v1/jobs/${id}/report`);
  if (state.selected !== id) return;
  const job = report.job;
  $("#details").hidden = false;
  $("#details-title").textContent = `${baseName(job.source)} — job ${job.id}`;
  const facts = [["state", STATE_WORDS[job.state] || job.state], ["original", job.source],
    ["recipe", `${report.recipe.name || job.recipe}: ${(report.recipe.steps || []).map((s) => s.model).join(" → ")}` +
      `, ${report.recipe.format} ${report.recipe.bits || ""}-bit`],
    ["models", report.models.map((m) => `${m.label} (${m.task}${m.scale > 1 ? ` ×${m.scale}` : ""})`).join(", ")]];
  if (report.seconds != null) facts.push(["time", `${report.seconds.toFixed(1)} s`]);
  for (const out of report.outputs) facts.push(["output", out.path]);
  if (job.error) facts.push(["why", job.error]);
  if (job.note) facts.push(["note", job.note]);
  $("#facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const first = report.outputs[0];
  $("#fidelity").replaceChildren(...(first ? first.fidelity.map((line) => el("p", {}, line)) : []));
  $("#viewer").hidden = !first;
  if (first) {
    state.point = { x: 0.5, y: 0.5 };
    $("#thumb").src = `/v1/jobs/${id}/thumbnail?output=0`;
    loadCrops();
  }
}

function previewUrl(side) {
  const { x, y } = state.point;
  return `/v1/jobs/${state.selected}/crop?output=0&side=${side}&zoom=${state.zoom}&x=${x.toFixed(3)}&y=${y.toFixed(3)}`;
}

function loadCrops() {
  $("#preview-note").textContent = "";
  $("#before").src = previewUrl("before");
  $("#after").src = previewUrl("after");
  const marker = $("#marker");
  marker.style.left = `${state.point.x * 100}%`;
  marker.style.top = `${state.point.y * 100}%`;
}

// A preview that cannot be made: the daemon says why (a JSON error); the page shows it.
for (const img of ["#thumb", "#before", "#after"]) {
  $(img).addEventListener("error", async (event) => {
    try {
      await api("GET", event.target.getAttribute("src"));
    } catch (err) {
      $("#preview-note").textContent = err.message;
    }
  });
}

$("#after").addEventListener("load", (event) => {
  const box = $("#compare");
  box.style.width = `${event.target.naturalWidth}px`;
  box.style.height = `${event.target.naturalHeight}px`;
});

$("#thumb").addEventListener("click", (event) => {
  const rect = event.target.getBoundingClientRect();
  state.point = { x: (event.clientX - rect.left) / rect.width, y: (event.clientY - rect.top) / rect.height };
  loadCrops();
});

for (const zoom of [1, 2]) {
  $(`#zoom-${zoom}`).addEventListener("click", () => {
    state.zoom = zoom;
    $("#zoom-1").setAttribute("aria-pressed", String(zoom === 1));
    $("#zoom-2").setAttribute("aria-pressed", String(zoom === 2));
    loadCrops();
  });
}

function slide() {
  const at = Number($("#slider").value);
  $("#after").style.clipPath = `inset(0 0 0 ${at}%)`;
  $("#divider").style.left = `${at}%`;
}
$("#slider").addEventListener("input", slide);

// -- the set-up ------------------------------------------------------------------------------------

async function loadSetup() {
  const [recipes, models] = await Promise.all([api("GET", "/v1/recipes"), api("GET", "/v1/models")]);
  $("#recipes").replaceChildren(...recipes.recipes.map((r) => el("li", {},
    el("strong", {}, r.name), `: ${r.steps.map((s) => s.model).join(" → ")} → ${r.format}` +
    `${r.guard ? ", colour guard on" : ", colour guard off"}`)));
  $("#models").replaceChildren(...models.models.filter((m) => m.precision === "float32").map((m) => el("li", {},
    el("strong", {}, `${m.name} v${m.version}`), ` — ${m.task}${m.scale > 1 ? ` ×${m.scale}` : ""}; licence ${m.licence}`,
    ...m.quality.map((q) => el("div", { class: "quiet" }, q)),
    ...(m.trained_on || []).map((d) => el("div", { class: "quiet" }, `trained on ${d}`)))));
}

slide();
refresh();
loadSetup().catch(() => {});
setInterval(refresh, 1000);
