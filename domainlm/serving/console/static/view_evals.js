// Eval reports: per task base vs adapter with 95% intervals (charts + a numbers table), the general-regression
// panel, the paired significance result and the vertical's gates, from the report the harness wrote.

import { api } from "./api.js";
import { h, clear, message, labelledSelect, chooseVertical, short, when } from "./dom.js";
import { intervalChart } from "./charts.js";
import { t } from "./i18n.js";

const num = (v, digits = 3) => (v == null ? "–" : Number(v).toFixed(digits));
const interval = (s) => (s ? `${num(s.value)} [${num(s.lo)}, ${num(s.hi)}]` : "–");

function suitePanel(id, titleKey, rows) {
  const title = t(titleKey);
  const chartRows = rows.map((r) => ({ label: r.task, base: r.base, adapter: r.adapter }));
  const table = h("table", { className: "numbers" },
    h("thead", {}, h("tr", {}, ["evals.task", "evals.metric", "evals.items", "evals.base", "evals.adapter", "evals.delta"]
      .map((k) => h("th", { scope: "col" }, t(k))), h("th", { scope: "col" }, "p"))),
    h("tbody", {}, rows.map((r) => h("tr", {}, h("th", { scope: "row" }, r.task), h("td", {}, r.metric || "–"),
      h("td", {}, r.n ?? "–"), h("td", {}, interval(r.base)), h("td", {}, interval(r.adapter)),
      h("td", {}, r.delta == null ? "–" : `${num(r.delta, 2)} [${num(r.delta_lo, 2)}, ${num(r.delta_hi, 2)}] ${r.unit || ""}`),
      h("td", { className: r.significant ? "ok" : "" }, num(r.p_value, 4))))));
  return h("section", { className: "panel", id, "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, title),
    rows.length ? intervalChart(chartRows, {
      title, baseLabel: t("evals.base"), adapterLabel: t("evals.adapter"),
      ariaLabel: t("evals.chart_label", { title, n: rows.length }),
    }) : message("info", t("common.none")),
    h("details", {}, h("summary", {}, t("evals.table")), table));
}

// One gate's verdict in words; numbers as the report has them (points, or a fraction shown as %).
function checkText(g) {
  const pct = (v) => (v == null ? "–" : `${(v * 100).toFixed(1)}%`);
  const show = (v) => (typeof v === "boolean" ? (v ? t("common.yes") : t("common.no")) : v == null ? "–" : num(v, 2));
  const fmt = g.name === "min_nll_reduction" ? pct : show;
  const key = `check.${g.name}`;
  const text = t(key, { value: fmt(g.value), threshold: fmt(g.threshold) });
  return text === key ? `${g.name}: ${show(g.value)} / ${show(g.threshold)}` : text;
}

function summaryPanel(report) {
  const s = report.summary || {};
  const yes = (b) => (b == null ? "–" : b ? t("common.yes") : t("common.no"));
  return h("section", { className: "panel summary", "aria-labelledby": "eval-summary-title" },
    h("h3", { id: "eval-summary-title" }, t("evals.summary")),
    h("dl", {},
      h("dt", {}, t("evals.domain_gain")), h("dd", { id: "eval-domain-gain" }, num(s.domain_gain, 2)),
      h("dt", {}, t("evals.general_regression")), h("dd", {}, num(s.general_regression, 2)),
      h("dt", {}, t("evals.nll_reduction")), h("dd", {}, s.nll_reduction == null ? "–" : `${(s.nll_reduction * 100).toFixed(1)}%`)),
    h("h4", {}, t("evals.significance")),
    h("p", { id: "eval-significance", className: s.significant ? "ok" : "muted" },
      t("evals.significant"), ": ", h("strong", {}, yes(s.significant)),
      s.p_value == null ? "" : ` (${t("evals.p_value", { p: num(s.p_value, 4) })})`),
    report.domain_effect ? h("p", { className: "muted" }, t("evals.effect", {
      effect: num(report.domain_effect.effect, 2), lo: num(report.domain_effect.ci_low, 2),
      hi: num(report.domain_effect.ci_high, 2), tasks: report.domain_effect.tasks })) : "",
    report.gates && report.gates.length ? h("div", {}, h("h4", {}, t("evals.gates")),
      h("ul", { className: "gates" }, report.gates.map((g) => h("li", { className: g.passed ? "ok" : "bad" },
        `${checkText(g)}: ${g.passed ? t("evals.pass") : t("evals.fail")}`)))) : "");
}

export async function render(root, ctx, params) {
  if (!ctx.verticals) ctx.verticals = (await api("/console/api/verticals")).verticals;
  const names = ctx.verticals.map((v) => v.name);
  const vertical = chooseVertical(ctx.verticals, params.vertical);
  root.append(h("h2", {}, t("nav.evals")));
  if (!vertical) {
    root.append(message("info", t("verticals.empty")));
    return;
  }
  const history = await api(`/console/api/registry/${encodeURIComponent(vertical)}`);
  const withReports = history.entries.filter((e) => e.has_report).map((e) => e.version);
  const version = withReports.includes(Number(params.version)) ? Number(params.version) : withReports[0];
  root.append(h("div", { className: "controls" },
    labelledSelect("evals-vertical", "common.vertical", names.map((n) => [n, n]), vertical,
      (v) => ctx.navigate("evals", { vertical: v })),
    labelledSelect("evals-version", "common.version", withReports.map((n) => [n, `v${n}`]), version,
      (v) => ctx.navigate("evals", { vertical, version: v }))));
  const body = h("div", { id: "eval-body" });
  root.append(body);
  if (version == null) {
    body.append(message("info", t("evals.no_report")));
    return;
  }
  const report = await api(`/console/api/reports/${encodeURIComponent(vertical)}/${version}`);
  clear(body);
  const subject = report.subject || {};
  body.append(
    h("p", { className: "subject" }, t("evals.subject"), ": ", h("strong", {}, `${vertical} v${version}`),
      ` · ${subject.base_model_id || ""} · ${t("evals.adapter")} ${short(subject.artifact_id)}`,
      report.created_at ? ` · ${when(report.created_at)}` : ""),
    h("div", { className: "eval-grid" },
      h("div", {}, suitePanel("eval-domain", "evals.domain", report.domain),
        report.domain_nll.length ? suitePanel("eval-nll", "evals.domain_nll", report.domain_nll) : "",
        suitePanel("eval-general", "evals.general", report.general)),
      summaryPanel(report)));
}
