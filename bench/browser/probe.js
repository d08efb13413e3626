// Injected into the benchmark pages before any of their scripts (page.addInitScript).
//
// Time to first frame: performance.now() (ms since navigation start) at the first moment the
// video's currentTime is above 0, checked on every animation frame and media event.
//
// Latency: the publisher burns its wall clock (ms since the epoch, modulo 2^32) into the top
// 48 rows of every frame as 32 black/white blocks (row 1: the bits, row 2: their complement;
// see run.sh). For each frame the browser presents (requestVideoFrameCallback), the bar is
// read back through a canvas and latency = when the frame is shown - when it was stamped.
// Publisher and browser run on the same machine, so both read the same clock.
(() => {
  'use strict';
  const probe = {
    ttff: null, // ms from navigation start to currentTime > 0
    playingEvent: null, // ms from navigation start to the first 'playing' event
    samples: [], // { latency, hlsLatency, pdtLatency, height, stampedAt }
    unreadable: 0, // frames whose bar did not decode cleanly
    sampling: false,
    stalls: 0, // 'waiting' events while sampling
    stalledSecs: 0, // time spent in them
  };
  let stalledSince = null;
  window.__probe = probe;

  const video = () => document.querySelector('video');
  const hls = () => window.hls || (window.caudalPlayer && window.caudalPlayer.hls) || null;

  function checkFirstFrame() {
    const v = video();
    if (probe.ttff === null && v && v.currentTime > 0) probe.ttff = performance.now();
  }
  function tick() {
    checkFirstFrame();
    if (probe.ttff === null) requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
  document.addEventListener(
    'waiting',
    () => {
      if (probe.sampling && stalledSince === null) {
        probe.stalls += 1;
        stalledSince = performance.now();
      }
    },
    true,
  );
  document.addEventListener(
    'playing',
    () => {
      if (stalledSince !== null) {
        probe.stalledSecs += (performance.now() - stalledSince) / 1000;
        stalledSince = null;
      }
    },
    true,
  );
  for (const ev of ['timeupdate', 'playing', 'progress']) {
    document.addEventListener(
      ev,
      () => {
        if (ev === 'playing' && probe.playingEvent === null) probe.playingEvent = performance.now();
        checkFirstFrame();
      },
      true,
    );
  }

  // 32 bits, 10 px each, rows at y 0-5 (bits) and 6-11 (complement)
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 12;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });

  function readStamp(v) {
    const vw = v.videoWidth;
    const vh = v.videoHeight;
    if (!vw || !vh) return null;
    // the bar is 48 of 720 rows: scale with the rung's height
    ctx.drawImage(v, 0, 0, vw, (vh * 48) / 720, 0, 0, 320, 12);
    const px = ctx.getImageData(0, 0, 320, 12).data;
    const luma = (x, y) => {
      const i = (y * 320 + x) * 4;
      return 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    };
    let value = 0;
    for (let bit = 0; bit < 32; bit++) {
      const x = bit * 10 + 5;
      const a = luma(x, 2);
      const b = luma(x, 9);
      if (Math.abs(a - b) < 60) return null;
      if (a > b) value += 2 ** bit;
    }
    return value;
  }

  function onFrame(now, meta) {
    const v = video();
    if (!probe.sampling || !v) return;
    const shownAt = performance.timeOrigin + (meta.expectedDisplayTime || now);
    const low = readStamp(v);
    if (low === null) {
      probe.unreadable += 1;
    } else {
      // undo the modulo with the nearest value not after the display time
      let stamp = Math.floor(shownAt / 2 ** 32) * 2 ** 32 + low;
      if (stamp > shownAt + 1000) stamp -= 2 ** 32;
      const h = hls();
      const pd = h && h.playingDate ? h.playingDate.getTime() : null;
      probe.samples.push({
        latency: (shownAt - stamp) / 1000,
        hlsLatency: h && isFinite(h.latency) ? h.latency : null,
        pdtLatency: pd ? (shownAt - pd) / 1000 : null,
        height: v.videoHeight,
        stampedAt: stamp,
      });
    }
    v.requestVideoFrameCallback(onFrame);
  }

  probe.start = () => {
    probe.sampling = true;
    probe.samples = [];
    probe.unreadable = 0;
    probe.stalls = 0;
    probe.stalledSecs = 0;
    video().requestVideoFrameCallback(onFrame);
  };
  probe.stop = () => {
    probe.sampling = false;
    if (stalledSince !== null) probe.stalledSecs += (performance.now() - stalledSince) / 1000;
    return { samples: probe.samples, unreadable: probe.unreadable, stalls: probe.stalls, stalledSecs: probe.stalledSecs };
  };
})();
