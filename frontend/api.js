// Calls to /api/v1 with the session cookie and CSRF token; errors carry a readable message.

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, data) {
    super(describe(data) || `the server answered ${status}`);
    this.status = status;
    this.data = data;
    this.code = data && typeof data === "object" ? data.code : undefined;
  }
}

// Flatten DRF errors ({"detail": …}, {"field": ["…"]}, {"choices": [{}, {"hotkey": ["…"]}]}) into one sentence each.
export function messages(data, path = []) {
  if (data == null) return [];
  if (typeof data === "string") return [path.length ? `${path.join(" › ")}: ${data}` : data];
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
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}
