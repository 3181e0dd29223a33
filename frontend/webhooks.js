// Owner page: the project's webhooks (URL, events, active), the signing secret (reveal, rotate) and
// the delivery log with status, attempts, response code and error, and redeliver.

import { api, el, showErrors, when } from "./api.js";
import { addShortcuts } from "./help.js";

const app = document.getElementById("webhooks-app");
const projectId = app.dataset.project;
const $ = (id) => document.getElementById(id);
const base = `/api/v1/projects/${projectId}/webhooks/`;
let secret = null;
let nextLog = null;

addShortcuts("Webhooks", [["r", "refresh the delivery log"]]);
document.addEventListener("keydown", (event) => {
  if (event.key === "r" && !event.ctrlKey && !event.metaKey && !event.target.closest?.("input, textarea, select")) loadLog();
});

function say(text) {
  $("hook-errors").hidden = true;
  $("hook-status").textContent = text;
  $("hook-status").hidden = false;
}

function fail(box, err) {
  showErrors(box, err);
  box.focus();
}

function hookRow(hook) {
  const active = el("input", { type: "checkbox", "aria-label": `${hook.url} active` });
  active.checked = hook.active;
  active.addEventListener("change", async () => {
    try {
      await api("PATCH", `${base}${hook.id}/`, { active: active.checked });
      say(`${hook.url} is ${active.checked ? "active" : "paused: its events are not sent"}.`);
    } catch (err) {
      active.checked = !active.checked;
      fail($("hook-errors"), err);
    }
  });
  let armed = false;
  const remove = el("button", { type: "button", class: "secondary small", text: "Delete", "aria-label": `Delete the webhook ${hook.url}` });
  remove.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      remove.textContent = "Really delete?";
      remove.classList.add("danger");
      setTimeout(() => { armed = false; remove.textContent = "Delete"; remove.classList.remove("danger"); }, 6000);
      return;
    }
    try {
      await api("DELETE", `${base}${hook.id}/`);
      say(`Deleted ${hook.url}; its past deliveries stay in the log.`);
    } catch (err) {
      fail($("hook-errors"), err);
    }
    loadHooks();
  });
  return el("tr", { "data-webhook": hook.id },
    el("th", { scope: "row" }, el("code", { text: hook.url })),
    el("td", { text: hook.events.join(", ") }),
    el("td", {}, active),
    el("td", { text: hook.description || "" }),
    el("td", { class: "inline-actions" }, remove));
}

async function loadHooks() {
  try {
    const { data } = await api("GET", base);
    const tbody = $("hook-table").querySelector("tbody");
    tbody.replaceChildren(...data.map(hookRow));
    if (!data.length) tbody.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No webhooks yet. Add one below to be told when tasks, batches, splits or runs finish." })));
    app.dataset.state = "ready";
  } catch (err) {
    fail($("hook-errors"), err);
  }
}

$("new-hook").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const events = [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value);
  if (!form.elements.url.value.trim()) return fail($("hook-errors"), { message: "Type the URL that should receive the events." });
  if (!events.length) return fail($("hook-errors"), { message: "Tick at least one event." });
  try {
    await api("POST", base, { url: form.elements.url.value.trim(), events, description: form.elements.description.value });
    say(`Added ${form.elements.url.value.trim()}.`);
    form.elements.url.value = "";
    form.elements.description.value = "";
  } catch (err) {
    fail($("hook-errors"), err);
  }
  loadHooks();
});

// --- the secret -------------------------------------------------------------------------------

function showSecret(value) {
  secret = value;
  $("secret").textContent = value;
  $("reveal-secret").textContent = "Hide";
  $("reveal-secret").setAttribute("aria-pressed", "true");
}

$("reveal-secret").addEventListener("click", async () => {
  if (secret !== null) {
    secret = null;
    $("secret").textContent = "••••••••••••••••";
    $("reveal-secret").textContent = "Reveal";
    $("reveal-secret").setAttribute("aria-pressed", "false");
    return;
  }
  try {
    const { data } = await api("GET", `${base}secret/`);
    $("secret-header").textContent = data.header;
    $("secret-algorithm").textContent = data.algorithm;
    showSecret(data.secret);
  } catch (err) {
    fail($("secret-errors"), err);
  }
});

let rotateArmed = false;
$("rotate-secret").addEventListener("click", async () => {
  const button = $("rotate-secret");
  if (!rotateArmed) {
    rotateArmed = true;
    button.textContent = "Rotate: receivers must switch to the new secret";
    button.classList.add("danger");
    setTimeout(() => { rotateArmed = false; button.textContent = "Rotate…"; button.classList.remove("danger"); }, 8000);
    return;
  }
  rotateArmed = false;
  button.textContent = "Rotate…";
  button.classList.remove("danger");
  try {
    const { data } = await api("POST", `${base}secret/`);
    showSecret(data.secret);
    $("secret-errors").hidden = true;
  } catch (err) {
    fail($("secret-errors"), err);
  }
});

// --- the delivery log -------------------------------------------------------------------------

function deliveryRow(d) {
  const actions = el("td");
  if (d.status !== "pending") {
    actions.append(el("button", { type: "button", class: "secondary small", text: "Redeliver", "aria-label": `Redeliver delivery ${d.id}`,
      onclick: async () => {
        try {
          const { data } = await api("POST", `${base}deliveries/${d.id}/redeliver/`);
          $("log-errors").hidden = true;
          loadLog();
          say(`Delivery ${d.id} sent again as delivery ${data.id}.`);
        } catch (err) {
          fail($("log-errors"), err);
        }
      } }));
  }
  return el("tr", { "data-delivery": d.id, "data-status": d.status },
    el("th", { scope: "row", text: String(d.id) }),
    el("td", {}, el("code", { text: d.event })),
    el("td", { class: "clip-cell" }, el("code", { text: d.url, title: d.url })),
    el("td", {}, el("span", { class: "badge", "data-status": d.status, text: d.status })),
    el("td", { text: String(d.attempts) }),
    el("td", { text: d.response_code == null ? "–" : String(d.response_code) }),
    el("td", { class: d.last_error ? "error" : "muted", text: d.last_error || "" }),
    el("td", { text: when(d.last_attempt_at) }),
    actions);
}

async function loadLog(more = false) {
  const status = $("d-status").value;
  const url = more && nextLog ? nextLog : `${base}deliveries/?page_size=50${status ? `&status=${status}` : ""}`;
  try {
    const { data } = await api("GET", url);
    const tbody = $("delivery-table").querySelector("tbody");
    if (!more) tbody.replaceChildren();
    tbody.append(...data.results.map(deliveryRow));
    if (!tbody.children.length) tbody.append(el("tr", {}, el("td", { colspan: "9", class: "muted", text: "Nothing delivered yet: deliveries appear here as events happen." })));
    nextLog = data.next;
    $("more-log").hidden = !nextLog;
  } catch (err) {
    fail($("log-errors"), err);
  }
}

$("d-status").addEventListener("change", () => loadLog());
$("refresh-log").addEventListener("click", () => loadLog());
$("more-log").addEventListener("click", () => loadLog(true));

loadHooks();
loadLog();
