// Owner page, the data manager: every task of the project in a virtualised table or thumbnail grid,
// loaded page by page (cursor pagination) as you scroll, filtered on the server; a drawer with a
// task's details; bulk actions on the selected tasks. Only the rows in view are in the document, so
// 100,000 tasks scroll as smoothly as 100.

import { api, el, isShortcut, showErrors, when } from "./api.js";
import { addShortcuts } from "./help.js";
import { percent } from "./stats.js";

const app = document.getElementById("tasks-app");
const projectId = app.dataset.project;
const $ = (id) => document.getElementById(id);
const viewport = $("viewport");
const spacer = $("spacer");
const form = $("filters");
const FILTERS = ["batch", "status", "answer", "annotator", "agreement_min", "agreement_max", "gold", "audited", "duplicate", "near_duplicate", "error"];
const PAGE = 200;
const ROW_H = 44;
const TILE = 148; // thumbnail tile, square, with its gap
const OVERSCAN = 6;

const state = {
  rows: [], next: null, loading: null, generation: 0, cursor: -1, selected: new Set(), view: "table",
  choices: new Map(), batches: new Map(), open: null,
};

addShortcuts("Tasks", [
  ["j / ↓", "next task"], ["k / ↑", "previous task"], ["Enter / o", "open the task's details"],
  ["x / Space", "select or unselect the task"], ["Shift+A", "select every loaded task"], ["t", "table or thumbnails"],
  ["/", "go to the filters"], ["Esc", "close the details"],
]);

// --- loading ----------------------------------------------------------------------------------

function query() {
  const params = new URLSearchParams({ project: projectId, page_size: String(PAGE) });
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value !== "") params.set(name, value);
  }
  return params;
}

function syncUrl() {
  const params = query();
  params.delete("project");
  params.delete("page_size");
  history.replaceState(null, "", `${location.pathname}${params.toString() ? `?${params}` : ""}`);
}

function reload() {
  state.generation += 1;
  state.rows = [];
  state.next = `/api/v1/tasks/?${query()}`;
  state.loading = null;
  state.cursor = -1;
  state.selected.clear();
  viewport.scrollTop = 0;
  syncUrl();
  $("list-errors").hidden = true;
  app.dataset.state = "loading";
  loadMore();
  render();
}

function loadMore() {
  if (state.loading || !state.next) return state.loading;
  const generation = state.generation;
  const started = performance.now();
  state.loading = api("GET", state.next).then(({ data }) => {
    if (generation !== state.generation) return;
    state.rows.push(...data.results);
    state.next = data.next;
    state.lastPageMs = Math.round(performance.now() - started);
    app.dataset.state = "ready";
  }, (err) => {
    if (generation !== state.generation) return;
    state.next = null;
    showErrors($("list-errors"), err);
    app.dataset.state = "error";
  }).finally(() => {
    if (generation === state.generation) state.loading = null;
    render();
  });
  return state.loading;
}

// --- rendering only what is in view -----------------------------------------------------------

function perLine() {
  return state.view === "grid" ? Math.max(1, Math.floor((viewport.clientWidth - 8) / TILE)) : 1;
}

function lineHeight() {
  return state.view === "grid" ? TILE : ROW_H;
}


function badge(status) {
  return el("span", { class: "badge", "data-status": status, text: status });
}

function note(task) {
  if (task.status === "failed") return task.error;
  if (task.is_gold) return "gold";
  return task.source_name || task.unique_id || "";
}

function rowNode(task, index) {
  const selected = state.selected.has(task.id);
  const check = el("input", { type: "checkbox", "aria-label": `Select task ${task.id}`, tabindex: "-1" });
  check.checked = selected;
  check.addEventListener("click", (event) => { event.stopPropagation(); toggle(task.id, index); });
  const thumb = task.asset ? el("img", { src: task.asset.thumbnail_url, alt: "", loading: "lazy" }) : el("span", { class: "no-image", text: task.status === "pending" ? "…" : "–" });
  const common = { role: "row", "aria-rowindex": String(index + 1), "aria-selected": String(selected), "data-task": String(task.id),
    class: `${state.view === "grid" ? "tile" : "trow"}${index === state.cursor ? " cursor" : ""}`, onclick: (event) => {
      if (event.shiftKey || event.ctrlKey || event.metaKey) toggle(task.id, index);
      else openTask(index);
    } };
  if (state.view === "grid") {
    return el("div", common,
      el("span", { role: "gridcell", class: "tile-check" }, check), el("span", { role: "gridcell", class: "tile-image" }, thumb),
      el("span", { role: "gridcell", class: "tile-caption" }, task.status === "completed" ? null : badge(task.status),
        ` ${task.answer ?? ""}${task.is_gold ? " ★" : ""}`));
  }
  return el("div", common,
    el("span", { role: "gridcell" }, check),
    el("span", { role: "gridcell", class: "thumb-cell" }, thumb),
    el("span", { role: "gridcell", text: `#${task.id}` }),
    el("span", { role: "gridcell", text: state.batches.get(task.batch) ?? String(task.batch) }),
    el("span", { role: "gridcell" }, badge(task.status)),
    el("span", { role: "gridcell", text: task.answer ?? "–" }),
    el("span", { role: "gridcell", text: task.agreement == null ? "–" : percent(task.agreement, 0) }),
    el("span", { role: "gridcell", text: String(task.annotation_count) }),
    el("span", { role: "gridcell", text: task.is_gold ? "★" : "" }),
    el("span", { role: "gridcell", class: task.status === "failed" ? "error clip" : "muted clip", text: note(task), title: note(task) }),
  );
}

let frame = 0;
function render() {
  cancelAnimationFrame(frame);
  frame = requestAnimationFrame(draw);
}

function draw() {
  const per = perLine();
  const h = lineHeight();
  const lines = Math.ceil(state.rows.length / per) + (state.next ? 1 : 0);
  spacer.style.height = `${lines * h}px`;
  const first = Math.max(0, Math.floor(viewport.scrollTop / h) - OVERSCAN);
  const last = Math.min(lines, Math.ceil((viewport.scrollTop + viewport.clientHeight) / h) + OVERSCAN);
  const nodes = [];
  for (let line = first; line < last; line += 1) {
    for (let col = 0; col < per; col += 1) {
      const index = line * per + col;
      const task = state.rows[index];
      if (!task) continue;
      const node = rowNode(task, index);
      node.style.transform = state.view === "grid" ? `translate(${col * TILE}px, ${line * h}px)` : `translateY(${line * h}px)`;
      nodes.push(node);
    }
  }
  if (state.next) {
    const more = el("div", { class: "more muted", text: state.loading ? "Loading more…" : "Scroll for more" });
    more.style.transform = `translateY(${(lines - 1) * h}px)`;
    nodes.push(more);
  }
  spacer.replaceChildren(...nodes);
  viewport.setAttribute("aria-rowcount", state.next ? "-1" : String(state.rows.length));
  // Fetch the next page before the user reaches the end of what is loaded.
  if (state.next && !state.loading && last * per >= state.rows.length - PAGE / 2) loadMore();
  const shown = `${state.rows.length.toLocaleString()} task${state.rows.length === 1 ? "" : "s"}${state.next ? " loaded, more as you scroll" : ""}`;
  $("count").textContent = state.lastPageMs != null ? `${shown} · last page in ${state.lastPageMs} ms` : shown;
  const empty = !state.rows.length && !state.next && !state.loading && app.dataset.state === "ready";
  $("empty").hidden = !empty;
  viewport.hidden = empty;
  if (empty) {
    const filtered = [...query().keys()].some((k) => FILTERS.includes(k));
    $("empty").replaceChildren(
      el("p", { text: filtered ? "No task matches these filters." : "This project has no tasks yet." }),
      el("p", { text: filtered ? "Change or clear the filters (Clear filters, above)." : "Upload images on the Batches page: create a batch, upload files, zips or URL lists into it." }),
    );
  }
  renderSelection();
}

// --- selection and bulk actions ---------------------------------------------------------------

function toggle(id, index) {
  if (state.selected.has(id)) state.selected.delete(id);
  else state.selected.add(id);
  if (index != null) state.cursor = index;
  render();
}

function renderSelection() {
  const n = state.selected.size;
  $("selected-count").textContent = `${n} selected`;
  $("select-all").checked = n > 0 && n === state.rows.length;
  $("select-all").indeterminate = n > 0 && n < state.rows.length;
  for (const id of ["bulk-cancel", "bulk-gold", "bulk-relabel"]) $(id).disabled = n === 0;
}

$("select-all").addEventListener("change", (event) => {
  if (event.target.checked) state.rows.forEach((t) => state.selected.add(t.id));
  else state.selected.clear();
  render();
});

async function bulk(action, ids, choice = null) {
  const status = $("bulk-status");
  status.textContent = "Working…";
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/tasks/bulk/`, { action, tasks: ids, choice });
    const refused = data.results.filter((r) => r.status === "refused");
    const verb = { cancel: "cancelled", make_gold: "made gold", relabel: "sent back" }[action];
    status.textContent = `${data.summary.done} ${verb}` + (refused.length
      ? `; ${refused.length} refused (task ${refused[0].task}: ${refused[0].detail}${refused.length > 1 ? "; …" : ""})` : ".");
    status.className = refused.length ? "error" : "";
    await refreshRows(ids);
    if (state.open) openTask(state.open.index);
  } catch (err) {
    status.textContent = "";
    showErrors($("list-errors"), err);
  }
}

// After an action the rows it touched are fetched again, so the list shows their new state in place.
async function refreshRows(ids) {
  const wanted = new Set(ids);
  const fresh = await Promise.all(state.rows.filter((t) => wanted.has(t.id)).slice(0, 200)
    .map((t) => api("GET", `/api/v1/tasks/${t.id}/`).then(({ data }) => data, () => null)));
  const byId = new Map(fresh.filter(Boolean).map((t) => [t.id, t]));
  state.rows = state.rows.map((t) => byId.get(t.id) ?? t);
  render();
}

$("bulk-cancel").addEventListener("click", () => bulk("cancel", [...state.selected]));
$("bulk-gold").addEventListener("click", () => bulk("make_gold", [...state.selected]));
$("bulk-relabel").addEventListener("click", () => bulk("relabel", [...state.selected]));

// --- the detail drawer ------------------------------------------------------------------------

function definition(pairs) {
  return el("dl", { class: "facts" }, ...pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v ?? "–")]));
}

async function openTask(index) {
  const row = state.rows[index];
  if (!row) return;
  state.cursor = index;
  state.open = { index, id: row.id };
  render();
  const drawer = $("drawer");
  drawer.hidden = false;
  $("drawer-title").textContent = `Task #${row.id}`;
  const body = $("drawer-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  let task;
  try {
    ({ data: task } = await api("GET", `/api/v1/tasks/${row.id}/`));
  } catch (err) {
    body.replaceChildren();
    showErrors(body.appendChild(el("div", { class: "alert", role: "alert" })), err);
    return;
  }
  if (state.open?.id !== task.id) return;
  const answers = task.annotations.length
    ? el("table", { class: "data compact" },
      el("thead", {}, el("tr", {}, ...["Who", "Answer", "When", "Time"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...task.annotations.map((a) => el("tr", {},
        el("td", { text: a.annotator }), el("td", { text: a.choice_label }), el("td", { text: when(a.created_at) }),
        el("td", { text: `${(a.duration_ms / 1000).toFixed(1)} s` })))))
    : el("p", { class: "muted", text: "No answers yet." });
  const audits = task.audits.length
    ? el("ul", { class: "plain" }, ...task.audits.map((a) => el("li", {}, `Round ${a.round}: `, badge(a.verdict),
      a.verdict === "incorrect" ? ` ${a.answer_label} → ${a.corrected_label}` : "", a.reviewer ? ` by ${a.reviewer}, ${when(a.reviewed_at)}` : "")))
    : el("p", { class: "muted", text: "Never sampled for an audit." });
  const goldChoice = el("select", { "aria-label": "The right answer" },
    ...[...state.choices.values()].map((c) => el("option", { value: c.id, text: c.label, selected: c.id === (task.gold_choice ?? task.final_choice) })));
  body.replaceChildren(
    task.asset ? el("a", { href: task.asset.image_url, target: "_blank", rel: "noopener", class: "drawer-image" },
      el("img", { src: task.asset.image_url, alt: `Image of task ${task.id}` })) : el("p", { class: "muted", text: task.status === "pending" ? "The image is still downloading." : "No image." }),
    definition([
      ["Batch", task.batch_name], ["Status", badge(task.status)],
      ["Answer", task.answer ? `${task.answer} (${{ single: "one annotator", consensus: "consensus", gold: "the owner, as gold", audit: "corrected by an audit" }[task.decided_by] ?? task.decided_by})` : null],
      ["Agreement", task.agreement == null ? null : percent(task.agreement, 0)],
      ["Gold", task.is_gold ? `yes: ${task.gold_label}${task.gold_source ? ` (a copy of task ${task.gold_source})` : ""}` : "no"],
      ["Suggestion", task.suggestion ? `${task.suggestion.label} (${percent(task.suggestion.confidence, 0)} confident; the machine's, not an answer)` : null],
      ["Near-duplicates", task.near_duplicates.length ? el("span", {}, ...task.near_duplicates.flatMap((n, i) => [i ? ", " : "",
        el("a", { href: `/projects/${projectId}/tasks/?near_duplicate=true#task-${n.task}`, text: `task ${n.task}` }),
        ` (${n.kind === "phash" ? `${n.distance} bits apart` : "embedding"})`])) : null],
      ["Source", task.source_url || task.source_name || null], ["Unique id", task.unique_id],
      ["Image", task.asset ? `${task.asset.width}×${task.asset.height} ${task.asset.format}, sha256 ${task.asset.sha256.slice(0, 12)}…` : null],
      ["Uploaded", when(task.created_at)], ["Completed", task.completed_at ? when(task.completed_at) : null],
      ...(task.error ? [["Failure", el("span", { class: "error", text: task.error })]] : []),
    ]),
    el("h3", { text: "Answers" }), answers,
    el("h3", { text: "Audits" }), audits,
    el("h3", { text: "Metadata" }), el("pre", { class: "metadata", text: JSON.stringify(task.metadata, null, 2) }),
    el("h3", { text: "Change" }),
    el("div", { class: "inline-actions" },
      el("button", { type: "button", class: "secondary small", text: "Cancel task", onclick: () => bulk("cancel", [task.id]) }),
      el("button", { type: "button", class: "secondary small", text: "Send back for relabeling", onclick: () => bulk("relabel", [task.id]) }),
      goldChoice,
      el("button", { type: "button", class: "secondary small", text: "Make gold with this answer", onclick: () => bulk("make_gold", [task.id], Number(goldChoice.value)) })),
  );
}

function closeDrawer() {
  $("drawer").hidden = true;
  state.open = null;
  viewport.focus();
}
$("close-drawer").addEventListener("click", closeDrawer);

// --- keys -------------------------------------------------------------------------------------

function moveCursor(step) {
  if (!state.rows.length) return;
  const next = Math.max(0, Math.min(state.rows.length - 1, state.cursor + step));
  state.cursor = next;
  const line = Math.floor(next / perLine());
  const h = lineHeight();
  if (line * h < viewport.scrollTop) viewport.scrollTop = line * h;
  else if ((line + 1) * h > viewport.scrollTop + viewport.clientHeight) viewport.scrollTop = (line + 1) * h - viewport.clientHeight;
  if (state.open) openTask(next);
  render();
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("drawer").hidden) { closeDrawer(); return; }
  if (!isShortcut(event) || event.target.closest?.("button, select, a")) return;
  const grid = state.view === "grid";
  const keys = {
    j: () => moveCursor(1), ArrowDown: () => moveCursor(grid ? perLine() : 1), k: () => moveCursor(-1),
    ArrowUp: () => moveCursor(grid ? -perLine() : -1), ArrowRight: () => grid && moveCursor(1), ArrowLeft: () => grid && moveCursor(-1),
    Enter: () => openTask(Math.max(state.cursor, 0)), o: () => openTask(Math.max(state.cursor, 0)),
    x: () => state.rows[state.cursor] && toggle(state.rows[state.cursor].id), " ": () => state.rows[state.cursor] && toggle(state.rows[state.cursor].id),
    A: () => { state.rows.forEach((t) => state.selected.add(t.id)); render(); },
    t: () => setView(grid ? "table" : "grid"), "/": () => form.elements.batch.focus(),
  };
  const act = keys[event.key];
  if (!act) return;
  event.preventDefault();
  act();
});

function setView(view) {
  // Keep the task under the cursor (or the first one in view) in view across the switch.
  const anchor = state.cursor >= 0 ? state.cursor : Math.floor(viewport.scrollTop / lineHeight()) * perLine();
  state.view = view;
  viewport.scrollTop = Math.floor(anchor / perLine()) * lineHeight();
  app.dataset.view = view;
  for (const b of document.querySelectorAll(".view-switch button")) b.setAttribute("aria-pressed", String(b.dataset.view === view));
  render();
}
for (const b of document.querySelectorAll(".view-switch button")) b.addEventListener("click", () => setView(b.dataset.view));

viewport.addEventListener("scroll", render, { passive: true });
window.addEventListener("resize", render);
let typing = 0;
form.addEventListener("input", (event) => {
  clearTimeout(typing);
  typing = setTimeout(reload, event.target.tagName === "SELECT" ? 0 : 350);
});
form.addEventListener("submit", (event) => { event.preventDefault(); reload(); });
$("clear-filters").addEventListener("click", () => { form.reset(); reload(); });

async function start() {
  const params = new URLSearchParams(location.search);
  try {
    const [project, batches, members] = await Promise.all([
      api("GET", `/api/v1/projects/${projectId}/`),
      api("GET", `/api/v1/projects/${projectId}/batches/`),
      api("GET", `/api/v1/projects/${projectId}/members/`),
    ]);
    for (const c of project.data.choices) state.choices.set(c.id, c);
    form.elements.answer.append(...project.data.choices.map((c) => el("option", { value: c.id, text: c.label })));
    for (const b of batches.data) state.batches.set(b.id, b.name);
    form.elements.batch.append(...batches.data.map((b) => el("option", { value: b.id, text: b.name })));
    form.elements.annotator.append(...members.data.map((m) => el("option", { value: m.username, text: m.username })));
  } catch (err) {
    showErrors($("list-errors"), err);
  }
  for (const name of FILTERS) if (params.has(name)) form.elements[name].value = params.get(name);
  reload();
}

start();
