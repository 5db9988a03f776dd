// The rating page: one pair at a time from /api/next, judged by buttons or keys (left / right / space),
// posted to /api/judgments. The server decides order and sides; this page never knows which system is which.
"use strict";

const RATER_KEY = "human-eval-rater";
const RATER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$/;
const RETRY_MS = 500;
const KEY_CHOICES = { ArrowLeft: "left", ArrowRight: "right", " ": "same" };

const $ = (id) => document.getElementById(id);
const leftVideo = $("left-video");
const rightVideo = $("right-video");
const buttons = [...document.querySelectorAll("#choices button")];
const state = { rater: null, pair: null, ready: false, busy: false, token: 0, loops: 0 };

function show(section) {
  for (const id of ["rater-form", "study", "done"]) $(id).hidden = id !== section;
}

function say(text) {
  $("message").textContent = text || "";
}

function setEnabled(enabled) {
  for (const button of buttons) button.disabled = !enabled;
}

// Network errors (server restarting) are retried until the server answers; HTTP errors are answers.
async function fetchRetrying(url, options) {
  for (;;) {
    try {
      const response = await fetch(url, { cache: "no-store", ...options });
      say("");
      return response;
    } catch (err) {
      say("Cannot reach the server, retrying\u2026");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (err) {
    return `HTTP ${response.status}`;
  }
}

function whenPlayable(video) {
  return new Promise((resolve, reject) => {
    if (video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA) return resolve();
    video.addEventListener("canplay", resolve, { once: true });
    video.addEventListener("error", () => reject(new Error("video")), { once: true });
  });
}

// Both videos start together and restart together whenever either ends, so frame k is shown side by side.
function restartBoth() {
  for (const video of [leftVideo, rightVideo]) {
    video.pause();
    video.currentTime = 0;
  }
  Promise.all([leftVideo.play(), rightVideo.play()]).catch(() => say("Click a video to start playback."));
}

function onEnded(event) {
  if (!event.target.ended) return; // the other video's end already restarted both
  state.loops += 1;
  $("videos").dataset.loops = String(state.loops);
  restartBoth();
}

function showPair(pair) {
  const token = ++state.token;
  state.pair = pair;
  state.ready = false;
  setEnabled(false);
  $("progress").textContent = `Pair ${pair.index} of ${pair.total}`;
  leftVideo.src = pair.left;
  rightVideo.src = pair.right;
  Promise.all([whenPlayable(leftVideo), whenPlayable(rightVideo)]).then(
    () => {
      if (token !== state.token) return;
      state.ready = true;
      setEnabled(true);
      restartBoth();
    },
    () => say("This browser cannot play these videos (H.264 MP4). Please use a current Chrome, Firefox or Safari."),
  );
}

async function loadNext() {
  state.busy = true;
  setEnabled(false);
  const response = await fetchRetrying(`/api/next?rater=${encodeURIComponent(state.rater)}`);
  state.busy = false;
  if (response.status === 204) {
    state.pair = null;
    for (const video of [leftVideo, rightVideo]) video.removeAttribute("src");
    $("progress").textContent = "";
    show("done");
    return;
  }
  if (!response.ok) {
    say(await errorText(response));
    return;
  }
  show("study");
  showPair(await response.json());
}

async function judge(choice) {
  if (state.busy || !state.ready || !state.pair) return;
  state.busy = true;
  setEnabled(false);
  const body = JSON.stringify({ rater: state.rater, pair_id: state.pair.pair_id, choice });
  const response = await fetchRetrying("/api/judgments", {
    method: "POST", headers: { "Content-Type": "application/json" }, body,
  });
  // 409: already judged (e.g. the reply to an earlier try was lost) or not offered: the server knows what is next.
  if (response.status !== 201 && response.status !== 409) {
    state.busy = false;
    setEnabled(true);
    say(await errorText(response));
    return;
  }
  await loadNext();
}

function startAs(rater) {
  state.rater = rater;
  localStorage.setItem(RATER_KEY, rater);
  $("rater-id").textContent = rater;
  $("rater-bar").hidden = false;
  loadNext();
}

function askRater(message) {
  show("rater-form");
  $("rater-bar").hidden = true;
  $("progress").textContent = "";
  $("rater-input").value = state.rater || "";
  $("rater-input").focus();
  say(message);
}

function initialRater() {
  const fromUrl = new URLSearchParams(window.location.search).get("rater");
  if (fromUrl) return fromUrl;
  return localStorage.getItem(RATER_KEY);
}

document.addEventListener("keydown", (event) => {
  const choice = KEY_CHOICES[event.key];
  if (!choice || event.repeat || $("study").hidden || event.target instanceof HTMLInputElement) return;
  event.preventDefault(); // no page scroll on space, no click on a focused button
  judge(choice);
});

for (const button of buttons) {
  button.addEventListener("click", () => {
    button.blur(); // a later space press must not click this button again
    judge(button.dataset.choice);
  });
}

for (const video of [leftVideo, rightVideo]) {
  video.addEventListener("ended", onEnded);
  video.addEventListener("click", () => state.ready && restartBoth());
}

$("rater-entry").addEventListener("submit", (event) => {
  event.preventDefault();
  const rater = $("rater-input").value.trim();
  if (RATER_PATTERN.test(rater)) startAs(rater);
  else say("A rater id is 1-64 letters, digits or _ . @ + -, starting with a letter or digit.");
});

$("change-rater").addEventListener("click", () => askRater(""));

const rater = initialRater();
if (rater && RATER_PATTERN.test(rater)) startAs(rater);
else askRater(rater ? `"${rater}" is not a valid rater id.` : "");
