// The status page: polls /status every 2 s and /cycles when a new cycle has ended, and
// draws them with DOM nodes (text is always set as text, never parsed as HTML).
"use strict";

const POLL_MS = 2000;
const PHASES = ["plan", "unlock", "record", "build", "load", "deploy", "ready", "rollback"];
const GOOD = new Set(["converged", "nothing-to-do"]);
const WAITING = new Set(["retry", "paused", "skipped-known-failure"]);
let lastCycleSeen = null;
let lastAnswer = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

function ago(epochSeconds) {
  if (!epochSeconds) return "—";
  const seconds = Math.max(0, Date.now() / 1000 - epochSeconds);
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

function seconds(value) {
  return value >= 10 ? `${value.toFixed(1)} s` : value >= 1 ? `${value.toFixed(2)} s` : `${Math.round(value * 1000)} ms`;
}

function tone(outcome) {
  if (outcome === "nothing-to-do") return "idle";
  return GOOD.has(outcome) ? "ok" : WAITING.has(outcome) ? "warn" : "bad";
}

function badge(outcome) {
  return el("span", { class: `badge ${tone(outcome)}`, text: outcome, "data-outcome": outcome });
}

function card(label, value, id) {
  const body = typeof value === "string" ? el("div", { class: "value", text: value }) : el("div", { class: "value" }, value);
  return el("div", { class: "card", id }, el("div", { class: "label", text: label }), body);
}

function renderSummary(status) {
  const last = status.last_cycle;
  const app = status.app_url ? el("a", { href: status.app_url, text: status.app_url }) : "—";
  document.getElementById("release").textContent = `${status.release} in ${status.namespace}`;
  document.getElementById("summary").replaceChildren(
    card("release revision", String(status.revision ?? "—"), "revision"),
    card("last cycle", last ? el("span", {}, badge(last.outcome), ` ${ago(last.finished_at)} ago`) : "none yet", "last-cycle"),
    card("app", app, "app"),
    card("mode", status.mode, "mode"),
    card("daemon", `PID ${status.daemon.pid}, up ${ago(status.daemon.started_at)}`, "daemon"),
  );
}

function rolloutTone(text) {
  if (/^(complete|ready)/.test(text)) return "ok";
  if (text === "deployed") return "";
  if (/^(in progress|unknown)/.test(text)) return "warn";
  return "bad";
}

function renderServices(services) {
  const rows = Object.entries(services).map(([name, service]) =>
    el(
      "tr",
      { "data-service": name },
      el("td", {}, el("strong", { text: name })),
      el("td", {}, el("code", { text: service.tag, title: service.image })),
      el("td", {}, el("code", { text: service.digest.slice(0, 19), title: service.digest })),
      el("td", { class: `rollout ${rolloutTone(service.rollout)}`, text: service.rollout }),
      el("td", { text: ago(service.deployed_at) }),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "nothing deployed yet" })));
  document.querySelector("#services tbody").replaceChildren(...rows);
}

function renderFailure(status) {
  const failure = status.last_failed_cycle;
  const box = document.getElementById("failure");
  if (!failure) {
    box.replaceChildren(el("div", { class: "panel muted", text: "no failure in the recent cycles" }));
    return;
  }
  const last = status.last_cycle;
  const resolved = last && GOOD.has(last.outcome) && last.finished_at > (failure.finished_at || 0);
  const parts = [
    el("div", {}, badge(failure.outcome), failure.finished_at ? ` ${clock(failure.finished_at)} (${ago(failure.finished_at)} ago)` : "",
      resolved ? el("span", { class: "ok", text: " — resolved since: the last cycle converged" }) : null),
    el("p", { class: "message", text: failure.message }),
  ];
  const diagnosis = failure.diagnosis;
  if (diagnosis) {
    parts.push(el("p", { class: "diagnosis" }, el("strong", { text: `${diagnosis.service}: ${diagnosis.reason}` }), ` — ${diagnosis.summary}`));
    if (diagnosis.pod) parts.push(el("div", { class: "muted", text: `pod ${diagnosis.pod}` }));
    if (diagnosis.logs && diagnosis.logs.length) {
      parts.push(el("div", { text: "last log lines" }), el("pre", { class: "logs", text: diagnosis.logs.join("\n") }));
    }
    if (diagnosis.events && diagnosis.events.length) {
      parts.push(el("div", { text: "events" }), el("ul", { class: "events" }, ...diagnosis.events.map((event) => el("li", { text: event }))));
    }
  }
  box.replaceChildren(el("div", { class: resolved ? "panel" : "panel failed" }, ...parts));
}

function renderDrift(drift) {
  const box = document.getElementById("drift");
  if (!drift.length) {
    box.replaceChildren(el("div", { class: "panel muted", text: "none found: the live objects match the release" }));
    return;
  }
  box.replaceChildren(
    el("div", { class: "panel failed" }, el("ul", {}, ...drift.map((item) =>
      el("li", { class: "drift-item", text: `${item.service}: ${item.kind}/${item.name} ${item.field}: release says ${JSON.stringify(item.desired)}, live is ${JSON.stringify(item.live)}` })))),
  );
}

function renderLegend() {
  document.getElementById("legend").replaceChildren(
    ...PHASES.map((phase) => el("span", {}, el("i", { class: `phase-${phase}` }), phase)),
  );
}

function total(cycle) {
  return Object.values(cycle.phases || {}).reduce((sum, value) => sum + value, 0);
}

function renderTimeline(cycles) {
  const longest = Math.max(0.001, ...cycles.map(total));
  const rows = cycles.slice().reverse().map((cycle) => {
    const bar = el("div", { class: "bar", title: Object.entries(cycle.phases || {}).map(([p, s]) => `${p} ${seconds(s)}`).join(", ") });
    for (const phase of PHASES) {
      const spent = (cycle.phases || {})[phase];
      if (!spent) continue;
      const part = el("span", { class: `phase-${phase}`, title: `${phase} ${seconds(spent)}` });
      part.style.width = `${(100 * spent) / longest}%`; // CSSOM: allowed by the page's CSP
      bar.append(part);
    }
    const said = cycle.rollout ? `${cycle.message} (rollout ended by ${cycle.rollout.ended_by} after ${seconds(cycle.rollout.seconds)})` : cycle.message;
    return el(
      "div",
      { class: "cycle", role: "listitem", "data-outcome": cycle.outcome },
      el("span", { class: "muted", text: cycle.finished_at ? clock(cycle.finished_at) : "" }),
      el("span", {}, badge(cycle.outcome)),
      el("span", { class: "seconds", text: seconds(total(cycle)) }),
      bar,
      el("span", { class: "message", text: said, title: said }),
    );
  });
  document.getElementById("timeline").replaceChildren(...rows);
  document.getElementById("cycle-count").textContent = `(last ${cycles.length}, newest first)`;
}

function setLive(state, text) {
  const live = document.getElementById("live");
  live.dataset.state = state;
  live.textContent = text;
}

async function poll() {
  try {
    const response = await fetch("/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const status = await response.json();
    lastAnswer = Date.now();
    renderSummary(status);
    renderServices(status.services);
    renderFailure(status);
    renderDrift(status.drift || []);
    const seen = status.last_cycle ? status.last_cycle.finished_at : null;
    if (seen !== lastCycleSeen) {
      const cycles = await (await fetch("/cycles", { cache: "no-store" })).json();
      renderTimeline(cycles.cycles);
      lastCycleSeen = seen;
    }
    setLive("live", "live");
    document.body.dataset.loaded = "true";
  } catch (error) {
    const since = lastAnswer ? ` (last answer ${ago(lastAnswer / 1000)} ago)` : "";
    setLive("down", `daemon not answering${since}`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

renderLegend();
poll();
