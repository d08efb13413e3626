// The watch page: /watch/{id}. Asks the bff for the video (GET /v1/videos/{id}) and plays
// playback.url (the master playlist through the edge) with hls.js, served by the bff at
// /vendor/hls.min.js. Plain JS, no build step.
//
// playback.url carries a short-lived token in its path (/p/{token}/live/{id}/master.m3u8) that
// the edge checks on every playlist and segment. Before playback.expires_at the page asks the
// bff again (which checks access again) and swaps the token into every later request
// (hls.js xhrSetup), so playback goes on without a restart; access that was taken away ends
// playback within one token lifetime.
//
// A broadcast that cuts parts also has playback.low_latency_url (/p/{token}/live/{id}/ll.m3u8):
// low-latency HLS (parts, blocking playlist reloads) from ingest's live origin through the edge.
// The page plays it with hls.js lowLatencyMode; if it fails, the standard playlist over the same
// segments (playback.url) takes over.
//
// For tests and benchmarks: window.caudalPlayer = { hls, video, lowLatency }, window.caudalErrors
// (the fatal hls.js errors) and <body data-state="loading|playing|offline|notfound|denied|error">.
'use strict';

(function () {
  const POLL_MS = 2000;
  const RETRY_MS = 5000;

  const body = document.body;
  const video = document.getElementById('video');
  const message = document.getElementById('message');
  const titleEl = document.getElementById('title');
  const liveBadge = document.getElementById('live-badge');
  const creatorEl = document.getElementById('creator');
  const descriptionEl = document.getElementById('description');
  const qualityLabel = document.getElementById('quality-label');
  const quality = document.getElementById('quality');

  const scrub = document.getElementById('scrub');
  const scrubFill = document.getElementById('scrub-fill');
  const scrubPreview = document.getElementById('scrub-preview');
  const scrubThumb = document.getElementById('scrub-thumb');
  const scrubTime = document.getElementById('scrub-time');

  window.caudalErrors = [];
  window.caudalPlayer = { hls: null, video };
  // the storyboard in use: { url, cues: [{ start, end, image, x, y, w, h }] }
  window.caudalStoryboard = null;

  // Browsers only autoplay muted video.
  video.muted = true;

  const id = videoIdFromPath(location.pathname);
  let pollTimer = null;
  let hls = null;
  let playingUrl = null;
  let playingLive = false;
  // playing the low-latency playlist: the standard one to fall back to
  let standardUrl = null;
  let broadcastEnded = false;
  let recoveries = 0;
  // the token in the URLs the player asks for, and when to ask the bff for the next one
  let currentToken = null;
  let renewTimer = null;

  function videoIdFromPath(path) {
    const parts = path.split('/').filter(Boolean);
    const i = parts.indexOf('watch');
    if (i < 0 || i + 1 >= parts.length) return null;
    try {
      return decodeURIComponent(parts[i + 1]);
    } catch (_) {
      return null;
    }
  }

  function setState(state, text) {
    body.dataset.state = state;
    if (text == null) {
      message.hidden = true;
      message.textContent = '';
    } else {
      message.hidden = false;
      message.textContent = text;
    }
  }

  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(load, ms);
  }

  async function load() {
    if (!id) {
      setState('notfound', 'This video does not exist.');
      return;
    }
    let resp;
    try {
      const early = window.caudalPrefetch;
      window.caudalPrefetch = null;
      if (early && early.id === encodeURIComponent(id)) {
        // started by watch.html while the scripts loaded
        resp = await early.response;
      } else {
        // with the session's token, renewed when it lapsed (static/app.js)
        resp = await window.caudal.api('/v1/videos/' + encodeURIComponent(id));
      }
    } catch (_) {
      if (!playingUrl) setState('error', 'Cannot reach Caudal. Retrying…');
      schedule(RETRY_MS);
      return;
    }
    if (resp.status === 404) {
      stopPlayer();
      document.title = 'Not found · Caudal';
      titleEl.textContent = '';
      setState('notfound', 'This video does not exist.');
      return;
    }
    if (!resp.ok) {
      if (!playingUrl) setState('error', await errorText(resp));
      schedule(RETRY_MS);
      return;
    }
    let detail;
    try {
      detail = await resp.json();
    } catch (_) {
      if (!playingUrl) setState('error', 'Something went wrong loading this video. Retrying…');
      schedule(RETRY_MS);
      return;
    }
    show(detail);
  }

  async function errorText(resp) {
    try {
      const e = await resp.json();
      if (e && e.error && e.error.code === 'unavailable') return 'Caudal is busy right now. Retrying…';
    } catch (_) {
      /* not JSON */
    }
    return 'Something went wrong loading this video (' + resp.status + '). Retrying…';
  }

  const TOKEN_PATH = /\/p\/([^/]+)\//;

  function tokenOf(url) {
    const m = TOKEN_PATH.exec(url || '');
    return m ? m[1] : null;
  }

  // the video's folder a signed URL is in (live/<id>/): what its token opens
  function mediaFolder(url) {
    const m = /\/p\/[^/]+\/([^/]+\/[^/]+\/)/.exec(url || '');
    return m ? m[1] : null;
  }

  // every request of the player carries the newest token
  function withToken(url) {
    return currentToken ? url.replace(TOKEN_PATH, '/p/' + currentToken + '/') : url;
  }

  // ask the bff again halfway to expiry (at least 2 s from now)
  function scheduleRenewal(expiresAt) {
    clearTimeout(renewTimer);
    const left = Date.parse(expiresAt) - Date.now();
    if (!Number.isFinite(left)) return;
    renewTimer = setTimeout(load, Math.max(2000, left / 2));
  }

  function show(detail) {
    const v = detail.video || {};
    const live = v.status === 'live';
    titleEl.textContent = v.title || 'Untitled';
    document.title = (v.title || 'Untitled') + ' · Caudal';
    liveBadge.hidden = !live;
    if (detail.creator) {
      creatorEl.textContent = '';
      const a = document.createElement('a');
      a.href = '/creators/' + encodeURIComponent(detail.creator.id);
      a.textContent = detail.creator.display_name;
      creatorEl.appendChild(a);
    } else {
      creatorEl.textContent = detail.creator_unavailable ? 'Creator unavailable' : '';
    }
    descriptionEl.textContent = v.description || '';
    // the poster shows before play (and while a broadcast is offline)
    if (v.poster && video.getAttribute('poster') !== v.poster) video.setAttribute('poster', v.poster);

    const access = detail.access || { allowed: false, reason: 'unavailable' };
    // subscribe / cancel / buy / sign in (static/watch-actions.js); a payment reloads
    if (window.caudalActions) window.caudalActions(detail, load);
    if (!access.allowed) {
      stopPlayer();
      setState('denied', deniedText(access, detail.creator));
      body.dataset.reason = access.reason || '';
      // the access service may come back; a purchase may complete in another tab
      if (access.reason === 'unavailable') schedule(RETRY_MS);
      return;
    }
    delete body.dataset.reason;

    const playback = detail.playback;
    if (playingUrl) {
      // already playing: this answer renews the token. A token opens the whole video folder
      // (live and recorded playlists alike), so the player keeps what it plays; the page
      // moves on only when that ends (a broadcast's ENDLIST: the 'ended' event below).
      if (playback && playback.url && mediaFolder(playback.url) === mediaFolder(playingUrl)) {
        if (tokenOf(playback.url) !== currentToken) renewToken(playback.url);
        scheduleRenewal(playback.expires_at);
        return;
      }
      if (!playback || !playback.url) {
        // ended, its recording not written yet: play what is left, ask again soon
        clearTimeout(renewTimer);
        renewTimer = setTimeout(load, POLL_MS);
        return;
      }
    }
    // A broadcast's playback URL is known from its first second, but the master playlist is
    // written once every rung has a segment; the renditions are filled in with it. Asking
    // earlier gets a 404, which the edge keeps for a second.
    const notYet = live && playback && playback.live && !(v.renditions && v.renditions.length);
    if (!playback || !playback.url || notYet) {
      stopPlayer();
      if (v.status === 'failed') {
        setState('error', 'This video could not be processed.');
        return;
      }
      setState('offline', broadcastEnded ? 'The broadcast has ended. The recording will be here shortly.' : offlineText(v.status));
      schedule(POLL_MS);
      return;
    }
    if (broadcastEnded && playback.live) {
      setState('offline', 'The broadcast has ended.');
      schedule(POLL_MS);
      return;
    }
    if (broadcastEnded) {
      // the viewer was watching the broadcast when it ended: offer the recording, do not
      // jump back to its start by surprise
      offerRecording(playback.url);
      return;
    }
    if (playback.live && playback.low_latency_url) {
      play(playback.low_latency_url, true, playback.url);
    } else {
      play(playback.url, playback.live);
    }
    scheduleRenewal(playback.expires_at);
    loadStoryboard(playback.live ? null : playback.storyboard);
  }

  // --- storyboard: thumbnails while scrubbing (a WebVTT track of sprite-sheet cells) ---

  function vttSeconds(t) {
    const p = t.trim().split(':').map(Number);
    return p.length === 3 ? p[0] * 3600 + p[1] * 60 + p[2] : p[0] * 60 + p[1];
  }

  function parseStoryboard(text, base) {
    const cues = [];
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const m = lines[i].match(/^([\d:.]+)\s+-->\s+([\d:.]+)/);
      if (!m || i + 1 >= lines.length) continue;
      const ref = lines[i + 1].trim();
      const hash = ref.indexOf('#xywh=');
      if (hash < 0) continue;
      const [x, y, w, h] = ref.slice(hash + 6).split(',').map(Number);
      cues.push({
        start: vttSeconds(m[1]),
        end: vttSeconds(m[2]),
        image: new URL(ref.slice(0, hash), base).href,
        x, y, w, h,
      });
    }
    return cues;
  }

  async function loadStoryboard(url) {
    if (!url) {
      window.caudalStoryboard = null;
      scrub.hidden = true;
      return;
    }
    if (window.caudalStoryboard && mediaFolder(window.caudalStoryboard.url) === mediaFolder(url)) return;
    try {
      const resp = await fetch(url, { cache: 'no-store' });
      if (!resp.ok) throw new Error('storyboard ' + resp.status);
      const cues = parseStoryboard(await resp.text(), url);
      if (!cues.length) throw new Error('an empty storyboard');
      window.caudalStoryboard = { url, cues };
      scrub.hidden = false;
    } catch (e) {
      // playback goes on without previews
      window.caudalStoryboard = null;
      scrub.hidden = true;
    }
  }

  function cueAt(t) {
    const sb = window.caudalStoryboard;
    if (!sb) return null;
    return sb.cues.find((c) => t >= c.start && t < c.end) || sb.cues[sb.cues.length - 1];
  }

  function clock(t) {
    const s = Math.max(0, Math.floor(t));
    const mm = Math.floor(s / 60);
    const ss = String(s % 60).padStart(2, '0');
    return mm + ':' + ss;
  }

  function scrubTimeAt(clientX) {
    const r = scrub.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    const d = Number.isFinite(video.duration) ? video.duration : 0;
    return { t: f * d, f };
  }

  // shows the storyboard cell for time t above the bar at fraction f
  function preview(t, f) {
    const cue = cueAt(t);
    if (!cue) return;
    const token = currentToken;
    const image = token ? withToken(cue.image) : cue.image;
    scrubThumb.style.width = cue.w + 'px';
    scrubThumb.style.height = cue.h + 'px';
    scrubThumb.style.backgroundImage = 'url("' + image + '")';
    scrubThumb.style.backgroundPosition = -cue.x + 'px ' + -cue.y + 'px';
    scrubThumb.dataset.image = image;
    scrubThumb.dataset.xywh = [cue.x, cue.y, cue.w, cue.h].join(',');
    scrubTime.textContent = clock(t);
    const r = scrub.getBoundingClientRect();
    const left = Math.min(Math.max(0, f * r.width - cue.w / 2), Math.max(0, r.width - cue.w));
    scrubPreview.style.left = left + 'px';
    scrubPreview.hidden = false;
  }
  window.caudalPreview = (t) => {
    const d = Number.isFinite(video.duration) && video.duration > 0 ? video.duration : 1;
    preview(t, Math.min(1, t / d));
    return scrubThumb.dataset.image ? { image: scrubThumb.dataset.image, xywh: scrubThumb.dataset.xywh } : null;
  };

  scrub.addEventListener('mousemove', (e) => {
    const { t, f } = scrubTimeAt(e.clientX);
    preview(t, f);
  });
  scrub.addEventListener('mouseleave', () => {
    scrubPreview.hidden = true;
  });
  scrub.addEventListener('click', (e) => {
    const { t } = scrubTimeAt(e.clientX);
    if (Number.isFinite(t)) video.currentTime = t;
  });
  video.addEventListener('timeupdate', () => {
    if (scrub.hidden || !Number.isFinite(video.duration) || video.duration <= 0) return;
    scrubFill.style.width = (100 * video.currentTime / video.duration).toFixed(2) + '%';
  });

  function renewToken(url) {
    currentToken = tokenOf(url);
    playingUrl = withToken(playingUrl);
    if (!hls && video.src) {
      // Safari's own player: no hook into its requests, so it gets the new URL
      const at = video.currentTime;
      video.src = withToken(video.src);
      if (!playingLive) video.currentTime = at;
      startPlayback();
    }
  }

  function offerRecording(url) {
    setState('offline', 'The broadcast has ended. ');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link';
    button.textContent = 'Watch the recording';
    button.addEventListener('click', () => {
      broadcastEnded = false;
      play(url, false);
    });
    message.appendChild(button);
  }

  function offlineText(status) {
    switch (status) {
      case 'created':
      case 'uploading':
        return 'This video is not uploaded yet.';
      case 'processing':
        return 'This video is still processing.';
      default:
        // live but not playable yet, or ended and the recording is not ready
        return 'This stream is offline.';
    }
  }

  function money(minor, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100);
    } catch (_) {
      return (minor / 100).toFixed(2) + ' ' + currency;
    }
  }

  function deniedText(access, creator) {
    const who = creator ? creator.display_name : 'the creator';
    const offer = access.offer;
    switch (access.reason) {
      case 'login_required':
        return 'Access denied: sign in to watch this video.';
      case 'not_subscribed':
        return (
          'Access denied: this video is for subscribers of ' +
          who +
          (offer && offer.kind === 'subscription'
            ? ' (' + money(offer.price_minor, offer.currency) + ' per ' + offer.interval + ').'
            : '.')
        );
      case 'not_purchased':
        return (
          'Access denied: buy this video to watch it' +
          (offer && offer.kind === 'purchase' ? ' (' + money(offer.price_minor, offer.currency) + ').' : '.')
        );
      case 'unavailable':
        return 'Access denied for now: access cannot be checked at the moment. Retrying…';
      default:
        return 'Access denied (' + (access.reason || 'unknown reason') + ').';
    }
  }

  function stopPlayer() {
    const had = hls !== null || video.hasAttribute('src');
    if (hls) {
      hls.destroy();
      hls = null;
    }
    playingUrl = null;
    currentToken = null;
    standardUrl = null;
    clearTimeout(renewTimer);
    window.caudalPlayer.hls = null;
    window.caudalPlayer.lowLatency = false;
    qualityLabel.hidden = true;
    if (had) {
      video.removeAttribute('src');
      video.load();
    }
  }

  // `fallback`: the standard playlist, when `url` is the low-latency one
  function play(url, live, fallback) {
    stopPlayer();
    playingUrl = url;
    currentToken = tokenOf(url);
    playingLive = !!live;
    standardUrl = fallback || null;
    recoveries = 0;
    setState('loading', 'Loading…');
    clearTimeout(pollTimer);

    if (!window.Hls || !window.Hls.isSupported()) {
      if (video.canPlayType('application/vnd.apple.mpegurl')) {
        // Safari plays HLS itself
        video.src = url;
        startPlayback();
        return;
      }
      setState('error', 'This browser cannot play HLS video.');
      return;
    }
    // hls.js defaults (the benchmarks compare them with nginx-rtmp under the same settings),
    // plus the token swap: xhrSetup may open the request itself, with another URL.
    const lowLatency = !!fallback;
    hls = new window.Hls({
      // not live: from the start, also while an upload's EVENT playlist still grows
      startPosition: live ? -1 : 0,
      // parts and blocking reloads only on the low-latency playlist; hls.js aims at
      // PART-HOLD-BACK behind the live edge, and plays up to 1.5x fast to get back there after
      // a slow start or a stall (by default it never catches up: measured 2.3 s behind, not 1.5)
      lowLatencyMode: lowLatency,
      maxLiveSyncPlaybackRate: lowLatency ? 1.5 : 1,
      xhrSetup(xhr, requestUrl) {
        const signed = withToken(requestUrl);
        if (signed !== requestUrl) xhr.open('GET', signed, true);
      },
    });
    window.caudalPlayer.hls = hls;
    window.caudalPlayer.lowLatency = lowLatency;
    hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
      fillQualityMenu();
      startPlayback();
    });
    hls.on(window.Hls.Events.LEVEL_SWITCHED, () => updateAutoLabel());
    hls.on(window.Hls.Events.ERROR, (_event, data) => onHlsError(data, live));
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  function startPlayback() {
    const p = video.play();
    if (p && p.catch) {
      p.catch(() => {
        // autoplay refused (should not happen muted): the controls let the viewer start
        if (body.dataset.state === 'loading') setState('loading', 'Press play to start.');
      });
    }
  }

  function onHlsError(data, live) {
    if (!data.fatal) return;
    window.caudalErrors.push({
      type: data.type,
      details: data.details,
      url: (data.frag && data.frag.url) || data.url || null,
      at: new Date().toISOString(),
    });
    const E = window.Hls.ErrorTypes;
    const D = window.Hls.ErrorDetails;
    const manifest = [D.MANIFEST_LOAD_ERROR, D.MANIFEST_LOAD_TIMEOUT, D.MANIFEST_PARSING_ERROR].includes(data.details);
    if (!manifest && recoveries < 3 && data.type === E.MEDIA_ERROR) {
      recoveries += 1;
      hls.recoverMediaError();
      return;
    }
    if (!manifest && recoveries < 3 && data.type === E.NETWORK_ERROR) {
      recoveries += 1;
      setTimeout(() => hls && hls.startLoad(), 1000);
      return;
    }
    if (standardUrl) {
      // the live origin failed (ingest restarting, say): the standard playlist, same segments
      const fallback = standardUrl.replace(TOKEN_PATH, '/p/' + currentToken + '/');
      play(fallback, true);
      return;
    }
    stopPlayer();
    if (live) {
      // the broadcast may have just started or ended: ask again
      setState('offline', 'This stream is offline.');
      schedule(POLL_MS);
    } else {
      setState('error', 'This video cannot be played right now.');
      schedule(RETRY_MS);
    }
  }

  // Quality menu: Auto (-1) plus every level, highest first. Choosing one sets
  // hls.currentLevel (switches now, flushing what is buffered); Auto gives ABR back.
  function fillQualityMenu() {
    quality.textContent = '';
    const auto = document.createElement('option');
    auto.value = '-1';
    auto.textContent = 'Auto';
    quality.appendChild(auto);
    const levels = hls.levels.map((l, i) => ({ i, height: l.height, bitrate: l.bitrate }));
    levels.sort((a, b) => b.height - a.height || b.bitrate - a.bitrate);
    const heights = levels.map((l) => l.height);
    for (const l of levels) {
      const o = document.createElement('option');
      o.value = String(l.i);
      let label = l.height ? l.height + 'p' : Math.round(l.bitrate / 1000) + ' kbit/s';
      if (l.height && heights.filter((h) => h === l.height).length > 1) {
        label += ' (' + Math.round(l.bitrate / 1000) + ' kbit/s)';
      }
      o.textContent = label;
      o.dataset.height = String(l.height || 0);
      quality.appendChild(o);
    }
    quality.value = '-1';
    qualityLabel.hidden = levels.length < 1;
  }

  function updateAutoLabel() {
    if (!hls || !quality.options.length) return;
    const level = hls.levels[hls.currentLevel];
    quality.options[0].textContent = hls.autoLevelEnabled && level && level.height ? 'Auto (' + level.height + 'p)' : 'Auto';
  }

  quality.addEventListener('change', () => {
    if (!hls) return;
    const level = Number(quality.value);
    hls.currentLevel = level;
    updateAutoLabel();
  });

  // One view per page load, counted when playback first starts (trending ranks by views).
  let viewCounted = false;
  video.addEventListener('playing', () => {
    recoveries = 0;
    setState('playing', null);
    if (!viewCounted && id) {
      viewCounted = true;
      window.caudal
        .api('/v1/videos/' + encodeURIComponent(id) + '/views', { method: 'POST' })
        .catch(() => {}); // a lost view count never disturbs playback
    }
  });
  video.addEventListener('waiting', () => {
    if (body.dataset.state === 'playing') message.hidden = true;
  });
  video.addEventListener('ended', () => {
    if (!playingLive) return;
    // the live playlist got EXT-X-ENDLIST and everything was played
    stopPlayer();
    broadcastEnded = true;
    liveBadge.hidden = true;
    setState('offline', 'The broadcast has ended.');
    schedule(POLL_MS);
  });

  load();
})();
