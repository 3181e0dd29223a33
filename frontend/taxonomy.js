// The taxonomy editor shared by the new-project and settings pages: one row per choice with label,
// description, long hint, hotkey and domain role; reorder with ↑/↓, remove, add. The API checks the
// whole taxonomy (a hotkey used twice, a reserved key); the pages show its words.

import { el } from "./api.js";

const DOMAINS = [["A", "Domain A"], ["B", "Domain B"], ["excluded", "Excluded"]];
let serial = 0;

function choiceRow(choice = {}, onChange) {
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
  const remove = el("button", { type: "button", class: "secondary", text: "✕", onclick: () => { const parent = row.parentElement; row.remove(); relabelAll(parent); onChange?.(); } });
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
  row.addEventListener("input", () => onChange?.());
  row.addEventListener("change", () => onChange?.());
  return row;
}

function relabelAll(rows) {
  if (rows) for (const row of rows.children) row.relabel();
}

function move(row, step) {
  const rows = row.parentElement;
  const sibling = step < 0 ? row.previousElementSibling : row.nextElementSibling;
  if (!sibling) return;
  if (step < 0) rows.insertBefore(row, sibling);
  else rows.insertBefore(sibling, row);
  row.querySelector(`button[aria-label^="Move"][aria-label$="${step < 0 ? "up" : "down"}"]`)?.focus();
}

// rows: the container element. onChange is called after any edit (e.g. to refresh a preview).
export function taxonomyEditor(rows, { onChange } = {}) {
  return {
    fill(choices) {
      rows.replaceChildren(...choices.map((c) => choiceRow(c, onChange)));
      relabelAll(rows);
    },
    add(choice = {}) {
      const row = choiceRow(choice, onChange);
      rows.append(row);
      row.relabel();
      return row;
    },
    collect() {
      return [...rows.children].map((row) => {
        const value = (name) => row.querySelector(`[name="${name}"]`).value;
        const choice = { label: value("label"), description: value("description"), long_hint: value("long_hint"),
          hotkey: value("hotkey"), domain: value("domain") };
        if (row.dataset.id) choice.id = Number(row.dataset.id);
        return choice;
      });
    },
  };
}
