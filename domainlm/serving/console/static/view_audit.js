// Audit log (admin keys): who called what, status, tokens, latency. Prompts the vertical's policy marks as
// sensitive (medical) are stored and shown only as their sha256.

import { api } from "./api.js";
import { h, clear, message, labelledSelect, short, when } from "./dom.js";
import { t } from "./i18n.js";

function promptCell(r) {
  if (r.prompt) return h("td", { className: "prompt" }, r.prompt);
  if (r.prompt_sha256) {
    return h("td", { className: "prompt hash", title: r.prompt_sha256 },
      t("audit.hashed", { hash: short(r.prompt_sha256, 16) }));
  }
  return h("td", { className: "muted" }, "–");
}

export async function render(root, ctx, params) {
  if (!ctx.verticals) ctx.verticals = (await api("/console/api/verticals")).verticals;
  const vertical = params.vertical || "";
  const limit = Number(params.limit) || 100;
  root.append(h("h2", {}, t("audit.title")),
    h("div", { className: "controls" },
      labelledSelect("audit-vertical", "common.vertical",
        [["", t("audit.all")], ...ctx.verticals.map((v) => [v.name, v.name])], vertical,
        (v) => ctx.navigate("audit", { vertical: v, limit })),
      labelledSelect("audit-limit", "audit.limit", [50, 100, 500].map((n) => [n, n]), limit,
        (n) => ctx.navigate("audit", { vertical, limit: n })),
      h("button", { type: "button", onclick: () => ctx.navigate("audit", { vertical, limit }) }, t("common.refresh"))));
  const body = h("div", {});
  root.append(body);
  const query = new URLSearchParams({ limit: String(limit) });
  if (vertical) query.set("vertical", vertical);
  try {
    const data = await api(`/console/api/audit?${query}`);
    if (!data.rows.length) {
      body.append(message("info", t("audit.empty")));
      return;
    }
    const heads = ["audit.time", "audit.who", "audit.what", "audit.model", "audit.status", "audit.tokens",
      "audit.latency", "audit.prompt"];
    body.append(h("div", { className: "table-wrap" }, h("table", { className: "audit" },
      h("caption", {}, t("audit.title")),
      h("thead", {}, h("tr", {}, heads.map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, data.rows.map((r) => h("tr", { dataset: { vertical: r.vertical || "" } },
        h("td", {}, when(r.ts)), h("td", {}, r.who || "–"), h("td", {}, r.endpoint || "–", r.stream ? ` · ${t("audit.stream")}` : ""),
        h("td", {}, r.model || "–"),
        h("td", { className: r.status >= 400 ? "bad" : "" }, r.status ?? "–"),
        h("td", {}, r.total_tokens ?? "–"),
        h("td", {}, r.latency_ms == null ? "–" : `${Math.round(r.latency_ms)} ms`),
        promptCell(r)))))));
  } catch (err) {
    clear(body).append(message("error", t("common.error", { message: err.message })));
  }
}
