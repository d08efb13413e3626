// An upload from start to play, against the whole platform (scripts/tests.d/browser.sh):
// a creator sends a 30 s 720p file over tus in pieces, the connection drops halfway, the
// upload resumes from the offset the bff kept, the transcode worker makes the ladder, a poster
// and a storyboard, and headless Chromium plays it through the edge with the poster shown and
// storyboard thumbnails under the scrub bar.
//
//   CAUDAL_BFF_URL, CAUDAL_EDGE_URL   as for the other browser tests
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { ARTIFACTS, BFF, EDGE, api, launch, sleep, unique } from './support.mjs';

const SECS = 30;
const STORYBOARD_INTERVAL = 5; // the worker's default


let browser;
let dir;
let creator;
let file;
let videoId;

const TUS = { 'Tus-Resumable': '1.0.0' };
const b64 = (s) => Buffer.from(s).toString('base64');

// PATCH at offset 0 announcing the whole file, send `part` of it, then cut the connection
function patchAndDrop(uploadPath, token, total, part) {
  return new Promise((resolve) => {
    const url = new URL(BFF + uploadPath);
    const req = http.request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'PATCH',
      headers: {
        Authorization: 'Bearer ' + token, ...TUS, 'Upload-Offset': '0',
        'Content-Type': 'application/offset+octet-stream', 'Content-Length': String(total),
      },
    });
    req.on('error', () => resolve());
    req.write(part, () => setTimeout(() => { req.destroy(); resolve(); }, 500));
  });
}

async function headOffset(uploadPath, token) {
  const r = await fetch(BFF + uploadPath, { method: 'HEAD', headers: { Authorization: 'Bearer ' + token, ...TUS } });
  return { status: r.status, offset: Number(r.headers.get('upload-offset')), length: Number(r.headers.get('upload-length')) };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'caudal-upload-'));
  file = path.join(dir, 'trip.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=30:duration=${SECS}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${SECS}`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-g', '60', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', file]);
  const email = unique('uploader') + '@example.com';
  const password = 'correct horse battery staple';
  const s = await api('POST', '/v1/auth/signup', null, { email, password, display_name: 'Uploader' });
  assert.equal(s.status, 201, JSON.stringify(s.body));
  creator = { token: s.body.access_token, email, password };
  const c = await api('POST', '/v1/me/become-creator', creator.token, {});
  assert.ok(c.status < 300, JSON.stringify(c.body));
  browser = await launch(['CAUDAL_BFF_URL', 'CAUDAL_EDGE_URL']);
});

after(async () => {
  if (browser) await browser.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('a 30 s 720p upload resumes after a dropped connection and becomes ready with a poster and a storyboard', { timeout: 240_000 }, async () => {
  const data = new Uint8Array(fs.readFileSync(file));
  const created = await api('POST', '/v1/uploads', creator.token, null, {
    ...TUS, 'Upload-Length': String(data.length),
    'Upload-Metadata': `title ${b64('Trip to the coast')},filename ${b64('trip.mp4')},filetype ${b64('video/mp4')}`,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const uploadPath = new URL(created.headers.get('location'), BFF).pathname;
  videoId = uploadPath.split('/').pop();

  await patchAndDrop(uploadPath, creator.token, data.length, data.subarray(0, Math.floor(data.length / 2)));
  let head;
  for (let i = 0; i < 50; i++) {
    head = await headOffset(uploadPath, creator.token);
    if (head.offset > 0) break;
    await sleep(200);
  }
  assert.equal(head.status, 200);
  assert.equal(head.length, data.length);
  assert.ok(head.offset > 0 && head.offset <= data.length / 2, `kept ${head.offset} of ${data.length / 2}`);

  // the rest in 1 MiB PATCHes, each from the offset the server answered
  let offset = head.offset;
  while (offset < data.length) {
    const piece = data.subarray(offset, Math.min(data.length, offset + (1 << 20)));
    const r = await api('PATCH', uploadPath, creator.token, piece, {
      ...TUS, 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream',
    });
    assert.equal(r.status, 204, JSON.stringify(r.body));
    offset = Number(r.headers.get('upload-offset'));
  }
  assert.equal(offset, data.length);

  // processing, then ready: the studio shows the progress
  const seen = new Set();
  let v;
  const t0 = Date.now();
  for (;;) {
    v = (await api('GET', `/v1/studio/videos/${videoId}`, creator.token)).body;
    seen.add(v.status);
    if (v.status === 'ready' || v.status === 'failed') break;
    assert.ok(Date.now() - t0 < 180_000, `still ${v.status} (${v.progress} %) after 180 s`);
    await sleep(500);
  }
  assert.equal(v.status, 'ready', JSON.stringify(v));
  assert.equal(v.progress, 100);
  assert.ok(Math.abs(v.duration_secs - SECS) <= 1, `duration ${v.duration_secs}`);
  assert.ok(v.poster && v.poster.startsWith(EDGE) && v.poster.endsWith('/poster.jpg'), v.poster);

  // the poster is public at the edge (cards show it), a JPEG
  const poster = await fetch(v.poster);
  assert.equal(poster.status, 200);
  assert.equal(poster.headers.get('content-type'), 'image/jpeg');
  assert.ok((await poster.arrayBuffer()).byteLength > 1000);

  // the owner's watch page: poster before play, then playback through the edge
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const login = await context.request.post(BFF + '/v1/auth/web/login', { data: { email: creator.email, password: creator.password } });
  assert.equal(login.status(), 200, await login.text());
  const page = await context.newPage();
  const media = [];
  page.on('response', (r) => {
    if (r.url().startsWith(EDGE)) media.push({ url: r.url(), status: r.status() });
  });
  await page.goto(`${BFF}/watch/${videoId}`);
  await page.waitForFunction(() => document.body.dataset.state === 'playing', null, { timeout: 60_000 });
  assert.equal(await page.getAttribute('#video', 'poster'), v.poster);
  await page.waitForFunction(() => window.caudalPlayer.video.currentTime > 2, null, { timeout: 30_000 });
  // browser.sh packages uploads as CMAF: hls.js fetched the init section and .m4s segments
  assert.ok(media.some((m) => m.url.includes(`/vod/${videoId}/`) && /\/init_[0-9a-f]{16}\.mp4$/.test(m.url) && m.status === 200),
    'the init section came through the edge: ' + JSON.stringify(media.map((m) => m.url.split('/').pop())));
  assert.ok(media.some((m) => m.url.includes(`/vod/${videoId}/`) && m.url.endsWith('.m4s') && m.status === 200),
    'CMAF segments came through the edge');

  // the storyboard: one cue per 5 s, thumbnails from sprite sheets through the edge
  await page.waitForFunction(() => window.caudalStoryboard && window.caudalStoryboard.cues.length > 0, null, { timeout: 10_000 });
  const cues = await page.evaluate(() => window.caudalStoryboard.cues.length);
  assert.equal(cues, Math.ceil(v.duration_secs / STORYBOARD_INTERVAL));
  assert.equal(await page.isVisible('#scrub'), true);
  const box = await page.locator('#scrub').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  await page.waitForSelector('#scrub-preview', { state: 'visible' });
  const thumb = await page.evaluate(() => ({
    image: document.getElementById('scrub-thumb').dataset.image,
    xywh: document.getElementById('scrub-thumb').dataset.xywh,
    time: document.getElementById('scrub-time').textContent,
  }));
  assert.ok(thumb.image.startsWith(EDGE + '/p/') && /storyboard-0\.jpg$/.test(thumb.image), JSON.stringify(thumb));
  assert.equal(thumb.xywh.split(',').length, 4);
  assert.match(thumb.time, /^0:1[45]$/);
  const sprite = await fetch(thumb.image);
  assert.equal(sprite.status, 200);
  assert.equal(sprite.headers.get('content-type'), 'image/jpeg');
  await page.screenshot({ path: path.join(ARTIFACTS, 'watch-upload.png') });

  // published, it is on the home page, its card showing the poster
  const pub = await api('PATCH', `/v1/studio/videos/${videoId}`, creator.token, { expected_version: v.version, visibility: 'public' });
  assert.equal(pub.status, 200, JSON.stringify(pub.body));
  const home = await context.newPage();
  await home.goto(`${BFF}/`);
  const img = home.locator(`#recent li.card[data-id="${videoId}"] img`);
  await img.waitFor({ timeout: 20_000 });
  assert.equal(await img.getAttribute('src'), v.poster);
  await home.waitForFunction((id) => {
    const i = document.querySelector(`#recent li.card[data-id="${id}"] img`);
    return i && i.complete && i.naturalWidth > 0;
  }, videoId, { timeout: 10_000 });
  await context.close();
});

test('the upload page: sign in, pick a file, a dropped PATCH is retried, progress until ready', { timeout: 180_000 }, async () => {
  const small = path.join(dir, 'walk.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30:duration=8',
    '-f', 'lavfi', '-i', 'sine=frequency=550:duration=8', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '60',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', small]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // the first PATCH is cut off: the page must HEAD and send again
  let patches = 0;
  await page.route('**/v1/uploads/*', (route) => {
    if (route.request().method() === 'PATCH' && patches++ === 0) return route.abort('connectionreset');
    return route.continue();
  });
  await page.goto(`${BFF}/upload`);
  await page.waitForFunction(() => document.body.dataset.state === 'login');
  await page.fill('#email', creator.email);
  await page.fill('#password', 'wrong password');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login-error', { state: 'visible' });
  assert.match(await page.textContent('#login-error'), /Wrong email or password/);
  await page.fill('#password', creator.password);
  await page.click('#login button[type=submit]');
  await page.waitForFunction(() => document.body.dataset.state === 'pick');
  await page.setInputFiles('#file', small);
  assert.equal(await page.inputValue('#title'), 'walk');
  await page.fill('#title', 'A walk');
  await page.click('#start');
  await page.waitForFunction(() => ['ready', 'failed', 'error'].includes(document.body.dataset.state), null, { timeout: 150_000 });
  const result = await page.evaluate(() => ({ state: document.body.dataset.state, up: window.caudalUpload,
    error: document.getElementById('error').textContent }));
  assert.equal(result.state, 'ready', JSON.stringify(result));
  assert.ok(result.up.retries >= 1, 'the dropped PATCH was retried');
  assert.equal(result.up.offset, fs.statSync(small).size);
  assert.equal(await page.evaluate(() => document.getElementById('upload-bar').value), 100);
  assert.equal(await page.textContent('#process-text'), '100 %');
  const href = await page.getAttribute('#watch', 'href');
  assert.equal(href, `/watch/${result.up.videoId}`);
  const v = (await api('GET', `/v1/studio/videos/${result.up.videoId}`, creator.token)).body;
  assert.equal(v.title, 'A walk');
  assert.equal(v.status, 'ready');
  assert.deepEqual(errors, []);
  await page.screenshot({ path: path.join(ARTIFACTS, 'upload-page.png') });
  await context.close();
});
