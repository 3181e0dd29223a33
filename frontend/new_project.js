// New project: name, question, instructions with a preview, the taxonomy editor and the settings with
// their meaning; posts it to the API and lands on the project's batches page.

import { api, el, messages } from "./api.js";
import { addShortcuts } from "./help.js";
import { auditSentence, errorsAllowed, percent } from "./stats.js";
import { taxonomyEditor } from "./taxonomy.js";

const form = document.getElementById("new-project");
const errors = document.getElementById("errors");
const preview = document.getElementById("instructions-preview");
const taxonomy = taxonomyEditor(document.getElementById("choice-rows"));
const NUMBERS = ["overlap", "lease_seconds", "gold_rate", "min_gold_accuracy", "min_gold_answers", "audit_sample_size",
  "max_error_rate"];

addShortcuts("New project", [["Tab / Shift+Tab", "move between fields"], ["Enter", "create the project (in a one-line field)"]]);

// The annotator page shows instructions as paragraphs (Django's linebreaks): blank lines split them.
function renderPreview() {
  const text = form.elements.instructions.value.trim();
  if (!text) {
    preview.replaceChildren(el("p", { class: "muted", text: "No instructions yet: annotators see only the question and the choices." }));
    return;
  }
  preview.replaceChildren(...text.split(/\n\s*\n/).map((para) => {
    const p = el("p");
    para.split("\n").forEach((line, i) => { if (i) p.append(el("br")); p.append(line); });
    return p;
  }));
}

function explain() {
  const n = Number(form.elements.audit_sample_size.value);
  const p = Number(form.elements.max_error_rate.value);
  const box = document.getElementById("audit-explanation");
  box.textContent = n >= 1 && p > 0 && p < 1 ? auditSentence(n, p) : "Give a sample size of at least 1 and an error rate between 0 and 1.";
  box.classList.toggle("warn", !(n >= 1 && p > 0 && p < 1) || errorsAllowed(n, p) < 0);
  const g = Number(form.elements.gold_rate.value);
  document.getElementById("gold-example").textContent = g > 0
    ? `${percent(g)}: about ${Math.round(g * 1000)} gold copies in a batch of 1,000 images`
    : "0: no gold copies, so annotators are never scored or paused";
}

function collect() {
  const body = { name: form.elements.name.value, question: form.elements.question.value,
    instructions: form.elements.instructions.value };
  for (const name of NUMBERS) body[name] = Number(form.elements[name].value);
  body.choices = taxonomy.collect().map(({ id, ...choice }) => choice);
  return body;
}

form.addEventListener("input", (event) => {
  if (event.target.name === "instructions") renderPreview();
  else explain();
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errors.hidden = true;
  if (!form.elements.name.value.trim()) {
    errors.replaceChildren(el("strong", { text: "Not created:" }), el("ul", {}, el("li", { text: "give the project a name" })));
    errors.hidden = false;
    errors.focus();
    return;
  }
  form.dataset.state = "saving";
  try {
    const { data } = await api("POST", "/api/v1/projects/", collect());
    window.location.assign(`/projects/${data.id}/batches/?created=1`);
  } catch (err) {
    const list = messages(err.data).length ? messages(err.data) : [err.message];
    errors.replaceChildren(el("strong", { text: "Not created:" }), el("ul", {}, ...list.map((m) => el("li", { text: m }))));
    errors.hidden = false;
    errors.focus();
    form.dataset.state = "error";
  }
});

document.getElementById("add-choice").addEventListener("click", () => {
  const hotkey = String(document.getElementById("choice-rows").children.length + 1);
  taxonomy.add({ hotkey: hotkey.length === 1 ? hotkey : "", domain: "excluded" }).querySelector("input").focus();
});

taxonomy.fill([{ hotkey: "1", domain: "A" }, { hotkey: "2", domain: "B" }, { hotkey: "3", domain: "excluded", label: "Neither" }]);
renderPreview();
explain();
