// Owner page: project settings and the taxonomy editor. Saves the whole taxonomy in one PATCH, in
// the order shown; the API refuses conflicts (a hotkey used twice, a reserved key) and the message
// is shown as it comes back.

import { api, el, messages } from "./api.js";
import { addShortcuts } from "./help.js";
import { taxonomyEditor } from "./taxonomy.js";

const form = document.getElementById("settings");
const projectId = form.dataset.project;
const taxonomy = taxonomyEditor(document.getElementById("choice-rows"));
const errors = document.getElementById("errors");
const saved = document.getElementById("saved");
const FIELDS = ["name", "question", "instructions", "overlap", "lease_seconds", "gold_rate", "min_gold_accuracy",
  "min_gold_answers", "audit_sample_size", "max_error_rate", "trap_rate", "lease_order"];
const NUMBERS = new Set(["overlap", "lease_seconds", "gold_rate", "min_gold_accuracy", "min_gold_answers",
  "audit_sample_size", "max_error_rate", "trap_rate"]);

addShortcuts("Settings", [["Tab / Shift+Tab", "move between fields"], ["Enter", "save (in a one-line field)"]]);

function collect() {
  const body = {};
  for (const name of FIELDS) {
    const input = form.elements[name];
    body[name] = NUMBERS.has(name) ? Number(input.value) : input.value;
  }
  body.choices = taxonomy.collect();
  return body;
}

function fill(project) {
  for (const name of FIELDS) form.elements[name].value = project[name] ?? "";
  taxonomy.fill(project.choices);
}

function showErrors(list) {
  errors.replaceChildren(el("strong", { text: "Not saved:" }), el("ul", {}, ...list.map((m) => el("li", { text: m }))));
  errors.hidden = false;
  errors.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errors.hidden = true;
  saved.hidden = true;
  form.dataset.state = "saving";
  try {
    const { data } = await api("PATCH", `/api/v1/projects/${projectId}/`, collect());
    fill(data);
    saved.hidden = false;
    form.dataset.state = "saved";
  } catch (err) {
    showErrors(messages(err.data).length ? messages(err.data) : [err.message]);
    form.dataset.state = "error";
  }
});

document.getElementById("add-choice").addEventListener("click", () => {
  taxonomy.add().querySelector("input").focus();
});

api("GET", `/api/v1/projects/${projectId}/`).then(
  ({ data }) => { fill(data); form.dataset.state = "ready"; },
  (err) => showErrors([`Could not load the project: ${err.message}`]),
);
