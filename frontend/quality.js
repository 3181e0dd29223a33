// Owner page: every batch's audit as an interval chart against the acceptance line, gold accuracy per
// annotator over time, the calibration report (confusion matrix as a heatmap, accuracy per choice and
// annotator) and Dawid–Skene estimates beside the majority vote where overlap is 3 or more.

import { api, el, showErrors } from "./api.js";
import { heatmap, intervalChart, notEnough, timeChart } from "./charts.js";
import { addShortcuts } from "./help.js";
import { percent } from "./stats.js";

const app = document.getElementById("quality-app");
const projectId = app.dataset.project;
const overlap = Number(app.dataset.overlap);
const $ = (id) => document.getElementById(id);
const range = ([lo, hi]) => `${percent(lo)} – ${percent(hi)}`;

addShortcuts("Quality", [["Tab", "move between the charts' tables and links"]]);

function meter(share) {
  const bar = el("span");
  bar.style.width = `${Math.round((share ?? 0) * 100)}%`;
  return el("span", { class: "meter", "aria-hidden": "true" }, bar);
}

async function audits() {
  const { data } = await api("GET", `/api/v1/projects/${projectId}/batch-audits/`);
  const done = data.filter((b) => b.audited > 0);
  $("audit-table").querySelector("tbody").replaceChildren(...data.map((b) => el("tr", { id: `batch-${b.batch}` },
    el("th", { scope: "row", text: b.name }),
    el("td", { text: String(b.round) }),
    el("td", { text: b.pending ? `${b.audited} (${b.pending} waiting)` : String(b.audited) }),
    el("td", { text: String(b.errors) }),
    el("td", { text: percent(b.error_rate) }),
    el("td", { text: b.audited ? range(b.wilson) : "–" }),
    el("td", { text: b.audited ? range(b.clopper_pearson) : "–" }),
    ...["assisted", "unassisted"].map((kind) => el("td", { text: b[kind].audited
      ? `${b[kind].errors} in ${b[kind].audited} (${percent(b[kind].error_rate)}, ${range(b[kind].wilson)})` : "–" })),
    el("td", {}, el("span", { class: "badge", "data-status": b.decision === "pending" ? "audited" : b.decision, text: b.decision === "pending" ? "under review" : b.decision })),
  )));
  if (!done.length) {
    notEnough($("audit-chart"), data.length
      ? "the reviewers have not checked any sampled answer yet; they find the sample on the Review page."
      : "no batch has been audited. Once a production batch is labeled, click “Audit…” next to it on the Batches page.");
    return;
  }
  intervalChart($("audit-chart"), done.map((b) => ({ label: `${b.name}${b.round > 1 ? ` (round ${b.round})` : ""}`, value: b.error_rate,
    wilson: b.wilson, exact: b.clopper_pearson, decision: b.decision })), { line: done[0].max_error_rate, label: "Error rate of each audited batch with its intervals" });
}

async function gold() {
  const { data } = await api("GET", `/api/v1/projects/${projectId}/gold-accuracy/`);
  const points = data.series.reduce((n, s) => n + s.points.length, 0);
  if (!points) {
    notEnough($("gold-chart"), "no gold answers. Gold copies are mixed into production batches once the calibration answers are reviewed (Review page) and the gold share is above 0 (Settings).");
    return;
  }
  timeChart($("gold-chart"), data.series.map((s) => ({ name: s.username,
    points: s.points.map((p) => ({ x: new Date(p.start), y: p.accuracy, n: p.answers })) })),
  { threshold: data.min_gold_accuracy, label: "Gold accuracy per annotator per day" });
}

async function calibration() {
  const { data } = await api("GET", `/api/v1/projects/${projectId}/calibration/`);
  $("calibration-summary").textContent = data.tasks
    ? `${data.reviewed} of ${data.tasks} calibration tasks reviewed; ${data.answers} answers scored, ${percent(data.accuracy)} right` +
      (data.median_duration_ms != null ? `; median ${(data.median_duration_ms / 1000).toFixed(1)} s per image` : "") + (data.approved ? "; approved." : ".")
    : "No calibration batch yet: create one on the Batches page.";
  if (!data.answers) {
    notEnough($("confusion"), "review the calibration answers on the Review page (“Calibration answers”) to see where annotators go wrong.");
  } else {
    heatmap($("confusion"), data.labels, data.confusion, { label: "Confusion matrix of calibration answers" });
  }
  const table = (id, rows, empty) => {
    const body = $(id).querySelector("tbody");
    const entries = Object.entries(rows);
    body.replaceChildren(...entries.map(([name, r]) => el("tr", {}, el("th", { scope: "row", text: name }),
      el("td", {}, meter(r.accuracy), percent(r.accuracy)), el("td", { text: `${r.correct} / ${r.total}` }))));
    if (!entries.length) body.append(el("tr", {}, el("td", { colspan: "3", class: "muted", text: empty })));
  };
  table("per-choice", data.per_choice, "Not enough data yet.");
  table("per-annotator", data.per_annotator, "Not enough data yet.");
}

async function consensus() {
  const box = $("consensus");
  if (overlap < 3) {
    box.replaceChildren(el("p", { class: "not-enough", text: `Not enough data yet: each image gets ${overlap} answer${overlap === 1 ? "" : "s"}. ` +
      "Dawid–Skene weighs annotators by their estimated reliability and needs 3 or more answers per image: raise “Annotators per task” under Settings." }));
    return;
  }
  const { data: batches } = await api("GET", `/api/v1/projects/${projectId}/batches/`);
  const rows = [];
  for (const batch of batches.filter((b) => b.counts.completed > 0)) {
    const { data } = await api("GET", `/api/v1/batches/${batch.id}/consensus/`);
    const agree = data.tasks.filter((t) => t.majority === t.dawid_skene).length;
    rows.push(el("tr", {}, el("th", { scope: "row", text: batch.name }), el("td", { text: String(data.tasks.length) }),
      el("td", { text: data.tasks.length ? `${agree} (${percent(agree / data.tasks.length)})` : "–" }),
      el("td", {}, data.flagged ? el("a", { href: `/projects/${projectId}/tasks/?batch=${batch.id}&agreement_max=0.67`, text: `${data.flagged} to look at` }) : "none")));
  }
  if (!rows.length) {
    notEnough(box, "no batch has answered tasks yet.");
    return;
  }
  box.replaceChildren(el("table", { class: "data" },
    el("thead", {}, el("tr", {}, ...["Batch", "Tasks", "Same answer as the majority", "Flagged (disagree, unsure or low agreement)"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows)));
}

async function traps() {
  const { data } = await api("GET", `/api/v1/projects/${projectId}/annotators/`);
  const rows = data.filter((m) => m.assisted_answers || m.traps_shown);
  $("trap-table").querySelector("tbody").replaceChildren(...(rows.length ? rows.map((m) => el("tr", {},
    el("th", { scope: "row", text: m.username }),
    el("td", { text: String(m.assisted_answers) }),
    el("td", { text: String(m.traps_shown) }),
    el("td", { class: m.traps_accepted ? "error" : "", text: m.traps_shown ? `${m.traps_accepted} (${percent(m.trap_acceptance)})` : "–" }),
    el("td", { text: percent(m.gold_accuracy) }),
    el("td", { text: m.paused ? `yes: ${m.paused_reason}` : "no" }),
  )) : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: "Nobody has answered a suggested page yet." }))]));
}

const METHODS = { "confident-learning": "confident learning (one answer per task)", crowdlab: "CROWDLAB (several answers per task)" };

async function labelErrors() {
  const { data } = await api("GET", `/api/v1/projects/${projectId}/label-quality/`);
  const latest = data.latest;
  let state = "No check has run yet: it runs when a batch is labeled, once the images have embeddings (Batches page).";
  if (latest?.status === "failed") state = `The last check failed: ${latest.error}`;
  else if (latest && latest.status !== "done") state = `A check is ${latest.status} (${Math.round(latest.progress * 100)}%).`;
  else if (latest) {
    state = `Last check: ${latest.scored} tasks scored with ${METHODS[latest.method] ?? latest.method}, ${latest.flagged} flagged; ` +
      `${data.queue} waiting in the likely-errors queue.` +
      (latest.heldout ? ` The classifier predicts ${percent(latest.heldout_accuracy)} of ${latest.heldout} gold and reviewed answers it did not learn from.` : "");
  }
  $("check-state").textContent = state;
  const rows = data.batches.map((b) => el("tr", { id: `errors-batch-${b.batch}` },
    el("th", { scope: "row", text: b.name }),
    el("td", { text: String(b.scored) }),
    el("td", { text: String(b.flagged) }),
    el("td", { text: b.estimated_errors.toFixed(1) }),
    el("td", { text: `${b.found} of ${b.reviewed} reviewed` }),
    el("td", { text: b.left.toFixed(1) }),
    el("td", { class: "muted", text: b.estimate_method }),
  ));
  $("errors-table").querySelector("tbody").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No batch has been checked yet." }))]));
  $("annotator-method").textContent = data.annotator_method === "crowdlab"
    ? "CROWDLAB's annotator quality: how often their answers agree with the consensus and with the classifier, weighed by how reliable each is."
    : data.annotator_method ? "With one answer per task: the mean label quality of the answers they gave." : "";
  $("annotator-quality").querySelector("tbody").replaceChildren(...(data.annotators.length ? data.annotators.map((a) => el("tr", {},
    el("th", { scope: "row", text: a.username }),
    el("td", {}, meter(a.quality), ` ${a.quality.toFixed(3)}`),
    el("td", { text: a.agreement == null ? "–" : percent(a.agreement) }),
    el("td", { text: String(a.labeled) }),
    el("td", { text: a.worst_choice ?? "–" }),
    el("td", { text: a.gold_answers ? `${percent(a.gold_accuracy)} of ${a.gold_answers}` : "–" }),
  )) : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No annotator scored yet." }))]));
}

$("run-check").addEventListener("click", async () => {
  try {
    await api("POST", `/api/v1/projects/${projectId}/label-checks/`, {});
    $("check-state").textContent = "A check is queued; this page shows its figures once it is done (reload).";
  } catch (err) {
    showErrors($("errors"), err);
  }
});

Promise.all([audits(), gold(), calibration(), consensus(), traps(), labelErrors()]).then(
  () => { app.dataset.state = "ready"; },
  (err) => { showErrors($("errors"), err); app.dataset.state = "error"; },
);
