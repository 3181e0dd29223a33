// The annotator page: one large image, one key per answer, the next images already leased and loaded.
//
// The page holds a small queue of leased tasks (POST next-tasks) whose images are preloaded, so an
// answer swaps in the next image at once while the answer is saved in the background. `u` takes
// back the last answer while the server still allows it; `s` gives the task back unanswered.

import { api, el, isShortcut, preload } from "./api.js";
import { addShortcuts } from "./help.js";

const root = document.getElementById("annotate");
const projectId = root.dataset.project;
const lookahead = Number(root.dataset.lookahead) || 3;
const image = document.getElementById("task-image");
const empty = document.getElementById("empty");
const loading = document.getElementById("loading");
const statusLine = document.getElementById("status");
const choicesBox = document.getElementById("choices");
const hintsButton = document.getElementById("hints");

const state = {
  byKey: new Map(), // hotkey → choice
  current: null, // the task on screen
  shownAt: 0,
  queue: [], // leased tasks waiting their turn, images preloading
  done: new Set(), // ids answered or skipped here: a refill never shows them again
  history: [], // answers that may be undone, newest last: {task, choice, saved: Promise<boolean>}
  pending: 0, // answers and skips still on their way to the server
  refilling: null,
  undoing: false,
  showAllHints: false,
  progress: null,
  mineMoves: 0, // answers saved or undone here, to tell whether a progress reply is already stale
};

// --- talking to the server --------------------------------------------------------------------

function track(promise) {
  state.pending += 1;
  root.dataset.pending = String(state.pending);
  return promise.finally(() => {
    state.pending -= 1;
    root.dataset.pending = String(state.pending);
  });
}

function refill({ force = false } = {}) {
  if (state.refilling) return state.refilling;
  const have = (state.current ? 1 : 0) + state.queue.length;
  if (!force && have > lookahead) return Promise.resolve();
  state.refilling = (async () => {
    let added = 0;
    try {
      // The server lists every lease we hold without an answer, those whose answer is in flight
      // included, so ask for that many more; asking again is harmless and renews the leases.
      const count = Math.min(100, 1 + lookahead + state.pending);
      const { data } = await api("POST", `/api/v1/projects/${projectId}/next-tasks/`, { count });
      const known = new Set([state.current?.id, ...state.queue.map((t) => t.id)]);
      for (const task of data.tasks) {
        if (known.has(task.id) || state.done.has(task.id)) continue;
        task.ready = preload(task.asset.image_url);
        state.queue.push(task);
        added += 1;
      }
    } catch (err) {
      say(`Could not fetch more images: ${err.message}`, true);
    } finally {
      state.refilling = null;
    }
    if (!state.current && state.queue.length) show(state.queue.shift());
    else if (!state.current) {
      render();
      loadProgress(); // out of work: show where the batches stand
    }
    // Answers given while this request was out may have emptied the queue again.
    if (added && (state.current ? 1 : 0) + state.queue.length <= lookahead) refill();
  })();
  render();
  return state.refilling;
}

function answer(choice) {
  const task = state.current;
  if (!task) return;
  const duration_ms = Math.round(performance.now() - state.shownAt);
  state.done.add(task.id);
  const entry = { task, choice };
  entry.saved = track(api("POST", `/api/v1/tasks/${task.id}/annotations/`, { choice: choice.id, duration_ms }))
    .then(({ status }) => {
      if (status === 201) {
        countMine(1);
        countBatch(task.batch, 1);
      }
      return true;
    })
    .catch((err) => {
      state.history = state.history.filter((e) => e !== entry);
      if (err.status === 0 || err.status >= 500) {
        // Nothing was stored: show the image again rather than lose the work.
        state.done.delete(task.id);
        if (state.current) state.queue.unshift(state.current);
        show(task);
        say(`Your answer was not saved (${err.message}); answer this image again.`, true);
      } else {
        say(`Your answer "${choice.label}" was not saved: ${err.message}`, true);
      }
      return false;
    });
  state.history.push(entry);
  flash(choice);
  say(`Answered ${choice.label}.`);
  next();
}

function skip() {
  const task = state.current;
  if (!task) return;
  state.done.add(task.id);
  track(api("POST", `/api/v1/tasks/${task.id}/skip/`)).catch((err) => say(`Skip was not saved: ${err.message}`, true));
  say("Skipped.");
  next();
}

async function undo() {
  if (state.undoing) return;
  const entry = state.history.pop();
  if (!entry) {
    say("Nothing to undo.", true);
    return;
  }
  state.undoing = true;
  try {
    if (!(await entry.saved)) return;
    await track(api("POST", `/api/v1/tasks/${entry.task.id}/undo/`));
    state.done.delete(entry.task.id);
    if (state.current) state.queue.unshift(state.current);
    show(entry.task);
    say(`Undone "${entry.choice.label}": answer this image again.`);
    countMine(-1);
    countBatch(entry.task.batch, -1);
  } catch (err) {
    say(`Could not undo: ${err.message}`, true);
  } finally {
    state.undoing = false;
  }
}

// My count moves with every answer; the batch counts come from the server now and then (they are
// shared by every annotator and cost the server a scan, so the page does not ask on every key press).
const PROGRESS_EVERY_MS = 20_000;

function countMine(step) {
  state.mineMoves += 1;
  if (!state.progress) return;
  state.progress.mine += step;
  renderProgress();
}

// With one annotator per task an answer completes its task: the batch's counts move at once. With more,
// only the server knows, so the page asks again shortly after the last answer (past its 5 s cache).
function countBatch(batchId, step) {
  const batch = state.progress?.batches.find((b) => b.id === batchId);
  if (batch && state.overlap === 1) {
    batch.done = Math.max(0, batch.done + step);
    batch.remaining = Math.max(0, batch.remaining - step);
    state.progress.done = Math.max(0, state.progress.done + step);
    state.progress.remaining = Math.max(0, state.progress.remaining - step);
    renderProgress();
  }
  clearTimeout(state.progressSoon);
  state.progressSoon = setTimeout(loadProgress, 6000);
}

async function loadProgress() {
  const moves = state.mineMoves;
  const quiet = state.pending === 0;
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/progress/`);
    // An answer saved or undone while we asked may or may not be in the server's figure: keep ours.
    if (state.progress && !(quiet && moves === state.mineMoves)) data.mine = state.progress.mine;
    state.progress = data;
    renderProgress();
  } catch (err) {
    say(`Could not load progress: ${err.message}`, true);
  }
}

// The quality checks report the annotator's gold accuracy; show it when they do.
async function loadGoldAccuracy() {
  if (state.progress?.gold_accuracy != null) return;
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/me/`);
    const value = typeof data?.gold_accuracy === "object" && data.gold_accuracy !== null ? data.gold_accuracy.overall : data?.gold_accuracy;
    if (typeof value === "number") showGold(value);
  } catch {
    // Not available (yet): the slot stays hidden.
  }
}

// --- what is on screen ------------------------------------------------------------------------

function next() {
  state.current = null;
  if (state.queue.length) show(state.queue.shift());
  else render();
  refill();
}

function show(task) {
  state.current = task;
  image.src = task.asset.image_url;
  image.alt = `Image to label: ${task.unique_id || `task ${task.id}`}`;
  state.shownAt = performance.now();
  render();
  renderProgress();
}

function render() {
  const task = state.current;
  root.dataset.taskId = task ? String(task.id) : "";
  root.dataset.state = task ? "ready" : state.refilling ? "loading" : "empty";
  image.hidden = !task;
  loading.hidden = Boolean(task) || !state.refilling;
  empty.hidden = Boolean(task) || Boolean(state.refilling);
  for (const button of choicesBox.querySelectorAll("button")) button.disabled = !task;
  document.getElementById("skip").disabled = !task;
}

function renderProgress() {
  const data = state.progress;
  if (!data) return;
  const batch = data.batches.find((b) => b.id === state.current?.batch);
  const scope = batch ? `Batch ${batch.name}` : "Open batches";
  const done = batch ? batch.done : data.done;
  const remaining = batch ? batch.remaining : data.remaining;
  document.getElementById("batch-progress").textContent = `${scope}: ${done} done, ${remaining} remaining`;
  const total = done + remaining;
  document.getElementById("batch-bar").style.width = `${total ? (100 * done) / total : 0}%`;
  document.getElementById("my-count").textContent = String(data.mine);
  if (data.gold_accuracy != null) showGold(data.gold_accuracy);
}

function showGold(value) {
  const slot = document.getElementById("gold-accuracy");
  slot.querySelector("strong").textContent = `${Math.round(value * 100)}%`;
  slot.hidden = false;
}

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function flash(choice) {
  const button = choicesBox.querySelector(`[data-choice="${choice.id}"]`);
  button?.classList.add("chosen");
  setTimeout(() => button?.classList.remove("chosen"), 180);
}

// --- choices, hints, keys ---------------------------------------------------------------------

function renderChoices(choices) {
  for (const choice of choices) {
    state.byKey.set(choice.hotkey.toLowerCase(), choice);
    const hintId = `hint-${choice.id}`;
    const tip = choice.long_hint ? el("div", { role: "tooltip", id: hintId, class: "tooltip", text: choice.long_hint, hidden: true }) : null;
    const button = el(
      "button",
      {
        type: "button",
        class: "choice",
        "data-choice": choice.id,
        "aria-keyshortcuts": choice.hotkey,
        "aria-describedby": tip ? hintId : null,
        onclick: () => answer(choice),
      },
      el("kbd", { text: choice.hotkey.toUpperCase() }),
      el("span", { class: "label", text: choice.label }),
      choice.description ? el("span", { class: "desc", text: choice.description }) : null,
    );
    const wrap = el("div", { class: "choice-wrap" }, button, tip);
    if (tip) {
      const open = () => { place(tip, button); tip.hidden = false; };
      const close = () => { tip.hidden = !state.showAllHints; };
      button.addEventListener("mouseenter", open);
      button.addEventListener("mouseleave", () => { if (document.activeElement !== button) close(); });
      button.addEventListener("focus", open);
      button.addEventListener("blur", close);
    }
    choicesBox.append(wrap);
  }
}

// A hovered or focused choice's hint floats beside the panel, over the image's edge, so it never
// covers the next choice; where there is no room (tablet width) it goes under the whole group.
const HINT_WIDTH = 300;
function place(tip, button) {
  if (state.showAllHints) return;
  const r = button.getBoundingClientRect();
  const group = choicesBox.getBoundingClientRect();
  tip.classList.add("floating");
  // Left of the whole group (not just this button: at tablet width choices sit side by side).
  if (group.left - HINT_WIDTH - 12 >= 8) {
    tip.style.left = `${group.left - HINT_WIDTH - 12}px`;
    tip.style.top = `${r.top}px`;
    tip.style.width = `${HINT_WIDTH}px`;
  } else {
    tip.style.left = `${group.left}px`;
    tip.style.top = `${group.bottom + 6}px`;
    tip.style.width = `${group.width}px`;
  }
}

function setAllHints(on) {
  state.showAllHints = on;
  for (const tip of choicesBox.querySelectorAll("[role=tooltip]")) {
    tip.classList.remove("floating");
    tip.style.left = tip.style.top = tip.style.width = "";
  }
  root.classList.toggle("show-hints", on);
  hintsButton.setAttribute("aria-pressed", String(on));
  for (const tip of choicesBox.querySelectorAll("[role=tooltip]")) tip.hidden = !on;
}

document.addEventListener("keydown", (event) => {
  if (event.repeat || !isShortcut(event)) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (key === "?") setAllHints(!state.showAllHints);
  else if (key === "Escape") setAllHints(false);
  else if (key === "s") skip();
  else if (key === "u") undo();
  else if (state.byKey.has(key)) answer(state.byKey.get(key));
  else return;
  event.preventDefault();
});

document.getElementById("skip").addEventListener("click", skip);
document.getElementById("undo").addEventListener("click", undo);
hintsButton.addEventListener("click", () => setAllHints(!state.showAllHints));
document.getElementById("check-again").addEventListener("click", () => refill({ force: true }));

async function start() {
  try {
    const { data: project } = await api("GET", `/api/v1/projects/${projectId}/`);
    document.getElementById("question").textContent = project.question;
    state.overlap = project.overlap;
    renderChoices(project.choices);
    addShortcuts("Annotate", [
      ...project.choices.map((c) => [c.hotkey.toUpperCase(), `answer ${c.label}`]),
      ["S", "skip this image"], ["U", "undo your last answer"], ["?", "also shows every choice's hint"],
    ]);
  } catch (err) {
    say(`Could not load the project: ${err.message}`, true);
    return;
  }
  await Promise.all([refill({ force: true }), loadProgress()]);
  loadGoldAccuracy();
  setInterval(loadProgress, PROGRESS_EVERY_MS);
  // Asking again renews the leases we hold, so a long look at one image does not lose it.
  setInterval(() => refill({ force: true }), 120_000);
}

start();
