// The monitoring dashboard: the engine monitor's samples as they are taken, over
// server-sent events, drawn as small time series, with the engine's state beside them.
import { api, token } from "./api.js";

const $ = (id) => document.getElementById(id);
const KEEP = 300; // points a chart keeps: five minutes at the default 1 s interval

const mb = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;
const rate = (bytes) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB/s`
                                      : `${(bytes / 1e3).toFixed(0)} kB/s`);
const ms = (seconds) => (seconds == null ? "–"
  : `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`);
const pct = (value) => (value == null ? "–" : `${value.toFixed(0)} %`);

// Each chart: a title, how to read its value from a sample, how to show it.
const CHARTS = [
  ["cpu", "Process CPU (% of a core)", (p) => p.process_cpu, pct],
  ["system-cpu", "System CPU", (p) => p.system_cpu, pct],
  ["memory", "Resident memory", (p) => p.rss, mb],
  ["disk", "Disk I/O", (p) => p.disk_read_rate + p.disk_write_rate, rate],
  ["network", "Network I/O", (p) => p.net_sent_rate + p.net_recv_rate, rate],
  ["loop-lag", "Event loop lag", (p) => p.loop_lag, ms],
  ["gpu", "GPU memory", (p) => p.gpu_memory_percent, pct],
];
const series = Object.fromEntries(CHARTS.map(([id]) => [id, []]));

function buildCards() {
  for (const [id, title] of CHARTS) {
    const card = document.createElement("section");
    card.className = "card";
    card.id = `card-${id}`;
    card.innerHTML = `<h2></h2><div class="value">–</div>
      <svg viewBox="0 0 ${KEEP} 50" preserveAspectRatio="none"><polyline points=""/></svg>`;
    card.querySelector("h2").textContent = title;
    $("cards").append(card);
  }
  for (const [id, title] of [["streams-count", "Live streams"], ["capacity", "Admission load"],
                             ["cache", "Cache hit ratio"], ["queued", "Model calls waiting"]]) {
    const card = document.createElement("section");
    card.className = "card";
    card.id = `card-${id}`;
    card.innerHTML = `<h2></h2><div class="value">–</div>`;
    card.querySelector("h2").textContent = title;
    $("cards").append(card);
  }
}

function plot(point) {
  for (const [id, , read, show] of CHARTS) {
    const value = read(point);
    const card = $(`card-${id}`);
    if (id === "gpu" && value == null) { card.hidden = true; continue; }
    card.hidden = false;
    const values = series[id];
    values.push(value ?? 0);
    if (values.length > KEEP) values.shift();
    card.querySelector(".value").textContent = show(value);
    const top = Math.max(...values, 1e-9);
    const offset = KEEP - values.length;
    card.querySelector("polyline").setAttribute("points", values
      .map((v, i) => `${offset + i},${(50 - (48 * v) / top).toFixed(1)}`).join(" "));
  }
}

function rows(table, items) {
  const body = $(table).querySelector("tbody");
  body.replaceChildren(...items.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    return tr;
  }));
}

function list(id, items, className = () => "") {
  $(id).replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.textContent = item.text;
    li.className = className(item);
    return li;
  }));
}

const alerts = [];
function showAlerts() {
  list("alerts", alerts.length ? alerts : [{ text: "No alerts.", state: "none" }],
       (a) => `alert-${a.state}`);
}

function addAlert(alert) {
  alerts.unshift({ text: `${new Date(alert.time * 1000).toLocaleTimeString()} ${alert.state}: `
                         + alert.message, state: alert.state });
  alerts.length = Math.min(alerts.length, 20);
  showAlerts();
}

function update(state) {
  plot(state.point);
  rows("streams", state.streams.map((s, i) => [
    `#${i + 1}${s.degraded ? " (degraded)" : ""}`, s.live ? "live" : "file", s.language ?? "–",
    `${s.audio_seconds.toFixed(0)} s`, ms(s.final_p50), ms(s.final_p95),
    s.pace ?? "–"]));
  rows("timings", Object.entries(state.timings).map(([name, t]) => [
    name, t.count, ms(t.p50), ms(t.p95)]));
  rows("queues", Object.entries(state.scheduler.classes).map(([name, c]) => [
    name, c.queued, c.running, ms(c.wait_p95)]));
  const live = state.streams.filter((s) => s.live).length;
  $("card-streams-count").querySelector(".value").textContent = `${live} live, `
    + `${state.streams.length - live} file`;
  const a = state.admission;
  $("card-capacity").querySelector(".value").textContent =
    `${a.load.toFixed(2)} / ${a.capacity.toFixed(2)} cores`;
  $("card-cache").querySelector(".value").textContent = state.cache.hit_ratio == null ? "–"
    : `${(state.cache.hit_ratio * 100).toFixed(0)} % of ${state.cache.hits + state.cache.misses}`;
  $("card-queued").querySelector(".value").textContent =
    `${state.scheduler.queued} (${state.scheduler.running} running)`;
  if (state.recommendations) {
    list("recommendations", state.recommendations.length ? state.recommendations.map(
      (r) => ({ text: r.message })) : [{ text: "None: the engine is within its limits." }]);
  }
  $("status").textContent = `Updated ${new Date(state.point.time * 1000).toLocaleTimeString()}`
    + (state.firing.length ? ` · alerts firing: ${state.firing.join(", ")}` : "");
}

async function connect() {
  const check = await api("v1/status"); // asks for the token first when the server has one
  if (!check.ok) {
    $("status").textContent = `The server answered ${check.status}.`;
    return;
  }
  const url = new URL("v1/dashboard/events", location.href);
  if (token()) url.searchParams.set("token", token());
  const events = new EventSource(url);
  events.addEventListener("hello", ({ data }) => {
    const hello = JSON.parse(data);
    hello.samples.forEach(plot);
    hello.alerts.forEach(addAlert);
    $("status").textContent = "Connected.";
  });
  events.addEventListener("sample", ({ data }) => update(JSON.parse(data)));
  events.addEventListener("alert", ({ data }) => addAlert(JSON.parse(data)));
  events.onerror = () => { $("status").textContent = "Reconnecting…"; };
}

buildCards();
showAlerts();
connect();
