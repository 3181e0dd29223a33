// Review page: reviewers audit sampled answers, or go through the likely-errors queue (lowest label quality
// first; not the audit: its verdicts never enter the error rate); owners also confirm or correct calibration
// answers. Keyboard first: Enter says the answer is right, a choice's hotkey gives the right answer.
import { api, forPage, preload } from "./api.js";
import { addShortcuts } from "./help.js";

const root = document.getElementById("review");
const projectId = root.dataset.project;
const isOwner = root.dataset.owner === "1";
const image = document.getElementById("review-image");
const empty = document.getElementById("review-empty");
const emptyText = document.getElementById("review-empty-text");
const given = document.getElementById("given-answer");
const choicesBox = document.getElementById("choices");
const statusLine = document.getElementById("status");
const reviewedCount = document.getElementById("reviewed-count");
const queueSize = document.getElementById("queue-size");
const calibrationBatches = JSON.parse(document.getElementById("calibration-batches").textContent);
const errorsNote = document.getElementById("errors-note");
const errorScore = document.getElementById("error-score");

const state = { mode: "audit", queue: [], current: null, choices: [], busy: false, reviewed: 0, more: false };
const AUDIT_PAGE = 20; // quality.pending_audits' default limit, and the likely-errors queue's page

function say(text, error = false) {
  statusLine.textContent = forPage(text);
  statusLine.classList.toggle("error", error);
}

function renderChoices() {
  choicesBox.replaceChildren();
  for (const choice of state.choices) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "choice";
    button.dataset.choice = choice.id;
    button.setAttribute("aria-keyshortcuts", choice.hotkey);
    button.innerHTML = `<kbd></kbd> <span class="label"></span>`;
    button.querySelector("kbd").textContent = choice.hotkey.toUpperCase();
    button.querySelector(".label").textContent = choice.label;
    button.title = choice.long_hint || choice.description || "";
    button.addEventListener("click", () => verdict(choice.id));
    choicesBox.append(button);
  }
}

// Loads the queue of the current mode, then shows its first item; a mode switched meanwhile wins.
async function loadQueue() {
  const mode = state.mode;
  let queue;
  if (mode === "audit") {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/audits/`);
    // The server hands out the oldest open audits a page at a time; a full page means there may be more.
    state.more = data.length >= AUDIT_PAGE;
    queue = data.map((row) => ({ task: row.task, image: row.image_url, answer: row.answer, label: row.answer_label }));
  } else if (mode === "errors") {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/likely-errors/?limit=${AUDIT_PAGE}`);
    state.more = data.length >= AUDIT_PAGE;
    queue = data.map((row) => ({ task: row.task, image: row.image_url, answer: row.answer, label: row.answer_label,
      score: row.score, suggested: row.suggested_label }));
  } else {
    const rows = [];
    for (const batch of calibrationBatches) {
      let url = `/api/v1/tasks/?batch=${batch.id}&status=completed&page_size=500`;
      while (url) {
        const { data } = await api("GET", url);
        rows.push(...data.results.filter((t) => !t.is_gold && t.asset));
        url = data.next;
      }
    }
    queue = rows.map((t) => ({ task: t.id, image: t.asset.image_url, answer: t.final_choice, label: t.answer }));
  }
  if (mode !== state.mode) return;
  state.queue = queue;
  state.queue.slice(0, 3).forEach((item) => preload(item.image));
  show();
}

function show() {
  state.current = state.queue.shift() ?? null;
  errorsNote.hidden = state.mode !== "errors";
  if (!state.current && state.mode !== "calibration" && state.more) {
    state.more = false;
    loadQueue().catch((err) => say(err.message, true));
    return;
  }
  // The image on screen counts: "8 left" while the 8th-last is shown.
  const left = state.queue.length + (state.current ? 1 : 0);
  queueSize.textContent = left ? `${left}${state.more ? "+" : ""} left to review` : "";
  if (!state.current) {
    image.hidden = true;
    empty.hidden = false;
    emptyText.textContent = { audit: "No audit sample is waiting for you.",
      errors: "No likely error is waiting for you: the label check runs when a batch is labeled (see the Quality page).",
      calibration: "Every calibration answer is reviewed." }[state.mode];
    given.textContent = "–";
    errorScore.hidden = true;
    root.dataset.state = "empty";
    return;
  }
  if (state.queue[0]) preload(state.queue[0].image);
  empty.hidden = true;
  image.hidden = false;
  image.src = state.current.image;
  image.alt = `Image of task ${state.current.task}`;
  given.textContent = state.current.label ?? "(no answer)";
  errorScore.hidden = state.mode !== "errors";
  if (state.mode === "errors") {
    document.getElementById("score-value").textContent = state.current.score.toFixed(3);
    document.getElementById("suggested-answer").textContent = state.current.suggested;
  }
  root.dataset.state = "ready";
  root.dataset.task = state.current.task;
}

async function verdict(choiceId) {
  if (!state.current || state.busy) return;
  state.busy = true;
  const item = state.current;
  try {
    if (state.mode === "audit") {
      const correct = choiceId === null || choiceId === item.answer;
      const body = correct ? { correct: true } : { correct: false, choice: choiceId };
      const { data } = await api("POST", `/api/v1/tasks/${item.task}/audit/`, body);
      say(data.batch_status === "audited" ? "Saved." : `Saved. The batch is now ${data.batch_status}.`);
    } else if (state.mode === "errors") {
      const correct = choiceId === null || choiceId === item.answer;
      const body = correct ? { correct: true } : { correct: false, choice: choiceId };
      const { data } = await api("POST", `/api/v1/tasks/${item.task}/likely-error-review/`, body);
      say(data.verdict === "correct" ? "Confirmed." : "Corrected: the task's answer is replaced.");
    } else {
      await api("POST", `/api/v1/tasks/${item.task}/gold/`, { choice: choiceId ?? item.answer });
      say("Saved as gold.");
      refreshReport();
    }
    state.reviewed += 1;
    reviewedCount.textContent = state.reviewed;
  } catch (err) {
    // Another reviewer took it first (409): nothing to undo, just move on.
    say(err.status === 409 ? `Skipped: ${err.message}` : err.message, err.status !== 409);
    if (err.status !== 409) {
      state.busy = false;
      return;
    }
  }
  state.busy = false;
  show();
}

async function refreshReport() {
  if (!isOwner) return;
  const summary = document.getElementById("calibration-summary");
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/calibration/`);
    const accuracy = data.accuracy == null ? "–" : `${Math.round(data.accuracy * 100)}%`;
    summary.textContent = `${data.reviewed} of ${data.tasks} calibration tasks reviewed; answers ${accuracy} right` +
      (data.approved ? "; approved." : ".");
    document.getElementById("approve-calibration").disabled = data.approved;
  } catch (err) {
    summary.textContent = err.message;
  }
}

async function start() {
  const { data: project } = await api("GET", `/api/v1/projects/${projectId}/`);
  state.choices = project.choices;
  addShortcuts("Review", [["Enter / C", "the answer is right"],
    ...project.choices.map((c) => [c.hotkey.toUpperCase(), `wrong: the right answer is ${c.label}`])]);
  renderChoices();
  await loadQueue();
  refreshReport();
}

document.getElementById("confirm").addEventListener("click", () => verdict(null));
document.querySelectorAll('input[name="mode"]').forEach((radio) =>
  radio.addEventListener("change", async () => {
    state.mode = radio.value;
    document.getElementById("confirm").focus(); // keys go to the review, not the radio buttons
    await loadQueue();
  }),
);
document.getElementById("approve-calibration")?.addEventListener("click", async () => {
  try {
    await api("POST", `/api/v1/projects/${projectId}/approve-calibration/`);
    say("Calibration approved: production batches are open.");
  } catch (err) {
    say(err.message, true);
  }
  refreshReport();
});

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.matches?.("textarea, select, input:not([type=radio]):not([type=checkbox])")) return;
  const key = event.key.toLowerCase();
  if (key === "enter" || key === "c") {
    event.preventDefault();
    verdict(null);
    return;
  }
  const choice = state.choices.find((c) => c.hotkey === key);
  if (choice) {
    event.preventDefault();
    verdict(choice.id);
  }
});

start().catch((err) => say(err.message, true));
