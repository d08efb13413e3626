// Search results (/search?q=...): GET /v1/search a page at a time, with "More results" while
// there is a next_cursor. The header's box shows suggestions as you type on every page.
//
// For tests: body[data-state] = loading | results | empty | error.

import { $, header, card } from '/static/app.js';

const q = (new URLSearchParams(location.search).get('q') || '').trim();
let cursor = null;

async function load() {
  const u = new URLSearchParams({ q, limit: '24' });
  if (cursor) u.set('cursor', cursor);
  let r;
  try {
    r = await fetch('/v1/search?' + u, { cache: 'no-store' });
  } catch (_) {
    r = null;
  }
  if (!r || !r.ok) {
    $('search-error').textContent = 'Search is unavailable right now. Try again in a moment.';
    $('search-error').hidden = false;
    document.body.dataset.state = 'error';
    return;
  }
  const page = await r.json();
  for (const c of page.items) $('results').append(card(c));
  cursor = page.next_cursor;
  $('more').hidden = !cursor;
  const any = $('results').children.length > 0;
  $('search-empty').hidden = any;
  document.body.dataset.state = any ? 'results' : 'empty';
}

$('more').addEventListener('click', async () => {
  const b = $('more');
  if (b.disabled) return; // a page is on its way
  b.disabled = true;
  try {
    await load();
  } finally {
    b.disabled = false;
  }
});
header();
if (q) {
  $('search-title').textContent = 'Results for “' + q + '”';
  document.title = q + ' · Search · Caudal';
  load();
} else {
  $('search-title').textContent = 'Search';
  document.body.dataset.state = 'empty';
  $('search-empty').textContent = 'Type words of a title or a tag in the search box above.';
  $('search-empty').hidden = false;
}
