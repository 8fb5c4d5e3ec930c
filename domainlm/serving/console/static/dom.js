// Tiny DOM builder: h("button", {type: "button", onclick: fn}, "text", child). Text is always set as text, never
// parsed as HTML, so nothing from the server (prompts, model output, config values) can inject markup.

import { t } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "className") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

// A labelled <select>; the label is a real <label for>, so screen readers and tests find it by name.
export function labelledSelect(id, labelKey, options, value, onchange) {
  const select = h("select", { id, onchange: (e) => onchange(e.target.value) },
    options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value) }, text)));
  return h("div", { className: "field" }, h("label", { for: id }, t(labelKey)), select);
}

export function short(hash, n = 12) {
  return hash ? String(hash).slice(0, n) : "–";
}

export function message(kind, text) {
  return h("p", { className: `msg ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function when(iso) {
  if (!iso) return "–";
  const date = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

// The vertical a view opens on: the one asked for, else the first with any registered version, else the first.
export function chooseVertical(verticals, asked) {
  const names = verticals.map((v) => v.name);
  if (names.includes(asked)) return asked;
  const busy = verticals.find((v) => v.production != null || v.candidates.length || v.archived.length);
  return busy ? busy.name : names[0];
}
