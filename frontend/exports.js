// Owner page: start a background export in any format, follow its progress bar, download past exports.

import { api, bytes, el, showErrors, when } from "./api.js";
import { addShortcuts } from "./help.js";

const app = document.getElementById("exports-app");
const projectId = app.dataset.project;
const $ = (id) => document.getElementById(id);
const form = $("new-export");
const NAMES = { json: "JSON", ndjson: "NDJSON", csv: "CSV", labelstudio: "Label Studio", imagefolder: "ImageFolder zip", cyclegan: "Split zip" };
const batchNames = new Map();
const splitNames = new Map();
let timer = null;

addShortcuts("Exports", [["1 – 6", "choose a format (in the order listed)"], ["Enter", "start the export (a format focused)"]]);
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest?.("input:not([type=radio]), textarea, select")) return;
  const radios = [...form.querySelectorAll('input[name="format"]')];
  const index = Number(event.key) - 1;
  if (index >= 0 && index < radios.length) {
    radios[index].checked = true;
    radios[index].focus();
    scope();
  }
});

function scope() {
  const split = form.elements.format.value === "cyclegan";
  $("scope-split").hidden = !split;
  $("scope-batch").hidden = split;
}
form.addEventListener("change", scope);

function row(x) {
  const live = x.status === "queued" || x.status === "running";
  const total = x.rows_total;
  const what = x.split ? `split ${splitNames.get(x.split) ?? x.split}` : x.batch ? `batch ${batchNames.get(x.batch) ?? x.batch}` : "every batch";
  const progressText = x.status === "done" ? `${x.rows_done} rows` : total ? `${x.rows_done} / ${total}` : live ? "starting…" : "";
  const file = x.download_url
    ? el("a", { href: x.download_url, text: "Download", download: "", "aria-label": `Download export ${x.id}` })
    : el("span", { class: x.status === "failed" ? "error" : "muted", text: x.status === "failed" ? x.error : x.status === "expired" ? "deleted: start a new export" : "" });
  return el("tr", { "data-export": x.id, "data-status": x.status },
    el("th", { scope: "row", text: String(x.id) }),
    el("td", { text: NAMES[x.format] ?? x.format }),
    el("td", { text: what }),
    el("td", {}, el("span", { class: "badge", "data-status": x.status, text: x.status })),
    el("td", {}, el("progress", { max: "1", value: String(x.progress), "aria-label": `Export ${x.id}: ${Math.round(x.progress * 100)}%` }),
      el("span", { class: "muted", text: ` ${progressText}` })),
    el("td", { text: bytes(x.byte_size) }),
    el("td", { text: when(x.created_at) }),
    el("td", { text: x.expires_at ? when(x.expires_at) : x.status === "done" ? "kept" : "–" }),
    el("td", {}, file),
  );
}

async function load() {
  clearTimeout(timer);
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/exports/`);
    const tbody = $("export-table").querySelector("tbody");
    tbody.replaceChildren(...data.map(row));
    if (!data.length) tbody.append(el("tr", {}, el("td", { colspan: "9", class: "muted", text: "No exports yet. Choose a format above and click Start export." })));
    app.dataset.state = "ready";
    if (data.some((x) => x.status === "queued" || x.status === "running")) timer = setTimeout(load, 1000);
  } catch (err) {
    showErrors($("export-errors"), err);
  }
}

async function loadChoices() {
  const [batches, splits] = await Promise.all([
    api("GET", `/api/v1/projects/${projectId}/batches/`),
    api("GET", `/api/v1/projects/${projectId}/splits/`),
  ]);
  for (const b of batches.data) batchNames.set(b.id, b.name);
  $("e-batch").append(...batches.data.map((b) => el("option", { value: b.id, text: `${b.name} (${b.status})` })));
  const approved = splits.data.filter((s) => s.status === "approved").reverse();
  for (const s of splits.data) splitNames.set(s.id, `v${s.version}`);
  $("e-split").replaceChildren(...approved.map((s) => el("option", { value: s.id, text: `v${s.version} (A ${s.counts.A.total}, B ${s.counts.B.total})` })));
  if (!approved.length) $("e-split").append(el("option", { value: "", text: "no approved split: approve one on the Training page" }));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("export-errors");
  box.hidden = true;
  const format = form.elements.format.value;
  const body = { format };
  if (format === "cyclegan") {
    if (!$("e-split").value) {
      showErrors(box, { message: "Approve a split on the Training page first; the split zip exports an approved split." });
      return box.focus();
    }
    body.split = Number($("e-split").value);
  } else if ($("e-batch").value) {
    body.batch = Number($("e-batch").value);
  }
  try {
    await api("POST", `/api/v1/projects/${projectId}/exports/`, body);
  } catch (err) {
    showErrors(box, err);
    box.focus();
  }
  load();
});

loadChoices().catch((err) => showErrors($("export-errors"), err)).finally(load);
