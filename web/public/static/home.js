// The home page: live broadcasts, recent and trending videos from GET /v1/home, each card
// linking to /watch/{id} and its creator's page. Refreshed every 15 s so new broadcasts show
// up.
//
// For tests: body[data-state] = loading | ready | error; .card[data-id][data-status].

import { header, card } from '/static/app.js';

const REFRESH_MS = 15000;
const notice = document.getElementById('notice');

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

header();
load();
