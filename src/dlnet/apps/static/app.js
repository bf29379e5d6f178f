// dlnet page: send the chosen photo to POST v1/colorize, show before/after, offer the download.
// Plain browser JavaScript, no build step, no network access beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_RETRIES = 5; // on 503 (server busy), retry after the server's Retry-After

let photo = null;         // the File being colorized
let controller = null;    // aborts a request made stale by a newer one
let urls = [];            // object URLs to free when replaced
let limits = null;        // from /healthz

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

function freeUrls() {
  urls.forEach(URL.revokeObjectURL);
  urls = [];
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  urls.push(url);
  return url;
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

async function colorize() {
  if (!photo) return;
  controller?.abort();
  controller = new AbortController();
  const { signal } = controller;
  const form = new FormData();
  form.append("file", photo);
  form.append("size", $("size").value);
  form.append("rebalance", $("rebalance").checked ? "true" : "false");
  form.append("saturation", $("saturation").value);
  form.append("format", $("format").value);

  showError("");
  $("download").setAttribute("aria-disabled", "true");
  const started = performance.now();
  try {
    for (let attempt = 0; ; attempt++) {
      setStatus("Colorizing…", true);
      const resp = await fetch("v1/colorize", { method: "POST", body: form, signal });
      if (resp.status === 503 && attempt < MAX_RETRIES) {
        const wait = Math.min(30, Number(resp.headers.get("Retry-After")) || 2);
        setStatus(`The server is busy; trying again in ${wait} s…`, true);
        await sleep(wait * 1000, signal);
        continue;
      }
      if (!resp.ok) {
        setStatus("");
        showError(`${photo.name}: ${await errorText(resp)}`);
        return;
      }
      showResult(await resp.blob(), (performance.now() - started) / 1000);
      return;
    }
  } catch (e) {
    if (e.name === "AbortError") return;
    setStatus("");
    showError(`Could not reach the dlnet server (${e.message}). Is it still running?`);
  }
}

function showResult(blob, seconds) {
  const url = objectUrl(blob);
  const film = blob.type.startsWith("video/");  // a short video comes back as a film, no slider
  $("film").hidden = !film;
  $("compare").hidden = film;
  if (film) $("film").src = url; else $("after").src = url;
  const ext = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4",
                "video/x-matroska": "mkv" }[blob.type] || "png";
  const stem = photo.name.replace(/\.[^.]*$/, "") || "photo";
  const link = $("download");
  link.href = url;
  link.download = `${stem}-colour.${ext}`;
  link.setAttribute("aria-disabled", "false");
  link.textContent = `Download ${ext.toUpperCase()}`;
  $("result").hidden = false;
  if (film) {
    $("meta").textContent = `${megabytes(blob.size)}, ${seconds.toFixed(1)} s`;
    setStatus("Done.");
    return;
  }
  $("after").decode().then(() => {
    $("meta").textContent = `${$("after").naturalWidth} × ${$("after").naturalHeight} px, ` +
      `${megabytes(blob.size)}, ${seconds.toFixed(1)} s`;
  }).catch(() => { $("meta").textContent = ""; });
  setStatus("Done. Drag the slider to compare.");
}

function choose(file) {
  if (!file) return;
  showError("");
  if (limits && file.size > limits.max_upload_bytes) {
    showError(`${file.name} is ${megabytes(file.size)}; the limit is ${megabytes(limits.max_upload_bytes)}.`);
    return;
  }
  freeUrls();
  photo = file;
  document.body.classList.add("has-photo");
  $("before").src = objectUrl(file);
  $("after").removeAttribute("src");
  $("result").hidden = true;
  colorize();
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
  } catch (_) {
    $("model").textContent = "dlnet";
  }
}

setupDrop();
setupSlider();
for (const id of ["rebalance", "size", "format", "saturation"]) $(id).addEventListener("change", colorize);
$("saturation").addEventListener("input", () => {
  $("saturation-value").textContent = Number($("saturation").value).toFixed(2);
});
loadInfo();
