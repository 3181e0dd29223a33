// Plain SVG charts for the owner pages: a line chart over time, an interval chart against a line, a
// heatmap. No library: each is a few dozen lines, draws from data already on the page, and says "not
// enough data yet" instead of drawing an empty box.

import { el } from "./api.js";

const NS = "http://www.w3.org/2000/svg";
export const COLOURS = ["#2557d6", "#d9480f", "#2b8a3e", "#9c36b5", "#c2255c", "#0b7285", "#e67700", "#495057"];

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value != null) node.setAttribute(key, String(value));
  for (const child of children) if (child != null) node.append(child);
  return node;
}

const text = (x, y, content, attrs = {}) => svg("text", { x, y, ...attrs }, content);

export function notEnough(container, message) {
  container.replaceChildren(el("p", { class: "not-enough", text: `Not enough data yet: ${message}` }));
}

// series: [{name, points: [{x: Date, y: 0..1, n}]}]; threshold: a y drawn as a dashed line.
export function timeChart(container, series, { threshold = null, label = "", yFormat = (y) => `${Math.round(y * 100)}%` } = {}) {
  const width = 720, height = 260, pad = { left: 44, right: 16, top: 12, bottom: 28 };
  const xs = series.flatMap((s) => s.points.map((p) => p.x.getTime()));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) { x0 -= 43_200_000; x1 += 43_200_000; }
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y) => pad.top + (1 - y) * (height - pad.top - pad.bottom);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart-svg" });
  for (const y of [0, 0.25, 0.5, 0.75, 1]) {
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(y), y2: sy(y), class: "grid" }),
      text(pad.left - 6, sy(y) + 4, yFormat(y), { "text-anchor": "end" }));
  }
  const fmt = (t) => new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  root.append(text(pad.left, height - 8, fmt(x0)), text(width - pad.right, height - 8, fmt(x1), { "text-anchor": "end" }));
  if (threshold != null) {
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(threshold), y2: sy(threshold), class: "threshold" }),
      text(width - pad.right, sy(threshold) - 4, `pause under ${yFormat(threshold)}`, { "text-anchor": "end", class: "threshold-label" }));
  }
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const coords = s.points.map((p) => `${sx(p.x.getTime()).toFixed(1)},${sy(p.y).toFixed(1)}`);
    if (coords.length > 1) root.append(svg("polyline", { points: coords.join(" "), stroke: colour, class: "series" }));
    for (const p of s.points) {
      root.append(svg("circle", { cx: sx(p.x.getTime()), cy: sy(p.y), r: 3.5, fill: colour },
        svg("title", {}, `${s.name}, ${fmt(p.x.getTime())}: ${yFormat(p.y)} of ${p.n}`)));
    }
  });
  container.replaceChildren(root, legend(series.map((s) => s.name)));
}

export function legend(names) {
  return el("ul", { class: "legend" }, ...names.map((name, i) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = COLOURS[i % COLOURS.length];
    return el("li", {}, swatch, name);
  }));
}

// rows: [{label, value, wilson: [lo, hi], exact: [lo, hi], decision}]; line: the acceptance line.
export function intervalChart(container, rows, { line, label = "" } = {}) {
  const width = 720, rowH = 30, pad = { left: 150, right: 24, top: 22, bottom: 26 };
  const height = pad.top + pad.bottom + rows.length * rowH;
  const top = Math.min(1, Math.max(line * 2.5, ...rows.map((r) => r.exact[1]), ...rows.map((r) => r.wilson[1])) * 1.05);
  const sx = (x) => pad.left + (Math.min(x, top) / top) * (width - pad.left - pad.right);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart-svg" });
  for (let i = 0; i <= 4; i += 1) {
    const x = (top * i) / 4;
    root.append(svg("line", { x1: sx(x), x2: sx(x), y1: pad.top - 6, y2: height - pad.bottom, class: "grid" }),
      text(sx(x), height - 8, `${(x * 100).toFixed(x * 100 < 10 ? 1 : 0)}%`, { "text-anchor": "middle" }));
  }
  root.append(svg("line", { x1: sx(line), x2: sx(line), y1: pad.top - 10, y2: height - pad.bottom, class: "threshold" }),
    text(sx(line) + 4, pad.top - 10, `acceptance line ${(line * 100).toFixed(1)}%`, { class: "threshold-label" }));
  rows.forEach((r, i) => {
    const y = pad.top + i * rowH + rowH / 2;
    const cls = r.decision === "accepted" ? "ok" : r.decision === "rejected" ? "bad" : "open";
    root.append(
      text(pad.left - 8, y + 4, r.label, { "text-anchor": "end", class: "row-label" }),
      svg("line", { x1: sx(r.exact[0]), x2: sx(r.exact[1]), y1: y, y2: y, class: `exact ${cls}` }),
      svg("line", { x1: sx(r.wilson[0]), x2: sx(r.wilson[1]), y1: y, y2: y, class: `wilson ${cls}` }),
      svg("circle", { cx: sx(r.value), cy: y, r: 4.5, class: `point ${cls}` },
        svg("title", {}, `${r.label}: ${(r.value * 100).toFixed(1)}% errors; Wilson ${(r.wilson[0] * 100).toFixed(1)}–${(r.wilson[1] * 100).toFixed(1)}%, ` +
          `Clopper–Pearson ${(r.exact[0] * 100).toFixed(1)}–${(r.exact[1] * 100).toFixed(1)}%`)),
    );
  });
  container.replaceChildren(root, el("p", { class: "explain", text: "Dot: the audit's error rate. Thick bar: its 95% Wilson interval, which decides; "
    + "thin bar: the exact Clopper–Pearson interval. A batch is accepted when the thick bar ends left of the acceptance line." }));
}

// matrix[i][j]: count with row label i (the right answer) and column label j (the answer given).
export function heatmap(container, labels, matrix, { label = "" } = {}) {
  const cell = 56, pad = { left: 130, top: 96 };
  const n = labels.length;
  const width = pad.left + n * cell + 12, height = pad.top + n * cell + 12;
  const rowTotals = matrix.map((row) => row.reduce((a, b) => a + b, 0));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart-svg heatmap" });
  root.append(text(pad.left + (n * cell) / 2, 14, "answer given", { "text-anchor": "middle", class: "axis-title" }),
    text(12, pad.top + (n * cell) / 2, "right answer", { "text-anchor": "middle", class: "axis-title",
      transform: `rotate(-90 12 ${pad.top + (n * cell) / 2})` }));
  labels.forEach((l, j) => root.append(text(pad.left + j * cell + cell / 2, pad.top - 8, l, {
    "text-anchor": "start", transform: `rotate(-40 ${pad.left + j * cell + cell / 2} ${pad.top - 8})` })));
  matrix.forEach((row, i) => {
    root.append(text(pad.left - 8, pad.top + i * cell + cell / 2 + 4, labels[i], { "text-anchor": "end" }));
    row.forEach((count, j) => {
      const share = rowTotals[i] ? count / rowTotals[i] : 0;
      const right = i === j;
      // Right answers shade green, wrong ones red, by their share of the row.
      const fill = count === 0 ? "#f6f7f9" : right ? `rgba(43,138,62,${0.15 + 0.75 * share})` : `rgba(201,42,42,${0.15 + 0.75 * share})`;
      root.append(svg("rect", { x: pad.left + j * cell, y: pad.top + i * cell, width: cell - 2, height: cell - 2, rx: 3, fill },
        svg("title", {}, `right answer ${labels[i]}, given ${labels[j]}: ${count}`)),
      text(pad.left + j * cell + cell / 2 - 1, pad.top + i * cell + cell / 2 + 4, String(count), {
        "text-anchor": "middle", class: share > 0.55 ? "on-dark" : "" }));
    });
  });
  container.replaceChildren(root);
}
