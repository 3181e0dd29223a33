// Run page, evaluation card: this run's evaluations, a form to queue one (owners), and every run
// of the project compared by its newest evaluation. Polls while an evaluation is queued or running.

import { api, el, messages } from "./api.js";

const app = document.getElementById("run-app");
const runId = app.dataset.run;
const projectId = app.dataset.project;
const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;

function num(value, digits = 3) {
  if (value === "inf") return "∞";
  if (value == null || typeof value !== "number") return "—";
  return Number(value.toPrecision(digits)).toString();
}

const pair = (h, name, digits) => `${num(h[`${name}_AB`], digits)} / ${num(h[`${name}_BA`], digits)}`;

function gain(h, metric = "minority_recall") {
  const mean = h[`${metric}_gain`];
  if (mean == null) return "—";
  const low = h[`${metric}_gain_low`];
  const high = h[`${metric}_gain_high`];
  const sign = mean > 0 ? "+" : "";
  return low == null ? `${sign}${num(mean, 2)}` : `${sign}${num(mean, 2)} [${num(low, 2)}, ${num(high, 2)}]`;
}

function skipped(results) {
  return Object.entries(results || {}).flatMap(([metric, value]) => {
    if (value && value.skipped) return [`${metric}: ${value.skipped}`];
    return Object.entries(value || {}).filter(([, v]) => v && v.skipped).map(([d, v]) => `${metric} ${d}: ${v.skipped}`);
  });
}

let timer = null;
async function loadEvaluations() {
  const { data } = await api("GET", `/api/v1/evaluations/?run=${runId}`);
  const rows = data.results ?? data;
  $("evaluations").querySelector("tbody").replaceChildren(...rows.map((e) => {
    const h = e.headline;
    const notes = [...(e.error ? [e.error] : []), ...skipped(e.results)];
    const status = e.status === "running" ? `running ${Math.round(e.progress * 100)}%` : e.status;
    return el("tr", {},
      el("th", { scope: "row", text: String(e.id) }),
      el("td", { text: String(e.step) }),
      el("td", {}, el("span", { class: "badge", text: status }), notes.length ? el("span", { class: "muted", text: ` ${notes.join("; ")}` }) : null),
      el("td", { text: pair(h, "fid", 4) }),
      el("td", { text: pair(h, "kid", 2) }),
      el("td", { text: pair(h, "psnr", 4) }),
      el("td", { text: pair(h, "ssim", 3) }),
      el("td", { text: gain(h) }),
    );
  }));
  clearTimeout(timer);
  if (rows.some((e) => e.status === "queued" || e.status === "running")) timer = setTimeout(loadEvaluations, POLL_MS);
  else loadComparison();
}

async function loadComparison() {
  const { data } = await api("GET", `/api/v1/evaluations/compare/?project=${projectId}`);
  $("compare-runs").querySelector("tbody").replaceChildren(...data.map((r) => {
    const h = r.metrics;
    const current = String(r.run) === String(runId);
    const baselines = h.psnr_AB == null ? "" : ` (${num(h.psnr_AB_identity, 4)}, ${num(h.psnr_AB_colour_transfer, 4)})`;
    // This run's own status is the one the page keeps current (run.js), not the one read when the table loaded.
    const status = current ? ($("status").dataset.status || r.status) : r.status;
    return el("tr", { class: current ? "current" : null, "aria-current": current ? "true" : null },
      el("th", { scope: "row" }, el("a", { href: `/runs/${r.run}/`, text: `Run ${r.run}` })),
      el("td", {}, el("span", { class: "badge", "data-status": status, text: status })),
      el("td", { text: r.image_size ? `${r.image_size}²` : "—" }),
      el("td", { text: r.step == null ? "not evaluated" : String(r.step) }),
      el("td", { text: pair(h, "fid", 4) }),
      el("td", { text: `${num(h.psnr_AB, 4)}${baselines}` }),
      el("td", { text: pair(h, "ssim", 3) }),
      el("td", { text: gain(h) }),
    );
  }));
}

async function evaluate(event) {
  event.preventDefault();
  const box = $("evaluate-errors");
  box.hidden = true;
  const form = event.target;
  const body = { run: Number(runId), metrics: [...form.querySelectorAll('input[name="metrics"]:checked')].map((i) => i.value) };
  try {
    const known = $("e-known").value.trim();
    if (known) body.known_mapping = JSON.parse(known);
  } catch (err) {
    box.replaceChildren(el("p", { text: `The known-mapping parameters are not JSON: ${err.message}` }));
    box.hidden = false;
    return;
  }
  try {
    await api("POST", "/api/v1/evaluations/", body);
    loadEvaluations();
  } catch (err) {
    const list = messages(err.data).length ? messages(err.data) : [err.message];
    box.replaceChildren(el("ul", {}, ...list.map((m) => el("li", { text: m }))));
    box.hidden = false;
  }
}

$("evaluate")?.addEventListener("submit", evaluate);
// When this run finishes (or is cancelled) the comparison is read again, so it never says "running" for a run that is done.
new MutationObserver(() => loadComparison().catch(() => {})).observe($("status"), { attributes: true, attributeFilter: ["data-status"] });
loadEvaluations();
