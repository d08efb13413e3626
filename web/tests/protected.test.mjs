// Protected playback in the browser (issue: paid and private video is served only to viewers
// allowed to watch it). Run by scripts/tests.d/browser.sh after watch.test.mjs, against the
// whole platform with short playback tokens (CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS, 20 s there):
//
//   CAUDAL_BFF_URL, CAUDAL_EDGE_URL   the bff and the edge
//   CAUDAL_RTMP_URL                   rtmp://HOST:PORT/live (this test publishes with ffmpeg)
//   CAUDAL_TEST_TOKEN_TTL_SECS        the token lifetime the platform was started with
//
// A creator makes new broadcasts subscribers-only and goes live. Nobody without a
// subscription gets a URL from the bff or a byte from the edge. A subscriber watches 90 s of
// the live stream and 90 s of its recording in Chromium through the edge: the page renews its
// token several times on the way and the video never stalls. The creator then changes the
// policy: within one token lifetime the page says access is denied and the edge refuses the
// URLs the page was using.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ARTIFACTS, BFF, EDGE, RTMP, api, launch, sleep, unique } from './support.mjs';

const TTL = Number(process.env.CAUDAL_TEST_TOKEN_TTL_SECS || 20);
const WATCH_SECS = 90;
const PUBLISH_SECS = 115;

let browser;
let publisher;
let creator; // { token, id }
let subscriber; // { token, id }
let videoId;

async function signup(name) {
  const r = await api('POST', '/v1/auth/signup', null, {
    email: unique(name) + '@example.com',
    password: 'correct horse battery staple',
    display_name: name,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { token: r.body.access_token, id: r.body.user.id, email: r.body.user.email, password: 'correct horse battery staple' };
}

async function edgeStatus(url) {
  const r = await fetch(url);
  await r.arrayBuffer();
  return r.status;
}

before(async () => {
  browser = await launch(['CAUDAL_BFF_URL', 'CAUDAL_EDGE_URL', 'CAUDAL_RTMP_URL']);
});

after(async () => {
  if (publisher && publisher.exitCode === null) publisher.kill('SIGKILL');
  if (browser) await browser.close();
});

// A page signed in as `user` (a browser session: the context gets the session cookies as the
// sign-in page would), recording stalls and every media request.
async function watchPage(user) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const login = await context.request.post(BFF + '/v1/auth/web/login', { data: { email: user.email, password: user.password } });
  assert.equal(login.status(), 200, await login.text());
  await context.addInitScript(() => {
    window.stalls = [];
    window.firstPlaying = null;
    let waitingSince = null;
    document.addEventListener('playing', (e) => {
      window.firstPlaying ??= performance.now();
      if (waitingSince !== null) window.stalls.push(performance.now() - waitingSince);
      waitingSince = null;
    }, true);
    document.addEventListener('waiting', () => {
      if (window.firstPlaying !== null && waitingSince === null) waitingSince = performance.now();
    }, true);
  });
  const page = await context.newPage();
  page.media = [];
  page.renewals = []; // the token of every playback URL the page got from the bff
  page.on('response', (r) => {
    if (/\.(m3u8|ts|m4s|mp4)(\?|$)/.test(r.url())) page.media.push({ url: r.url(), status: r.status() });
    if (/\/v1\/videos\/[^/?]+$/.test(r.url())) {
      r.json()
        .then((b) => b && b.playback && page.renewals.push(tokenOf(b.playback.url)))
        .catch(() => {});
    }
  });
  return page;
}

const tokenOf = (url) => (/\/p\/([^/]+)\//.exec(url) || [])[1] || null;

// Plays `secs` seconds on `page` and checks: progress, no stall over 0.5 s, no fatal hls.js
// error, every media answer 200 and through the edge, and the token renewed along the way
// (new tokens from the bff; for live, also used by the player, which asks for media all the
// time: hls.js fetches a recording of this size in its first seconds).
async function playFor(page, secs, what, live) {
  await page.waitForFunction(() => document.body.dataset.state === 'playing', null, { timeout: 30000, polling: 100 });
  const start = await page.evaluate(() => window.caudalPlayer.video.currentTime);
  const began = Date.now();
  await sleep(secs * 1000);
  const p = await page.evaluate(() => ({
    t: window.caudalPlayer.video.currentTime,
    stalls: window.stalls,
    errors: window.caudalErrors,
    state: document.body.dataset.state,
  }));
  const wall = (Date.now() - began) / 1000;
  const tokens = new Set(page.media.map((m) => tokenOf(m.url)));
  const renewed = new Set(page.renewals);
  console.log(`${what}: played ${(p.t - start).toFixed(1)} s in ${wall.toFixed(1)} s; ` +
    `${renewed.size} tokens from the bff, ${page.media.length} media requests with ${tokens.size} of them; ` +
    `waiting events ${p.stalls.length}, longest ${Math.max(0, ...p.stalls).toFixed(0)} ms`);
  assert.equal(p.state, 'playing', `${what}: the page left the playing state`);
  assert.deepEqual(p.errors, [], `${what}: fatal hls.js errors`);
  assert.ok(p.t - start >= secs - 3, `${what}: played ${p.t - start} s of ${secs}`);
  const long = p.stalls.filter((ms) => ms > 500);
  assert.deepEqual(long, [], `${what}: stalls over 0.5 s`);
  for (const m of page.media) {
    assert.ok(m.url.startsWith(EDGE + '/p/'), `${m.url} is not a signed edge URL`);
    assert.equal(m.status, 200, `${m.url} answered ${m.status}`);
  }
  const expected = Math.floor(secs / TTL);
  assert.ok(renewed.size >= expected, `${what}: ${renewed.size} tokens from the bff in ${secs} s with ${TTL} s tokens: not renewed`);
  for (const t of tokens) assert.ok(renewed.has(t), `${what}: media fetched with a token the bff never gave`);
  if (live) {
    assert.ok(tokens.size >= expected, `${what}: the player used ${tokens.size} tokens in ${secs} s with ${TTL} s tokens`);
  }
}

test('a subscribers-only broadcast gives nothing to viewers without a subscription', async () => {
  creator = await signup('Creator');
  assert.equal((await api('POST', '/v1/me/become-creator', creator.token, {})).status, 200);
  assert.equal((await api('PUT', '/v1/studio/plan', creator.token, { price_minor: 500, currency: 'EUR' })).status, 200);
  const d = await api('PUT', '/v1/studio/broadcast-defaults', creator.token, { visibility: 'public', access: { policy: 'subscribers' } });
  assert.equal(d.status, 200, JSON.stringify(d.body));
  const k = await api('POST', '/v1/studio/stream-keys', creator.token, { label: 'browser test' });
  assert.equal(k.status, 201);

  // 640x360 keeps the ladder to one rung: the machine has two cores for everything
  publisher = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=48000',
    '-t', String(PUBLISH_SECS), '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '60',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'flv', `${RTMP}/${k.body.key}`], { stdio: 'ignore' });

  let video = null;
  for (let i = 0; i < 60 && !video; i++) {
    const mine = await api('GET', '/v1/studio/videos', creator.token);
    video = (mine.body.items || []).find((v) => v.status === 'live') || null;
    if (!video) await sleep(500);
  }
  assert.ok(video, 'the broadcast was not live within 30 s');
  videoId = video.id;
  assert.equal(video.access.policy, 'subscribers', 'the broadcast did not start subscribers-only');
  // playable: the owner gets a URL once the master playlist is stored
  let own = null;
  for (let i = 0; i < 60; i++) {
    own = await api('GET', '/v1/videos/' + videoId, creator.token);
    if (own.body.playback) break;
    await sleep(500);
  }
  assert.ok(own.body.playback, 'the broadcast was not playable within 30 s');
  assert.equal(own.body.access.reason, 'owner');

  const anon = await api('GET', '/v1/videos/' + videoId);
  assert.equal(anon.body.access.allowed, false);
  assert.equal(anon.body.playback, null);
  const other = await signup('NotSubscribed');
  const denied = await api('GET', '/v1/videos/' + videoId, other.token);
  assert.equal(denied.body.access.reason, 'not_subscribed');
  assert.equal(denied.body.playback, null);
  // the object names are no secret: the edge still refuses them without a token
  for (const key of ['master.m3u8', '360p/index.m3u8', '360p/seg_00001.m4s', 'll.m3u8', '360p/ll.m3u8', '360p/ll_00001_0.m4s']) {
    assert.equal(await edgeStatus(`${EDGE}/live/${videoId}/${key}`), 403, key);
    assert.equal(await edgeStatus(`${EDGE}/p/k1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/live/${videoId}/${key}`), 403, key);
  }

  // a non-subscriber's browser gets the denial, and no player
  const page = await watchPage(other);
  await page.goto(`${BFF}/watch/${videoId}`);
  await page.waitForFunction(() => document.body.dataset.state === 'denied', null, { timeout: 15000 });
  assert.match(await page.textContent('#message'), /subscribers of Creator/);
  assert.equal(page.media.length, 0, 'the denied page fetched media');
  await page.context().close();
});

test('a subscriber watches 90 s of the live stream with the token renewed, no stall', async () => {
  assert.ok(videoId, 'no broadcast (see the first test)');
  subscriber = await signup('Subscriber');
  const s = await api('POST', '/v1/subscriptions', subscriber.token, { creator_id: creator.id });
  assert.equal(s.status, 201, JSON.stringify(s.body));
  const d = await api('GET', '/v1/videos/' + videoId, subscriber.token);
  assert.equal(d.body.access.reason, 'subscribed');
  assert.ok(d.body.playback.url.startsWith(`${EDGE}/p/`), d.body.playback.url);

  const page = await watchPage(subscriber);
  await page.goto(`${BFF}/watch/${videoId}`);
  await playFor(page, WATCH_SECS, 'live', true);
  await page.screenshot({ path: ARTIFACTS + 'watch-protected-live.png' });
  await page.context().close();
});

test('the recording plays 90 s with the token renewed; a changed policy stops it within one token lifetime', async () => {
  assert.ok(subscriber, 'no subscriber (see the previous test)');
  let d = null;
  const deadline = Date.now() + (PUBLISH_SECS + 60) * 1000;
  while (Date.now() < deadline) {
    d = await api('GET', '/v1/videos/' + videoId, subscriber.token);
    if (d.body.video.status === 'recorded' && d.body.playback) break;
    await sleep(1000);
  }
  assert.equal(d.body.video.status, 'recorded', 'no recording');
  assert.equal(d.body.playback.live, false);

  const page = await watchPage(subscriber);
  await page.goto(`${BFF}/watch/${videoId}`);
  await playFor(page, WATCH_SECS, 'recording', false);
  const lastUrl = page.media[page.media.length - 1].url;

  // the creator sells the video one by one from now on: the subscriber's page gets no new
  // token, and the one it has runs out
  const mine = await api('GET', '/v1/studio/videos', creator.token);
  const v = mine.body.items.find((x) => x.id === videoId);
  const e = await api('PATCH', '/v1/studio/videos/' + videoId, creator.token, {
    expected_version: v.version,
    access: { policy: 'purchase', price_minor: 300, currency: 'EUR' },
  });
  assert.equal(e.status, 200, JSON.stringify(e.body));
  const changed = Date.now();
  const now = await api('GET', '/v1/videos/' + videoId, subscriber.token);
  assert.equal(now.body.access.allowed, false);
  assert.equal(now.body.playback, null, 'a new URL after the change');
  await page.waitForFunction(() => document.body.dataset.state === 'denied', null, { timeout: (TTL + 5) * 1000, polling: 200 });
  console.log(`playback stopped ${((Date.now() - changed) / 1000).toFixed(1)} s after the policy changed (tokens last ${TTL} s)`);
  const wait = Math.max(0, changed + (TTL + 2) * 1000 - Date.now());
  await sleep(wait);
  assert.equal(await edgeStatus(lastUrl), 403, `${lastUrl} still plays one token lifetime after access ended`);
  await page.screenshot({ path: ARTIFACTS + 'watch-protected-denied.png' });
  await page.context().close();
});
