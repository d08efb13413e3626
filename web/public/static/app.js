// What every page shares (an ES module, no build step): the browser session, calls to the
// public /v1 API, the site header with its search box, and the video card.
//
// The session: /v1/auth/web/{signup,login} keep the refresh token in an HttpOnly cookie that
// no script can read, and answer a short-lived access token. That token is kept in this tab's
// sessionStorage until it lapses (so moving between pages does not renew it each time); then
// /v1/auth/web/refresh renews it with the cookie and the CSRF double-submit header. Refreshes
// run one at a time across tabs (Web Locks), since a refresh token used twice ends the
// session everywhere.
//
// For tests: window.caudal (this module) and <body data-signed-in="yes|no">.

const SESSION_KEY = 'caudal.session';
const CSRF_COOKIE = 'caudal_csrf';

// ------------------------------------------------------------------------------------------
// small DOM helpers

export const $ = (id) => document.getElementById(id);

/** el('a', { href: '/', class: 'x' }, 'text', child, ...) */
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export function money(minor, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100);
  } catch (_) {
    return (minor / 100).toFixed(2) + ' ' + currency;
  }
}

export function duration(secs) {
  if (secs == null || !isFinite(secs)) return '';
  const s = Math.round(secs);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h ? h + ':' + String(m).padStart(2, '0') + ':' + r : m + ':' + r;
}

export function ago(iso) {
  if (!iso) return '';
  const secs = (Date.now() - Date.parse(iso)) / 1000;
  if (!isFinite(secs)) return '';
  if (secs < 90) return 'just now';
  if (secs < 5400) return Math.round(secs / 60) + ' min ago';
  if (secs < 129600) return Math.round(secs / 3600) + ' h ago';
  return Math.round(secs / 86400) + ' days ago';
}

export function date(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? '' : d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/** A same-site path to go to after signing in (never another site). */
export function nextPath(fallback) {
  const n = new URLSearchParams(location.search).get('next');
  // parsed as the browser would (it drops tabs and newlines: "/\t/evil.example"), and kept
  // only when it stays on this origin
  if (n && n.startsWith('/') && !/[\x00-\x1f\\]/.test(n)) {
    try {
      const u = new URL(n, location.origin);
      if (u.origin === location.origin) return u.pathname + u.search + u.hash;
    } catch (_) {}
  }
  return fallback || '/';
}

export function signInUrl() {
  return '/signin?next=' + encodeURIComponent(location.pathname + location.search);
}

// ------------------------------------------------------------------------------------------
// the session

function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return null;
}

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (s && s.access_token && s.expires_at && s.user) return s;
  } catch (_) {}
  return null;
}

function saveSession(ws) {
  const s = ws
    ? { access_token: ws.access_token, expires_at: Date.now() + ws.expires_in * 1000, user: ws.user }
    : null;
  try {
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
  } catch (_) {}
  current = s;
  document.body.dataset.signedIn = s ? 'yes' : 'no';
  return s;
}

let current = loadSession();
// tokens the pages of earlier versions kept in localStorage (a refresh token among them)
try {
  localStorage.removeItem('caudal.token');
  localStorage.removeItem('caudal.refresh');
} catch (_) {}
let refreshing = null;

async function refreshOnce() {
  const run = async () => {
    const csrf = cookie(CSRF_COOKIE);
    if (!csrf) return saveSession(null);
    let r;
    try {
      r = await fetch('/v1/auth/web/refresh', {
        method: 'POST',
        headers: { 'X-CSRF-Token': csrf },
        credentials: 'same-origin',
        cache: 'no-store',
        // finishes even if the page is left meanwhile: a rotated cookie that never arrived
        // would make the next refresh reuse the old token, which ends the session everywhere
        keepalive: true,
      });
    } catch (_) {
      return current; // offline: keep what we have
    }
    if (r.ok) return saveSession(await r.json());
    if (r.status === 401 || r.status === 403) return saveSession(null);
    return current;
  };
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request('caudal-session', run);
  }
  return run();
}

/** Renews the access token (one renewal at a time in this tab). */
export function refresh() {
  if (!refreshing) refreshing = refreshOnce().finally(() => (refreshing = null));
  return refreshing;
}

/** The signed-in session ({ user, access_token }) or null, renewed when about to lapse. */
export async function session() {
  if (current && current.expires_at - Date.now() > 30000) return current;
  if (!current && !cookie(CSRF_COOKIE)) return null;
  return refresh();
}

export function user() {
  return current ? current.user : null;
}

async function start(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (!r.ok) return { ok: false, message: await errorMessage(r), status: r.status };
  saveSession(await r.json());
  return { ok: true, user: current.user };
}

export const signIn = (email, password) => start('/v1/auth/web/login', { email, password });
export const signUp = (email, password, display_name) =>
  start('/v1/auth/web/signup', { email, password, display_name });

/** Ends the session; false when the server could not revoke it (the browser is signed out). */
export async function signOut() {
  const csrf = cookie(CSRF_COOKIE);
  let ok = false;
  try {
    const r = await fetch('/v1/auth/web/logout', {
      method: 'POST',
      headers: csrf ? { 'X-CSRF-Token': csrf } : {},
      credentials: 'same-origin',
    });
    ok = r.ok;
  } catch (_) {}
  saveSession(null);
  return ok;
}

/** Keeps the tab's copy of the user in step after a change (display name, role). */
export function updateUser(u) {
  if (current) {
    current.user = u;
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(current));
    } catch (_) {}
  }
}

// ------------------------------------------------------------------------------------------
// the API

/**
 * Calls the /v1 API with the session's token when there is one; a 401 renews the token and
 * tries once more. Answers the Response (never throws on HTTP errors; network failures do).
 */
export async function api(path, opts = {}) {
  const { method = 'GET', body, headers = {}, retried = false } = opts;
  const s = await session();
  const h = Object.assign({}, headers);
  if (s) h.Authorization = 'Bearer ' + s.access_token;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (r.status === 401 && s && !retried) {
    const again = await refresh();
    if (again) return api(path, Object.assign({}, opts, { retried: true }));
  }
  return r;
}

/** GET as JSON; throws an Error with a readable message on failure. */
export async function getJson(path) {
  const r = await api(path);
  if (!r.ok) {
    const e = new Error(await errorMessage(r));
    e.status = r.status;
    throw e;
  }
  return r.json();
}

/** What a page says when a request never got an answer. */
export const OFFLINE = 'Caudal could not be reached. Check your connection and try again.';

/** The `error.code` of an error answer, or ''. */
export async function errorCode(r) {
  try {
    const e = await r.clone().json();
    return (e.error && e.error.code) || '';
  } catch (_) {
    return '';
  }
}

/** Words for a person from an error answer. */
export async function errorMessage(r) {
  let code = '';
  let message = '';
  try {
    const e = await r.clone().json();
    code = (e.error && e.error.code) || '';
    message = (e.error && e.error.message) || '';
  } catch (_) {}
  const wait = Number(r.headers.get('Retry-After'));
  switch (code) {
    case 'invalid_credentials':
      return 'Wrong email or password.';
    case 'email_taken':
      return 'An account with this email already exists. Sign in instead.';
    case 'rate_limited':
      return (
        'Too many attempts. Try again in ' +
        (wait > 0 ? (wait === 1 ? '1 second' : wait + ' seconds') : 'a minute') +
        '.'
      );
    case 'payment_declined':
      return 'Your card was declined. You were not charged.';
    case 'payment_timeout':
    case 'payment_unavailable':
      return 'The payment service did not answer. Try again in a moment: you will not be charged twice.';
    case 'unauthorized':
      return 'Please sign in again.';
    case 'invalid_field':
      return message ? message.charAt(0).toUpperCase() + message.slice(1) + '.' : 'Check the form.';
    case 'unavailable':
      return 'This part of Caudal is unavailable right now. Try again in a moment.';
  }
  if (message) return message.charAt(0).toUpperCase() + message.slice(1);
  return 'Something went wrong (' + (r.status || 'network') + ').';
}

// ------------------------------------------------------------------------------------------
// the local payment provider's test cards (a real provider's script would tokenize the card)

export const TEST_CARDS = {
  '4242424242424242': 'tok_approve',
  '4000000000000002': 'tok_decline',
  '4000000000009987': 'tok_timeout',
};

/** The payment token for a card number, as the local provider's test mode defines them. */
export function tokenize(number) {
  const digits = String(number || '').replace(/\D/g, '');
  return TEST_CARDS[digits] || (digits.length >= 12 ? 'tok_approve' : null);
}

export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

// ------------------------------------------------------------------------------------------
// the video card

export function card(c) {
  const li = el('li', { class: 'card', dataset: { id: c.id, status: c.status } });
  const thumb = el('div', { class: 'thumb' });
  if (c.poster) {
    thumb.append(el('img', { src: c.poster, alt: '', loading: 'lazy' }));
  } else {
    thumb.append(el('span', { class: 'thumb-letter', 'aria-hidden': 'true' }, (c.title || '?').trim().charAt(0).toUpperCase()));
  }
  if (c.status === 'live') thumb.append(el('span', { class: 'badge live' }, 'LIVE'));
  else if (c.duration_secs != null) thumb.append(el('span', { class: 'badge duration' }, duration(c.duration_secs)));
  if (c.access === 'subscribers') thumb.append(el('span', { class: 'badge access' }, 'Subscribers'));
  if (c.access === 'purchase') thumb.append(el('span', { class: 'badge access' }, 'Paid'));
  const a = el('a', { href: '/watch/' + encodeURIComponent(c.id) }, thumb, el('span', { class: 'card-title' }, c.title || 'Untitled'));
  const who = c.creator
    ? el('a', { href: '/creators/' + encodeURIComponent(c.creator.id), class: 'card-creator' }, c.creator.display_name)
    : c.creator_unavailable
      ? 'Creator unavailable'
      : '';
  const when = c.status === 'live' ? 'started ' + ago(c.started_at) : ago(c.started_at);
  li.append(a, el('span', { class: 'card-meta' }, who, who && when ? ' · ' : '', when));
  return li;
}

// ------------------------------------------------------------------------------------------
// the site header: brand, search (results as you type), and the account's links

function searchBox() {
  const form = el('form', { class: 'search', role: 'search', action: '/search', method: 'get' });
  const input = el('input', {
    type: 'search',
    name: 'q',
    id: 'site-search',
    placeholder: 'Search videos',
    autocomplete: 'off',
    'aria-label': 'Search videos',
    'aria-describedby': 'site-search-hint',
    maxlength: '200',
  });
  const hint = el('span', { id: 'site-search-hint', class: 'visually-hidden' }, 'Suggestions appear below as you type; press the down arrow to reach them.');
  const list = el('ul', { id: 'site-search-results', class: 'suggestions', hidden: true, 'aria-label': 'Search suggestions' });
  const status = el('span', { class: 'visually-hidden', 'aria-live': 'polite', id: 'site-search-status' });
  const q0 = new URLSearchParams(location.search).get('q');
  if (location.pathname === '/search' && q0) input.value = q0;
  let timer = null;
  let seq = 0;
  const close = () => {
    seq++; // an answer still on its way is dropped
    list.hidden = true;
    list.textContent = '';
  };
  input.addEventListener('input', () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) return close();
    timer = setTimeout(async () => {
      const mine = ++seq;
      let page;
      try {
        const r = await fetch('/v1/search?limit=6&q=' + encodeURIComponent(q), { cache: 'no-store' });
        if (!r.ok) return;
        page = await r.json();
      } catch (_) {
        return;
      }
      if (mine !== seq) return; // a newer query went out meanwhile
      list.textContent = '';
      for (const c of page.items) {
        list.append(
          el('li', {}, el('a', { href: '/watch/' + encodeURIComponent(c.id), dataset: { id: c.id } },
            el('span', { class: 'sugg-title' }, c.title),
            c.status === 'live' ? el('span', { class: 'badge live' }, 'LIVE') : null,
            c.creator ? el('span', { class: 'sugg-creator' }, c.creator.display_name) : null)),
        );
      }
      if (!page.items.length) list.append(el('li', { class: 'none' }, 'No matches'));
      list.hidden = false;
      status.textContent = page.items.length ? page.items.length + ' suggestions' : 'No matches';
    }, 150);
  });
  form.addEventListener('keydown', (e) => {
    const links = [...list.querySelectorAll('a')];
    const i = links.indexOf(document.activeElement);
    if (e.key === 'ArrowDown' && links.length) {
      e.preventDefault();
      links[Math.min(i + 1, links.length - 1)].focus();
    } else if (e.key === 'ArrowUp' && i >= 0) {
      e.preventDefault();
      if (i === 0) input.focus();
      else links[i - 1].focus();
    } else if (e.key === 'Escape') {
      close();
      input.focus();
    }
  });
  form.addEventListener('focusout', (e) => {
    if (!form.contains(e.relatedTarget)) setTimeout(close, 150);
  });
  form.addEventListener('submit', (e) => {
    if (!input.value.trim()) e.preventDefault();
  });
  form.append(input, hint, el('button', { type: 'submit', class: 'search-go' }, 'Search'), list, status);
  return form;
}

/** Fills <header id="site-header"> and resolves the session (call once per page). */
export async function header() {
  const h = $('site-header');
  if (!h) return session();
  h.className = 'top';
  h.textContent = '';
  const nav = el('nav', { class: 'account', 'aria-label': 'Account' });
  h.append(
    el('a', { class: 'skip', href: '#main' }, 'Skip to content'),
    el('a', { class: 'brand', href: '/' }, 'Caudal'),
    searchBox(),
    nav,
  );
  const s = await session();
  document.body.dataset.signedIn = s ? 'yes' : 'no';
  const here = location.pathname;
  const link = (href, text) => el('a', { href, 'aria-current': here === href ? 'page' : null }, text);
  if (s) {
    nav.append(
      link('/studio', s.user.role === 'viewer' ? 'Create' : 'Studio'),
      link('/account', s.user.display_name),
      el('button', {
        type: 'button',
        id: 'sign-out',
        class: 'link',
        onclick: async () => {
          if (!(await signOut())) {
            alert('You are signed out in this browser, but Caudal could not end the session everywhere right now.');
          }
          location.href = '/';
        },
      }, 'Sign out'),
    );
  } else {
    nav.append(link('/signin', 'Sign in'), el('a', { href: '/signup', class: 'button' }, 'Sign up'));
  }
  return s;
}

window.caudal = { session, refresh, api, signIn, signUp, signOut, user, tokenize, current: () => current };
