// Run page: status, progress and ETA, loss curves (inline SVG), sample grids, checkpoints,
// cancel/resume, translate and augmentation. Polls the API while the run is queued or running.

import { api, el, messages } from "./api.js";

const app = document.getElementById("run-app");
const runId = app.dataset.run;
const isOwner = app.dataset.owner === "1";
const $ = (id) => document.getElementById(id);

const POLL_MS = 2000;
const LIVE = new Set(["queued", "running"]);
// Each loss is named after the network it trains (training/cyclegan/train.py).
const G_SERIES = ["G_ab_gan", "G_ba_gan", "cycle_aba", "cycle_bab", "G_ab_idt", "G_ba_idt"];
const D_SERIES = ["D_a", "D_b"];
const COLOURS = { G_ab_gan: "#2557d6", G_ba_gan: "#b3261e", cycle_aba: "#1a7f37", cycle_bab: "#8250df", G_ab_idt: "#bf8700",
  G_ba_idt: "#0a7d8c", D_a: "#b3261e", D_b: "#2557d6" };

let run = null;
let points = [];
let shownSample = null;

function showErrors(box, err) {
  const list = messages(err.data).length ? messages(err.data) : [err.message];
  box.replaceChildren(el("ul", {}, ...list.map((m) => el("li", { text: m }))));
  box.hidden = false;
}

function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

function bytes(n) {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${Math.max(1, Math.round(n / 1024))} KiB`;
}

// --- status and progress ------------------------------------------------------------------

function renderStatus() {
  const status = $("status");
  status.textContent = run.status;
  status.dataset.status = run.status;
  const percent = Math.round(run.progress * 1000) / 10;
  $("progress").value = run.progress;
  const parts = [`step ${run.step} / ${run.total_steps || "?"} (${percent}%)`, `epoch ${run.epoch + 1}`];
  if (run.images_per_s) parts.push(`${run.images_per_s.toFixed(1)} images/s`);
  if (run.status === "running") parts.push(`about ${duration(run.eta_seconds)} left`);
  if (run.cancel_requested_at && run.status === "running") parts.push("stopping…");
  if (run.stop_reason && !LIVE.has(run.status)) parts.push(`stopped: ${run.stop_reason.replace("_", " ")}`);
  $("progress-text").textContent = parts.join(" · ");
  const attempts = run.attempts > 1 ? ` · attempt ${run.attempts} (resumed from step ${run.history.at(-1)?.from_step ?? 0})` : "";
  $("summary").textContent = `Split v${run.split_version} · ${run.config.image_size}×${run.config.image_size}, batch ${run.config.batch_size}, `
    + `${run.config.epochs} + ${run.config.decay_epochs} epochs${attempts}`;
  const errors = $("errors");
  if (run.status === "failed" && run.error) {
    errors.replaceChildren(el("p", { text: `The run failed: ${run.error}` }));
    errors.hidden = false;
  }
  if (isOwner) {
    $("cancel").hidden = !LIVE.has(run.status) || Boolean(run.cancel_requested_at);
    $("resume").hidden = !["cancelled", "failed"].includes(run.status);
  }
}

// --- loss curves --------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function chart(container, names) {
  const width = 560, height = 220, pad = { left: 44, right: 8, top: 8, bottom: 24 };
  const series = names.filter((name) => points.some((p) => Number.isFinite(p.losses[name])));
  container.replaceChildren();
  if (!points.length) {
    container.append(el("p", { class: "muted", text: "No figures yet." }));
    return;
  }
  const xs = points.map((p) => p.step);
  const ys = points.flatMap((p) => series.map((name) => p.losses[name])).filter(Number.isFinite);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const [y0, y1] = [0, Math.max(...ys, 1e-6) * 1.05];
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${series.join(", ")} by step, up to step ${x1}` });
  for (const t of [0, 0.5, 1]) {
    const y = y0 + t * (y1 - y0);
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(y), y2: sy(y), class: "grid" }));
    const label = svg("text", { x: pad.left - 4, y: sy(y) + 4, "text-anchor": "end" });
    label.textContent = y.toPrecision(2);
    root.append(label);
  }
  const xlabel = svg("text", { x: width - pad.right, y: height - 6, "text-anchor": "end" });
  xlabel.textContent = `step ${x1}`;
  root.append(xlabel);
  // Thin long histories to about one point per pixel column.
  const stride = Math.max(1, Math.ceil(points.length / (width - pad.left - pad.right)));
  for (const name of series) {
    const coords = points.filter((_, i) => i % stride === 0 || i === points.length - 1)
      .filter((p) => Number.isFinite(p.losses[name]))
      .map((p) => `${sx(p.step).toFixed(1)},${sy(p.losses[name]).toFixed(1)}`);
    root.append(svg("polyline", { points: coords.join(" "), stroke: COLOURS[name], class: "series" }));
  }
  container.append(root, el("ul", { class: "legend" },
    ...series.map((name) => {
      // Set through the style object: a style attribute would break the page's Content-Security-Policy.
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = COLOURS[name];
      return el("li", {}, swatch, name);
    })));
}

function renderCurves() {
  chart($("chart-g"), G_SERIES);
  chart($("chart-d"), D_SERIES);
  const last = points.at(-1);
  const body = $("latest-losses").querySelector("tbody");
  if (!last) return body.replaceChildren();
  body.replaceChildren(
    el("tr", {}, ...[...G_SERIES, ...D_SERIES].map((name) => el("th", { scope: "col", text: name })), el("th", { scope: "col", text: "lr" })),
    el("tr", {}, ...[...G_SERIES, ...D_SERIES].map((name) => el("td", { text: (last.losses[name] ?? NaN).toFixed(3) })),
      el("td", { text: last.lr.toExponential(2) })),
  );
}

// --- samples and checkpoints ---------------------------------------------------------------

function renderSamples() {
  const select = $("sample-step");
  const steps = run.samples.map((s) => String(s.step));
  const current = select.value;
  const following = !current || current === select.options[0]?.value; // on the newest: keep following
  select.replaceChildren(...run.samples.map((s) => el("option", { value: s.image_url, text: `step ${s.step}` })));
  if (!following && steps.length) {
    const keep = [...select.options].find((o) => o.value === current);
    if (keep) keep.selected = true;
  }
  showSample();
  $("no-sample").hidden = run.samples.length > 0;
}

function showSample() {
  const url = $("sample-step").value;
  if (!url || url === shownSample) return;
  shownSample = url;
  const image = $("sample");
  image.src = url;
  image.alt = `Sample grid at ${$("sample-step").selectedOptions[0].textContent}`;
  image.hidden = false;
}

function renderCheckpoints() {
  const live = run.checkpoints.filter((c) => !c.deleted_at);
  $("checkpoints").querySelector("tbody").replaceChildren(...[...run.checkpoints].reverse().map((c) => el("tr", {},
    el("th", { scope: "row", text: String(c.step) }),
    el("td", { text: bytes(c.byte_size) }),
    el("td", { text: new Date(c.created_at).toLocaleString() }),
    el("td", {}, c.weights_url && isOwner ? el("a", { href: c.weights_url, text: "Download generators" })
      : el("span", { class: "muted", text: c.deleted_at ? "rotated out" : "owners only" })),
  )));
  if (!isOwner) return;
  const select = $("t-checkpoint");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "newest" }),
    ...live.reverse().map((c) => el("option", { value: c.id, text: `step ${c.step}`, selected: String(c.id) === chosen })));
}

// --- polling ---------------------------------------------------------------------------------

async function refresh() {
  try {
    const after = points.at(-1)?.step ?? 0;
    const [detail, fresh] = await Promise.all([
      api("GET", `/api/v1/runs/${runId}/`),
      api("GET", `/api/v1/runs/${runId}/metrics/?after=${after}`),
    ]);
    run = detail.data;
    // A resumed run redoes steps after its checkpoint: drop what the new figures replace.
    if (fresh.data.length) points = [...points.filter((p) => p.step < fresh.data[0].step), ...fresh.data];
    else if (points.length && points.at(-1).step > run.step) points = points.filter((p) => p.step <= run.step);
    renderStatus();
    renderCurves();
    renderSamples();
    renderCheckpoints();
    if (isOwner) loadAugmentations();
  } catch (err) {
    showErrors($("errors"), err);
  }
  if (!run || LIVE.has(run.status)) setTimeout(refresh, POLL_MS);
}

async function transition(action) {
  $("errors").hidden = true;
  try {
    run = (await api("POST", `/api/v1/runs/${runId}/${action}/`)).data;
    renderStatus();
    if (action === "resume") setTimeout(refresh, POLL_MS);
  } catch (err) {
    showErrors($("errors"), err);
  }
}

// --- translate and augment -------------------------------------------------------------------

async function translate(event) {
  event.preventDefault();
  const box = $("translate-errors");
  box.hidden = true;
  const file = $("t-image").files[0];
  if (!file) return showErrors(box, { data: null, message: "choose an image to translate" });
  const body = new FormData();
  body.append("image", file);
  body.append("direction", $("t-direction").value);
  if ($("t-checkpoint").value) body.append("checkpoint", $("t-checkpoint").value);
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await fetch(`/api/v1/runs/${runId}/translate/`, {
      method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content },
    });
    if (!response.ok) {
      const data = await response.json().catch(() => ({ detail: `the server answered ${response.status}` }));
      throw { data, message: data.detail };
    }
    const blob = await response.blob();
    $("t-input").src = URL.createObjectURL(file);
    $("t-output").src = URL.createObjectURL(blob);
    const resized = response.headers.get("X-Winnow-Resized") === "1" ? ", scaled down to the size limit" : "";
    $("t-output-caption").textContent = `Translated ${$("t-direction").value === "AB" ? "A → B" : "B → A"} `
      + `with the checkpoint of step ${response.headers.get("X-Winnow-Checkpoint-Step")}${resized}`;
    $("translate-result").hidden = false;
  } catch (err) {
    showErrors(box, err);
  } finally {
    button.disabled = false;
  }
}

let augmentTimer = null;
async function loadAugmentations() {
  const { data } = await api("GET", `/api/v1/runs/${runId}/augmentations/`);
  $("augmentations").querySelector("tbody").replaceChildren(...data.map((a) => el("tr", {},
    el("th", { scope: "row", text: String(a.id) }),
    el("td", { text: a.direction === "AB" ? "A → B" : "B → A" }),
    el("td", { text: `${a.produced} / ${a.count}` }),
    el("td", {}, el("span", { class: "badge", text: a.status }), a.error ? el("span", { class: "error", text: ` ${a.error}` }) : null),
    el("td", {}, a.download_url ? el("a", { href: a.download_url, text: "Download zip" }) : el("span", { class: "muted", text: "—" })),
  )));
  clearTimeout(augmentTimer);
  if (data.some((a) => a.status === "queued" || a.status === "running")) augmentTimer = setTimeout(loadAugmentations, POLL_MS);
}

async function augment(event) {
  event.preventDefault();
  const box = $("augment-errors");
  box.hidden = true;
  const body = {};
  if ($("a-count").value) body.count = Number($("a-count").value);
  if ($("a-direction").value) body.direction = $("a-direction").value;
  try {
    await api("POST", `/api/v1/runs/${runId}/augmentations/`, body);
    loadAugmentations();
  } catch (err) {
    showErrors(box, err);
  }
}

$("sample-step").addEventListener("change", showSample);
if (isOwner) {
  $("cancel").addEventListener("click", () => transition("cancel"));
  $("resume").addEventListener("click", () => transition("resume"));
  $("translate").addEventListener("submit", translate);
  $("augment").addEventListener("submit", augment);
}
refresh();
