// Playground: chat with a vertical through the gateway's own /v1/chat/completions (stream=true), text appearing
// as chunks arrive, with the adapter version that answered and the policy notes the gateway applied.

import { streamChat } from "./api.js";
import { api } from "./api.js";
import { h, clear, message, labelledSelect } from "./dom.js";
import { t } from "./i18n.js";

const conversations = new Map(); // model name → [{role, content}], kept while the tab lives

// Policy notes arrive as the x-domainlm-policy-notes header (comma-separated names, known when the stream opens)
// and, complete, in the `domainlm.policy.notes` field of the chunk that carries the appended note/disclaimer.
export function parseNotes(value) {
  if (value == null || value === "") return [];
  if (Array.isArray(value)) return value.map(String);
  return String(value).split(/\s*[,;]\s*/).filter(Boolean);
}

function chunkMeta(chunk) {
  const extra = chunk.domainlm || {};
  const policy = extra.policy || {};
  return { adapter: extra.adapter || null, notes: Array.isArray(policy.notes) ? policy.notes : null };
}

export async function render(root, ctx, params) {
  if (!ctx.verticals) ctx.verticals = (await api("/console/api/verticals")).verticals;
  const names = ctx.verticals.map((v) => v.name);
  let model = names.includes(params.vertical) ? params.vertical : names[0];
  root.append(h("h2", {}, t("playground.title")));
  if (!model) {
    root.append(message("info", t("verticals.empty")));
    return;
  }
  const transcript = h("ol", { id: "pg-transcript", className: "transcript", "aria-live": "polite" });
  const answeredBy = h("dd", { id: "pg-adapter" }, "–");
  const notes = h("dd", { id: "pg-notes" }, "–");
  const status = h("p", { id: "pg-status", className: "muted", role: "status" });
  const errors = h("div", { className: "status-area" });
  const input = h("textarea", { id: "pg-message", rows: 3, required: true });
  const maxTokens = h("input", { id: "pg-max-tokens", type: "number", min: 1, max: 2048, value: 64 });
  const send = h("button", { type: "submit", id: "pg-send" }, t("playground.send"));
  const stop = h("button", { type: "button", id: "pg-stop", disabled: true }, t("playground.stop"));
  let controller = null;

  function turn(role, content) {
    const text = h("div", { className: "text" }, content);
    transcript.append(h("li", { className: `turn ${role}` },
      h("span", { className: "who" }, role === "user" ? t("playground.you") : t("playground.assistant")), text));
    return text;
  }

  function redraw() {
    clear(transcript);
    for (const m of conversations.get(model) || []) turn(m.role, m.content);
  }

  async function submit(event) {
    event.preventDefault();
    const content = input.value.trim();
    if (!content || controller) return;
    const history = conversations.get(model) || [];
    history.push({ role: "user", content });
    conversations.set(model, history);
    turn("user", content);
    input.value = "";
    const out = turn("assistant", "");
    out.classList.add("streaming");
    clear(errors);
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    let chunks = 0;
    let answer = "";
    const started = performance.now();
    try {
      await streamChat({ model, messages: history, max_tokens: Number(maxTokens.value) || 64 }, {
        signal: controller.signal,
        onOpen: (response) => {
          const adapter = response.headers.get("x-domainlm-adapter");
          if (adapter) answeredBy.textContent = adapter;
          const headerNotes = parseNotes(response.headers.get("x-domainlm-policy-notes"));
          notes.textContent = headerNotes.length ? headerNotes.join(" · ") : t("playground.no_notes");
        },
        onChunk: (chunk) => {
          chunks += 1;
          const meta = chunkMeta(chunk);
          if (meta.adapter) answeredBy.textContent = meta.adapter;
          else if (chunk.model && answeredBy.textContent === "–") answeredBy.textContent = chunk.model;
          if (meta.notes) notes.textContent = parseNotes(meta.notes).join(" · ") || t("playground.no_notes");
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) {
            answer += delta.content;
            out.textContent = answer;
          }
          status.textContent = t("playground.streaming", { n: chunks });
        },
      });
      status.textContent = t("playground.done", { n: chunks, ms: Math.round(performance.now() - started) });
    } catch (err) {
      if (err.name !== "AbortError") errors.append(message("error", t("common.error", { message: err.message })));
    } finally {
      history.push({ role: "assistant", content: answer });
      out.classList.remove("streaming");
      out.dataset.done = "true";
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
  }

  stop.addEventListener("click", () => controller && controller.abort());
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  const form = h("form", { id: "pg-form", onsubmit: submit },
    h("div", { className: "field" }, h("label", { for: "pg-message" }, t("playground.message")), input),
    h("div", { className: "field inline" }, h("label", { for: "pg-max-tokens" }, t("playground.max_tokens")), maxTokens),
    h("div", { className: "actions" }, send, stop,
      h("button", { type: "button", onclick: () => { conversations.set(model, []); redraw(); } }, t("playground.clear"))));
  root.append(
    labelledSelect("pg-vertical", "common.vertical", names.map((n) => [n, n]), model, (v) => {
      model = v;
      answeredBy.textContent = "–";
      notes.textContent = "–";
      redraw();
    }),
    h("div", { className: "playground" },
      h("div", { className: "chat" }, transcript, form, status, errors),
      h("aside", { className: "card meta", "aria-label": t("playground.answered_by") },
        h("dl", {}, h("dt", {}, t("playground.answered_by")), answeredBy,
          h("dt", {}, t("playground.policy_notes")), notes))));
  redraw();
  return () => controller && controller.abort();
}
