// Owner page: members with their roles and figures; add an existing account or create one (its
// generated password shown once); change a role; pause, reinstate, send answers back; remove.

import { api, el, showErrors } from "./api.js";
import { addShortcuts } from "./help.js";
import { percent } from "./stats.js";

const app = document.getElementById("members-app");
const projectId = app.dataset.project;
const tbody = document.querySelector("#member-table tbody");
const listErrors = document.getElementById("list-errors");
const listStatus = document.getElementById("list-status");
const ROLES = [["annotator", "Annotator"], ["reviewer", "Reviewer"], ["owner", "Owner"]];

addShortcuts("Members", [["Tab", "move through the table's controls"], ["Enter", "press the focused button"]]);

function say(text) {
  listErrors.hidden = true;
  listStatus.textContent = text;
  listStatus.hidden = false;
}

function fail(err) {
  listStatus.hidden = true;
  showErrors(listErrors, err);
  listErrors.focus();
}

// A destructive button asks once more on its own face before it acts. The table is redrawn after
// every change (and after a refused one), so the "asked once" state lives here, keyed by the
// button's name, not on the element: a redraw between the two clicks keeps the question.
const ARMED_MS = 6000;
const armedUntil = new Map();

function confirming(label, question, name, act) {
  const button = el("button", { type: "button", class: "secondary small", text: label, "aria-label": name });
  const show = (armed) => {
    button.textContent = armed ? question : label;
    button.classList.toggle("danger", armed);
  };
  const isArmed = () => (armedUntil.get(name) || 0) > Date.now();
  show(isArmed());
  if (isArmed()) setTimeout(() => show(isArmed()), armedUntil.get(name) - Date.now() + 10);
  button.addEventListener("click", () => {
    if (!isArmed()) {
      armedUntil.set(name, Date.now() + ARMED_MS);
      show(true);
      setTimeout(() => show(isArmed()), ARMED_MS + 10);
      return;
    }
    armedUntil.delete(name);
    show(false);
    act();
  });
  return button;
}

async function run(what, call, done) {
  try {
    const result = await call();
    say(done(result));
  } catch (err) {
    fail(err);
  }
  load();
}

function row(m) {
  const role = el("select", { "aria-label": `Role of ${m.username}` },
    ...ROLES.map(([value, text]) => el("option", { value, text, selected: m.role === value })));
  role.addEventListener("change", () => run("role", () => api("POST", `/api/v1/projects/${projectId}/members/`, { username: m.username, role: role.value }),
    () => `${m.username} is now ${role.value === "owner" ? "an owner" : `a ${role.value}`}.`));
  const gold = m.gold_answers
    ? `${percent(m.gold_accuracy, 0)} of ${m.gold_answers}` + (m.recent_gold_accuracy != null && m.gold_answers > 20 ? ` (recent ${percent(m.recent_gold_accuracy, 0)})` : "")
    : "no gold answers yet";
  const state = m.paused
    ? el("span", {}, el("span", { class: "badge", "data-status": "paused", text: "paused" }), el("span", { class: "muted small-text", text: ` ${m.paused_reason}` }))
    : el("span", { class: "badge", "data-status": "accepted", text: "active" });
  const actions = el("td", { class: "inline-actions" });
  if (m.role !== "owner") {
    if (m.paused) {
      actions.append(el("button", { type: "button", class: "secondary small", text: "Reinstate", "aria-label": `Reinstate ${m.username}`,
        onclick: () => run("reinstate", () => api("POST", `/api/v1/projects/${projectId}/annotators/${encodeURIComponent(m.username)}/reinstate/`),
          () => `${m.username} is reinstated; only gold answers from now on count towards a new pause.`) }));
    } else {
      actions.append(el("button", { type: "button", class: "secondary small", text: "Pause", "aria-label": `Pause ${m.username}`,
        onclick: () => run("pause", () => api("POST", `/api/v1/projects/${projectId}/annotators/${encodeURIComponent(m.username)}/pause/`, {}),
          () => `${m.username} is paused: they get no more images until you reinstate them.`) }));
    }
  }
  if (m.answers) {
    const back = confirming("Send answers back", `Discard ${m.answers} answer${m.answers === 1 ? "" : "s"}?`, `Send ${m.username}'s answers back`, () =>
      run("relabel", () => api("POST", `/api/v1/projects/${projectId}/annotators/${encodeURIComponent(m.username)}/relabel/`),
        ({ data }) => `${data.requeued} task${data.requeued === 1 ? "" : "s"} of ${m.username} went back to the queue (accepted batches keep their answers).`));
    actions.append(back);
  }
  const remove = confirming("Remove", `Remove ${m.username}?`, `Remove ${m.username}`, () =>
    run("remove", () => api("DELETE", `/api/v1/projects/${projectId}/members/${encodeURIComponent(m.username)}/`),
      () => `${m.username} is no longer a member; their answers stay.`));
  actions.append(remove);
  return el("tr", { "data-username": m.username },
    el("th", { scope: "row", text: m.username }),
    el("td", {}, role),
    el("td", { text: String(m.answers) }),
    el("td", { text: gold }),
    el("td", { text: m.median_duration_ms == null ? "–" : `${(m.median_duration_ms / 1000).toFixed(1)} s` }),
    el("td", {}, state),
    actions,
  );
}

// Loads can overlap (a change's reload and the page's own); only the newest one draws the table.
let loads = 0;

async function load() {
  const mine = ++loads;
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/annotators/`);
    if (mine !== loads) return;
    tbody.replaceChildren(...data.map(row));
    if (data.length === 1) {
      tbody.append(el("tr", {}, el("td", { colspan: "7", class: "muted",
        text: "Only you so far. Add annotators below: an existing account by its username, or create a new one." })));
    }
    app.dataset.state = "ready";
  } catch (err) {
    fail(err);
  }
}

const form = document.getElementById("add-member");
const addErrors = document.getElementById("add-errors");

function addFailed(err, username) {
  if (err.status === 404 && err.data?.code !== "not_member") {
    showErrors(addErrors, { message: `There is no account named “${username}”. Click “Create a new account” to make one, or check the spelling.` });
  } else {
    showErrors(addErrors, err);
  }
  addErrors.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  addErrors.hidden = true;
  const username = form.elements.username.value.trim();
  if (!username) return addFailed({ message: "Type the username of the person to add." });
  try {
    await api("POST", `/api/v1/projects/${projectId}/members/`, { username, role: form.elements.role.value });
    say(`${username} is now a member (${form.elements.role.value}).`);
    form.reset();
  } catch (err) {
    addFailed(err, username);
  }
  load();
});

document.getElementById("create-account").addEventListener("click", async () => {
  addErrors.hidden = true;
  const username = form.elements.username.value.trim();
  if (!username) return addFailed({ message: "Type a username for the new account, then click “Create a new account”." });
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/accounts/`, { username, role: form.elements.role.value });
    document.getElementById("new-username").textContent = data.username;
    document.getElementById("new-account-username").textContent = data.username;
    document.getElementById("new-password").textContent = data.password;
    document.getElementById("new-login-url").textContent = data.login_url;
    const box = document.getElementById("new-account");
    box.hidden = false;
    box.focus();
    form.reset();
  } catch (err) {
    if (err.data?.code === "username_taken") {
      showErrors(addErrors, { message: `An account named “${username}” exists already: click “Add existing account” instead.` });
      addErrors.focus();
    } else {
      addFailed(err, username);
    }
  }
  load();
});

document.getElementById("copy-password").addEventListener("click", async () => {
  const text = document.getElementById("new-password").textContent;
  try {
    await navigator.clipboard.writeText(text);
    document.getElementById("copy-password").textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(document.getElementById("new-password"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
});

load();
