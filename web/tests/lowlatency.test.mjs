// Low-latency HLS in the browser: a broadcast of its own (ffmpeg over RTMP), watched for 60 s in
// Chromium with hls.js lowLatencyMode through the edge. Run by scripts/tests.d/browser.sh, whose
// platform cuts parts (CAUDAL_LL_PART_SECS):
//
//   CAUDAL_BFF_URL, CAUDAL_EDGE_URL   the bff and the edge
//   CAUDAL_RTMP_URL                   rtmp://HOST:PORT/live (this test publishes with ffmpeg)
//
// Checks: the page plays the low-latency playlist in lowLatencyMode, hls.js loads parts and
// makes blocking playlist reloads, all through the edge and all answered 200, no stall over
// 0.5 s and no fatal error in 60 s. Prints the latency measured once a second as wall clock minus
// the program date time of the frame playing (the publisher's clock is this machine's).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ARTIFACTS, BFF, EDGE, RTMP, launch, sleep } from './support.mjs';

const WATCH_SECS = 60;
const PUBLISH_SECS = 100;

let browser;
let publisher;

before(async () => {
  browser = await launch(['CAUDAL_BFF_URL', 'CAUDAL_EDGE_URL', 'CAUDAL_RTMP_URL']);
});

after(async () => {
  if (publisher && publisher.exitCode === null) publisher.kill('SIGKILL');
  if (browser) await browser.close();
});

async function api(method, path, token, body) {
  const r = await fetch(BFF + path, {
    method,
    headers: { ...(token ? { Authorization: 'Bearer ' + token } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

test('a live stream plays 60 s as low-latency HLS through the edge with no stall', async () => {
  const email = `ll-${Date.now().toString(36)}@example.com`;
  const password = 'correct horse battery staple';
  const up = await api('POST', '/v1/auth/signup', null, { email, password, display_name: 'Low Latency' });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const token = up.body.access_token;
  assert.equal((await api('POST', '/v1/me/become-creator', token, {})).status, 200);
  const k = await api('POST', '/v1/studio/stream-keys', token, { label: 'low latency test' });
  assert.equal(k.status, 201, JSON.stringify(k.body));

  // 854x480: a ladder of two rungs (480p, 360p), so rung switches and rendition reports count
  publisher = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=550:sample_rate=48000',
    '-t', String(PUBLISH_SECS), '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '60',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'flv', `${RTMP}/${k.body.key}`], { stdio: 'ignore' });

  let videoId = null;
  let detail = null;
  for (let i = 0; i < 80; i++) {
    const mine = await api('GET', '/v1/studio/videos', token);
    const v = (mine.body.items || []).find((x) => x.status === 'live');
    if (v) {
      videoId = v.id;
      detail = await api('GET', '/v1/videos/' + videoId, token);
      if (detail.body.playback && detail.body.playback.low_latency_url) break;
    }
    await sleep(500);
  }
  assert.ok(videoId, 'the broadcast was not live within 40 s');
  const pb = detail.body.playback;
  assert.ok(pb && pb.low_latency_url, 'the bff gave no low-latency URL: ' + JSON.stringify(pb));
  assert.match(pb.low_latency_url, new RegExp('^' + EDGE.replace(/[.]/g, '\\.') + '/p/[^/]+/live/' + videoId + '/ll\\.m3u8$'));

  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  await context.addInitScript(() => {
    window.stalls = [];
    window.firstPlaying = null;
    let waitingSince = null;
    document.addEventListener('playing', () => {
      window.firstPlaying ??= performance.now();
      if (waitingSince !== null) window.stalls.push(performance.now() - waitingSince);
      waitingSince = null;
    }, true);
    document.addEventListener('waiting', () => {
      if (window.firstPlaying !== null && waitingSince === null) waitingSince = performance.now();
    }, true);
  });
  const page = await context.newPage();
  const media = [];
  page.on('response', (r) => {
    if (/\.(m3u8|m4s|mp4|ts)(\?|$)/.test(r.url())) {
      media.push({ url: r.url(), status: r.status(), cache: r.headers()['x-cache-status'] || null });
    }
  });
  await page.goto(`${BFF}/watch/${videoId}`);
  await page.waitForFunction(() => document.body.dataset.state === 'playing', null, { timeout: 30000, polling: 100 });

  const start = await page.evaluate(() => window.caudalPlayer.video.currentTime);
  const latencies = [];
  const targets = [];
  for (let s = 0; s < WATCH_SECS; s++) {
    await sleep(1000);
    const l = await page.evaluate(() => {
      const { hls } = window.caudalPlayer;
      const d = hls && hls.playingDate;
      return d ? { pdt: Date.now() - d.getTime(), target: hls.targetLatency } : null;
    });
    if (l) {
      latencies.push(l.pdt / 1000);
      targets.push(l.target);
    }
  }
  const p = await page.evaluate(() => {
    const { hls, video, lowLatency } = window.caudalPlayer;
    const level = hls.levels[hls.currentLevel] || hls.levels[0];
    return {
      t: video.currentTime,
      lowLatency,
      mode: hls.lowLatencyMode,
      url: hls.url,
      parts: level && level.details ? level.details.partList?.length ?? 0 : 0,
      stalls: window.stalls,
      errors: window.caudalErrors,
      state: document.body.dataset.state,
    };
  });
  await page.screenshot({ path: ARTIFACTS + 'watch-low-latency.png' });
  await context.close();

  const med = quantile(latencies, 0.5);
  console.log(
    `low-latency HLS through the edge: played ${(p.t - start).toFixed(1)} s in ${WATCH_SECS} s; latency ` +
      `(wall clock - program date time) median ${med.toFixed(2)} s, p95 ${quantile(latencies, 0.95).toFixed(2)} s, ` +
      `max ${Math.max(...latencies).toFixed(2)} s over ${latencies.length} samples; hls.js target ${targets.at(-1)} s; ` +
      `${media.length} media requests; waiting events ${p.stalls.length}, longest ${Math.max(0, ...p.stalls).toFixed(0)} ms`,
  );
  assert.equal(p.state, 'playing', 'the page left the playing state');
  assert.deepEqual(p.errors, [], 'fatal hls.js errors');
  assert.equal(p.lowLatency, true, 'the page did not choose the low-latency playlist');
  assert.equal(p.mode, true, 'hls.js is not in lowLatencyMode');
  assert.match(p.url, /\/ll\.m3u8$/);
  assert.ok(p.parts > 0, 'the playlist hls.js holds lists no parts');
  assert.ok(p.t - start >= WATCH_SECS - 3, `played ${p.t - start} s of ${WATCH_SECS}`);
  assert.deepEqual(p.stalls.filter((ms) => ms > 500), [], 'stalls over 0.5 s');
  assert.ok(latencies.length >= WATCH_SECS - 2, 'hls.js gave no program date time for the frame playing');
  const parts = media.filter((m) => /\/ll_\d+_\d+\.m4s$/.test(m.url));
  const reloads = media.filter((m) => /ll\.m3u8\?.*_HLS_msn=\d+/.test(m.url));
  assert.ok(parts.length >= WATCH_SECS, `${parts.length} parts in ${WATCH_SECS} s`);
  assert.ok(reloads.length >= WATCH_SECS, `${reloads.length} blocking reloads in ${WATCH_SECS} s`);
  for (const m of media) {
    assert.ok(m.url.startsWith(EDGE + '/p/'), `${m.url} is not a signed edge URL`);
    assert.equal(m.status, 200, `${m.url} answered ${m.status}`);
  }
  assert.ok(parts.every((m) => m.cache), 'parts without X-Cache-Status: not through the edge cache');
});
