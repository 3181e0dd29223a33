// Grid mode: a page of leased thumbnails; select look-alikes and give them all one answer with one key.
//
// Each selected image becomes an ordinary annotation (POST annotations/bulk) carrying its share of
// the time spent since the page was last answered, so overlap, gold and audits work as usual.
//
// A suggested page (Shift+G) holds images the machine suggests one answer for, most confident first,
// all selected: unselect the wrong ones and press that answer's key; those answers are marked
// `assisted`. More like this (Shift+M) brings the focused image's look-alikes next to it.

import { api, el, isShortcut } from "./api.js";
import { addShortcuts } from "./help.js";

const root = document.getElementById("grid-app");
const projectId = root.dataset.project;
const size = Number(root.dataset.size) || 48;
const grid = document.getElementById("thumbs");
const statusLine = document.getElementById("status");
const countLine = document.getElementById("selected-count");

const state = {
  tiles: [], // {task, node}, in page order
  selected: new Set(), // task ids
  anchor: null, // index a Shift selection extends from
  focus: 0,
  since: performance.now(),
  busy: false,
  byKey: new Map(),
  suggested: null, // {choice, label} while a suggested page is shown
};

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

// --- tiles -----------------------------------------------------------------------------------

async function refill() {
  root.dataset.state = "loading";
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/next-tasks/`, { count: size });
    const shown = new Set(state.tiles.map((t) => t.task.id));
    for (const task of data.tasks) {
      if (!shown.has(task.id)) state.tiles.push({ task, node: tile(task) });
    }
  } catch (err) {
    say(`Could not fetch images: ${err.message}`, true);
  }
  render();
}

function tile(task) {
  const hint = task.suggestion
    ? el("span", { class: "suggestion", text: `${task.suggestion.label} ${Math.round(task.suggestion.confidence * 100)}%` })
    : null;
  const node = el(
    "div",
    { role: "option", class: "thumb", tabindex: "-1", "aria-selected": "false", "data-task-id": task.id,
      "aria-label": `Image ${task.unique_id || task.id}${task.suggestion ? `, suggested ${task.suggestion.label}` : ""}` },
    el("img", { src: task.asset.thumbnail_url, alt: "", loading: "lazy", decoding: "async" }),
    hint,
  );
  node.addEventListener("click", (event) => clickTile(task.id, event));
  return node;
}

function render() {
  grid.replaceChildren(...state.tiles.map((t) => t.node));
  state.focus = Math.min(state.focus, Math.max(0, state.tiles.length - 1));
  state.tiles.forEach((t, i) => {
    t.node.setAttribute("aria-selected", String(state.selected.has(t.task.id)));
    t.node.tabIndex = i === state.focus ? 0 : -1;
  });
  root.dataset.state = state.tiles.length ? "ready" : "empty";
  document.getElementById("empty").hidden = state.tiles.length > 0;
  countLine.textContent = `${state.selected.size} selected`;
}

// --- selection -------------------------------------------------------------------------------

const indexOf = (taskId) => state.tiles.findIndex((t) => t.task.id === taskId);

function setSelected(index, on) {
  const t = state.tiles[index];
  if (!t) return;
  if (on) state.selected.add(t.task.id);
  else state.selected.delete(t.task.id);
  t.node.setAttribute("aria-selected", String(on));
}

function selectRange(from, to) {
  const [a, b] = from <= to ? [from, to] : [to, from];
  for (let i = a; i <= b; i += 1) setSelected(i, true);
}

function moveFocus(index) {
  if (!state.tiles.length) return;
  state.focus = Math.max(0, Math.min(state.tiles.length - 1, index));
  state.tiles.forEach((t, i) => { t.node.tabIndex = i === state.focus ? 0 : -1; });
  state.tiles[state.focus].node.focus();
}

function clickTile(taskId, event) {
  const index = indexOf(taskId);
  if (event.shiftKey && state.anchor !== null) {
    selectRange(state.anchor, index);
  } else {
    setSelected(index, !state.selected.has(taskId));
    state.anchor = index;
  }
  moveFocus(index);
  countLine.textContent = `${state.selected.size} selected`;
}

function selectAll() {
  state.tiles.forEach((_, i) => setSelected(i, true));
  countLine.textContent = `${state.selected.size} selected`;
}

function clearSelection() {
  state.selected.clear();
  state.anchor = null;
  state.tiles.forEach((_, i) => setSelected(i, false));
  countLine.textContent = "0 selected";
}

function columns() {
  return getComputedStyle(grid).gridTemplateColumns.split(" ").filter(Boolean).length || 1;
}

grid.addEventListener("keydown", (event) => {
  const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns() };
  if (event.key in steps) {
    const target = state.focus + steps[event.key];
    if (target < 0 || target >= state.tiles.length) return;
    if (event.shiftKey) {
      if (state.anchor === null) state.anchor = state.focus;
      setSelected(state.focus, true);
      setSelected(target, true);
      countLine.textContent = `${state.selected.size} selected`;
    }
    moveFocus(target);
  } else if (event.key === "Home") moveFocus(0);
  else if (event.key === "End") moveFocus(state.tiles.length - 1);
  else if (event.key === " " || event.key === "Enter") {
    const t = state.tiles[state.focus];
    if (t) clickTile(t.task.id, event);
  } else return;
  event.preventDefault();
  event.stopPropagation();
});

// --- answering -------------------------------------------------------------------------------

async function assign(choice) {
  if (state.busy) {
    say("Still saving the last answers; press the key again in a moment.", true);
    return;
  }
  const ids = state.tiles.map((t) => t.task.id).filter((id) => state.selected.has(id));
  if (!ids.length) {
    say("Select one or more images first, then press the choice's key.", true);
    return;
  }
  const now = performance.now();
  const share = Math.round((now - state.since) / ids.length);
  // Confirming the page's suggestion is an assisted answer; any other key is the annotator's own.
  const assisted = state.suggested !== null && choice.id === state.suggested.choice;
  state.busy = true;
  root.dataset.busy = "1";
  try {
    const answers = ids.map((task) => ({ task, choice: choice.id, duration_ms: share, assisted }));
    const { data } = await api("POST", `/api/v1/projects/${projectId}/annotations/bulk/`, { answers });
    const stored = new Set(data.results.filter((r) => r.status !== "rejected").map((r) => r.task));
    const rejected = data.results.filter((r) => r.status === "rejected");
    state.tiles = state.tiles.filter((t) => !stored.has(t.task.id));
    clearSelection();
    state.since = now;
    say(
      rejected.length
        ? `${stored.size} answered ${choice.label}; ${rejected.length} not saved: ${rejected[0].detail}`
        : `${stored.size} answered ${choice.label}.`,
      rejected.length > 0,
    );
    render();
    if (state.suggested && !state.tiles.length) await takeSuggested();
    else if (!state.suggested) await refill();
    moveFocus(Math.min(state.focus, state.tiles.length - 1));
  } catch (err) {
    say(`Nothing was saved: ${err.message}`, true);
  } finally {
    state.busy = false;
    root.dataset.busy = "0";
  }
}

// --- suggested pages and look-alikes -----------------------------------------------------------

function note(text) {
  const box = document.getElementById("suggested-note");
  box.textContent = text;
  box.hidden = !text;
}

async function takeSuggested() {
  root.dataset.state = "loading";
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/suggested-tasks/`, { count: size });
    state.tiles = data.tasks.map((task) => ({ task, node: tile(task) }));
    state.suggested = data.tasks.length ? { choice: data.choice, label: data.label } : null;
    clearSelection();
    selectAll();
    state.since = performance.now();
    const key = data.tasks.length ? [...state.byKey.entries()].find(([, c]) => c.id === data.choice)?.[0] : null;
    note(data.tasks.length
      ? `Suggested: ${data.label}. Every image is selected: unselect the ones that are not ${data.label}, then press ${key ? key.toUpperCase() : "its key"}.`
      : "No suggestions are waiting for you; the page shows images in upload order.");
    if (!data.tasks.length) {
      render();
      await refill();
      return;
    }
  } catch (err) {
    say(`Could not fetch a suggested page: ${err.message}`, true);
  }
  render();
}

async function moreLikeThis() {
  const t = state.tiles[state.focus];
  if (!t) return say("Focus an image first (click it or use the arrow keys).", true);
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/suggested-tasks/`, { count: 12, like: t.task.id });
    const shown = new Set(state.tiles.map((x) => x.task.id));
    const fresh = data.tasks.filter((task) => !shown.has(task.id)).map((task) => ({ task, node: tile(task) }));
    state.tiles.splice(state.focus + 1, 0, ...fresh);
    say(fresh.length ? `${fresh.length} look-alike${fresh.length === 1 ? "" : "s"} placed after the focused image.` : "No look-alikes are waiting for you.");
    render();
  } catch (err) {
    say(`Could not fetch look-alikes: ${err.message}`, true);
  }
}

document.addEventListener("keydown", (event) => {
  if (!event.repeat && isShortcut(event) && event.shiftKey && (event.key === "G" || event.key === "M")) {
    event.preventDefault();
    if (event.key === "G") takeSuggested();
    else moreLikeThis();
    return;
  }
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "a" && !event.target.closest?.("input, textarea")) {
    selectAll();
    event.preventDefault();
    return;
  }
  if (event.repeat || !isShortcut(event)) return;
  if (event.key === "Escape") clearSelection();
  else if (state.byKey.has(event.key.toLowerCase())) assign(state.byKey.get(event.key.toLowerCase()));
  else return;
  event.preventDefault();
});

document.getElementById("select-all").addEventListener("click", selectAll);
document.getElementById("clear").addEventListener("click", clearSelection);
document.getElementById("check-again").addEventListener("click", refill);
document.getElementById("suggested").addEventListener("click", takeSuggested);
document.getElementById("more-like").addEventListener("click", moreLikeThis);

async function start() {
  try {
    const { data: project } = await api("GET", `/api/v1/projects/${projectId}/`);
    const box = document.getElementById("choices");
    for (const choice of project.choices) {
      state.byKey.set(choice.hotkey.toLowerCase(), choice);
      box.append(
        el(
          "button",
          { type: "button", class: "choice", "data-choice": choice.id, "aria-keyshortcuts": choice.hotkey,
            title: choice.long_hint || choice.description || null, onclick: () => assign(choice) },
          el("kbd", { text: choice.hotkey.toUpperCase() }),
          el("span", { class: "label", text: choice.label }),
        ),
      );
    }
    addShortcuts("Grid", [
      ["Click", "select or unselect an image"], ["Shift+click", "select the range from the last click"],
      ["← → ↑ ↓", "move between images"], ["Shift+arrow", "extend the selection"], ["Space / Enter", "select or unselect"],
      ["Ctrl+A", "select every image"], ["Esc", "clear the selection"],
      ["Shift+G", "a suggested page: every image selected, unselect the wrong ones"],
      ["Shift+M", "more like this: the focused image's look-alikes"],
      ...project.choices.map((c) => [c.hotkey.toUpperCase(), `answer every selected image ${c.label}`]),
    ]);
  } catch (err) {
    say(`Could not load the project: ${err.message}`, true);
    return;
  }
  await refill();
  state.since = performance.now();
  // Asking again renews the leases on the page while someone looks it over.
  setInterval(() => { if (!state.busy) api("POST", `/api/v1/projects/${projectId}/next-tasks/`, { count: size }).catch(() => {}); }, 120_000);
}

start();
