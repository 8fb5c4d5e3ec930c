// Console shell: sign-in, tab navigation (hash routes such as #/registry?vertical=medical) and the zh/en toggle.
// Each view module exports render(root, ctx, params) and may return a cleanup function (stop polling, streams).

import { api, getKey, setKey, clearKey } from "./api.js";
import { h, clear, message } from "./dom.js";
import { t, lang, setLang, translate, onLangChange } from "./i18n.js";
import * as verticals from "./view_verticals.js";
import * as registry from "./view_registry.js";
import * as evals from "./view_evals.js";
import * as live from "./view_live.js";
import * as playground from "./view_playground.js";
import * as audit from "./view_audit.js";

const VIEWS = { verticals, registry, evals, live, playground, audit };
const ADMIN_ONLY = new Set(["audit"]);
const ctx = { session: null, verticals: null, navigate };
let cleanup = null;
let renderSeq = 0;

const $ = (id) => document.getElementById(id);

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const name = VIEWS[path] ? path : "verticals";
  return { name, params: Object.fromEntries(new URLSearchParams(query || "")) };
}

function navigate(name, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== ""));
  const hash = `#/${name}${query.toString() ? `?${query}` : ""}`;
  if (location.hash === hash) show();
  else location.hash = hash;
}

function tabs() {
  return [...document.querySelectorAll('[role="tab"]')].filter((b) => !b.hidden);
}

async function show() {
  if (!ctx.session) return;
  const { name, params } = parseHash();
  const seq = ++renderSeq;
  if (cleanup) cleanup();
  cleanup = null;
  for (const tab of tabs()) {
    const selected = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  const panel = $("view");
  panel.setAttribute("aria-labelledby", `tab-${name}`);
  clear(panel);
  const root = h("div", { className: `view view-${name}` });
  panel.append(root);
  try {
    const result = await VIEWS[name].render(root, ctx, params);
    if (typeof result === "function") {
      if (seq === renderSeq) cleanup = result;
      else result();
    }
  } catch (err) {
    if (seq !== renderSeq) return;
    if (err.status === 401) {  // key revoked or gateway restarted with another key store: back to sign-in
      clearKey();
      showSignedOut(t("login.failed", { message: err.message }));
    } else {
      root.append(message("error", t("common.error", { message: err.message })));
    }
  }
}

function showSignedIn(session) {
  ctx.session = session;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("logout").hidden = false;
  $("whoami").textContent = t("login.as", { name: session.name, scopes: session.scopes.join(", ") });
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.hidden = ADMIN_ONLY.has(tab.dataset.view) && !session.admin;
  }
  show();
}

function showSignedOut(errorText) {
  ctx.session = null;
  ctx.verticals = null;
  if (cleanup) cleanup();
  cleanup = null;
  $("login-view").hidden = false;
  $("app-view").hidden = true;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  clear($("view"));
  $("login-error").textContent = errorText || "";
  $("api-key").focus();
}

async function signIn(key) {
  setKey(key);
  try {
    showSignedIn(await api("/console/api/session"));
  } catch (err) {
    clearKey();
    showSignedOut(t("login.failed", { message: err.message }));
  }
}

function onTabKey(event) {
  const list = tabs();
  const i = list.indexOf(event.target);
  const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: list.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = list[(moves[event.key] + list.length) % list.length];
  next.focus();
  navigate(next.dataset.view);
}

function init() {
  translate();
  $("lang-toggle").addEventListener("click", () => setLang(lang() === "zh" ? "en" : "zh"));
  onLangChange(() => {
    if (ctx.session) showSignedIn(ctx.session);
  });
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    $("api-key").value = "";
    if (key) signIn(key);
  });
  $("logout").addEventListener("click", () => {
    clearKey();
    showSignedOut();
  });
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => navigate(tab.dataset.view));
    tab.addEventListener("keydown", onTabKey);
  }
  window.addEventListener("hashchange", show);
  const key = getKey();
  if (key) signIn(key);
  else showSignedOut();
}

init();
