// The home page: live broadcasts and recent videos from GET /v1/home, each linking to
// /watch/{id}. Refreshed every 15 s so new broadcasts show up. Plain JS, no build step.
'use strict';

(function () {
  const REFRESH_MS = 15000;
  const notice = document.getElementById('notice');

  function duration(secs) {
    if (secs == null || !isFinite(secs)) return '';
    const s = Math.round(secs);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = String(s % 60).padStart(2, '0');
    return h ? h + ':' + String(m).padStart(2, '0') + ':' + r : m + ':' + r;
  }

  function ago(iso) {
    if (!iso) return '';
    const secs = (Date.now() - Date.parse(iso)) / 1000;
    if (!isFinite(secs)) return '';
    if (secs < 90) return 'just now';
    if (secs < 5400) return Math.round(secs / 60) + ' min ago';
    if (secs < 129600) return Math.round(secs / 3600) + ' h ago';
    return Math.round(secs / 86400) + ' days ago';
  }

  function card(c) {
    const li = document.createElement('li');
    li.className = 'card';
    li.dataset.id = c.id;
    li.dataset.status = c.status;
    const a = document.createElement('a');
    a.href = '/watch/' + encodeURIComponent(c.id);

    const thumb = document.createElement('div');
    thumb.className = 'thumb';
    if (c.poster) {
      const img = document.createElement('img');
      img.src = c.poster;
      img.alt = '';
      img.loading = 'lazy';
      thumb.appendChild(img);
    }
    if (c.status === 'live') {
      const badge = document.createElement('span');
      badge.className = 'badge live';
      badge.textContent = 'LIVE';
      thumb.appendChild(badge);
    } else if (c.duration_secs != null) {
      const d = document.createElement('span');
      d.className = 'badge duration';
      d.textContent = duration(c.duration_secs);
      thumb.appendChild(d);
    }
    a.appendChild(thumb);

    const title = document.createElement('span');
    title.className = 'card-title';
    title.textContent = c.title || 'Untitled';
    a.appendChild(title);

    const meta = document.createElement('span');
    meta.className = 'card-meta';
    const who = c.creator ? c.creator.display_name : c.creator_unavailable ? 'Creator unavailable' : '';
    const when = c.status === 'live' ? 'started ' + ago(c.started_at) : ago(c.started_at);
    meta.textContent = [who, when].filter(Boolean).join(' · ');
    a.appendChild(meta);

    li.appendChild(a);
    return li;
  }

  function fill(name, cards, unavailable) {
    const section = document.getElementById(name);
    const list = section.querySelector('.cards');
    const empty = section.querySelector('.empty');
    list.textContent = '';
    for (const c of cards || []) list.appendChild(card(c));
    if (unavailable) {
      empty.textContent = 'This section cannot be loaded right now.';
      empty.hidden = false;
    } else {
      empty.hidden = (cards || []).length > 0;
    }
    if (name === 'trending') section.hidden = !(cards && cards.length);
  }

  async function load() {
    try {
      const resp = await fetch('/v1/home', { cache: 'no-store' });
      if (!resp.ok) throw new Error('status ' + resp.status);
      const home = await resp.json();
      const missing = home.unavailable || [];
      fill('live', home.live, missing.includes('live'));
      fill('recent', home.recent, missing.includes('recent'));
      fill('trending', home.trending, missing.includes('trending'));
      notice.hidden = true;
      document.body.dataset.state = 'ready';
    } catch (_) {
      notice.textContent = 'Cannot load the home page right now. Retrying…';
      notice.hidden = false;
      document.body.dataset.state = 'error';
    }
    setTimeout(load, REFRESH_MS);
  }

  load();
})();
