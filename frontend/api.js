// Calls to /api/v1 with the session cookie and CSRF token; errors carry a readable message.

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// What to click instead of the API route a message names: pages speak of buttons, never of routes.
const PAGE_WORDS = {
  calibration_required: "production batches open once the calibration is approved: have the calibration batch labeled, " +
    "review its answers on the Review page (“Calibration answers”), then click “Approve calibration” there",
  calibration_not_reviewed: "review the calibration answers first: on the Review page choose “Calibration answers”, " +
    "confirm or correct each one, then click “Approve calibration”",
  split_not_approved: "approve the split first: click “Approve” next to it under Domain splits on the Training page",
};
const ROUTE = /\s*\((?:GET|POST|PATCH|PUT|DELETE) \/[^)]*\)|(?:GET|POST|PATCH|PUT|DELETE) \/(?:api\/)?\S+|`?manage\.py [a-z_]+`?|\S*\/api\/v1\/\S*/g;

// A server message fit for a page: known codes in page words, any API route left out.
export function forPage(text, code) {
  if (code && PAGE_WORDS[code]) return PAGE_WORDS[code];
  return String(text).replace(ROUTE, (match) => (match.trimStart().startsWith("(") ? "" : "the page's buttons")).trim();
}

export class ApiError extends Error {
  constructor(status, data) {
    super(describe(data) || `the server answered ${status}`);
    this.status = status;
    this.data = data;
    this.code = data && typeof data === "object" ? data.code : undefined;
  }
}

// Flatten error bodies ({"detail": …, "code": …}, {"fields": {"choices": [{}, {"hotkey": ["…"]}]}}) into one sentence each.
export function messages(data, path = []) {
  if (data == null) return [];
  // A validation error: {"detail": summary, "code": "invalid", "fields": {field: [messages]}}; say each field once.
  if (path.length === 0 && data && typeof data === "object" && data.fields && typeof data.fields === "object") return messages(data.fields);
  if (path.length === 0 && data && typeof data === "object" && !Array.isArray(data) && PAGE_WORDS[data.code]) return [PAGE_WORDS[data.code]];
  if (typeof data === "string") return [forPage(path.length ? `${path.join(" › ")}: ${data}` : data)];
  if (Array.isArray(data)) {
    return data.flatMap((item, i) => (typeof item === "object" && item !== null ? messages(item, [...path, `row ${i + 1}`]) : messages(item, path)));
  }
  return Object.entries(data)
    .filter(([key]) => key !== "code")
    .flatMap(([key, value]) => messages(value, key === "detail" || key === "non_field_errors" ? path : [...path, key]));
}

export function describe(data) {
  return messages(data).join("; ");
}

export async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") init.headers["X-CSRFToken"] = csrf();
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, { detail: `the server could not be reached (${err.message}); check your connection and retry` });
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: `the server answered ${response.status} ${response.statusText}` };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data };
}

// Preload and decode an image so swapping it in later shows it at once.
export function preload(url) {
  const image = new Image();
  image.src = url;
  return image.decode().then(() => image, () => image);
}

// Key presses meant for a form field, or combined with a modifier, are not shortcuts.
export function isShortcut(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return false;
  const target = event.target;
  return !(target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)));
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value; // CSSOM: a style attribute would break the CSP
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// A multipart upload with progress (fetch cannot report upload progress). onProgress(loaded, total).
export function upload(url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", csrf());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : 0));
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = { detail: `the server answered ${xhr.status} ${xhr.statusText}` };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve({ status: xhr.status, data });
      else reject(new ApiError(xhr.status, data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { detail: "the upload was cut off; check your connection and upload again" })));
    xhr.send(body);
  });
}

export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// Show a list of messages (an ApiError's, or one Error's) in an alert box.
export function showErrors(box, err, title) {
  const list = err && err.data && messages(err.data).length ? messages(err.data) : [forPage(err?.message ?? String(err))];
  box.replaceChildren(...(title ? [el("strong", { text: title })] : []), el("ul", {}, ...list.map((m) => el("li", { text: m }))));
  box.hidden = false;
}
