// Registry: version history of one vertical with manifest details, and promote / rollback for admin keys.
// The buttons show for every key: the server decides, and a read-only key sees its refusal message here.

import { api } from "./api.js";
import { h, clear, message, labelledSelect, chooseVertical, short, when } from "./dom.js";
import { t } from "./i18n.js";

function dataSources(sources) {
  return h("ul", { className: "sources" }, (sources || []).map((s) =>
    h("li", {}, h("strong", {}, s.name), " — ", s.licence || "?",
      s.rows != null ? ` · ${t("registry.rows", { rows: s.rows })}` : "",
      s.sha256 ? h("span", { className: "hash", title: s.sha256 }, ` · ${short(s.sha256)}`) : "")));
}

function baseModel(base) {
  if (!base) return "–";
  return h("div", {}, h("div", {}, base.model_id || "–"),
    h("div", { className: "hash", title: base.weights_sha256 || "" }, `weights ${short(base.weights_sha256)}`),
    h("div", { className: "hash", title: base.chat_template_sha256 || "" },
      `template ${short(base.chat_template_sha256)}`));
}

function configDetails(config, version) {
  return h("details", {}, h("summary", {}, t("registry.config"), ` v${version}`),
    h("pre", { className: "config" }, JSON.stringify(config ?? {}, null, 2)));
}

function row(entry, vertical, ctx, act) {
  const actions = h("td", { className: "row-actions" });
  if (entry.stage !== "production") {
    actions.append(h("button", { type: "button", className: "promote", dataset: { version: entry.version },
      onclick: () => act("promote", entry.version) }, t("registry.promote", { version: entry.version })));
  }
  const report = entry.has_report
    ? h("button", { type: "button", className: "link",
      onclick: () => ctx.navigate("evals", { vertical, version: entry.version }) }, t("registry.show_report"))
    : h("span", { className: "muted" }, t("registry.no_report"));
  return h("tr", { dataset: { version: entry.version, stage: entry.stage } },
    h("th", { scope: "row" }, `v${entry.version}`),
    h("td", {}, h("span", { className: `stage ${entry.stage}` }, t(`stage.${entry.stage}`))),
    h("td", {}, when(entry.created_at)),
    h("td", { className: "hash", title: entry.artifact_id || "" }, short(entry.artifact_id)),
    h("td", {}, baseModel(entry.base)),
    h("td", {}, dataSources(entry.data_sources)),
    h("td", {}, configDetails(entry.config, entry.version)),
    h("td", {}, report),
    actions);
}

export async function render(root, ctx, params) {
  if (!ctx.verticals) ctx.verticals = (await api("/console/api/verticals")).verticals;
  const names = ctx.verticals.map((v) => v.name);
  const vertical = chooseVertical(ctx.verticals, params.vertical);
  root.append(h("h2", {}, t("registry.title")));
  if (!vertical) {
    root.append(message("info", t("verticals.empty")));
    return;
  }
  root.append(labelledSelect("registry-vertical", "common.vertical", names.map((n) => [n, n]), vertical,
    (v) => ctx.navigate("registry", { vertical: v })));
  const force = h("input", { type: "checkbox", id: "registry-force" });
  const status = h("div", { id: "registry-status", className: "status-area" });
  const body = h("div", {});
  root.append(h("div", { className: "field inline" }, force, h("label", { for: "registry-force" }, t("registry.force"))),
    status, body);

  async function act(kind, version) {
    clear(status);
    try {
      const path = `/console/api/registry/${encodeURIComponent(vertical)}/${kind}`;
      const result = await api(path, { method: "POST", body: kind === "promote" ? { version, force: force.checked } : {} });
      const text = kind === "promote"
        ? t("registry.promoted", { vertical, version: result.production })
        : t("registry.rolled_back", { vertical, version: result.production == null ? t("common.none") : `v${result.production}` });
      ctx.verticals = null;
      await load();
      status.append(message("ok", text));
    } catch (err) {
      status.append(message("error", t("registry.refused", { message: err.message })));
    }
  }

  async function load() {
    const data = await api(`/console/api/registry/${encodeURIComponent(vertical)}`);
    clear(body);
    body.append(h("p", { className: "production-line" }, t("verticals.production"), ": ",
      h("strong", { id: "registry-production" }, data.production == null ? t("common.none") : `v${data.production}`), " ",
      h("button", { type: "button", className: "rollback", disabled: data.production == null,
        onclick: () => act("rollback") }, t("registry.rollback", { vertical }))));
    if (!data.entries.length) {
      body.append(message("info", t("registry.empty")));
      return;
    }
    const heads = ["common.version", "registry.stage", "registry.created", "registry.artifact", "registry.base",
      "registry.data", "registry.config", "registry.report", "registry.actions"];
    body.append(h("div", { className: "table-wrap" }, h("table", { className: "registry" },
      h("caption", {}, `${vertical}: ${t("registry.title")}`),
      h("thead", {}, h("tr", {}, heads.map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, data.entries.map((e) => row(e, vertical, ctx, act))))));
    if (data.events.length) {
      body.append(h("details", { className: "events" }, h("summary", {}, t("registry.events")),
        h("ol", {}, data.events.map((e) => h("li", {}, `${when(e.ts)} · ${e.actor} · ${e.event} v${e.version}`,
          e.previous != null ? ` (${t("registry.previous", { version: e.previous })})` : "")))));
    }
  }

  await load();
}
