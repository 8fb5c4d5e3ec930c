// Verticals: production version, candidates, gates, engine and backend, one card per vertical (and a suspended
// vertical's reason, from the emergency switch).

import { api } from "./api.js";
import { h, clear, message } from "./dom.js";
import { t, pick } from "./i18n.js";

export function gateText(gate) {
  const key = `gate.${gate.name}`;
  const value = gate.name === "min_nll_reduction" ? `${(gate.value * 100).toFixed(1)}%` : gate.value;
  const text = t(key, { value });
  return text === key ? `${gate.name}: ${JSON.stringify(gate.value)}` : text;
}

function card(v, ctx) {
  const candidates = v.candidates.length ? v.candidates.map((n) => `v${n}`).join(", ") : t("common.none");
  const reported = v.reported[v.reported.length - 1];  // newest version with an eval report
  const suspended = v.suspended
    ? h("p", { className: "message error suspended", role: "status" },
      t("verticals.suspended", { since: v.suspended.suspended_at, reason: v.suspended.reason }))
    : null;
  return h("article", { className: "card vertical", dataset: { vertical: v.name }, "aria-labelledby": `vt-${v.name}` },
    h("h3", { id: `vt-${v.name}` }, pick(v.title), " ", h("code", {}, v.name)),
    suspended,
    h("dl", {},
      h("dt", {}, t("verticals.production")),
      h("dd", { className: "production" }, v.production == null ? t("common.none") : `v${v.production}`),
      h("dt", {}, t("verticals.candidates")), h("dd", { className: "candidates" }, candidates),
      h("dt", {}, t("verticals.engine")), h("dd", {}, v.engine || "–"),
      h("dt", {}, t("verticals.backend")), h("dd", {}, v.backend || "–"),
      h("dt", {}, t("verticals.gates")),
      h("dd", {}, h("ul", { className: "gates" }, v.gates.map((g) => h("li", {}, gateText(g)))))),
    h("div", { className: "actions" },
      h("button", { type: "button", onclick: () => ctx.navigate("registry", { vertical: v.name }) },
        t("verticals.open_registry")),
      h("button", { type: "button", disabled: reported == null,
        onclick: () => ctx.navigate("evals", { vertical: v.name, version: reported }) }, t("verticals.open_report")),
      h("button", { type: "button", onclick: () => ctx.navigate("playground", { vertical: v.name }) },
        t("verticals.open_playground"))));
}

export async function render(root, ctx) {
  root.append(message("info", t("common.loading")));
  const data = await api("/console/api/verticals");
  ctx.verticals = data.verticals;
  clear(root);
  root.append(h("h2", {}, t("nav.verticals")));
  if (!data.verticals.length) root.append(message("info", t("verticals.empty")));
  root.append(h("div", { className: "cards" }, data.verticals.map((v) => card(v, ctx))));
}
