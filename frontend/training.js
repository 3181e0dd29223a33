// A project's training page: domain splits (build, approve, export) and runs (start, follow).

import { api, el, messages } from "./api.js";

const app = document.getElementById("training-app");
const projectId = app.dataset.project;
const isOwner = app.dataset.owner === "1";
const $ = (id) => document.getElementById(id);
const NUMBER_FIELDS = ["image_size", "epochs", "decay_epochs", "batch_size", "lr", "lambda_cycle", "lambda_identity",
  "n_blocks", "ngf", "ndf", "seed", "time_limit_s"];

function showErrors(box, err) {
  const list = messages(err.data).length ? messages(err.data) : [err.message];
  box.replaceChildren(el("ul", {}, ...list.map((m) => el("li", { text: m }))));
  box.hidden = false;
}

const triple = (c) => `${c.train} / ${c.val} / ${c.test}`;

function splitRow(split) {
  const actions = el("td", { class: "inline-actions" },
    el("a", { href: `/api/v1/splits/${split.id}/manifest/`, text: "Manifest" }));
  if (isOwner) {
    actions.append(el("a", { href: `/api/v1/splits/${split.id}/export/`, text: "Zip" }));
    if (split.status === "draft") {
      actions.append(el("button", { type: "button", text: "Approve", "aria-label": `Approve split v${split.version}`,
        onclick: () => approve(split) }));
    }
  }
  const c = split.counts;
  return el("tr", {},
    el("th", { scope: "row", text: `v${split.version}` }),
    el("td", {}, el("span", { class: "badge", text: split.status })),
    el("td", { text: triple(c.A) }),
    el("td", { text: triple(c.B) }),
    el("td", { class: "muted", text: `${c.excluded} excluded · ${c.below_agreement} low agreement · ${c.conflicts} conflicts` }),
    el("td", {}, el("code", { text: split.manifest_sha256.slice(0, 12), title: split.manifest_sha256 })),
    actions,
  );
}

function runRow(run) {
  const percent = Math.round(run.progress * 100);
  return el("tr", {},
    el("th", { scope: "row" }, el("a", { href: `/runs/${run.id}/`, text: `Run ${run.id}` })),
    el("td", { text: `v${run.split_version}` }),
    el("td", {}, el("span", { class: "badge", "data-status": run.status, text: run.status })),
    el("td", {}, el("progress", { max: "1", value: String(run.progress), "aria-label": `Run ${run.id}: ${percent}%` }),
      el("span", { class: "muted", text: ` ${run.step} / ${run.total_steps || "?"}` })),
    el("td", { text: run.requested_by }),
  );
}

async function load() {
  try {
    const [splits, runs] = await Promise.all([
      api("GET", `/api/v1/projects/${projectId}/splits/`),
      api("GET", `/api/v1/runs/?project=${projectId}`),
    ]);
    $("splits").querySelector("tbody").replaceChildren(...[...splits.data].reverse().map(splitRow));
    $("runs").querySelector("tbody").replaceChildren(...runs.data.results.map(runRow));
    if (isOwner) {
      const approved = splits.data.filter((s) => s.status === "approved").reverse();
      $("r-split").replaceChildren(...approved.map((s) => el("option", { value: s.id, text: `v${s.version} (A ${s.counts.A.train}, B ${s.counts.B.train} to train)` })));
      if (!approved.length) $("r-split").append(el("option", { value: "", text: "approve a split first" }));
    }
    if (runs.data.results.some((r) => r.status === "queued" || r.status === "running")) setTimeout(load, 3000);
  } catch (err) {
    showErrors($("run-errors"), err);
  }
}

async function approve(split) {
  $("split-errors").hidden = true;
  try {
    await api("POST", `/api/v1/splits/${split.id}/approve/`);
  } catch (err) {
    showErrors($("split-errors"), err);
  }
  load();
}

async function buildSplit(event) {
  event.preventDefault();
  $("split-errors").hidden = true;
  const body = {};
  for (const name of ["min_agreement", "val_fraction", "test_fraction"]) {
    const value = $(`s-${name}`).value;
    if (value !== "") body[name] = Number(value);
  }
  try {
    await api("POST", `/api/v1/projects/${projectId}/splits/`, body);
  } catch (err) {
    showErrors($("split-errors"), err);
  }
  load();
}

async function startRun(event) {
  event.preventDefault();
  $("run-errors").hidden = true;
  const config = {};
  for (const name of NUMBER_FIELDS) {
    const value = $(`r-${name}`).value;
    if (value !== "") config[name] = Number(value);
  }
  if ($("r-precision").value) config.precision = $("r-precision").value;
  try {
    const { data } = await api("POST", "/api/v1/runs/", { split: Number($("r-split").value) || null, config });
    window.location.href = `/runs/${data.id}/`;
  } catch (err) {
    showErrors($("run-errors"), err);
  }
}

if (isOwner) {
  $("new-split").addEventListener("submit", buildSplit);
  $("new-run").addEventListener("submit", startRun);
}
load();
