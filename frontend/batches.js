// Owner page: batches with status and progress bars, a new-batch form, uploads with per-item results.

import { api, el, messages } from "./api.js";

const app = document.getElementById("batches-app");
const projectId = app.dataset.project;
const tbody = document.querySelector("#batch-table tbody");
const uploadBatch = document.getElementById("u-batch");
const results = document.getElementById("upload-results");

function showErrors(box, err) {
  const list = messages(err.data).length ? messages(err.data) : [err.message];
  box.replaceChildren(el("ul", {}, ...list.map((m) => el("li", { text: m }))));
  box.hidden = false;
}

function row(batch) {
  const live = batch.counts.total - batch.counts.failed - batch.counts.cancelled;
  const done = batch.counts.completed;
  const percent = Math.round(batch.progress * 100);
  const actions = el("td");
  if (batch.status === "open") {
    actions.append(el("button", { type: "button", class: "secondary", text: "Finalize",
      "aria-label": `Finalize ${batch.name}`, onclick: () => finalize(batch) }));
  }
  return el("tr", { "data-batch": batch.id },
    el("th", { scope: "row", text: batch.name }),
    el("td", { text: batch.kind }),
    el("td", {}, el("span", { class: "badge", text: batch.status })),
    el("td", {},
      el("progress", { max: String(live || 1), value: String(done), "aria-label": `${batch.name}: ${percent}% labeled` }),
      el("span", { class: "muted", text: ` ${done} / ${live} (${percent}%)` })),
    el("td", { class: "muted", text: `${batch.counts.queued} queued · ${batch.counts.pending} downloading · ${batch.counts.failed} failed` }),
    actions,
  );
}

async function load() {
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/batches/`);
    tbody.replaceChildren(...data.map(row));
    const open = data.filter((b) => b.status === "open");
    const chosen = uploadBatch.value;
    uploadBatch.replaceChildren(...open.map((b) => el("option", { value: b.id, text: b.name, selected: String(b.id) === chosen })));
    document.getElementById("upload-button").disabled = open.length === 0;
    if (!open.length) uploadBatch.append(el("option", { value: "", text: "no open batch: create one first" }));
  } catch (err) {
    showErrors(document.getElementById("list-errors"), err);
  }
}

async function finalize(batch) {
  const box = document.getElementById("list-errors");
  box.hidden = true;
  try {
    await api("POST", `/api/v1/batches/${batch.id}/finalize/`);
  } catch (err) {
    showErrors(box, err);
  }
  load();
}

document.getElementById("new-batch").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const box = document.getElementById("new-errors");
  box.hidden = true;
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/batches/`, { name: form.elements.name.value, kind: form.elements.kind.value });
    form.reset();
    uploadBatch.value = String(data.id);
    await load();
    uploadBatch.value = String(data.id);
  } catch (err) {
    showErrors(box, err);
  }
});

document.getElementById("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const box = document.getElementById("upload-errors");
  box.hidden = true;
  const files = form.elements.files.files;
  if (!uploadBatch.value) return showErrors(box, { message: "create a batch first, then upload into it" });
  if (!files.length) return showErrors(box, { message: "choose one or more images or zip archives" });
  const body = new FormData();
  for (const file of files) body.append("files", file);
  const button = document.getElementById("upload-button");
  button.disabled = true;
  results.replaceChildren(el("p", { class: "muted", text: `Uploading ${files.length} file(s)…` }));
  try {
    const { data } = await api("POST", `/api/v1/batches/${uploadBatch.value}/tasks/`, body);
    const s = data.summary;
    results.replaceChildren(
      el("p", { id: "upload-summary", text: `${s.created} created, ${s.duplicate} duplicate, ${s.rejected} rejected` }),
      el("table", { class: "data", id: "upload-items" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "File" }), el("th", { scope: "col", text: "Result" }), el("th", { scope: "col", text: "Detail" }))),
        el("tbody", {}, ...data.items.map((item) => el("tr", { "data-status": item.status },
          el("td", { text: item.name }),
          el("td", {}, el("span", { class: item.status === "rejected" ? "badge warn" : "badge", text: item.status })),
          el("td", { text: item.reason || (item.task_id ? `task ${item.task_id}` : "") }))))),
    );
    form.elements.files.value = "";
  } catch (err) {
    results.replaceChildren();
    showErrors(box, err);
  } finally {
    button.disabled = false;
    load();
  }
});

load();
