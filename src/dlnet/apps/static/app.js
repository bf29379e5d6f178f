// dlnet page: send the chosen photo to POST v1/colorize, show before/after, offer the download;
// colour points (hints) re-colorize the photo as the user places, drags and removes them.
// Plain browser JavaScript, no build step, no network access beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_RETRIES = 5;  // on 503 (server busy), retry after the server's Retry-After
const COALESCE_MS = 80; // changes within this time go to the server as one request

let photo = null;         // the File being colorized
let photoId = null;       // the server's id of it (X-Photo-Id): later requests send this, not the file
let controller = null;    // aborts the request of a photo replaced by another
let limits = null;        // from /healthz
let hintInfo = null;      // from /healthz: {learned, methods, default_method, max_hints}
let points = [];          // colour points {x, y, color}: pixels of the photo as displayed, "#rrggbb"
let selected = -1;        // the point being edited
// Requests: never more than one in flight; each change bumps `version`, and when the server
// answers, the newest version is sent next (answers to older ones are dropped). While points
// change, a quick JPEG preview is shown first; the download (chosen format) follows when idle.
let version = 0, shown = -1, ready = -1, failed = -1, busy = false, timer = null;
const live = { before: null, after: null, download: null };  // object URLs in use

function setStatus(text, busy = false) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy);
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function megabytes(n) {
  if (n < 1e6) return `${(n / 1e3).toFixed(0)} kB`;
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
}

function use(slot, blob) {
  // Point `slot` at a new object URL for `blob` (or none); free the old one once nothing shows it.
  const old = live[slot];
  live[slot] = blob ? URL.createObjectURL(blob) : null;
  if (old && !Object.values(live).includes(old)) URL.revokeObjectURL(old);
  return live[slot];
}

function share(slot, from) {
  const old = live[slot];
  live[slot] = live[from];
  if (old && !Object.values(live).includes(old)) URL.revokeObjectURL(old);
  return live[slot];
}

async function errorText(resp) {
  // The server always answers errors as JSON {"detail": "<a sentence>"}.
  try {
    const body = await resp.json();
    if (typeof body.detail === "string") return body.detail;
  } catch (_) { /* not JSON: fall through */ }
  return `The server answered ${resp.status} ${resp.statusText}.`;
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(t); reject(new DOMException("aborted", "AbortError")); });
});

function form(format) {
  const data = new FormData();
  if (photoId) data.append("photo", photoId); else data.append("file", photo);
  data.append("size", $("size").value);
  data.append("rebalance", $("rebalance").checked ? "true" : "false");
  data.append("saturation", $("saturation").value);
  data.append("format", format);
  if (points.length) {
    data.append("hints", JSON.stringify(points.map((p) => ({ x: p.x, y: p.y, color: p.color }))));
    if (!$("hint-method-label").hidden) data.append("hint_method", $("hint-method").value);
  }
  return data;
}

async function request(format, signal) {
  // One answer for the current photo, options and points: {blob, ms} or {error}.
  for (let attempt = 0; ; attempt++) {
    const resp = await fetch("v1/colorize", { method: "POST", body: form(format), signal });
    if (resp.status === 404 && photoId) {  // the server no longer holds the photo: send it again
      photoId = null;
      continue;
    }
    if (resp.status === 503 && attempt < MAX_RETRIES) {
      const wait = Math.min(30, Number(resp.headers.get("Retry-After")) || 2);
      setStatus(`The server is busy; trying again in ${wait} s…`, true);
      await sleep(wait * 1000, signal);
      continue;
    }
    if (!resp.ok) return { error: await errorText(resp) };
    photoId = resp.headers.get("X-Photo-Id") || photoId;
    const ms = Number((resp.headers.get("Server-Timing") || "").match(/dur=([\d.]+)/)?.[1]);
    return { blob: await resp.blob(), ms };
  }
}

function changed(now = false) {
  // Something the result depends on changed: send it when the current request is answered.
  // The result says aria-busy until its download matches what is on the page.
  version++;
  $("result").setAttribute("aria-busy", "true");
  if (!timer) timer = setTimeout(() => { timer = null; pump(); }, now ? 0 : COALESCE_MS);
}

async function pump() {
  if (busy || !photo || version === failed || (version === shown && version === ready)) {
    if (!busy) $("result").setAttribute("aria-busy", "false");
    return;
  }
  const v = version;
  const preview = points.length > 0 && $("format").value !== "jpeg" && shown !== v;
  const { signal } = controller;
  busy = true;
  $("download").setAttribute("aria-disabled", "true");
  setStatus(preview ? "Updating…" : "Colorizing…", true);
  const started = performance.now();
  let answer;
  try {
    answer = await request(preview ? "jpeg" : $("format").value, signal);
  } catch (e) {
    answer = e.name === "AbortError" ? null : { error: `Could not reach the dlnet server (${e.message}). Is it still running?` };
  } finally {
    busy = false;
  }
  if (answer && v === version && !signal.aborted) {  // else stale: a newer change waits
    if (answer.error) {
      failed = v;
      setStatus("");
      showError(`${photo.name}: ${answer.error}`);
    } else {
      showError("");
      show(answer.blob, preview, (performance.now() - started) / 1000, answer.ms);
      shown = v;
      if (!preview) ready = v;
    }
  }
  pump();
}

function show(blob, preview, seconds, serverMs) {
  const film = blob.type.startsWith("video/");  // a short video comes back as a film, no slider
  $("film").hidden = !film;
  $("compare").hidden = film;
  $("hinting").hidden = film;
  if (film) $("film").src = use("after", blob); else $("after").src = use("after", blob);
  $("result").hidden = false;
  const took = `${seconds.toFixed(1)} s` + (Number.isFinite(serverMs) ? ` (server ${serverMs.toFixed(0)} ms)` : "");
  if (preview) {
    $("meta").textContent = `Preview, ${took}`;
    setStatus("Updating…", true);
    return;
  }
  const ext = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4",
                "video/x-matroska": "mkv" }[blob.type] || "png";
  const stem = photo.name.replace(/\.[^.]*$/, "") || "photo";
  const link = $("download");
  link.href = share("download", "after");
  link.download = `${stem}-colour.${ext}`;
  link.setAttribute("aria-disabled", "false");
  link.textContent = `Download ${ext.toUpperCase()}`;
  if (film) {
    $("meta").textContent = `${megabytes(blob.size)}, ${took}`;
    setStatus("Done.");
    return;
  }
  $("after").decode().then(() => {
    $("meta").textContent = `${$("after").naturalWidth} × ${$("after").naturalHeight} px, ${megabytes(blob.size)}, ${took}`;
  }).catch(() => { $("meta").textContent = ""; });
  setStatus(points.length ? "Done." : "Done. Drag the slider to compare, or add colour points.");
}

// --- colour points ---------------------------------------------------------------------------

function photoSize() {
  // The result has the photo's size as displayed (EXIF orientation applied), as the server reads it.
  return { w: $("after").naturalWidth, h: $("after").naturalHeight };
}

function toPhoto(event) {
  const rect = $("after").getBoundingClientRect();
  const { w, h } = photoSize();
  const clamp = (v, hi) => Math.round(Math.min(hi, Math.max(0, v)) * 10) / 10;
  return { x: clamp((event.clientX - rect.left) * w / rect.width, w),
           y: clamp((event.clientY - rect.top) * h / rect.height, h) };
}

function colourAt(x, y) {
  // The colour dlnet gave at (x, y): the pixel of the result on screen.
  const { w, h } = photoSize();
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage($("after"), Math.min(w - 1, Math.floor(x)), Math.min(h - 1, Math.floor(y)), 1, 1, 0, 0, 1, 1);
  const [r, g, b] = ctx.getImageData(0, 0, 1, 1).data;
  return "#" + [r, g, b].map((c) => c.toString(16).padStart(2, "0")).join("");
}

function addPoint(x, y) {
  if (hintInfo && points.length >= hintInfo.max_hints) {
    showError(`At most ${hintInfo.max_hints} colour points.`);
    return;
  }
  points.push({ x, y, color: colourAt(x, y) });
  selected = points.length - 1;
  render();
  $("hint-list").querySelectorAll("input[type=color]")[selected].focus({ preventScroll: true });
  changed();
}

function removePoint(i) {
  points.splice(i, 1);
  selected = Math.min(selected, points.length - 1);
  render();
  (points.length ? $("points").querySelectorAll(".point")[Math.max(0, selected)] : $("points")).focus();
  changed();
}

function movePoint(i, x, y) {
  Object.assign(points[i], { x, y });
  render();
  changed();
}

function render() {
  const { w, h } = photoSize();
  const layer = $("points"), list = $("hint-list");
  layer.replaceChildren();
  list.replaceChildren();
  points.forEach((p, i) => {
    const where = `(${Math.round(p.x)}, ${Math.round(p.y)})`;
    const dot = document.createElement("button");
    dot.type = "button";
    dot.className = "point" + (i === selected ? " selected" : "");
    dot.style.left = `${100 * p.x / w}%`;
    dot.style.top = `${100 * p.y / h}%`;
    dot.style.background = p.color;
    dot.dataset.x = p.x;
    dot.dataset.y = p.y;
    dot.setAttribute("aria-label", `Colour point ${i + 1} at ${where}, ${p.color}: arrows move it, Delete removes it`);
    dot.addEventListener("pointerdown", (e) => dragPoint(e, i));
    dot.addEventListener("contextmenu", (e) => { e.preventDefault(); removePoint(i); });
    dot.addEventListener("keydown", (e) => keyPoint(e, i));
    layer.append(dot);

    const row = document.createElement("li");
    row.className = i === selected ? "selected" : "";
    const label = document.createElement("label");
    const picker = document.createElement("input");
    picker.type = "color";
    picker.value = p.color;
    picker.setAttribute("aria-label", `Colour of point ${i + 1}`);
    picker.addEventListener("input", () => { p.color = picker.value; dot.style.background = p.color; changed(); });
    picker.addEventListener("focus", () => { selected = i; markSelected(); });
    label.append(picker, ` Point ${i + 1} at ${where}`);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button small";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove point ${i + 1}`);
    remove.addEventListener("click", () => removePoint(i));
    row.append(label, remove);
    list.append(row);
  });
  $("hint-clear").disabled = !points.length;
}

function markSelected() {
  $("points").querySelectorAll(".point").forEach((d, i) => d.classList.toggle("selected", i === selected));
  [...$("hint-list").children].forEach((r, i) => r.classList.toggle("selected", i === selected));
}

function dragPoint(event, i) {
  if (event.button !== 0) return;  // right button: the context menu removes it
  event.preventDefault();
  event.stopPropagation();
  const dot = event.currentTarget;
  dot.focus();  // (preventDefault keeps the button from taking focus by itself)
  dot.setPointerCapture(event.pointerId);
  selected = i;
  markSelected();
  let moved = false;
  const move = (e) => {
    const { x, y } = toPhoto(e);
    Object.assign(points[i], { x, y });
    const { w, h } = photoSize();
    dot.style.left = `${100 * x / w}%`;
    dot.style.top = `${100 * y / h}%`;
    moved = true;
    changed();
  };
  const end = () => {
    dot.removeEventListener("pointermove", move);
    dot.removeEventListener("pointerup", end);
    dot.removeEventListener("pointercancel", end);
    if (moved) render();  // the list's coordinates
    $("points").querySelectorAll(".point")[i]?.focus();
  };
  dot.addEventListener("pointermove", move);
  dot.addEventListener("pointerup", end);
  dot.addEventListener("pointercancel", end);
}

function keyPoint(event, i) {
  const { w, h } = photoSize();
  const step = Math.max(1, Math.round(Math.max(w, h) / 100)) * (event.shiftKey ? 5 : 1);
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (event.key === "Delete" || event.key === "Backspace") {
    event.preventDefault();
    removePoint(i);
  } else if (moves[event.key]) {
    event.preventDefault();
    const [dx, dy] = moves[event.key];
    movePoint(i, Math.min(w, Math.max(0, points[i].x + dx)), Math.min(h, Math.max(0, points[i].y + dy)));
    $("points").querySelectorAll(".point")[i].focus();
  }
}

function setHintMode(on) {
  $("hint-mode").setAttribute("aria-pressed", String(on));
  $("hint-mode").textContent = on ? "Done adding points" : "Add colour points";
  $("compare").classList.toggle("hinting", on);
  $("points").hidden = !on;
  $("hint-help").hidden = !on;
  if (on) render();
}

function setupHints() {
  $("hint-mode").addEventListener("click", () => setHintMode($("hint-mode").getAttribute("aria-pressed") !== "true"));
  $("hint-clear").addEventListener("click", () => { points = []; selected = -1; render(); changed(); });
  $("hint-method").addEventListener("change", () => { if (points.length) changed(); });
  const layer = $("points");
  layer.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || e.target !== layer || !photoSize().w) return;
    e.preventDefault();
    const { x, y } = toPhoto(e);
    addPoint(x, y);
  });
  layer.addEventListener("contextmenu", (e) => e.preventDefault());
  layer.addEventListener("keydown", (e) => {
    if (e.target !== layer || (e.key !== "Enter" && e.key !== " ")) return;
    e.preventDefault();
    const { w, h } = photoSize();
    addPoint(w / 2, h / 2);
  });
}

// --- photo, options, start-up ------------------------------------------------------------------

function choose(file) {
  if (!file) return;
  showError("");
  if (limits && file.size > limits.max_upload_bytes) {
    showError(`${file.name} is ${megabytes(file.size)}; the limit is ${megabytes(limits.max_upload_bytes)}.`);
    return;
  }
  controller?.abort();
  controller = new AbortController();
  photo = file;
  photoId = null;
  points = [];
  selected = -1;
  setHintMode(false);
  use("download", null);
  document.body.classList.add("has-photo");
  $("before").src = use("before", file);
  $("after").removeAttribute("src");
  use("after", null);
  $("result").hidden = true;
  changed(true);
}

function setupDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { choose(e.target.files[0]); e.target.value = ""; });
  // Dropping anywhere on the page counts; never let the browser navigate to the file.
  window.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  window.addEventListener("dragleave", (e) => { if (!e.relatedTarget) drop.classList.remove("over"); });
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = [...(e.dataTransfer?.files || [])][0];
    if (file) choose(file);
  });
}

function setupSlider() {
  const slider = $("slider");
  const update = () => $("compare").style.setProperty("--pos", `${slider.value}%`);
  slider.addEventListener("input", update);
  update();
}

async function loadInfo() {
  // Limits and defaults from the server; the page still works if this fails.
  try {
    const info = await (await fetch("healthz")).json();
    limits = info.limits;
    hintInfo = info.hints || null;
    $("model").textContent = `Model ${info.model} on ${info.device}`;
    $("limits").textContent = `Up to ${megabytes(limits.max_upload_bytes)} and ` +
      `${(limits.max_pixels / 1e6).toFixed(0)} megapixels; JPEG, PNG, WebP, TIFF, BMP…` +
      (limits.max_video_seconds ? `; films up to ${limits.max_video_seconds} s (MP4, MKV, WebM, AVI…)` : "");
    $("rebalance").checked = info.defaults.rebalance;
    if (limits.max_saturation !== undefined) $("saturation").max = limits.max_saturation;  // the server's limit
    if (info.defaults.saturation !== undefined) {  // the model's own colour gain
      $("saturation").value = info.defaults.saturation;
      $("saturation-value").textContent = Number($("saturation").value).toFixed(2);
    }
    for (const opt of $("size").options) opt.disabled = Number(opt.value) > limits.max_size;
    const preset = [...$("size").options].find((o) => Number(o.value) === info.defaults.size);
    if (preset) $("size").value = preset.value;
    if (hintInfo && hintInfo.methods.length > 1) {  // a model with hint inputs: learned, or spread
      $("hint-method-label").hidden = false;
      $("hint-method").value = hintInfo.default_method;
    }
  } catch (_) {
    $("model").textContent = "dlnet";
  }
}

setupDrop();
setupSlider();
setupHints();
for (const id of ["rebalance", "size", "format", "saturation"]) $(id).addEventListener("change", () => changed(true));
$("saturation").addEventListener("input", () => {
  $("saturation-value").textContent = Number($("saturation").value).toFixed(2);
});
loadInfo();
