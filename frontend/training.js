// A project's training page: domain splits (build, approve, export) and runs (start, follow).

import { api, el, messages } from "./api.js";
import { addShortcuts } from "./help.js";

const app = document.getElementById("training-app");
const projectId = app.dataset.project;
const isOwner = app.dataset.owner === "1";
const $ = (id) => document.getElementById(id);
const cpuOnly = app.dataset.cpuOnly === "1";
let approvedSplits = [];
let pastRuns = [];
let confirmed = false;
const PAPER = { image_size: 256, epochs: 100, decay_epochs: 100, batch_size: 1, ngf: 64, ndf: 64 };
// Small enough for a CPU: minutes for a few hundred images, and a translator that shows the idea.
const CPU_PRESET = { image_size: 64, epochs: 5, decay_epochs: 5, batch_size: 1, n_blocks: 6, ngf: 32, ndf: 32 };
// Images per second at 256×256, ngf 64, 9 blocks, when no run on this install has measured it yet:
// a rough figure for a desktop CPU (fp32) and a current GPU (bf16).
const FALLBACK_RATE = { cpu: 0.5, gpu: 25 };
const NUMBER_FIELDS = ["image_size", "epochs", "decay_epochs", "batch_size", "lr", "lambda_cycle", "lambda_identity",
  "n_blocks", "ngf", "ndf", "seed", "time_limit_s"];

function showErrors(box, err) {
  const list = messages(err.data).length ? messages(err.data) : [err.message];
  box.replaceChildren(el("ul", {}, ...list.map((m) => el("li", { text: m }))));
  box.hidden = false;
}

const triple = (c) => `${c.train} / ${c.val} / ${c.test}`;

function splitWarnings(split) {
  const box = $("split-warnings");
  if (!split?.warnings?.length) {
    box.hidden = true;
    return;
  }
  box.replaceChildren(el("strong", { text: `Split v${split.version} was built, but:` }),
    el("ul", {}, ...split.warnings.map((w) => el("li", { text: w }))));
  box.hidden = false;
}

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
    el("td", {}, el("span", { class: "badge", "data-status": split.status, text: split.status })),
    el("td", { text: triple(c.A) }),
    el("td", { text: triple(c.B) }),
    el("td", { class: "muted", text: `${c.excluded} excluded · ${c.below_agreement} low agreement · ${c.below_label_quality ?? 0} low label quality · ${c.conflicts} conflicts` }),
    el("td", {}, el("code", { text: split.manifest_sha256.slice(0, 12), title: split.manifest_sha256 }),
      ...(split.warnings?.length ? [el("br"), el("span", { class: "warn-count", text: `${split.warnings.length} warning${split.warnings.length === 1 ? "" : "s"}`, title: split.warnings.join("\n") })] : [])),
    actions,
  );
}

// --- how long a run would take ------------------------------------------------------------------

function formConfig() {
  const config = {};
  for (const name of NUMBER_FIELDS) {
    const value = $(`r-${name}`).value;
    if (value !== "") config[name] = Number(value);
  }
  if ($("r-precision").value) config.precision = $("r-precision").value;
  if ($("r-recipe").value) config.recipe = $("r-recipe").value;
  return config;
}

// Work per image grows with the pixels, the width squared and (roughly) the residual blocks.
function cost(config) {
  const size = config.image_size ?? 256;
  const blocks = config.n_blocks ?? (size <= 128 ? 6 : 9);
  return (size / 256) ** 2 * ((config.ngf ?? 64) / 64) ** 2 * (0.5 + blocks / 18);
}

function duration(seconds) {
  if (seconds < 60) return "under a minute";
  if (seconds < 5400) return `${Math.max(1, Math.round(seconds / 60))} minute${Math.round(seconds / 60) > 1 ? "s" : ""}`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} hours`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}

function estimate(config) {
  const split = approvedSplits.find((s) => String(s.id) === $("r-split").value);
  if (!split) return null;
  // An epoch shows the larger domain once (the unaligned data set's length).
  const perEpoch = Math.max(split.counts.A.train, split.counts.B.train);
  const epochs = (config.epochs ?? PAPER.epochs) + (config.decay_epochs ?? PAPER.decay_epochs);
  const measured = pastRuns.find((r) => r.images_per_s && r.config);
  const rate = measured
    ? (measured.images_per_s * cost(measured.config)) / cost(config)
    : (cpuOnly ? FALLBACK_RATE.cpu : FALLBACK_RATE.gpu) / cost(config);
  return { seconds: (perEpoch * epochs) / rate, perEpoch, epochs, measured };
}

function showEstimate() {
  const box = $("run-estimate");
  const config = formConfig();
  const e = estimate(config);
  if (!e) {
    box.textContent = "Approve a split first: a run trains on an approved split.";
    return;
  }
  box.textContent = `Roughly ${duration(e.seconds)} on this install: ${e.epochs} epochs of ${e.perEpoch} images at ` +
    `${config.image_size ?? 256}×${config.image_size ?? 256} (${e.measured ? `scaled from the speed run ${e.measured.id} measured here` : cpuOnly ? "a typical CPU's speed; no run has measured this one yet" : "a typical GPU's speed; no run has measured this one yet"}).`;
}

function fill(values) {
  for (const name of NUMBER_FIELDS) $(`r-${name}`).value = values[name] ?? "";
  if (values.recipe !== undefined) $("r-recipe").value = values.recipe;  // a size preset keeps the recipe
  showEstimate();
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
    if (!splits.data.length) {
      $("splits").querySelector("tbody").append(el("tr", {}, el("td", { colspan: "7", class: "muted",
        text: "No split yet. Once a production batch is accepted (Batches page), click Build split below." })));
    }
    if (!runs.data.results.length) {
      $("runs").querySelector("tbody").append(el("tr", {}, el("td", { colspan: "5", class: "muted",
        text: "No run yet. Approve a split, then start a run below." })));
    }
    if (isOwner) {
      const approved = splits.data.filter((s) => s.status === "approved").reverse();
      approvedSplits = approved;
      pastRuns = runs.data.results;
      $("r-split").replaceChildren(...approved.map((s) => el("option", { value: s.id, text: `v${s.version} (A ${s.counts.A.train}, B ${s.counts.B.train} to train)` })));
      if (!approved.length) $("r-split").append(el("option", { value: "", text: "approve a split first" }));
    }
    if (isOwner) showEstimate();
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
  for (const name of ["min_agreement", "min_label_quality", "val_fraction", "test_fraction"]) {
    const value = $(`s-${name}`).value;
    if (value !== "") body[name] = Number(value);
  }
  try {
    const { data } = await api("POST", `/api/v1/projects/${projectId}/splits/`, body);
    splitWarnings(data);
  } catch (err) {
    showErrors($("split-errors"), err);
  }
  load();
}

async function startRun(event) {
  event.preventDefault();
  $("run-errors").hidden = true;
  const config = formConfig();
  // The paper's run on a CPU takes days: say so, and offer the preset, before queueing it.
  const e = estimate(config);
  if (cpuOnly && !confirmed && (!Object.keys(config).length || (e && e.seconds > 6 * 3600))) {
    $("run-confirm-text").textContent = `${Object.keys(config).length ? "These settings" : "Empty fields start the paper's 256×256, 200-epoch run, which"} ` +
      `would take ${e ? `roughly ${duration(e.seconds)}` : "days"} on this CPU-only install. The CPU preset (64×64, 5 + 5 epochs, narrow networks) ` +
      `takes ${e ? `roughly ${duration(estimate(CPU_PRESET).seconds)}` : "minutes"}.`;
    $("run-confirm").hidden = false;
    $("run-confirm").focus();
    return;
  }
  confirmed = false;
  $("run-confirm").hidden = true;
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
  $("new-run").addEventListener("input", showEstimate);
  $("cpu-preset").addEventListener("click", () => fill(CPU_PRESET));
  $("paper-preset").addEventListener("click", () => fill({ recipe: "" }));
  $("confirm-cpu-preset").addEventListener("click", () => { fill(CPU_PRESET); $("run-confirm").hidden = true; $("start-run").focus(); });
  $("confirm-paper").addEventListener("click", () => { confirmed = true; $("new-run").requestSubmit(); });
  addShortcuts("Training", [["Tab", "move between the split and run forms"], ["Enter", "build the split or start the run (in a field)"]]);
}
load();
