// Live service: requests/s, p50/p99 latency, errors and tokens by vertical, from the gateway's own metrics.
// Polls every 2 s while the view is open; the rates are computed server-side over a sliding window.

import { api } from "./api.js";
import { h, clear, message } from "./dom.js";
import { sparkline } from "./charts.js";
import { t } from "./i18n.js";

const POLL_MS = 2000;
const HISTORY = 90; // samples kept for the trend line: 90 × 2 s = 3 minutes
const history = new Map(); // vertical → recent requests/s, kept across visits to the view

const ms = (v) => (v == null ? "–" : `${Math.round(v)} ms`);

function table(rows) {
  const heads = ["common.vertical", "live.rps", "live.p50", "live.p99", "live.requests", "live.errors", "live.tokens",
    "live.trend"];
  return h("div", { className: "table-wrap" }, h("table", { className: "live" },
    h("caption", {}, t("live.title")),
    h("thead", {}, h("tr", {}, heads.map((k) => h("th", { scope: "col" }, t(k))))),
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { vertical: r.vertical } },
      h("th", { scope: "row" }, r.vertical),
      h("td", { className: "rps" }, r.rps.toFixed(2)),
      h("td", {}, ms(r.p50_ms)), h("td", {}, ms(r.p99_ms)),
      h("td", { className: "requests" }, r.requests),
      h("td", { className: r.errors ? "bad" : "" }, r.errors),
      h("td", {}, `${t("live.prompt_tokens")} ${r.prompt_tokens} · ${t("live.completion_tokens")} ${r.completion_tokens}`),
      h("td", {}, sparkline(history.get(r.vertical) || [], { ariaLabel: `${t("live.rps")} ${r.rps.toFixed(2)}` })))))));
}

export async function render(root) {
  root.append(h("h2", {}, t("live.title")));
  const body = h("div", { "aria-live": "off" });
  const stamp = h("p", { className: "muted", role: "status" });
  root.append(stamp, body);
  let timer = null;
  let stopped = false;

  async function poll() {
    try {
      const data = await api("/console/api/live");
      for (const r of data.verticals) {
        const series = history.get(r.vertical) || [];
        series.push(r.rps);
        if (series.length > HISTORY) series.shift();
        history.set(r.vertical, series);
      }
      clear(body);
      body.append(data.verticals.length ? table(data.verticals) : message("info", t("live.empty")));
      stamp.textContent = t("live.updated", { time: new Date(data.updated * 1000).toLocaleTimeString(),
        window: data.window_s });
    } catch (err) {
      clear(body).append(message("error", t("common.error", { message: err.message })));
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  await poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
