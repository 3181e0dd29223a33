// Keyboard help: `?` shows a panel listing the page's shortcuts, `?` or Esc hides it. page.js (loaded
// by every page) installs it; a page's module adds its own keys with `addShortcuts`.

import { el, isShortcut } from "./api.js";

const sections = [["Everywhere", [["?", "show or hide this help"], ["Esc", "close it (and any open drawer)"]]]];
let panel = null;

// list: [[keys, what they do], …]; keys are written as on the keyboard ("Shift+click", "1 – 9").
export function addShortcuts(title, list) {
  sections.splice(sections.length - 1, 0, [title, list]);
  if (panel) render();
}

function render() {
  const body = panel.querySelector(".help-body");
  body.replaceChildren(...sections.map(([title, list]) => el("section", {},
    el("h3", { text: title }),
    el("dl", {}, ...list.flatMap(([keys, text]) => [el("dt", {}, ...keys.split(" / ").flatMap((k, i) =>
      i ? [" or ", el("kbd", { text: k })] : [el("kbd", { text: k })])), el("dd", { text })])))));
}

function build() {
  panel = el("aside", { id: "keyboard-help", class: "help-panel", role: "dialog", "aria-labelledby": "keyboard-help-title", hidden: true },
    el("div", { class: "help-head" },
      el("h2", { id: "keyboard-help-title", text: "Keyboard shortcuts" }),
      el("button", { type: "button", class: "secondary", text: "Close", "aria-label": "Close keyboard help", onclick: () => toggleHelp(false) })),
    el("div", { class: "help-body" }));
  document.body.append(panel);
  render();
}

export function toggleHelp(show) {
  if (!panel) build();
  panel.hidden = show === undefined ? !panel.hidden : !show;
  document.querySelectorAll("[data-help-toggle]").forEach((b) => b.setAttribute("aria-expanded", String(!panel.hidden)));
}

export function installHelp() {
  if (!panel) build();
  document.addEventListener("keydown", (event) => {
    if (!isShortcut(event) && event.key !== "Escape") return;
    if (event.key === "?") toggleHelp();
    else if (event.key === "Escape" && panel && !panel.hidden) toggleHelp(false);
  });
  document.querySelectorAll("[data-help-toggle]").forEach((b) => b.addEventListener("click", () => toggleHelp()));
}
