// Browser tests of the home and watch pages: headless Chromium (playwright-core driving
// /usr/bin/chromium) against the whole platform. scripts/tests.d/browser.sh starts the platform,
// publishes a 720p30 test stream with ffmpeg over RTMP and runs this file with `node --test`:
//
//   CAUDAL_BFF_URL            the bff (pages and /v1 API), e.g. http://127.0.0.1:8080
//   CAUDAL_EDGE_URL           the edge cache, e.g. http://127.0.0.1:8090
//   CAUDAL_TEST_PUBLISH_SECS  how long the publisher runs (default 40)
//
// The tests run in order and share one browser: the live ones while ffmpeg publishes, the
// recording ones after it stopped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ARTIFACTS, BFF, EDGE, launch, sleep } from './support.mjs';

const PUBLISH_SECS = Number(process.env.CAUDAL_TEST_PUBLISH_SECS || 40);

let browser;
let liveId = null;
let livePage = null;


// playwright-core never downloads a browser; launch() gives each run a fresh profile
// (a new temporary --user-data-dir).
before(async () => {
  browser = await launch(['CAUDAL_BFF_URL', 'CAUDAL_EDGE_URL']);
});

after(async () => {
  if (browser) await browser.close();
});

// A page in its own context, with its console errors and media requests recorded.
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.consoleErrors = [];
  page.media = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => page.consoleErrors.push(String(e)));
  page.on('response', (r) => {
    if (/\.(m3u8|ts|m4s|mp4)(\?|$)/.test(r.url())) {
      page.media.push({ url: r.url(), status: r.status(), cache: r.headers()['x-cache-status'] || null });
    }
  });
  return page;
}

async function api(path) {
  const r = await fetch(BFF + path);
  return { status: r.status, body: await r.json().catch(() => null) };
}

const state = (page) => page.evaluate(() => document.body.dataset.state);
const player = (page) =>
  page.evaluate(() => {
    const { hls, video } = window.caudalPlayer;
    return {
      currentTime: video.currentTime,
      duration: video.duration,
      ended: video.ended,
      paused: video.paused,
      videoHeight: video.videoHeight,
      currentLevel: hls ? hls.currentLevel : null,
      levels: hls ? hls.levels.map((l) => l.height) : [],
      url: hls ? hls.url : null,
      lowLatency: window.caudalPlayer.lowLatency,
      errors: window.caudalErrors,
    };
  });

async function waitForState(page, want, timeout) {
  try {
    await page.waitForFunction((s) => document.body.dataset.state === s, want, { timeout, polling: 100 });
  } catch (e) {
    const msg = await page.evaluate(() => document.getElementById('message')?.textContent).catch(() => '?');
    throw new Error(
      `page state is "${await state(page)}" (message "${msg}"), wanted "${want}" within ${timeout} ms; ` +
        `console errors: ${JSON.stringify(page.consoleErrors)}`,
    );
  }
}

// Waits until the video played `secs` seconds past `from`.
async function waitForProgress(page, from, secs, timeout) {
  try {
    await page.waitForFunction(([f, s]) => window.caudalPlayer.video.currentTime >= f + s, [from, secs], {
      timeout,
      polling: 100,
    });
  } catch (e) {
    const p = await player(page);
    throw new Error(`currentTime went from ${from} to ${p.currentTime}, wanted +${secs} s within ${timeout} ms: ${JSON.stringify(p)}`);
  }
}

test('the home page lists the live stream with a LIVE badge', async () => {
  const page = await openPage();
  const deadline = Date.now() + 30000;
  let card = null;
  await page.goto(BFF + '/');
  while (Date.now() < deadline) {
    card = await page.evaluate(() => {
      const c = document.querySelector('#live .card');
      if (!c) return null;
      return {
        id: c.dataset.id,
        href: c.querySelector('a').getAttribute('href'),
        badge: c.querySelector('.badge.live')?.textContent || null,
        title: c.querySelector('.card-title').textContent,
        meta: c.querySelector('.card-meta').textContent,
      };
    });
    if (card) break;
    await sleep(1000);
    await page.reload();
  }
  assert.ok(card, 'no live stream on the home page within 30 s of publishing');
  assert.equal(card.badge, 'LIVE');
  assert.equal(card.href, '/watch/' + encodeURIComponent(card.id));
  assert.match(card.meta, /Demo Creator/);
  liveId = card.id;
  await page.context().close();
});

test('the live watch page plays through the edge', async () => {
  assert.ok(liveId, 'no live video (see the first test)');
  const page = await openPage();
  livePage = page;
  await page.goto(`${BFF}/watch/${liveId}`);
  await waitForState(page, 'playing', 30000);

  const start = await player(page);
  assert.match(start.url, new RegExp('^' + EDGE.replace(/[.]/g, '\\.') + '/p/[^/]+/live/' + liveId + '/'), `playing ${start.url}, not the signed live playlist through the edge`);
  // the platform cuts parts: the page plays the low-latency playlist in lowLatencyMode
  assert.match(start.url, /\/ll\.m3u8$/);
  assert.equal(start.lowLatency, true, 'not in low-latency mode');
  await waitForProgress(page, start.currentTime, 5, 20000);

  const p = await player(page);
  assert.deepEqual(p.errors, [], 'fatal hls.js errors');
  assert.ok(p.videoHeight > 0, 'no decoded picture');
  const info = await page.evaluate(() => ({
    title: document.getElementById('title').textContent,
    creator: document.getElementById('creator').textContent,
    liveBadge: !document.getElementById('live-badge').hidden,
    message: document.getElementById('message').hidden ? null : document.getElementById('message').textContent,
  }));
  assert.ok(info.title.length > 0, 'no title');
  assert.equal(info.creator, 'Demo Creator');
  assert.ok(info.liveBadge, 'no LIVE badge');
  assert.equal(info.message, null, 'a message covers the playing video');

  // every playlist, part and segment came from the edge; hls.js asked for parts and made
  // blocking playlist reloads (RFC 8216bis _HLS_msn/_HLS_part)
  const parts = page.media.filter((m) => /\/ll_\d+_\d+\.m4s$/.test(m.url));
  assert.ok(parts.length >= 4, `only ${parts.length} parts fetched`);
  assert.ok(page.media.some((m) => /ll\.m3u8\?.*_HLS_msn=\d+/.test(m.url)), 'no blocking playlist reload');
  for (const m of page.media) {
    assert.ok(m.url.startsWith(EDGE + '/'), `${m.url} not fetched through the edge`);
    assert.equal(m.status, 200, `${m.url} answered ${m.status}`);
  }
  assert.ok(page.media.some((m) => m.cache), 'no X-Cache-Status from the edge');

  await page.screenshot({ path: ARTIFACTS + 'watch-live.png' });
});

test('the quality menu lists Auto and every rung, and a forced rung keeps playing', async () => {
  assert.ok(livePage, 'the live page did not open (see the previous test)');
  const page = livePage;
  const levels = (await player(page)).levels;
  assert.deepEqual([...levels].sort((a, b) => b - a), [720, 480, 360], 'hls.js levels of a 720p source');

  const options = await page.$$eval('#quality option', (os) => os.map((o) => ({ value: o.value, label: o.textContent })));
  assert.ok(await page.isVisible('#quality'), 'the quality menu is hidden');
  assert.match(options[0].label, /^Auto/);
  assert.equal(options[0].value, '-1');
  assert.deepEqual(
    options.slice(1).map((o) => o.label),
    ['720p', '480p', '360p'],
  );
  for (const o of options.slice(1)) {
    assert.equal(levels[Number(o.value)] + 'p', o.label, 'an option points at the wrong level');
  }

  // force the rung the player is not on (360p unless that is the one playing)
  const before = await player(page);
  const playingHeight = before.videoHeight;
  const target = options.find((o) => o.label === (playingHeight === 360 ? '720p' : '360p'));
  await page.selectOption('#quality', target.value);
  const from = (await player(page)).currentTime;
  await waitForProgress(page, from, 2, 20000);
  await page.waitForFunction((h) => window.caudalPlayer.video.videoHeight === h, levels[Number(target.value)], {
    timeout: 10000,
    polling: 100,
  });
  const after = await player(page);
  assert.equal(after.currentLevel, Number(target.value), 'hls.currentLevel is not the chosen level');
  assert.equal(after.videoHeight, levels[Number(target.value)], 'the picture is not the chosen rung');
  assert.deepEqual(after.errors, [], 'fatal hls.js errors after the switch');
  assert.equal(await state(page), 'playing');

  // back to Auto; the page stays open to see the end of the broadcast (last test)
  await page.selectOption('#quality', '-1');
  assert.equal(await page.evaluate(() => window.caudalPlayer.hls.autoLevelEnabled), true);
});

// Page logic for answers the running platform cannot easily produce on demand: the bff
// answer for a made-up id is replaced (page.route); the page, hls.js and the edge are real.
test('the page says "offline" until there is something to play, then plays', async () => {
  assert.ok(liveId, 'no live video (see the first test)');
  const real = await api('/v1/videos/' + liveId);
  assert.equal(real.status, 200);
  const page = await openPage();
  let calls = 0;
  await page.route('**/v1/videos/stub-offline', (route) => {
    calls += 1;
    const body = structuredClone(real.body);
    if (calls === 1) body.playback = null; // live, nothing playable yet
    if (calls === 2) body.video.renditions = []; // the URL is known, the master not written yet
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });
  });
  await page.goto(`${BFF}/watch/stub-offline`);
  await waitForState(page, 'offline', 10000);
  assert.match(await page.textContent('#message'), /This stream is offline/);
  await waitForState(page, 'playing', 30000);
  assert.ok(calls >= 3, `polled ${calls} times`);
  assert.deepEqual((await player(page)).errors, [], 'the master playlist was asked for before it was written');
  await page.context().close();
});

test('an ended broadcast without its recording yet is offline', async () => {
  const page = await openPage();
  await page.route('**/v1/videos/stub-ended', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({
        video: { id: 'stub-ended', title: 'Over', description: '', tags: [], kind: 'live', status: 'ended', duration_secs: null, started_at: null, ended_at: null, renditions: [], counters: { views: 0, likes: 0 } },
        creator: null,
        creator_unavailable: true,
        access: { allowed: true, reason: 'free', offer: null },
        playback: null,
      }),
    }),
  );
  await page.goto(`${BFF}/watch/stub-ended`);
  await waitForState(page, 'offline', 10000);
  assert.match(await page.textContent('#message'), /This stream is offline/);
  assert.equal(await page.isVisible('#live-badge'), false);
  await page.context().close();
});

test('a viewer without access is told why', async () => {
  const page = await openPage();
  await page.route('**/v1/videos/stub-denied', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({
        video: { id: 'stub-denied', title: 'Members only', description: '', tags: [], kind: 'upload', status: 'ready', duration_secs: 60, started_at: null, ended_at: null, renditions: [], counters: { views: 0, likes: 0 } },
        creator: { id: 'c1', display_name: 'Ada', avatar_url: null },
        creator_unavailable: false,
        access: { allowed: false, reason: 'not_subscribed', offer: { kind: 'subscription', creator_id: 'c1', price_minor: 499, currency: 'EUR', interval: 'month' } },
        playback: null,
      }),
    }),
  );
  await page.goto(`${BFF}/watch/stub-denied`);
  await waitForState(page, 'denied', 10000);
  const text = await page.textContent('#message');
  assert.match(text, /Access denied/);
  assert.match(text, /subscribers of Ada/);
  assert.match(text, /4[.,]99/);
  assert.equal(await page.evaluate(() => window.caudalPlayer.hls), null, 'a player was started');
  await page.context().close();
});

test('a nonexistent video says it does not exist', async () => {
  const r = await api('/v1/videos/0000000000000000nonexistent00000');
  assert.equal(r.status, 404);
  assert.equal(r.body?.error?.code, 'not_found');
  const page = await openPage();
  await page.goto(`${BFF}/watch/0000000000000000nonexistent00000`);
  await waitForState(page, 'notfound', 10000);
  assert.match(await page.textContent('#message'), /This video does not exist/);
  await page.context().close();
});

test('after the broadcast the recording plays from its start to its end', async () => {
  assert.ok(liveId, 'no live video (see the first test)');
  // the publisher stops after PUBLISH_SECS; the recording is written right after
  const deadline = Date.now() + (PUBLISH_SECS + 60) * 1000;
  let detail = null;
  while (Date.now() < deadline) {
    const r = await api('/v1/videos/' + liveId);
    if (r.status === 200 && r.body.video.status === 'recorded' && r.body.playback) {
      detail = r.body;
      break;
    }
    await sleep(1000);
  }
  assert.ok(detail, `the video did not become recorded with a playback URL within ${PUBLISH_SECS + 60} s`);
  assert.equal(detail.playback.live, false);
  assert.ok(detail.playback.url.startsWith(EDGE + '/'), `${detail.playback.url} is not through the edge`);

  // listed among the recent videos, without a LIVE badge
  const home = await api('/v1/home');
  assert.ok(!home.body.live.some((c) => c.id === liveId), 'still listed as live');
  assert.ok(home.body.recent.some((c) => c.id === liveId), 'not listed among recent videos');

  const page = await openPage();
  // the time of the first frame shown, taken in the page when it starts playing
  await page.addInitScript(() => {
    window.firstPlaying = null;
    document.addEventListener('playing', (e) => (window.firstPlaying ??= e.target.currentTime), true);
  });
  await page.goto(`${BFF}/watch/${liveId}`);
  await waitForState(page, 'playing', 30000);
  const start = await player(page);
  assert.match(start.url, /vod\.m3u8$/);
  assert.equal(await page.isVisible('#live-badge'), false, 'LIVE badge on a recording');
  const first = await page.evaluate(() => window.firstPlaying);
  assert.ok(first < 1, `playback started at ${first} s, not at the start`);
  assert.ok(Math.abs(start.duration - PUBLISH_SECS) < 4, `duration ${start.duration}, published ${PUBLISH_SECS} s`);

  // plays from the start for 2 s, then the last seconds to the end
  await waitForProgress(page, 0, 2, 15000);
  await page.evaluate(() => {
    const v = window.caudalPlayer.video;
    window.endedSeen = false;
    v.addEventListener('ended', () => (window.endedSeen = true));
    v.currentTime = v.duration - 4;
  });
  try {
    await page.waitForFunction(
      () => {
        const v = window.caudalPlayer.video;
        return window.endedSeen || v.currentTime >= v.duration - 1;
      },
      null,
      { timeout: 20000, polling: 100 },
    );
  } catch (e) {
    throw new Error(`the recording did not play to its end: ${JSON.stringify(await player(page))}`);
  }
  const end = await player(page);
  assert.deepEqual(end.errors, [], 'fatal hls.js errors');
  await page.context().close();
});

test('a viewer who watched the broadcast to its end is offered the recording', async () => {
  assert.ok(livePage, 'the live page did not stay open (see the earlier tests)');
  const page = livePage;
  livePage = null;
  // the live playlist got EXT-X-ENDLIST: the player plays to its end, then the page asks for
  // the recording
  await waitForState(page, 'offline', 30000);
  assert.match(await page.textContent('#message'), /The broadcast has ended/);
  assert.equal(await page.isVisible('#live-badge'), false, 'LIVE badge after the end');
  await page.waitForSelector('#message button', { timeout: 15000 });
  assert.match(await page.textContent('#message button'), /Watch the recording/);
  await page.click('#message button');
  await waitForState(page, 'playing', 30000);
  const p = await player(page);
  assert.match(p.url, /vod\.m3u8$/);
  assert.ok(p.currentTime < 3, `the recording started at ${p.currentTime} s`);
  await page.context().close();
});
