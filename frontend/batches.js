// Owner page: batches with coloured status and progress; a new-batch form; uploads of files and zips
// (with an upload progress bar) or URL lists (pasted, CSV or JSON); the audit plan explained before a
// sample is drawn; a rejected batch sent back, whole or only its failed answers.

import { api, el, showErrors, upload } from "./api.js";
import { addShortcuts } from "./help.js";
import { auditSentence, cleanAuditsNeeded, percent } from "./stats.js";

const app = document.getElementById("batches-app");
const projectId = app.dataset.project;
const maxError = Number(app.dataset.maxError);
const $ = (id) => document.getElementById(id);
const tbody = document.querySelector("#batch-table tbody");
const uploadBatch = $("u-batch");
const results = $("upload-results");
const URL_CHUNK = 5000; // URL tasks per request, so a long list shows progress and never hits a body limit
let batches = [];
let auditing = null;
let relabeling = null;

addShortcuts("Batches", [["n", "type a new batch's name"], ["f", "choose files to upload"]]);
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest?.("input, textarea, select")) return;
  if (event.key === "n") { event.preventDefault(); $("b-name").focus(); }
  else if (event.key === "f") { event.preventDefault(); $("u-files").focus(); }
});

function say(text) {
  $("list-errors").hidden = true;
  $("list-status").textContent = text;
  $("list-status").hidden = false;
}

function fail(box, err) {
  showErrors(box, err);
  box.focus();
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function row(batch) {
  const c = batch.counts;
  const live = c.total - c.failed - c.cancelled;
  const done = c.completed;
  const percentDone = Math.round(batch.progress * 100);
  const actions = el("td", { class: "inline-actions" });
  const button = (text, label, onclick, cls = "secondary small") => el("button", { type: "button", class: cls, text, "aria-label": label, onclick });
  if (batch.status === "open") actions.append(button("Finalize", `Finalize ${batch.name}`, () => finalize(batch)));
  if (batch.kind === "production" && batch.status === "labeled") actions.append(button("Audit…", `Audit ${batch.name}`, () => openAudit(batch), "small"));
  if (batch.status === "rejected") actions.append(button("Send back…", `Send back ${batch.name}`, () => openRelabel(batch), "small"));
  if (batch.kind === "calibration" && ["labeled", "audited", "accepted"].includes(batch.status)) {
    actions.append(el("a", { href: `/projects/${projectId}/review/`, text: "Review answers" }));
  }
  if (batch.audit_round > 0) actions.append(el("a", { href: `/projects/${projectId}/quality/#batch-${batch.id}`, text: "Audit figures" }));
  actions.append(el("a", { href: `/projects/${projectId}/tasks/?batch=${batch.id}`, text: "Tasks" }));
  const details = [`${c.queued} queued`, `${c.pending} downloading`, `${c.failed} failed`];
  if (batch.gold_copies) details.push(`${batch.gold_copies} hidden gold cop${batch.gold_copies === 1 ? "y" : "ies"}`);
  return el("tr", { "data-batch": batch.id },
    el("th", { scope: "row", text: batch.name }),
    el("td", { text: batch.kind }),
    el("td", {}, el("span", { class: "badge", "data-status": batch.status, text: batch.status })),
    el("td", {},
      el("progress", { max: String(live || 1), value: String(done), "aria-label": `${batch.name}: ${percentDone}% labeled` }),
      el("span", { class: "muted", text: ` ${done} / ${live} (${percentDone}%)` })),
    el("td", { class: "muted", text: details.join(" · ") }),
    actions,
  );
}

async function load() {
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/batches/`);
    batches = data;
    tbody.replaceChildren(...data.map(row));
    if (!data.length) {
      tbody.append(el("tr", {}, el("td", { colspan: "6", class: "muted",
        text: "No batches yet. Create a calibration batch below, then upload images into it and click Finalize." })));
    }
    const open = data.filter((b) => b.status === "open");
    const chosen = uploadBatch.value;
    uploadBatch.replaceChildren(...open.map((b) => el("option", { value: b.id, text: b.name, selected: String(b.id) === chosen })));
    $("upload-button").disabled = open.length === 0;
    if (!open.length) uploadBatch.append(el("option", { value: "", text: "no open batch: create one first" }));
    app.dataset.state = "ready";
    // URL downloads and labeling move counts on their own: look again while anything is under way.
    clearTimeout(load.timer);
    if (data.some((b) => b.counts.pending > 0 || ["finalized", "labeling", "audited"].includes(b.status))) load.timer = setTimeout(load, 5000);
  } catch (err) {
    fail($("list-errors"), err);
  }
}

async function finalize(batch) {
  $("list-errors").hidden = true;
  try {
    await api("POST", `/api/v1/batches/${batch.id}/finalize/`);
    say(`${batch.name} is finalized: annotators can label it now.`);
  } catch (err) {
    fail($("list-errors"), err);
  }
  load();
}

// --- audit: the plan first, then the draw ------------------------------------------------------

async function showPlan() {
  const box = $("audit-plan");
  const size = Number($("a-size").value);
  if (!(size >= 1)) {
    box.textContent = "Give a sample size of at least 1.";
    return;
  }
  try {
    const { data: plan } = await api("GET", `/api/v1/batches/${auditing.id}/audit/?size=${size}`);
    const clean = cleanAuditsNeeded(plan.max_error_rate);
    const strata = Object.entries(plan.strata).map(([label, n]) => `${label} ${n}`).join(" · ");
    let verdict;
    if (plan.population < clean) {
      verdict = `With ${plural(plan.population, "labeled image")} a batch can never pass ${percent(plan.max_error_rate)}: ` +
        `${clean} error-free audits are needed. Add images to later batches, or raise the maximum error rate under Settings.`;
    } else if (plan.size < clean) {
      verdict = `A sample of ${plan.size} can never pass ${percent(plan.max_error_rate)}: ${clean} error-free audits are needed; ` +
        `set the sample size to at least ${clean}.`;
    } else {
      verdict = auditSentence(plan.size, plan.max_error_rate);
    }
    box.classList.toggle("warn", !plan.can_accept);
    box.replaceChildren(
      el("p", { text: `${plan.size} of ${plural(plan.population, "answered task")} will be drawn${strata ? ` (${strata})` : ""}.` }),
      el("p", { id: "audit-verdict", text: verdict }),
    );
  } catch (err) {
    fail($("audit-errors"), err);
  }
}

function openAudit(batch) {
  auditing = batch;
  $("relabel-panel").hidden = true;
  $("audit-errors").hidden = true;
  $("audit-title").textContent = `Audit ${batch.name}`;
  $("a-size").value = app.dataset.auditSize;
  $("audit-panel").hidden = false;
  $("a-size").focus();
  showPlan();
}

$("a-size").addEventListener("input", () => { clearTimeout(showPlan.timer); showPlan.timer = setTimeout(showPlan, 250); });
$("close-audit").addEventListener("click", () => { $("audit-panel").hidden = true; });
$("audit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("audit-errors").hidden = true;
  try {
    const { data } = await api("POST", `/api/v1/batches/${auditing.id}/audit/`, { size: Number($("a-size").value) });
    $("audit-panel").hidden = true;
    say(`Sample of ${data.tasks.length} drawn from ${auditing.name} (seed ${data.seed}). Reviewers find it on the Review page.`);
  } catch (err) {
    fail($("audit-errors"), err);
  }
  load();
});

// --- a rejected batch sent back ---------------------------------------------------------------

async function openRelabel(batch) {
  relabeling = batch;
  $("audit-panel").hidden = true;
  $("relabel-errors").hidden = true;
  $("relabel-title").textContent = `Send ${batch.name} back for relabeling`;
  $("relabel-panel").hidden = false;
  $("relabel-failed").focus();
  try {
    const { data } = await api("GET", `/api/v1/batches/${batch.id}/quality/`);
    $("relabel-summary").textContent = `Rejected: ${data.summary}, error rate ${percent(data.error_rate)} ` +
      `(95% Wilson interval ${percent(data.wilson[0])} – ${percent(data.wilson[1])}, above the ${percent(data.max_error_rate)} line).`;
  } catch (err) {
    fail($("relabel-errors"), err);
  }
}

async function relabel(scope) {
  $("relabel-errors").hidden = true;
  try {
    const { data } = await api("POST", `/api/v1/batches/${relabeling.id}/relabel/`, { scope });
    $("relabel-panel").hidden = true;
    say(`${plural(data.requeued, "task")} of ${relabeling.name} went back to the annotators.`);
  } catch (err) {
    fail($("relabel-errors"), err);
  }
  load();
}
$("relabel-failed").addEventListener("click", () => relabel("failed"));
$("relabel-all").addEventListener("click", () => relabel("all"));
$("close-relabel").addEventListener("click", () => { $("relabel-panel").hidden = true; });

// --- new batches and uploads ------------------------------------------------------------------

$("new-batch").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const box = $("new-errors");
  box.hidden = true;
  if (!form.elements.name.value.trim()) return fail(box, { message: "Give the batch a name, e.g. calibration-1." });
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/batches/`, { name: form.elements.name.value, kind: form.elements.kind.value });
    form.elements.name.value = "";
    await load();
    uploadBatch.value = String(data.id);
    say(`${data.name} is open: upload its images below, then click Finalize.`);
  } catch (err) {
    fail(box, err);
  }
});

// URL lists: lines ("url" or "url,unique_id"), CSV with a header, or JSON.
function parseUrlList(text, name = "") {
  const trimmed = text.trim();
  if (!trimmed) return [];
  if (/\.json$/i.test(name) || trimmed.startsWith("[") || trimmed.startsWith("{")) {
    let data;
    try {
      data = JSON.parse(trimmed);
    } catch (err) {
      throw new Error(`${name || "the list"} is not valid JSON (${err.message}); fix it or paste one URL per line`);
    }
    const items = Array.isArray(data) ? data : data.tasks;
    if (!Array.isArray(items)) throw new Error('the JSON must be a list of URLs, or of objects with "image_url"');
    return items.map((item, i) => {
      if (typeof item === "string") return { image_url: item };
      if (item && typeof item === "object" && (item.image_url || item.url)) {
        const task = { image_url: item.image_url || item.url };
        if (item.unique_id != null) task.unique_id = String(item.unique_id);
        if (item.metadata && typeof item.metadata === "object") task.metadata = item.metadata;
        return task;
      }
      throw new Error(`item ${i + 1} of the JSON has no "image_url"`);
    });
  }
  const lines = trimmed.split(/\r?\n/).filter((l) => l.trim());
  const cells = (line) => line.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1"));
  const head = cells(lines[0]).map((c) => c.toLowerCase());
  const urlColumn = head.findIndex((c) => c === "image_url" || c === "url");
  if (urlColumn >= 0) {
    const idColumn = head.indexOf("unique_id");
    return lines.slice(1).map((line) => {
      const row = cells(line);
      const task = { image_url: row[urlColumn] };
      if (idColumn >= 0 && row[idColumn]) task.unique_id = row[idColumn];
      const metadata = Object.fromEntries(head.map((key, i) => [key, row[i]]).filter(([key, v], i) => i !== urlColumn && i !== idColumn && key && v !== undefined && v !== ""));
      if (Object.keys(metadata).length) task.metadata = metadata;
      return task;
    });
  }
  return lines.map((line) => {
    const [url, uniqueId] = cells(line);
    return uniqueId ? { image_url: url, unique_id: uniqueId } : { image_url: url };
  });
}

function progress(fraction, text) {
  $("upload-progress").hidden = false;
  $("upload-bar").value = fraction;
  $("upload-progress-text").textContent = text;
}

function showResults(summary, items) {
  results.replaceChildren(
    el("p", { id: "upload-summary", text: `${summary.created} created, ${summary.duplicate} duplicate, ${summary.rejected} rejected` +
      (items.some((i) => i.near_duplicate_of) ? `, ${items.filter((i) => i.near_duplicate_of).length} near-duplicate` : "") }),
    el("table", { class: "data", id: "upload-items" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "File" }), el("th", { scope: "col", text: "Result" }), el("th", { scope: "col", text: "Detail" }))),
      el("tbody", {}, ...items.slice(0, 1000).map((item) => el("tr", { "data-status": item.status },
        el("td", { text: item.name }),
        el("td", {}, el("span", { class: "badge", "data-status": item.status === "rejected" ? "rejected" : item.status === "created" ? "accepted" : "pending", text: item.status })),
        el("td", { text: item.reason || (item.task_id ? `task ${item.task_id}` : "") +
          (item.near_duplicate_of ? ` · nearly the same image as task ${item.near_duplicate_of}` : "") }))))),
    ...(items.length > 1000 ? [el("p", { class: "muted", text: `The first 1,000 of ${items.length} items are listed.` })] : []),
  );
}

async function uploadUrls(batchId, tasks) {
  const summary = { created: 0, duplicate: 0, rejected: 0 };
  const items = [];
  for (let i = 0; i < tasks.length; i += URL_CHUNK) {
    progress(i / tasks.length, `Sending URLs ${i + 1}–${Math.min(i + URL_CHUNK, tasks.length)} of ${tasks.length}…`);
    const { data } = await api("POST", `/api/v1/batches/${batchId}/tasks/`, { tasks: tasks.slice(i, i + URL_CHUNK) });
    for (const key of Object.keys(summary)) summary[key] += data.summary[key];
    items.push(...data.items);
  }
  progress(1, `${tasks.length} URLs sent; a worker downloads the images now.`);
  return { summary, items };
}

$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const box = $("upload-errors");
  box.hidden = true;
  const files = form.elements.files.files;
  if (!uploadBatch.value) return fail(box, { message: "Create a batch first (New batch above), then upload into it." });
  let tasks = [];
  try {
    const urlFile = form.elements.url_file.files[0];
    tasks = parseUrlList(form.elements.urls.value);
    if (urlFile) tasks = tasks.concat(parseUrlList(await urlFile.text(), urlFile.name));
  } catch (err) {
    return fail(box, { message: err.message });
  }
  if (!files.length && !tasks.length) return fail(box, { message: "Choose images or zip archives, or add image URLs, then click Upload." });
  const button = $("upload-button");
  button.disabled = true;
  results.replaceChildren();
  try {
    const summary = { created: 0, duplicate: 0, rejected: 0 };
    const items = [];
    if (files.length) {
      const body = new FormData();
      let size = 0;
      for (const file of files) { body.append("files", file); size += file.size; }
      progress(0, `Uploading ${plural(files.length, "file")}…`);
      const { data } = await upload(`/api/v1/batches/${uploadBatch.value}/tasks/`, body, (loaded, total) => {
        const whole = total || size || 1;
        progress(loaded / whole, loaded >= whole ? "Uploaded; the server is reading the images…" : `Uploading: ${Math.round((100 * loaded) / whole)}%`);
      });
      progress(1, `${plural(files.length, "file")} uploaded.`);
      for (const key of Object.keys(summary)) summary[key] += data.summary[key];
      items.push(...data.items);
    }
    if (tasks.length) {
      const done = await uploadUrls(uploadBatch.value, tasks);
      for (const key of Object.keys(summary)) summary[key] += done.summary[key];
      items.push(...done.items);
    }
    showResults(summary, items);
    form.elements.files.value = "";
    form.elements.urls.value = "";
    form.elements.url_file.value = "";
  } catch (err) {
    $("upload-progress").hidden = true;
    fail(box, err);
  } finally {
    button.disabled = false;
    load();
  }
});

// --- model assistance: the embedding job's progress and the suggestion model's accuracy --------------

async function loadAssist() {
  clearTimeout(loadAssist.timer);
  try {
    const { data } = await api("GET", `/api/v1/projects/${projectId}/assist/`);
    const e = data.embeddings;
    const job = e.job;
    const running = job && ["queued", "running"].includes(job.status);
    $("embed-bar").max = Math.max(1, e.images);
    $("embed-bar").value = e.embedded;
    let text = `${e.embedded} of ${plural(e.images, "image")} embedded`;
    if (e.version) text += ` (feature model ${e.version}, ${e.kind === "backbone" ? "a pretrained backbone" : "trained on this project's images"})`;
    if (job && job.status === "running") text += job.assets_total ? ` · embedding ${job.assets_done} of ${job.assets_total}` : " · training the feature model";
    else if (job && job.status === "queued") text += " · the job is queued";
    else if (job && job.status === "failed") text += ` · the last job failed: ${job.error}`;
    if (!e.enabled) text += " · automatic embedding is off on this server";
    $("embed-text").textContent = text;
    const s = data.suggestions;
    $("suggest-text").textContent = s.accuracy === null
      ? (s.suggested ? `${plural(s.suggested, "queued task")} have a suggestion; review gold in calibration to measure how good they are.`
        : "No suggestions yet: they come once images are embedded and some tasks have answers (gold or accepted).")
      : `Suggestions: ${percent(s.accuracy)} right on ${plural(s.heldout, "gold task")} held out ` +
        `(95% interval ${percent(s.interval[0])} – ${percent(s.interval[1])}), learned from ${s.gold} gold and ${s.accepted} accepted answers; ` +
        `${plural(s.suggested, "queued task")} have one.`;
    if (running || (s.job_status && ["queued", "running"].includes(s.job_status))) loadAssist.timer = setTimeout(loadAssist, 3000);
  } catch (err) {
    $("embed-text").textContent = "";
    if (err.status !== 403) fail($("assist-errors"), err);
  }
}

async function embed(retrain) {
  $("assist-errors").hidden = true;
  try {
    await api("POST", `/api/v1/projects/${projectId}/assist/`, { retrain });
    say(retrain ? "A new feature model will be trained from the images and answers there are now." : "The embedding job is queued.");
  } catch (err) {
    fail($("assist-errors"), err);
  }
  loadAssist();
}
$("embed-now").addEventListener("click", () => embed(false));
$("retrain").addEventListener("click", () => embed(true));

load();
loadAssist();
