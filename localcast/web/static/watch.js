// Watch page: playback session -> hls.js (content steering, resume) -> view reports.
//
// hls.js follows HLS Content Steering by itself: it starts on the multivariant's
// default pathway, reloads the steering manifest at its TTL and moves to another
// pathway when the ranking changes or the current one fails. Segments come from
// the appliances (other origins, CORS); the session and views are same-origin.
"use strict";
(async function () {
  const params = JSON.parse(document.getElementById("params").textContent);
  const video = document.getElementById("video");
  const show = (id, text) => { document.getElementById(id).textContent = text; };
  const viewUrl = `/v1/views/${encodeURIComponent(params.profile_id)}/${encodeURIComponent(params.title_id)}`;
  const REPORT_EVERY_MS = 10000;
  // Inspectable state (tests and curious people): window.localcast
  const state = {
    session: null,
    started: false, // a frame played: only then is currentTime worth saving
    startPosition: null, // where hls.js was told to start (the resume offset)
    startedAt: null, // currentTime when playback first started
    pathway: null,
    fragments: 0,
    lastReported: -1,
    reports: 0,
    errors: [],
  };
  window.localcast = state;

  function fail(message) {
    state.errors.push(message);
    show("error", message);
  }

  let session;
  try {
    const resp = await fetch("/v1/playback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        title_id: params.title_id,
        profile_id: params.profile_id,
        platform: "web",
        device: { codecs: ["avc1", "mp4a"], max_height: 1080 },
      }),
    });
    if (!resp.ok) {
      fail(`playback refused: HTTP ${resp.status} ${await resp.text()}`);
      return;
    }
    session = await resp.json();
  } catch (err) {
    fail(`control plane unreachable: ${err}`);
    return;
  }
  state.session = session;
  const pathwayInfo = Object.fromEntries(session.pathways.map((p) => [p.id, p]));
  show("resume", session.resume_offset_s > 0
    ? `${session.resume_offset_s.toFixed(1)} s (${session.resume_reason})`
    : "from the start");

  function renderPathways() {
    const body = document.getElementById("pathways");
    body.replaceChildren(...session.pathways.map((p) => {
      const row = document.createElement("tr");
      if (p.id === state.pathway) row.className = "current";
      for (const text of [p.rank, p.appliance_id, p.site_id, p.kind, p.reason]) {
        const cell = document.createElement("td");
        cell.textContent = String(text);
        row.append(cell);
      }
      return row;
    }));
  }

  function onPathway(id) {
    if (!id || id === state.pathway) return;
    state.pathway = id;
    const p = pathwayInfo[id];
    show("pathway", p ? `${p.appliance_id} · ${p.site_id} (${p.kind})` : id);
    renderPathways();
  }
  renderPathways();

  function report() {
    if (!state.started) return; // before the resume seek, currentTime would erase the offset
    const offset = video.currentTime;
    if (!Number.isFinite(offset) || offset === state.lastReported) return;
    state.lastReported = offset;
    fetch(viewUrl, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ offset_s: offset, platform: "web", client_time: Date.now() / 1000 }),
      keepalive: true, // survives the page going away
    }).then((resp) => {
      if (resp.ok) {
        state.reports += 1;
        show("saved", `${offset.toFixed(1)} s`);
      }
    }).catch(() => {});
  }

  if (!window.Hls || !Hls.isSupported()) {
    fail("this browser cannot play HLS through Media Source Extensions");
    return;
  }
  const hls = new Hls({ startPosition: session.resume_offset_s });
  state.hls = hls;
  state.startPosition = session.resume_offset_s;
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
    const level = hls.levels[data.level];
    if (!level) return;
    show("level", `${level.height}p · ${Math.round(level.bitrate / 1000)} kbit/s`);
    onPathway(level.pathwayId);
  });
  hls.on(Hls.Events.STEERING_MANIFEST_LOADED, () => onPathway(hls.pathwayPriority?.[0]));
  hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
    state.fragments += 1;
    onPathway(hls.levels[data.frag.level]?.pathwayId);
  });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    if (!data.fatal) return; // hls.js retries, and moves to another pathway, by itself
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    fail(`playback error: ${data.type} ${data.details}`);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.muted = true; // autoplay without a gesture is only allowed muted
    video.play().catch((err) => fail(`cannot start playback: ${err}`));
  });
  video.addEventListener("playing", () => {
    if (state.started) return;
    state.started = true;
    state.startedAt = video.currentTime;
  });
  video.addEventListener("timeupdate", () => show("position", `${video.currentTime.toFixed(1)} s`));
  video.addEventListener("pause", report);
  video.addEventListener("ended", report);
  document.addEventListener("visibilitychange", () => { if (document.hidden) report(); });
  window.addEventListener("pagehide", report);
  setInterval(report, REPORT_EVERY_MS);
  hls.loadSource(session.multivariant_url);
  hls.attachMedia(video);
})();
