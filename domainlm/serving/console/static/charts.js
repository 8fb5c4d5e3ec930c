// Charts drawn as inline SVG with plain DOM calls (no library, no network). Colours come from CSS classes.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value, scale) {
  if (value == null || Number.isNaN(value)) return "–";
  return scale <= 10 ? value.toFixed(scale === 1 ? 3 : 2) : value.toFixed(1);
}

// Axis maximum: scores in [0, 1] (accuracy, F1) keep a 0–1 axis; others (NLL in nats) round up to 1/2/2.5/5 × 10^k.
export function axisMax(rows) {
  let top = 0;
  for (const r of rows) for (const s of [r.base, r.adapter]) if (s) top = Math.max(top, s.hi ?? s.value ?? 0);
  if (top <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(top));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= top);
}

// rows: [{label, base: {value, lo, hi}, adapter: {value, lo, hi}}]; one band per task with two interval marks.
export function intervalChart(rows, { title, baseLabel, adapterLabel, ariaLabel }) {
  const width = 760, left = 210, right = 24, top = 34, band = 40, bottom = 34;
  const height = top + band * rows.length + bottom;
  const max = axisMax(rows);
  const x = (v) => left + (Math.max(0, Math.min(max, v)) / max) * (width - left - right);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": ariaLabel, class: "chart" });
  svg.append(el("title", {}, title));

  // legend
  const legend = el("g", { class: "legend", transform: `translate(${left}, 14)` });
  legend.append(el("rect", { x: 0, y: -8, width: 12, height: 10, class: "base" }),
    el("text", { x: 18, y: 1 }, baseLabel),
    el("rect", { x: 120, y: -8, width: 12, height: 10, class: "adapter" }),
    el("text", { x: 138, y: 1 }, adapterLabel));
  svg.append(legend);

  // grid + axis ticks
  const axisY = top + band * rows.length;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(el("line", { x1: x(v), x2: x(v), y1: top - 4, y2: axisY, class: "grid" }));
    svg.append(el("text", { x: x(v), y: axisY + 16, class: "tick", "text-anchor": "middle" }, fmt(v, max)));
  }
  svg.append(el("line", { x1: left, x2: width - right, y1: axisY, y2: axisY, class: "axis" }));

  rows.forEach((row, i) => {
    const y0 = top + band * i;
    const g = el("g", { class: "task" });
    g.append(el("text", { x: left - 10, y: y0 + band / 2 + 4, "text-anchor": "end", class: "label" }, row.label));
    [["base", row.base, y0 + 12], ["adapter", row.adapter, y0 + 27]].forEach(([kind, s, y]) => {
      if (!s || s.value == null) return;
      const mark = el("g", { class: `mark ${kind}` });
      mark.append(el("title", {}, `${row.label} ${kind}: ${fmt(s.value, max)} [${fmt(s.lo, max)}, ${fmt(s.hi, max)}]`));
      mark.append(el("rect", { x: left, y: y - 5, width: Math.max(0, x(s.value) - left), height: 10, class: "bar" }));
      if (s.lo != null && s.hi != null) {
        mark.append(el("line", { x1: x(s.lo), x2: x(s.hi), y1: y, y2: y, class: "ci" }));
        mark.append(el("line", { x1: x(s.lo), x2: x(s.lo), y1: y - 5, y2: y + 5, class: "ci" }));
        mark.append(el("line", { x1: x(s.hi), x2: x(s.hi), y1: y - 5, y2: y + 5, class: "ci" }));
      }
      mark.append(el("circle", { cx: x(s.value), cy: y, r: 4, class: "point" }));
      g.append(mark);
    });
    svg.append(g);
  });
  return svg;
}

// A small line of recent values (requests/s history) with its latest value as the accessible name.
export function sparkline(values, { ariaLabel, width = 160, height = 32 }) {
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": ariaLabel,
    class: "sparkline", width, height });
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1e-9);
  const step = width / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  svg.append(el("polyline", { points: points.join(" "), class: "spark" }));
  return svg;
}
