// The creator studio (/studio): what is live now and how its input is doing, my videos (edit,
// delete), stream keys, the OBS settings, what new broadcasts start with, and my monthly plan.
// A viewer is first offered to become a creator (POST /v1/me/become-creator).
//
// - Live: GET /v1/studio/videos is read again every 5 s (the same read refreshes the table, so
//   a broadcast that starts, or an upload being processed, shows up without a reload); while
//   one of my videos is `live`, GET /v1/studio/videos/{id}/health is polled every 2 s.
// - Editing sends only the fields that changed, with `expected_version`; a 409
//   `version_conflict` on fields also changed elsewhere reloads the video into the form;
//   one caused by other writes (processing progress, posters) is sent again by itself.
// - A stream key is shown in full only in the answer that created (or rotated) it: that answer
//   fills #new-key and the OBS section once; any later read shows it masked.
// - User text is only ever set with textContent (el()).
//
// For tests: body[data-state] = loading | viewer | studio | error;
// #live[data-live="yes|no"] (with data-video-id while live, data-healthy="yes|no" once
// measured); #health-kbps, #health-fps, #health-keyframe, #health-dropped, #health-drift,
// #health-advice li, #health-summary ("All good" when healthy), #health-error;
// #video-table tbody tr[data-id][data-status][data-version] with button.edit, button.delete;
// #edit-form[data-id] (#edit-title, #edit-description, #edit-tags, #edit-visibility,
// #edit-access, #edit-price, #edit-currency, #edit-save, #edit-error); #videos-more;
// #key-list li[data-id] with button.rotate, button.revoke; #key-label, #create-key,
// #new-key, #new-key-value, #copy-key; #obs-server, #obs-key[data-masked="yes|no"],
// #obs-profiles; #defaults-form (#defaults-status says "Saved"); #plan-form,
// #plan-current[data-price-minor], #subscriber-count[data-count]; every error line is
// .error[role=alert]; and window.caudalStudio (this page's state).

import {
  $, el, api, getJson, errorCode, errorMessage, OFFLINE, header, money, date, updateUser, signInUrl,
} from '/static/app.js';

const LIST_MS = 5000; // the video list (live detection, processing progress)
const HEALTH_MS = 2000; // a live broadcast's input health
const PAGE = 20;

const state = {
  videos: [], // every loaded StudioVideo, newest first
  cursor: null, // next_cursor of the last loaded page
  pages: 1, // how many pages are shown (a refresh reads as many again)
  liveId: null,
  editing: null, // the StudioVideo in the edit form
  shownKeyId: null, // the key shown in full in #new-key
};
window.caudalStudio = state;

// ------------------------------------------------------------------------------------------
// small helpers

function setState(s) {
  document.body.dataset.state = s;
}

/** Sets a text only when it changes (live regions would announce every rewrite). */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** An error line: shown with its text, hidden when the text is empty. */
function showError(id, text) {
  const e = $(id);
  setText(e, text || '');
  e.hidden = !text;
}

/** The words for a failed getJson (a network failure has no status). */
function msg(e) {
  return e && e.status ? e.message : OFFLINE;
}

/** Runs a call that may fail on the network: answers the Response or null (error shown). */
async function call(errorId, path, opts) {
  try {
    return await api(path, opts);
  } catch (_) {
    showError(errorId, OFFLINE);
    return null;
  }
}

const enc = encodeURIComponent;

const VISIBILITY = { public: 'Public', unlisted: 'Unlisted', private: 'Private' };

function accessText(a) {
  if (!a) return '';
  if (a.policy === 'subscribers') return 'Subscribers';
  if (a.policy === 'purchase') return a.price_minor != null && a.currency ? money(a.price_minor, a.currency) : 'Purchase';
  return 'Free';
}

/** Major units for a price input (499 -> "4.99"). */
function major(minor) {
  return minor == null ? '' : (minor / 100).toFixed(2);
}

/**
 * A price typed in major units: { price_minor, currency } or { error, field } naming the
 * input at fault.
 */
function readPrice(priceId, currencyId) {
  const raw = $(priceId).value.trim().replace(',', '.');
  const v = parseFloat(raw);
  if (!raw || !isFinite(v) || v <= 0 || !/^\d*\.?\d*$/.test(raw)) {
    return { error: 'Enter a price above zero, such as 4.99.', field: priceId };
  }
  const price_minor = Math.round(v * 100);
  if (price_minor < 1) return { error: 'Enter a price above zero, such as 4.99.', field: priceId };
  const currency = $(currencyId).value.trim().toUpperCase();
  if (!/^[A-Z]{3}$/.test(currency)) {
    return { error: 'Enter the currency as its 3-letter code, such as EUR or USD.', field: currencyId };
  }
  return { price_minor, currency };
}

/**
 * An access select with its price fields (`{prefix}-access`, `{prefix}-price-fields`,
 * `{prefix}-price`, `{prefix}-currency`): the price shows only for `purchase`.
 */
function accessControls(prefix) {
  const select = $(prefix + '-access');
  const fields = $(prefix + '-price-fields');
  const sync = () => (fields.hidden = select.value !== 'purchase');
  select.addEventListener('change', sync);
  return {
    set(a) {
      select.value = (a && a.policy) || 'free';
      $(prefix + '-price').value = a && a.policy === 'purchase' ? major(a.price_minor) : '';
      $(prefix + '-currency').value = (a && a.currency) || '';
      sync();
    },
    /** The AccessPolicy in the form, or { error, field }. */
    get() {
      if (select.value !== 'purchase') return { policy: select.value };
      const p = readPrice(prefix + '-price', prefix + '-currency');
      return p.error ? p : { policy: 'purchase', price_minor: p.price_minor, currency: p.currency };
    },
  };
}

function sameAccess(a, b) {
  return (
    a.policy === b.policy &&
    (a.policy !== 'purchase' || (a.price_minor === b.price_minor && a.currency === b.currency))
  );
}

/** Copies the text of `source` on click; on failure selects it so Ctrl+C does it. */
function copyButton(button, source, status) {
  button.addEventListener('click', async () => {
    const text = source.textContent;
    try {
      if (!navigator.clipboard || !navigator.clipboard.writeText) throw new Error('no clipboard');
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
      setText(status, '');
      setTimeout(() => (button.textContent = 'Copy'), 3000);
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(source);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      setText(status, 'Press Ctrl+C (⌘C on a Mac) to copy the selected text.');
    }
  });
}

// ------------------------------------------------------------------------------------------
// the start: a viewer is offered to become a creator

async function start() {
  setState('loading');
  let s;
  try {
    s = await header();
  } catch (_) {
    s = null;
  }
  if (!s) {
    location.href = signInUrl();
    return;
  }
  $('studio-loading').hidden = true;
  if (s.user.role === 'viewer') showBecome();
  else showStudio();
}

function showBecome() {
  setState('viewer');
  $('become').hidden = false;
  const button = $('become-creator');
  button.addEventListener('click', async () => {
    button.disabled = true;
    showError('become-error', '');
    const r = await call('become-error', '/v1/me/become-creator', { method: 'POST' });
    button.disabled = false;
    if (!r) return;
    if (!r.ok) return showError('become-error', await errorMessage(r));
    updateUser(await r.json());
    // the header's link said "Create" for a viewer
    const link = document.querySelector('#site-header a[href="/studio"]');
    if (link) link.textContent = 'Studio';
    $('become').hidden = true;
    showStudio();
    // the button went away: the focus goes to the studio's first section
    $('live-title').setAttribute('tabindex', '-1');
    $('live-title').focus();
  });
}

function showStudio() {
  $('studio').hidden = false;
  setState('studio');
  setupVideos();
  setupKeys();
  setupDefaults();
  setupPlan();
  copyButton($('copy-server'), $('obs-server'), $('copy-server-status'));
  copyButton($('copy-obs-key'), $('obs-key'), $('copy-obs-key-status'));
  copyButton($('copy-key'), $('new-key-value'), $('copy-key-status'));
  refreshVideos();
  loadKeys();
  loadObs();
  loadDefaults();
  loadPlan();
}

// ------------------------------------------------------------------------------------------
// my videos: the table, refreshed every 5 s (which also finds a broadcast that went live)

let listTimer = null;
let listSeq = 0;

/** Reads the video list again, as many pages as are shown, and redraws what changed. */
async function refreshVideos() {
  clearTimeout(listTimer);
  const mine = ++listSeq;
  const items = [];
  let cursor = null;
  let pages = 0;
  try {
    do {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (cursor) q.set('cursor', cursor);
      const page = await getJson('/v1/studio/videos?' + q);
      items.push(...page.items);
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < state.pages);
    if (mine !== listSeq) return; // a newer read went out meanwhile
    showError('videos-error', '');
    state.videos = items;
    state.cursor = cursor;
    renderVideos();
    updateLive();
  } catch (e) {
    if (mine !== listSeq) return;
    showError('videos-error', msg(e));
  } finally {
    if (mine === listSeq && !document.hidden) listTimer = setTimeout(refreshVideos, LIST_MS);
  }
}

// a hidden tab stops reading; it reads again when shown
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && document.body.dataset.state === 'studio') refreshVideos();
});

async function moreVideos() {
  const button = $('videos-more');
  if (!state.cursor) return;
  button.disabled = true;
  try {
    const q = new URLSearchParams({ limit: String(PAGE), cursor: state.cursor });
    const page = await getJson('/v1/studio/videos?' + q);
    listSeq++; // a refresh in flight would drop this page
    const known = new Set(state.videos.map((v) => v.id));
    state.videos.push(...page.items.filter((v) => !known.has(v.id)));
    state.cursor = page.next_cursor;
    state.pages++;
    renderVideos();
    // keep the focus in the table for the keyboard
    const first = page.items.length && $('video-rows').querySelector('tr[data-id="' + CSS.escape(page.items[0].id) + '"] a');
    if (first) first.focus();
    clearTimeout(listTimer);
    listTimer = setTimeout(refreshVideos, LIST_MS);
  } catch (e) {
    showError('videos-error', msg(e));
  } finally {
    button.disabled = false;
  }
}

function statusBadge(v) {
  let text = v.status;
  if (v.status === 'processing') {
    text = 'processing' + (v.progress != null ? ' ' + Math.floor(v.progress) + '%' : '');
  }
  const badge = el('span', { class: 'badge status status-' + v.status }, text);
  if (v.status === 'failed' && v.failure) {
    return el('span', { class: 'status-cell' }, badge, ' ', el('span', { class: 'failure' }, v.failure));
  }
  return badge;
}

function videoRow(v) {
  const title = v.title || 'Untitled';
  const poster = v.poster
    ? el('img', { src: v.poster, alt: '', loading: 'lazy', width: '64', height: '36', class: 'poster' })
    : el('span', { class: 'poster poster-none', 'aria-hidden': 'true' }, title.trim().charAt(0).toUpperCase());
  return el(
    'tr',
    { dataset: { id: v.id, status: v.status, version: String(v.version) } },
    el('td', {}, poster),
    el('th', { scope: 'row', class: 'video-title' }, el('a', { href: '/watch/' + enc(v.id) }, title)),
    el('td', {}, statusBadge(v)),
    el('td', {}, VISIBILITY[v.visibility] || v.visibility),
    el('td', {}, accessText(v.access)),
    el('td', {}, date(v.created_at)),
    el(
      'td',
      { class: 'actions' },
      el('button', { type: 'button', class: 'edit', 'aria-label': 'Edit “' + title + '”', onclick: () => openEdit(v.id) }, 'Edit'),
      ' ',
      el('button', { type: 'button', class: 'delete danger', 'aria-label': 'Delete “' + title + '”', onclick: () => deleteVideo(v.id) }, 'Delete'),
    ),
  );
}

/** Redraws the rows whose video changed, keeping the others (and the focus) as they are. */
function renderVideos() {
  const body = $('video-rows');
  const old = new Map([...body.children].map((tr) => [tr.dataset.id, tr]));
  const focused = document.activeElement;
  const focusedRow = focused && body.contains(focused) ? focused.closest('tr') : null;
  const focusedClass = focused && focused.className;
  let prev = null;
  for (const v of state.videos) {
    const sig = JSON.stringify(v);
    let tr = old.get(v.id);
    if (tr && tr._sig !== sig) {
      const fresh = videoRow(v);
      tr.replaceWith(fresh);
      if (tr === focusedRow) {
        const again = fresh.querySelector(focused.tagName === 'A' ? 'a' : 'button.' + (focusedClass || '').split(' ')[0]);
        if (again) again.focus();
      }
      tr = fresh;
    } else if (!tr) {
      tr = videoRow(v);
    }
    tr._sig = sig;
    old.delete(v.id);
    // keep the order of the list
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== tr) body.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of old.values()) tr.remove();
  $('videos-empty').hidden = state.videos.length > 0;
  $('video-table').closest('.table-wrap').hidden = state.videos.length === 0;
  $('videos-more').hidden = !state.cursor;
}

async function deleteVideo(id) {
  const v = state.videos.find((x) => x.id === id);
  if (!v) return;
  if (!confirm('Delete “' + (v.title || 'Untitled') + '”? This cannot be undone.')) return;
  showError('videos-error', '');
  const r = await call('videos-error', '/v1/studio/videos/' + enc(id), { method: 'DELETE' });
  if (!r) return;
  if (!r.ok && r.status !== 404) {
    showError('videos-error', await errorMessage(r));
    return;
  }
  if (state.editing && state.editing.id === id) closeEdit();
  setText($('videos-status'), 'Deleted “' + (v.title || 'Untitled') + '”.');
  // the focus was on the row's button, which goes away
  $('videos-title').setAttribute('tabindex', '-1');
  $('videos-title').focus();
  refreshVideos();
}

// ------------------------------------------------------------------------------------------
// editing a video

let editAccess = null;

function setupVideos() {
  editAccess = accessControls('edit');
  $('videos-more').addEventListener('click', moreVideos);
  $('edit-form').addEventListener('submit', (e) => {
    e.preventDefault();
    saveEdit();
  });
  $('edit-cancel').addEventListener('click', () => closeEdit(true));
  $('edit-form').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeEdit(true);
  });
}

function fillEdit(v) {
  state.editing = v;
  setText($('edit-heading'), 'Edit “' + (v.title || 'Untitled') + '”');
  $('edit-form').dataset.id = v.id;
  $('edit-title').value = v.title;
  $('edit-description').value = v.description || '';
  $('edit-tags').value = (v.tags || []).join(', ');
  $('edit-visibility').value = v.visibility;
  editAccess.set(v.access);
}

function openEdit(id) {
  const v = state.videos.find((x) => x.id === id);
  if (!v) return;
  setText($('videos-status'), '');
  showError('edit-error', '');
  setText($('edit-status'), '');
  fillEdit(v);
  $('edit-form').hidden = false;
  $('edit-title').focus();
  $('edit-form').scrollIntoView({ block: 'nearest' });
}

/** Closes the form; `returnFocus` puts the focus back on the row's Edit button. */
function closeEdit(returnFocus) {
  const id = state.editing && state.editing.id;
  state.editing = null;
  $('edit-form').hidden = true;
  delete $('edit-form').dataset.id;
  if (returnFocus && id) {
    const b = $('video-rows').querySelector('tr[data-id="' + CSS.escape(id) + '"] button.edit');
    if (b) b.focus();
  }
}

function tagsOf(text) {
  const seen = new Set();
  const out = [];
  for (const t of text.split(',')) {
    const tag = t.trim();
    if (tag && !seen.has(tag.toLowerCase())) {
      seen.add(tag.toLowerCase());
      out.push(tag);
    }
  }
  return out;
}

/** Reads the video again (after a version conflict) into the form. */
async function reloadEditing(id) {
  try {
    const v = await getJson('/v1/studio/videos/' + enc(id));
    const i = state.videos.findIndex((x) => x.id === id);
    if (i >= 0) state.videos[i] = v;
    fillEdit(v);
    renderVideos();
  } catch (e) {
    showError('edit-error', msg(e));
  }
}

async function saveEdit() {
  const v = state.editing;
  if (!v) return;
  showError('edit-error', '');
  setText($('edit-status'), '');
  const fail = (text, field) => {
    showError('edit-error', text);
    if (field) $(field).focus();
  };

  const title = $('edit-title').value.trim();
  if (!title) return fail('Enter a title.', 'edit-title');
  const tags = tagsOf($('edit-tags').value);
  if (tags.length > 20) return fail('At most 20 tags.', 'edit-tags');
  if (tags.some((t) => t.length > 40)) return fail('A tag is at most 40 characters.', 'edit-tags');
  const access = editAccess.get();
  if (access.error) return fail(access.error, access.field);

  // only what changed
  const body = { expected_version: v.version };
  if (title !== v.title) body.title = title;
  const description = $('edit-description').value;
  if (description !== (v.description || '')) body.description = description;
  const lower = (a) => a.map((t) => t.toLowerCase()).join('\n');
  if (lower(tags) !== lower(v.tags || [])) body.tags = tags;
  const visibility = $('edit-visibility').value;
  if (visibility !== v.visibility) body.visibility = visibility;
  if (!sameAccess(access, v.access)) body.access = access;
  if (Object.keys(body).length === 1) {
    setText($('edit-status'), 'Nothing changed.');
    return;
  }

  const button = $('edit-save');
  button.disabled = true;
  let r = await call('edit-error', '/v1/studio/videos/' + enc(v.id), { method: 'PATCH', body });
  // The version moves with every write to the video, the worker's progress and poster too.
  // A conflict where none of the fields edited here changed on the server is sent again on
  // the new version; only a real clash goes back to the person.
  for (let tries = 0; r && r.status === 409 && tries < 3; tries++) {
    if ((await errorCode(r)) !== 'version_conflict') break;
    let fresh;
    try {
      fresh = await getJson('/v1/studio/videos/' + enc(v.id));
    } catch (_) {
      break;
    }
    const untouched =
      (!('title' in body) || fresh.title === v.title) &&
      (!('description' in body) || (fresh.description || '') === (v.description || '')) &&
      (!('tags' in body) || lower(fresh.tags || []) === lower(v.tags || [])) &&
      (!('visibility' in body) || fresh.visibility === v.visibility) &&
      (!('access' in body) || sameAccess(fresh.access, v.access));
    if (!untouched) break;
    body.expected_version = fresh.version;
    r = await call('edit-error', '/v1/studio/videos/' + enc(v.id), { method: 'PATCH', body });
  }
  button.disabled = false;
  if (!r) return;
  if (r.ok) {
    const saved = await r.json();
    const i = state.videos.findIndex((x) => x.id === saved.id);
    if (i >= 0) state.videos[i] = saved;
    renderVideos();
    closeEdit(true);
    setText($('videos-status'), 'Saved “' + (saved.title || 'Untitled') + '”.');
    refreshVideos();
    return;
  }
  if (r.status === 409 && (await errorCode(r)) === 'version_conflict') {
    showError('edit-error', 'This video changed meanwhile; reloaded the latest version. Check it and save again.');
    await reloadEditing(v.id);
    return;
  }
  fail(await errorMessage(r));
}

// ------------------------------------------------------------------------------------------
// live now: the input's health every 2 s while a video of mine is live

let healthTimer = null;
let healthSeq = 0;

function updateLive() {
  const live = state.videos.find((v) => v.status === 'live');
  const id = live ? live.id : null;
  const section = $('live');
  if (live) {
    const a = $('live-link');
    a.href = '/watch/' + enc(live.id);
    setText(a, live.title || 'Untitled');
  }
  if (id === state.liveId) return;
  state.liveId = id;
  section.dataset.live = id ? 'yes' : 'no';
  if (id) section.dataset.videoId = id;
  else delete section.dataset.videoId;
  $('live-none').hidden = !!id;
  $('live-now').hidden = !id;
  clearTimeout(healthTimer);
  healthSeq++;
  if (id) {
    resetHealth();
    pollHealth();
  }
}

function resetHealth() {
  for (const k of ['kbps', 'fps', 'keyframe', 'dropped', 'drift']) setText($('health-' + k), '–');
  setText($('health-summary'), 'Measuring the input…');
  $('health-advice').textContent = '';
  $('health-advice').hidden = true;
  showError('health-error', '');
}

const num = (x, digits) => (x == null || !isFinite(x) ? null : Number(x).toFixed(digits));

function renderHealth(h) {
  const kbps = num(h.input_kbps, 0);
  setText($('health-kbps'), kbps == null ? '–' : kbps + ' kbps');
  const fps = num(h.frame_rate, 1);
  const declared = num(h.declared_frame_rate, 0);
  setText(
    $('health-fps'),
    fps == null ? '–' : fps + ' fps' + (declared != null ? ' (declared ' + declared + ')' : ''),
  );
  const kf = num(h.keyframe_interval_secs, 1);
  setText($('health-keyframe'), kf == null ? '–' : kf + ' s');
  setText($('health-dropped'), h.dropped == null ? '–' : String(h.dropped));
  setText($('health-drift'), h.av_drift_ms == null ? '–' : h.av_drift_ms + ' ms');

  const advice = h.advice || [];
  const list = $('health-advice');
  const joined = advice.join('\n');
  if (list.dataset.advice !== joined) {
    list.dataset.advice = joined;
    list.textContent = '';
    for (const a of advice) list.append(el('li', {}, a));
  }
  list.hidden = advice.length === 0;

  let summary;
  if (h.reconnecting) summary = 'OBS disconnected: waiting for it to reconnect.';
  else if (!h.at) summary = 'Measuring the input…';
  else if (advice.length) summary = advice.length === 1 ? '1 thing to fix in OBS:' : advice.length + ' things to fix in OBS:';
  else summary = 'All good';
  setText($('health-summary'), summary);
  $('live').dataset.healthy = !h.reconnecting && h.at && !advice.length ? 'yes' : 'no';
}

async function pollHealth() {
  const id = state.liveId;
  const mine = ++healthSeq;
  if (!id) return;
  try {
    const r = await api('/v1/studio/videos/' + enc(id) + '/health');
    if (mine !== healthSeq) return; // the live video changed meanwhile
    if (r.ok) {
      showError('health-error', '');
      renderHealth(await r.json());
    } else {
      // 409 not_live (it is ending) and 503 (no ingest answered): say so, keep asking
      showError('health-error', await errorMessage(r));
    }
  } catch (_) {
    if (mine !== healthSeq) return;
    showError('health-error', 'Caudal could not be reached. Retrying…');
  }
  if (mine === healthSeq && state.liveId === id) healthTimer = setTimeout(pollHealth, HEALTH_MS);
}

// ------------------------------------------------------------------------------------------
// stream keys

function setupKeys() {
  $('key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    showError('keys-error', '');
    const label = $('key-label').value.trim();
    const button = $('create-key');
    button.disabled = true;
    const r = await call('keys-error', '/v1/studio/stream-keys', {
      method: 'POST',
      body: label ? { label } : {},
    });
    button.disabled = false;
    if (!r) return;
    if (!r.ok) return showError('keys-error', await errorMessage(r));
    $('key-label').value = '';
    showNewKey(await r.json());
    loadKeys();
  });
}

async function loadKeys() {
  let list;
  try {
    list = await getJson('/v1/studio/stream-keys');
  } catch (e) {
    return showError('keys-error', msg(e));
  }
  const ul = $('key-list');
  ul.textContent = '';
  const keys = list.stream_keys.slice().sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  for (const k of keys) {
    const name = k.label || k.masked;
    ul.append(
      el(
        'li',
        { dataset: { id: k.id } },
        el('span', { class: 'key-info' },
          el('code', { class: 'key-masked' }, k.masked),
          k.label ? el('span', { class: 'key-label' }, k.label) : null,
          el('span', { class: 'muted key-created' }, 'created ' + date(k.created_at))),
        el('span', { class: 'buttons' },
          el('button', { type: 'button', class: 'rotate', 'aria-label': 'Rotate ' + name, onclick: () => rotateKey(k) }, 'Rotate'),
          el('button', { type: 'button', class: 'revoke danger', 'aria-label': 'Revoke ' + name, onclick: () => revokeKey(k) }, 'Revoke')),
      ),
    );
  }
  $('keys-empty').hidden = keys.length > 0;
  ul.hidden = keys.length === 0;
}

async function rotateKey(k) {
  const name = k.label ? '“' + k.label + '” (' + k.masked + ')' : k.masked;
  if (!confirm('Rotate ' + name + '? OBS streaming with it stops working until you paste the new key.')) return;
  showError('keys-error', '');
  const r = await call('keys-error', '/v1/studio/stream-keys/' + enc(k.id) + '/rotate', { method: 'POST' });
  if (!r) return;
  if (!r.ok) return showError('keys-error', await errorMessage(r));
  showNewKey(await r.json());
  loadKeys();
}

async function revokeKey(k) {
  const name = k.label ? '“' + k.label + '” (' + k.masked + ')' : k.masked;
  if (!confirm('Revoke ' + name + '? Streaming with it is refused from now on.')) return;
  showError('keys-error', '');
  const r = await call('keys-error', '/v1/studio/stream-keys/' + enc(k.id), { method: 'DELETE' });
  if (!r) return;
  if (!r.ok && r.status !== 404) return showError('keys-error', await errorMessage(r));
  if (state.shownKeyId === k.id) {
    state.shownKeyId = null;
    $('new-key').hidden = true;
    setText($('new-key-value'), '');
  }
  $('keys-title').setAttribute('tabindex', '-1');
  $('keys-title').focus();
  await loadKeys();
  // the OBS section showed the newest key, which may be this one
  if (!state.shownKeyId) loadObs();
}

/** A key just created or rotated: shown in full this once, here and in the OBS section. */
function showNewKey(k) {
  state.shownKeyId = k.id;
  setText($('new-key-value'), k.key);
  $('copy-key').textContent = 'Copy';
  setText($('copy-key-status'), '');
  $('new-key').hidden = false;
  if (k.obs) renderObs(k.obs);
  $('copy-key').focus();
}

// ------------------------------------------------------------------------------------------
// OBS settings

async function loadObs() {
  try {
    renderObs(await getJson('/v1/studio/obs'));
    showError('obs-error', '');
  } catch (e) {
    showError('obs-error', msg(e));
  }
}

function renderObs(o) {
  setText($('obs-server'), o.server_url);
  const key = $('obs-key');
  const full = o.stream_key != null && !o.stream_key_masked;
  key.dataset.masked = full ? 'no' : 'yes';
  if (o.stream_key == null) {
    setText(key, 'none yet');
    setText($('obs-key-note'), 'Create a stream key above.');
  } else {
    setText(key, o.stream_key);
    setText(
      $('obs-key-note'),
      full ? 'Shown in full only now.' : 'Masked: the full key is shown only when it is created or rotated.',
    );
  }
  $('copy-obs-key').hidden = !full;
  $('copy-obs-key').textContent = 'Copy';
  setText($('copy-obs-key-status'), '');

  const rows = $('obs-profile-rows');
  rows.textContent = '';
  for (const p of o.profiles || []) {
    rows.append(
      el('tr', { dataset: { profile: p.name } },
        el('th', { scope: 'row' }, p.name),
        el('td', {}, p.encoder),
        el('td', {}, p.rate_control),
        el('td', {}, p.video_bitrate_kbps + ' kbps'),
        el('td', {}, p.keyframe_interval_secs + ' s'),
        el('td', {}, p.width + '×' + p.height),
        el('td', {}, String(p.fps)),
        el('td', {}, p.audio_codec + ' ' + p.audio_bitrate_kbps + ' kbps, ' + p.audio_sample_rate_hz / 1000 + ' kHz'),
        el('td', {}, p.min_upload_kbps + ' kbps')),
    );
  }
}

// ------------------------------------------------------------------------------------------
// new broadcasts' defaults

let defaultsAccess = null;

function setupDefaults() {
  defaultsAccess = accessControls('defaults');
  $('defaults-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    showError('defaults-error', '');
    setText($('defaults-status'), '');
    const access = defaultsAccess.get();
    if (access.error) {
      showError('defaults-error', access.error);
      $(access.field).focus();
      return;
    }
    const button = $('defaults-save');
    button.disabled = true;
    const r = await call('defaults-error', '/v1/studio/broadcast-defaults', {
      method: 'PUT',
      body: { visibility: $('defaults-visibility').value, access },
    });
    button.disabled = false;
    if (!r) return;
    if (!r.ok) return showError('defaults-error', await errorMessage(r));
    fillDefaults(await r.json());
    setText($('defaults-status'), 'Saved');
  });
  // a change makes "Saved" stale
  $('defaults-form').addEventListener('input', () => setText($('defaults-status'), ''));
}

function fillDefaults(d) {
  $('defaults-visibility').value = d.visibility;
  defaultsAccess.set(d.access);
}

async function loadDefaults() {
  try {
    fillDefaults(await getJson('/v1/studio/broadcast-defaults'));
  } catch (e) {
    showError('defaults-error', msg(e));
  }
}

// ------------------------------------------------------------------------------------------
// the monthly plan and its subscribers

function setupPlan() {
  $('plan-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    showError('plan-error', '');
    setText($('plan-status'), '');
    const p = readPrice('plan-price', 'plan-currency');
    if (p.error) {
      showError('plan-error', p.error);
      $(p.field).focus();
      return;
    }
    const button = $('plan-save');
    button.disabled = true;
    const r = await call('plan-error', '/v1/studio/plan', { method: 'PUT', body: p });
    button.disabled = false;
    if (!r) return;
    if (!r.ok) return showError('plan-error', await errorMessage(r));
    fillPlan(await r.json());
    setText($('plan-status'), 'Saved');
  });
  $('plan-form').addEventListener('input', () => setText($('plan-status'), ''));
}

function fillPlan(plan) {
  const current = $('plan-current');
  if (plan) {
    current.dataset.priceMinor = String(plan.price_minor);
    setText(current, 'Your plan: ' + money(plan.price_minor, plan.currency) + ' a month' + (plan.active ? '.' : ' (not active).'));
    $('plan-price').value = major(plan.price_minor);
    $('plan-currency').value = plan.currency;
  } else {
    delete current.dataset.priceMinor;
    setText(current, 'No plan yet: set a monthly price to offer subscriptions.');
  }
}

async function loadPlan() {
  const count = $('subscriber-count');
  const [plan, subs] = await Promise.allSettled([
    getJson('/v1/studio/plan'),
    getJson('/v1/studio/subscribers'),
  ]);
  if (plan.status === 'fulfilled') fillPlan(plan.value.plan);
  else showError('plan-error', msg(plan.reason));
  if (subs.status === 'fulfilled') {
    const n = subs.value.subscribers.length;
    count.dataset.count = String(n);
    setText(count, n === 0 ? 'No subscribers yet.' : n === 1 ? '1 subscriber.' : n + ' subscribers.');
  } else {
    setText(count, 'The subscriber count could not be loaded.');
  }
}

// ------------------------------------------------------------------------------------------

start().catch((e) => {
  setState('error');
  $('studio-loading').hidden = true;
  showError('page-error', 'The studio could not be shown: ' + (e && e.message ? e.message : 'an error') + '.');
});
