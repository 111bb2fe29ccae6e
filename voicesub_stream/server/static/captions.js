// The caption page: the microphone (or a file) to the server, finals and the partial tail
// shown as they come, the session's subtitles to download.
import { api, socketUrl } from "./api.js";

const $ = (id) => document.getElementById(id);
const captions = $("captions");
const partial = captions.querySelector(".partial");
const finals = []; // segments, as the server sent them
let session = null; // the live session running, if any
const MAX_WAITING = 100; // 10 s of audio kept while the server admits the stream

// Close codes the server uses, as a person would want to read them.
const CLOSE_REASONS = {
  1008: "The server did not accept this session (access token, origin or a limit).",
  1007: "The server refused the settings:",
  1009: "An audio frame was too large for the server.",
  1011: "The server failed while transcribing:",
  1013: "The server is at capacity right now. Try again in a little while.",
};

function status(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

function addFinal(segment, latency) {
  const p = document.createElement("p");
  p.className = "final";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = segment.text;
  p.append(text);
  if (segment.translation) {
    const translation = document.createElement("span");
    translation.className = "translation";
    translation.textContent = segment.translation;
    p.append(translation);
  }
  captions.insertBefore(p, partial);
  finals.push(segment);
  $("count").textContent = finals.length;
  if (segment.language) $("detected").textContent = segment.language;
  if (latency !== undefined) $("latency").textContent = `${latency.toFixed(2)} s`;
  $("download-srt").disabled = $("download-vtt").disabled = false;
  p.scrollIntoView({ block: "end" });
}

function clearCaptions() {
  captions.querySelectorAll("p.final").forEach((p) => p.remove());
  partial.textContent = "";
  finals.length = 0;
  $("count").textContent = "0";
  $("latency").textContent = "–";
  $("heard").textContent = "0 s";
}

function settings() {
  return { language: $("language").value || null, translate_to: $("translate").value || null };
}

async function loadChoices() {
  const response = await api("v1/languages");
  if (!response.ok) return;
  const choices = await response.json();
  const fill = (select, codes) => {
    for (const code of codes) select.append(new Option(code, code));
  };
  fill($("language"), choices.spoken);
  fill($("translate"), choices.translate_to);
  $("translate").disabled = choices.translate_to.length === 0;
}

async function startMicrophone() {
  if (session) return;
  clearCaptions();
  status("Asking for the microphone…");
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (error) {
    status(`The microphone is not available: ${error.message}`, "error");
    return;
  }
  const context = new AudioContext();
  await context.resume(); // a page started without a click (?autostart=1) starts suspended
  await context.audioWorklet.addModule("static/pcm-worklet.js");
  const node = new AudioWorkletNode(context, "pcm16", { processorOptions: { targetRate: 16000 } });
  context.createMediaStreamSource(media).connect(node);
  node.connect(context.destination); // silent, but keeps the browser running the worklet
  const socket = new WebSocket(socketUrl("v1/stream"));
  socket.binaryType = "arraybuffer";
  session = { socket, context, media, node, sent: 0, admitted: false, waiting: [] };
  node.port.onmessage = ({ data }) => {
    if (!session || session.stopping) return;
    if (!session.admitted) { // spoken while the server admits the stream: sent once it has
      session.waiting.push(data);
      if (session.waiting.length > MAX_WAITING) session.waiting.shift();
      return;
    }
    send(data);
  };
  socket.onopen = () => {
    socket.send(JSON.stringify({ sample_rate: 16000, partials: true, ...settings() }));
    status("Connecting…");
  };
  socket.onmessage = ({ data }) => onEvent(JSON.parse(data));
  socket.onclose = ({ code, reason }) => {
    const known = CLOSE_REASONS[code];
    if (code === 1000 || code === 1005) status("Stopped.");
    else status(known ? `${known} ${known.endsWith(":") ? reason : ""}`.trim()
                : `The connection closed (${code}) ${reason}`, "error");
    endSession();
  };
  $("start").disabled = true;
  $("stop").disabled = false;
}

function send(frame) {
  if (session.socket.readyState !== WebSocket.OPEN) return;
  session.socket.send(frame);
  session.sent += frame.byteLength / 2 / 16000; // seconds of audio sent so far
  $("heard").textContent = `${session.sent.toFixed(1)} s`;
}

function onEvent(event) {
  if (event.type === "admitted") {
    session.admitted = true;
    session.waiting.splice(0).forEach(send);
    status(event.degraded ? "Listening (finals only: the server is busy)." : "Listening.", "live");
  } else if (event.type === "partial") {
    partial.textContent = event.text;
  } else if (event.type === "final") {
    partial.textContent = "";
    addFinal(event, session ? Math.max(0, session.sent - event.end) : undefined);
  } else if (event.type === "error") {
    session && (session.error = event);
  }
}

function endSession() {
  if (!session) return;
  session.media.getTracks().forEach((track) => track.stop());
  session.context.close();
  session = null;
  $("start").disabled = false;
  $("stop").disabled = true;
}

function stopMicrophone() {
  if (!session) return;
  status("Finishing the last words…");
  session.stopping = true; // no more audio; the finals for what was sent still come
  session.socket.send(JSON.stringify({ type: "stop" }));
}

async function transcribeFile(file) {
  if (session) stopMicrophone();
  clearCaptions();
  status(`Transcribing ${file.name}…`, "live");
  const form = new FormData();
  form.append("file", file);
  form.append("stream", "true");
  form.append("response_format", "verbose_json");
  if (settings().language) form.append("language", settings().language);
  const response = await api("v1/audio/transcriptions", { method: "POST", body: form });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    status(response.status === 503 ? CLOSE_REASONS[1013]
           : `The server refused the file: ${body.error?.message ?? response.status}`, "error");
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const events = buffered.split("\n\n");
    buffered = events.pop();
    for (const raw of events) {
      const event = JSON.parse(raw.replace(/^data: /, ""));
      if (event.segment) addFinal(event.segment);
      if (event.type === "error") status(`Transcription failed: ${event.message}`, "error");
      if (event.type === "transcript.text.done") status(`${file.name}: done.`);
    }
  }
}

async function download(format) {
  const response = await api("v1/subtitles", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ format, segments: finals, translate_to: settings().translate_to }),
  });
  if (!response.ok) return status(`Could not make the ${format} file.`, "error");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `captions.${format}`;
  link.click();
  URL.revokeObjectURL(link.href);
}

$("start").addEventListener("click", startMicrophone);
$("stop").addEventListener("click", stopMicrophone);
$("file").addEventListener("change", (e) => e.target.files[0] && transcribeFile(e.target.files[0]));
$("download-srt").addEventListener("click", () => download("srt"));
$("download-vtt").addEventListener("click", () => download("vtt"));

await loadChoices();
if (new URLSearchParams(location.search).get("autostart") === "1") startMicrophone();
