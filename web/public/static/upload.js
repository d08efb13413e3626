// The creator's upload page (/upload): sign in, pick a file, send it with the tus 1.0
// protocol to /v1/uploads in pieces, then follow the processing until the video is ready.
//
// - Resumable: the upload's URL is kept in localStorage under the file's name, size and date;
//   choosing the same file again (after a reload, a crash, a closed laptop) asks the bff how
//   many bytes it has (HEAD, Upload-Offset) and sends only the rest. A dropped connection is
//   retried the same way, with a growing pause, for as long as the page is open.
// - A piece is at most CHUNK bytes, sent with XMLHttpRequest for its progress events.
// - An expired access token is renewed once (the session cookie, static/app.js), then the
//   request is repeated; a failed renewal shows the sign-in form again.
//
// For tests: body[data-state] is login | not-creator | pick | uploading | processing | ready | failed |
// error, and window.caudalUpload = { videoId, offset, length, progress, retries }.
import { header, api as call, errorMessage } from '/static/app.js';

header();

(function () {
  const CHUNK = 8 << 20;
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);

  const state = { videoId: null, url: null, offset: 0, length: 0, progress: null, retries: 0 };
  window.caudalUpload = state;
  let paused = false;
  let current = null; // the XMLHttpRequest in flight

  function setState(s) {
    document.body.dataset.state = s;
  }

  function show(id, on) {
    $(id).hidden = !on;
  }

  // the browser session is static/app.js's (window.caudal): the access token in memory, the
  // refresh token in an HttpOnly cookie
  function token() {
    const s = window.caudal.current();
    return s ? s.access_token : null;
  }

  function save(key, value) {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch (_) {}
  }

  // --- renewing the token for the XMLHttpRequest pieces ---

  async function refreshed() {
    return !!(await window.caudal.refresh());
  }

  // static/app.js's api() (the token, one renewal on 401); a 401 after it asks to sign in
  async function api(method, path, body, headers) {
    const r = await call(path, { method, body: body === null ? undefined : body, headers: headers || {} });
    if (r.status === 401) signIn('Your session ended: sign in again.');
    return r;
  }

  // --- signing in ---

  function signIn(message) {
    setState('login');
    show('login', true);
    show('pick', false);
    show('progress', false);
    $('login-error').textContent = message || '';
    show('login-error', !!message);
  }

  $('login').addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await window.caudal.signIn($('email').value.trim(), $('password').value);
    if (!r.ok) {
      $('login-error').textContent = r.message;
      show('login-error', true);
      return;
    }
    start();
  });

  async function start() {
    if (!(await window.caudal.session())) return signIn();
    const r = await api('GET', '/v1/me');
    if (!r.ok) return;
    const me = await r.json();
    $('who').textContent = me.display_name || me.email || '';
    show('who-line', true);
    show('login', false);
    if (me.role === 'viewer') {
      // uploads are for creators: the studio turns the account into one
      show('not-creator', true);
      setState('not-creator');
      return;
    }
    show('pick', true);
    setState('pick');
  }

  // --- choosing a file: a new upload, or the one this file was already sent to ---

  function fingerprint(f) {
    return 'caudal.upload:' + [f.name, f.size, f.lastModified].join(':');
  }

  function b64(s) {
    return btoa(unescape(encodeURIComponent(s)));
  }

  async function stored(url) {
    const r = await api('HEAD', url, null, { 'Tus-Resumable': '1.0.0' });
    if (!r.ok) return null;
    return { offset: Number(r.headers.get('Upload-Offset')), length: Number(r.headers.get('Upload-Length')) };
  }

  $('file').addEventListener('change', async () => {
    const f = $('file').files[0];
    show('resume-note', false);
    if (!f) return;
    if (!$('title').value) $('title').value = f.name.replace(/\.[^.]+$/, '');
    let url = null;
    try {
      url = localStorage.getItem(fingerprint(f));
    } catch (_) {}
    if (!url) return;
    const s = await stored(url);
    if (s && s.length === f.size && s.offset < f.size) {
      $('resume-note').textContent = 'This file was partly uploaded (' + percent(s.offset, f.size) +
        '): uploading continues from there.';
      show('resume-note', true);
    }
  });

  $('pick').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = $('file').files[0];
    if (!f) return;
    show('pick', false);
    show('progress', true);
    show('error', false);
    $('progress-title').textContent = $('title').value || f.name;
    try {
      await upload(f);
    } catch (err) {
      fail(err.message || String(err));
    }
  });

  function percent(n, of) {
    return (of ? Math.floor((100 * n) / of) : 100) + ' %';
  }

  function fail(message) {
    setState('error');
    $('error').textContent = message;
    show('error', true);
    show('pause', false);
  }

  async function upload(f) {
    setState('uploading');
    state.length = f.size;
    let url = null;
    try {
      url = localStorage.getItem(fingerprint(f));
    } catch (_) {}
    let s = url ? await stored(url) : null;
    if (!s || s.length !== f.size) {
      const meta = ['filename ' + b64(f.name), 'title ' + b64($('title').value || f.name)];
      if ($('description').value) meta.push('description ' + b64($('description').value));
      if (f.type) meta.push('filetype ' + b64(f.type));
      const r = await api('POST', '/v1/uploads', null, {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': String(f.size),
        'Upload-Metadata': meta.join(','),
      });
      if (r.status === 403) throw new Error('Only creators can upload videos. Become a creator in the studio first.');
      if (r.status === 413) throw new Error('The file is larger than this server accepts.');
      if (r.status !== 201) throw new Error('The upload could not start: ' + (await errorMessage(r)));
      url = new URL(r.headers.get('Location'), location.href).pathname;
      save(fingerprint(f), url);
      s = { offset: 0, length: f.size };
    }
    state.url = url;
    state.videoId = url.split('/').pop();
    state.offset = s.offset;
    show('pause', true);
    show('cancel', true);
    bar('upload', state.offset, f.size);

    let pause = 1000;
    while (state.offset < f.size) {
      if (paused) {
        await new Promise((r) => setTimeout(r, 300));
        continue;
      }
      const end = Math.min(f.size, state.offset + CHUNK);
      try {
        state.offset = await patch(url, f.slice(state.offset, end), state.offset, f.size);
        pause = 1000;
        $('status').textContent = '';
      } catch (err) {
        if (err.fatal) throw err;
        // dropped: ask where the server is, and go on from there after a pause
        state.retries++;
        $('status').textContent = 'Connection lost; retrying in ' + Math.round(pause / 1000) + ' s…';
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 30000);
        const again = await stored(url).catch(() => null);
        if (again) state.offset = again.offset;
      }
      bar('upload', state.offset, f.size);
    }
    save(fingerprint(f), null);
    show('pause', false);
    show('cancel', false);
    follow();
  }

  // one PATCH with XMLHttpRequest (progress events); resolves to the new offset
  function patch(url, blob, offset, total, retried) {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      current = x;
      x.open('PATCH', url);
      const t = token();
      if (t) x.setRequestHeader('Authorization', 'Bearer ' + t);
      x.setRequestHeader('Tus-Resumable', '1.0.0');
      x.setRequestHeader('Upload-Offset', String(offset));
      x.setRequestHeader('Content-Type', 'application/offset+octet-stream');
      x.upload.onprogress = (e) => bar('upload', offset + e.loaded, total);
      x.onload = async () => {
        current = null;
        if (x.status === 204) return resolve(Number(x.getResponseHeader('Upload-Offset')));
        if (x.status === 401 && !retried && (await refreshed())) {
          return patch(url, blob, offset, total, true).then(resolve, reject);
        }
        if (x.status === 409 || x.status >= 500 || x.status === 400) {
          return reject(new Error('HTTP ' + x.status)); // resumable: HEAD and go on
        }
        const err = new Error(x.status === 404 ? 'The upload is gone (expired or cancelled).' : 'Upload refused: HTTP ' + x.status);
        err.fatal = true;
        reject(err);
      };
      x.onerror = () => {
        current = null;
        reject(new Error('network'));
      };
      x.onabort = () => {
        current = null;
        reject(new Error('aborted'));
      };
      x.send(blob);
    });
  }

  function bar(which, n, of) {
    const p = of ? Math.min(100, (100 * n) / of) : 0;
    $(which + '-bar').value = p;
    $(which + '-text').textContent = Math.floor(p) + ' %';
  }

  $('pause').addEventListener('click', () => {
    paused = !paused;
    $('pause').textContent = paused ? 'Resume' : 'Pause';
    if (paused && current) current.abort();
  });

  $('cancel').addEventListener('click', async () => {
    paused = true;
    if (current) current.abort();
    if (state.url) await api('DELETE', state.url, null, { 'Tus-Resumable': '1.0.0' });
    const f = $('file').files[0];
    if (f) save(fingerprint(f), null);
    location.reload();
  });

  // --- processing: the studio's view of the video, until ready or failed ---

  async function follow() {
    setState('processing');
    $('process-text').textContent = 'queued';
    for (;;) {
      const r = await api('GET', '/v1/studio/videos/' + state.videoId);
      if (r.ok) {
        const v = await r.json();
        state.progress = v.progress;
        if (v.progress != null) bar('process', v.progress, 100);
        if (v.status === 'ready') {
          bar('process', 100, 100);
          setState('ready');
          $('status').textContent = 'Ready. It is private until you publish it in the studio.';
          $('watch').href = '/watch/' + state.videoId;
          show('watch', true);
          return;
        }
        if (v.status === 'failed') {
          setState('failed');
          $('process-text').textContent = 'failed';
          $('error').textContent = 'This video could not be processed: ' + (v.failure || 'unknown reason') + '.';
          show('error', true);
          return;
        }
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  start().catch((e) => fail(e.message || String(e)));
})();
