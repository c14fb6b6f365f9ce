// The paglets dashboard: read-only, same-origin, no dependencies, no build step.
// It reads this node's JSON routes (/health, /hosts, /nodes/NAME/agents, /events, /metrics) and
// follows /events/stream with fetch and a stream reader, so the API key can travel in the
// Authorization header (an EventSource cannot send one). The key is kept in sessionStorage.
// Everything shown is set as text, never as HTML.
"use strict";

(() => {
  const KEY_ITEM = "paglets-api-key";
  const MAX_EVENTS = 200; // lines kept in the event tail
  const SPARK_POINTS = 60; // samples per sparkline
  const METRICS_EVERY = 2000; // ms between /metrics reads
  const REFRESH_EVERY = 5000; // ms between listings (other nodes have no stream here)
  const LISTING_KINDS = new Set([
    "create", "dispatch", "retract", "arrival", "clone", "deactivate", "activate", "dispose", "crash",
    "transfer-failed", "idle-park", "peer-online", "peer-offline", "context-start", "context-stop",
  ]);

  const state = {
    self: null, // this node's name
    selected: null, // the node whose paglets are shown
    cursor: 0, // the last event id read
    series: { delivered: [], failed: [], events: [] },
    lastCounts: null, // {delivered, failed, at} of the previous /metrics read
    eventsSince: 0, // events received since the last metrics tick
    refreshPending: false,
    started: false,
  };

  class AuthError extends Error {}

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function authHeaders() {
    const key = sessionStorage.getItem(KEY_ITEM);
    return key ? { Authorization: "Bearer " + key } : {};
  }

  async function api(path, { text = false, headers = {} } = {}) {
    const response = await fetch(path, {
      headers: { ...authHeaders(), ...headers }, cache: "no-store", credentials: "omit",
    });
    if (response.status === 401) {
      askForKey();
      throw new AuthError("API key needed");
    }
    if (!response.ok) {
      let message = "HTTP " + response.status;
      try {
        const body = await response.json();
        message = body.error.type + ": " + body.error.message;
      } catch (ignored) { /* not JSON */ }
      throw new Error(message);
    }
    return text ? response.text() : response.json();
  }

  // -- small DOM helpers ------------------------------------------------------------------
  function cell(row, value, className) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function setStatus(text, kind) {
    const status = $("status");
    status.textContent = text;
    status.className = "status " + (kind || "");
  }

  function ago(unixSeconds) {
    if (typeof unixSeconds !== "number" || unixSeconds <= 0) return null;
    const seconds = Math.max(0, Date.now() / 1000 - unixSeconds);
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 129600) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  function shortClass(name) {
    if (typeof name !== "string") return null;
    return name.split(":").pop();
  }

  // -- the API key --------------------------------------------------------------------------
  function askForKey() {
    $("key-panel").hidden = false;
    $("main").hidden = true;
    setStatus("API key needed", "warn");
    $("key-input").focus();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_ITEM, key);
    $("key-input").value = "";
    $("key-panel").hidden = true;
    $("main").hidden = false;
    $("forget-key").hidden = false;
    start();
  });

  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    location.reload();
  });

  // -- nodes ----------------------------------------------------------------------------------
  async function loadHosts() {
    const answer = await api("/hosts");
    const body = $("nodes").tBodies[0];
    body.replaceChildren();
    for (const host of answer.hosts) {
      const row = document.createElement("tr");
      row.dataset.node = host.name;
      if (host.name === state.selected) row.className = "selected";
      const name = cell(row, host.name + (host.self ? " (this node)" : ""), "name");
      name.title = host.url;
      cell(row, host.online ? "online" : "offline", host.online ? "ok" : "bad");
      cell(row, host.code_version);
      cell(row, host.active_count, "num");
      cell(row, host.inactive_count, "num");
      cell(row, host.self ? "now" : ago(host.last_seen));
      row.addEventListener("click", () => { location.hash = "node=" + encodeURIComponent(host.name); });
      body.appendChild(row);
    }
  }

  // -- paglets ------------------------------------------------------------------------------
  async function loadAgents() {
    const name = state.selected;
    $("selected-node").textContent = name;
    const error = $("agents-error");
    let answer;
    try {
      answer = await api("/nodes/" + encodeURIComponent(name) + "/agents");
      error.hidden = true;
    } catch (err) {
      if (err instanceof AuthError) throw err;
      error.textContent = "cannot list the paglets of " + name + ": " + err.message;
      error.hidden = false;
      return;
    }
    if (name !== state.selected) return; // the selection changed meanwhile
    const agents = answer.agents.slice().sort((a, b) => (a.agent_id < b.agent_id ? -1 : 1));
    $("agents-count").textContent = "(" + agents.length + ")";
    const body = $("agents").tBodies[0];
    body.replaceChildren();
    for (const agent of agents) body.appendChild(agentRow(agent));
  }

  function agentRow(agent) {
    const parked = agent.phase === "inactive";
    const mailbox = agent.mailbox || {};
    const row = document.createElement("tr");
    row.dataset.agentId = agent.agent_id;
    const id = cell(row, agent.agent_id, "mono");
    id.title = agent.agent_id;
    const cls = cell(row, shortClass(agent.class_name), "agent-class");
    cls.title = agent.class_name || "";
    const phase = parked ? "parked" : agent.crashed ? "crashed" : agent.phase === "ready" ? "active" : agent.phase;
    cell(row, phase, "state " + phase);
    cell(row, parked ? agent.queued_messages : mailbox.queued, "num");
    cell(row, parked ? null : mailbox.in_flight, "num");
    cell(row, parked ? null : mailbox.delivered, "num");
    cell(row, parked ? null : mailbox.failed, mailbox.failed ? "num bad" : "num");
    cell(row, ago(parked ? agent.deactivated_at : agent.started_at));
    cell(row, agent.source || (parked ? "parked here" : "started here"), "came-from mono");
    return row;
  }

  function scheduleRefresh() {
    if (state.refreshPending) return;
    state.refreshPending = true;
    setTimeout(async () => {
      state.refreshPending = false;
      await refresh();
    }, 300);
  }

  async function refresh() {
    try {
      await Promise.all([loadHosts(), loadAgents()]);
    } catch (err) {
      if (!(err instanceof AuthError)) setStatus(err.message, "bad");
    }
  }

  // -- events -------------------------------------------------------------------------------
  function addEvent(event) {
    state.cursor = Math.max(state.cursor, event.event_id);
    state.eventsSince += 1;
    const list = $("events");
    const item = document.createElement("li");
    item.className = "event kind-" + event.kind.replace(/[^a-z0-9-]/g, "");
    const time = document.createElement("time");
    time.textContent = new Date(event.timestamp * 1000).toLocaleTimeString();
    const kind = document.createElement("b");
    kind.textContent = event.kind;
    const about = document.createElement("span");
    const parts = [];
    if (event.agent_id) parts.push(event.agent_id.slice(0, 12));
    if (event.class_name) parts.push(shortClass(event.class_name));
    if (event.service_name) parts.push("service " + event.service_name);
    for (const [name, value] of Object.entries(event.details || {})) {
      if (value !== null && value !== "") parts.push(name + "=" + (typeof value === "object" ? JSON.stringify(value) : value));
    }
    about.textContent = parts.join("  ");
    item.append(time, kind, about);
    if (event.error) {
      const error = document.createElement("span");
      error.className = "error";
      error.textContent = event.error;
      item.append(error);
    }
    list.prepend(item);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
    if (LISTING_KINDS.has(event.kind)) scheduleRefresh();
  }

  async function loadRecentEvents() {
    const newest = await api("/events?since=0&limit=1");
    const from = Math.max(0, newest.last - 100);
    const page = await api("/events?since=" + from + "&limit=100");
    for (const event of page.events) addEvent(event);
    state.cursor = Math.max(state.cursor, page.next);
    state.eventsSince = 0;
  }

  function handleBlock(block) {
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (data) addEvent(JSON.parse(data));
  }

  async function follow() {
    for (;;) {
      try {
        const response = await fetch("/events/stream", {
          headers: { ...authHeaders(), "Last-Event-ID": String(state.cursor) }, cache: "no-store",
          credentials: "omit",
        });
        if (response.status === 401) {
          askForKey();
          return;
        }
        if (!response.ok || !response.body) throw new Error("event stream: HTTP " + response.status);
        setStatus("live", "ok");
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (err) {
        setStatus(err.message || "disconnected", "warn");
      }
      setStatus("reconnecting", "warn");
      await sleep(2000);
    }
  }

  // -- throughput -----------------------------------------------------------------------------
  function metricValue(text, name) {
    const match = text.match(new RegExp("^" + name + " ([0-9.eE+-]+)$", "m"));
    return match ? Number(match[1]) : null;
  }

  function push(series, value) {
    series.push(value);
    while (series.length > SPARK_POINTS) series.shift();
  }

  function drawSpark(id, series, label, digits) {
    const svg = $(id);
    const top = Math.max(1, ...series);
    const step = 120 / (SPARK_POINTS - 1);
    const offset = SPARK_POINTS - series.length;
    const points = series.map((v, i) => ((offset + i) * step).toFixed(1) + "," + (29 - (v / top) * 27).toFixed(1));
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    svg.replaceChildren(line);
    const last = series.length ? series[series.length - 1] : null;
    $(label).textContent = last === null ? "–" : last.toFixed(digits);
  }

  async function pollMetrics() {
    let text;
    try {
      text = await api("/metrics", { text: true });
    } catch (err) {
      return;
    }
    const now = performance.now() / 1000;
    const counts = {
      delivered: metricValue(text, "paglets_messages_delivered_total"),
      failed: metricValue(text, "paglets_messages_failed_total"),
      at: now,
    };
    const previous = state.lastCounts;
    state.lastCounts = counts;
    if (!previous || counts.delivered === null) return;
    const seconds = Math.max(0.001, now - previous.at);
    // A counter that went down means the node restarted: count from zero.
    const rate = (key) => Math.max(0, counts[key] - (counts[key] >= previous[key] ? previous[key] : 0)) / seconds;
    push(state.series.delivered, rate("delivered"));
    push(state.series.failed, rate("failed"));
    push(state.series.events, state.eventsSince / seconds);
    state.eventsSince = 0;
    drawSpark("spark-delivered", state.series.delivered, "rate-delivered", 1);
    drawSpark("spark-failed", state.series.failed, "rate-failed", 1);
    drawSpark("spark-events", state.series.events, "rate-events", 2);
  }

  // -- start ----------------------------------------------------------------------------------
  function selectFromHash() {
    const match = location.hash.match(/node=([^&]+)/);
    state.selected = match ? decodeURIComponent(match[1]) : state.self;
  }

  window.addEventListener("hashchange", () => {
    selectFromHash();
    refresh();
  });

  async function start() {
    if (state.started) return;
    try {
      const health = await api("/health");
      state.self = health.name;
      $("node-name").textContent = health.name + " · " + health.address + " · paglets " + health.version;
      document.title = "paglets · " + health.name;
      selectFromHash();
      await refresh();
      await loadRecentEvents();
    } catch (err) {
      if (!(err instanceof AuthError)) setStatus(err.message, "bad");
      return;
    }
    state.started = true;
    if (sessionStorage.getItem(KEY_ITEM)) $("forget-key").hidden = false;
    setInterval(pollMetrics, METRICS_EVERY);
    setInterval(refresh, REFRESH_EVERY);
    pollMetrics();
    follow();
  }

  start();
})();
