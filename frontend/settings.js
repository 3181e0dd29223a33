// Owner page: project settings and the taxonomy editor. Saves the whole taxonomy in one PATCH, in
// the order shown; the API refuses conflicts (a hotkey used twice, a reserved key) and the message
// is shown as it comes back.

import { api, el, messages } from "./api.js";

const form = document.getElementById("settings");
const projectId = form.dataset.project;
const rows = document.getElementById("choice-rows");
const errors = document.getElementById("errors");
const saved = document.getElementById("saved");
const FIELDS = ["name", "question", "instructions", "overlap", "lease_seconds", "gold_rate", "min_gold_accuracy",
  "min_gold_answers", "audit_sample_size", "max_error_rate"];
const NUMBERS = new Set(["overlap", "lease_seconds", "gold_rate", "min_gold_accuracy", "min_gold_answers",
  "audit_sample_size", "max_error_rate"]);
const DOMAINS = [["A", "Domain A"], ["B", "Domain B"], ["excluded", "Excluded"]];
let serial = 0;

function choiceRow(choice = {}) {
  serial += 1;
  const n = serial;
  const field = (name, label, input) => el("div", {}, el("label", { for: `c${n}-${name}`, text: label }), input);
  const row = el("div", { class: "row", "data-id": choice.id ?? "" });
  const labelInput = el("input", { id: `c${n}-label`, name: "label", maxlength: "100", value: choice.label ?? "" });
  const domain = el("select", { id: `c${n}-domain`, name: "domain" },
    ...DOMAINS.map(([value, text]) => el("option", { value, text, selected: (choice.domain ?? "excluded") === value })));
  const hint = el("textarea", { id: `c${n}-long_hint`, name: "long_hint", rows: "2" });
  hint.value = choice.long_hint ?? "";
  const name = () => labelInput.value || "this choice";
  const up = el("button", { type: "button", class: "secondary", text: "↑", onclick: () => move(row, -1) });
  const down = el("button", { type: "button", class: "secondary", text: "↓", onclick: () => move(row, 1) });
  const remove = el("button", { type: "button", class: "secondary", text: "✕", onclick: () => { row.remove(); relabel(); } });
  row.append(
    field("label", "Label", labelInput),
    field("description", "Description", el("input", { id: `c${n}-description`, name: "description", maxlength: "300", value: choice.description ?? "" })),
    field("long_hint", "Long hint (tooltip)", hint),
    field("hotkey", "Hotkey", el("input", { id: `c${n}-hotkey`, name: "hotkey", maxlength: "1", value: choice.hotkey ?? "", autocomplete: "off" })),
    field("domain", "Domain role", domain),
    el("div", { class: "row-actions" }, up, down, remove),
  );
  row.relabel = () => {
    up.setAttribute("aria-label", `Move ${name()} up`);
    down.setAttribute("aria-label", `Move ${name()} down`);
    remove.setAttribute("aria-label", `Remove ${name()}`);
  };
  labelInput.addEventListener("input", row.relabel);
  return row;
}

function relabel() {
  for (const row of rows.children) row.relabel();
}

function move(row, step) {
  const sibling = step < 0 ? row.previousElementSibling : row.nextElementSibling;
  if (!sibling) return;
  if (step < 0) rows.insertBefore(row, sibling);
  else rows.insertBefore(sibling, row);
  row.querySelector(`button[aria-label^="Move"][aria-label$="${step < 0 ? "up" : "down"}"]`)?.focus();
}

function collect() {
  const body = {};
  for (const name of FIELDS) {
    const input = form.elements[name];
    body[name] = NUMBERS.has(name) ? Number(input.value) : input.value;
  }
  body.choices = [...rows.children].map((row) => {
    const value = (name) => row.querySelector(`[name="${name}"]`).value;
    const choice = { label: value("label"), description: value("description"), long_hint: value("long_hint"),
      hotkey: value("hotkey"), domain: value("domain") };
    if (row.dataset.id) choice.id = Number(row.dataset.id);
    return choice;
  });
  return body;
}

function fill(project) {
  for (const name of FIELDS) form.elements[name].value = project[name] ?? "";
  rows.replaceChildren(...project.choices.map((c) => choiceRow(c)));
  relabel();
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
  const row = choiceRow();
  rows.append(row);
  row.relabel();
  row.querySelector("input").focus();
});

api("GET", `/api/v1/projects/${projectId}/`).then(
  ({ data }) => { fill(data); form.dataset.state = "ready"; },
  (err) => showErrors([`Could not load the project: ${err.message}`]),
);
