// Browser benchmarks, driven by run.sh (which starts the platform and nginx-rtmp):
//   (a) glass-to-glass latency of the same stamped 720p30 stream through Caudal as low-latency
//       HLS (parts and blocking reloads from ingest's live origin, through the edge), through
//       Caudal as standard HLS (the stored playlists, through the edge) and through nginx-rtmp
//       (hls on, 2 s fragments), played by the same page with the same hls.js defaults;
//   (b) time to first frame (navigation start -> currentTime > 0) of a live and a recorded
//       Caudal video through the edge, and of nginx-rtmp's live stream.
// Prints figures; asserts nothing.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = process.env.CAUDAL_ROOT || path.resolve(HERE, '../..');
const require = createRequire(path.join(ROOT, 'web', 'package.json'));
const { chromium } = require('playwright-core');
const HLS_VERSION = require('hls.js/package.json').version;

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set: run bench/browser/run.sh`);
  return v;
};
const RTMP_PORT = env('CAUDAL_RTMP_PORT');
const DEMO_KEY = env('DEMO_KEY');
const INGEST = `http://127.0.0.1:${env('CAUDAL_INGEST_HTTP_PORT')}`;
const EDGE = `http://127.0.0.1:${env('CAUDAL_EDGE_PORT')}`;
const BFF = process.env.BENCH_BFF_URL || ''; // the playback URLs (with their tokens) come from bff
const NGINX_RTMP = env('BENCH_NGINX_RTMP'); // host:port
const NGINX_HLS = env('BENCH_NGINX_HLS_URL'); // http://host:port/hls
const PAGE = env('BENCH_PAGE_URL'); // http://host:port/player.html
const SECS = Number(env('BENCH_SECS', '30'));
const RUNS = Number(env('BENCH_RUNS', '5'));
const JOINS = Number(env('BENCH_JOINS', '3')); // viewers per server sharing the SECS of samples
const WARMUP_SEGMENTS = 6; // both playlists hold 6 x 2 s: a viewer joins a running stream
const PROBE = fs.readFileSync(path.join(HERE, 'probe.js'), 'utf8');

const log = (...a) => console.error('[bench]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The publisher: testsrc2 720p30 + a 440 Hz tone, x264 ultrafast/zerolatency, a keyframe every
// 2 s, and the wall clock burnt into the top 48 rows when each frame enters the encoder.
// setpts=RTCTIME (the wall clock in microseconds) on a 32x2 copy, geq draws bit X of the
// millisecond count in row 0 and its complement in row 1, the original timestamps are put
// back and the bar is scaled up (40x24 px per bit) and laid over the picture.
const BAR =
  "[0:v]split[m][b];[b]scale=32:2,settb=1/1000,setpts=RTCTIME/1000," +
  "geq=lum='if(lt(Y\\,1)\\,16+219*mod(floor(floor(T*1000+0.5)/pow(2\\,X))\\,2)\\," +
  "235-219*mod(floor(floor(T*1000+0.5)/pow(2\\,X))\\,2))':cb=128:cr=128," +
  'settb=1/30,setpts=N,scale=1280:48:flags=neighbor[bar];[m][bar]overlay=0:0[v]';

const publishers = new Set();
process.on('exit', () => publishers.forEach((p) => p.exitCode === null && p.kill('SIGKILL')));

function publish(urls, secs) {
  // one encode, sent to every server (tee), so both get the very same stamped frames
  const out = urls.map((u) => `[f=flv:onfail=ignore]${u}`).join('|');
  const args = [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(secs), '-filter_complex', BAR, '-map', '[v]', '-map', '1:a',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '60', '-keyint_min', '60',
    '-sc_threshold', '0', '-b:v', '2500k', '-maxrate', '3000k', '-bufsize', '3000k', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '128k', '-flags', '+global_header', '-f', 'tee', out,
  ];
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  publishers.add(child);
  child.stderr.on('data', (d) => process.stderr.write('[ffmpeg] ' + d));
  child.done = new Promise((r) => child.on('exit', r));
  child.stop = async () => {
    if (child.exitCode === null) child.kill('SIGINT'); // ffmpeg closes the stream cleanly
    await Promise.race([child.done, sleep(10000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  return child;
}

async function getText(url) {
  try {
    const r = await fetch(url, { cache: 'no-store' });
    return r.ok ? await r.text() : null;
  } catch (_) {
    return null;
  }
}

async function until(what, secs, fn) {
  const deadline = Date.now() + secs * 1000;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(250);
  }
  throw new Error(`${what}: not within ${secs} s`);
}

function describe(name, playlist) {
  const target = (playlist.match(/#EXT-X-TARGETDURATION:(\d+)/) || [])[1];
  const durs = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].map((m) => Number(m[1]).toFixed(2));
  log(`${name}: playlist target duration ${target} s, segments ${durs.join(' ')}, program date time ${/PROGRAM-DATE-TIME/.test(playlist) ? 'yes' : 'no'}`);
}

const segments = (playlist) => (playlist ? (playlist.match(/#EXTINF/g) || []).length : 0);

function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, median: at(0.5), p95: at(0.95), min: s[0], max: s[s.length - 1] };
}

let browser;
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript({ content: PROBE });
  return context.newPage();
}

// (a) one viewer: joins `src` on the bench page and samples every presented frame for `secs`
async function view(name, src, secs, lowLatency = false) {
  const page = await newPage();
  await page.goto(PAGE + (lowLatency ? '?ll=1&src=' : '?src=') + encodeURIComponent(src));
  await page.waitForFunction(() => window.__probe.ttff !== null, null, { timeout: 30000 });
  await sleep(3000); // past the start-up
  await page.evaluate(() => window.__probe.start());
  await sleep(secs * 1000);
  const r = await page.evaluate(() => window.__probe.stop());
  r.errors = await page.evaluate(() => window.benchErrors);
  await page.context().close();
  if (!r.samples.length) throw new Error(`${name}: no readable frame (${r.unreadable} unreadable)`);
  const med = stats(r.samples.map((x) => x.latency)).median;
  log(`${name}: viewer sampled ${r.samples.length} frames, median latency ${med.toFixed(2)} s, ${r.stalls} stalls`);
  return r;
}

function summarize(name, src, views) {
  const samples = views.flatMap((v) => v.samples);
  const pick = (k) => samples.map((s) => s[k]).filter((v) => v !== null && isFinite(v));
  return {
    name,
    src,
    latency: stats(pick('latency')),
    hlsLatency: pick('hlsLatency').length ? stats(pick('hlsLatency')) : null,
    pdtLatency: pick('pdtLatency').length ? stats(pick('pdtLatency')) : null,
    perViewer: views.map((v) => stats(v.samples.map((x) => x.latency)).median),
    frames: samples.length,
    unreadable: views.reduce((a, v) => a + v.unreadable, 0),
    heights: [...new Set(samples.map((s) => s.height))].join('/'),
    stalls: views.reduce((a, v) => a + v.stalls, 0),
    stalledSecs: views.reduce((a, v) => a + v.stalledSecs, 0),
    errors: views.flatMap((v) => v.errors),
    // per viewer: [stamp (ms since the epoch), latency (s)] of every frame, for BENCH_OUT
    series: views.map((v) => v.samples.map((x) => [x.stampedAt, Number(x.latency.toFixed(3))])),
  };
}

// (b) navigation start -> currentTime > 0, in a fresh browser context (cold browser cache)
async function firstFrame(url) {
  const page = await newPage();
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.__probe.ttff !== null, null, { timeout: 30000, polling: 'raf' });
    return (await page.evaluate(() => window.__probe.ttff)) / 1000;
  } catch (e) {
    // one run that never showed a frame is a figure too (NaN), not the end of the benchmark
    const why = await page.evaluate(() => JSON.stringify({ errors: window.benchErrors || window.caudalErrors, state: document.body.dataset.state }))
      .catch(() => '?');
    log(`no first frame within 30 s: ${url} (${why})`);
    return NaN;
  } finally {
    await page.context().close();
  }
}

function ttffResult(t) {
  log(`${t.name}: ${t.runs.map((v) => v.toFixed(2)).join(' ')} s`);
  return { name: t.name, url: t.url, ttff: stats(t.runs.filter(Number.isFinite)), runs: t.runs };
}

const fmt = (v) => (v == null ? '-' : v.toFixed(2));

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CAUDAL_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const results = { latency: [], ttff: [] };
  const caudalRtmp = `rtmp://127.0.0.1:${RTMP_PORT}/live/${DEMO_KEY}`;
  const nginxRtmp = `rtmp://${NGINX_RTMP}/live/bench`;

  log('publishing to caudal and nginx-rtmp');
  // three players take SECS each in (a), then (b) (stopped once measured)
  const pub = publish([caudalRtmp, nginxRtmp], 180 + 3 * SECS + RUNS * 60);
  const stream = await until('caudal stream listed by ingest', 30, async () => {
    const list = JSON.parse((await getText(INGEST + '/v1/streams')) || '[]');
    return list[0];
  });
  const id = stream.video_id;
  // the edge serves media only under a playback token, handed out by bff
  const signed = async (live, lowLatency = false) =>
    until(`bff: a signed ${live ? 'live' : 'recording'} URL`, 60, async () => {
      const r = await fetch(`${BFF}/v1/videos/${id}`).then((r) => r.json()).catch(() => null);
      if (!r || !r.playback || r.playback.live !== live) return null;
      return lowLatency ? r.playback.low_latency_url : r.playback.url;
    });
  const master = await signed(true);
  const llMaster = await signed(true, true);
  await until('caudal low-latency master at the edge', 30, () => getText(llMaster));
  const nginxUrl = `${NGINX_HLS}/bench.m3u8`;
  await until('caudal master playlist at the edge', 30, () => getText(master));
  const firstRung = (await getText(master)).split('\n').find((l) => l && !l.startsWith('#'));
  const rungUrl = new URL(firstRung, master).href;
  // a viewer joins a running stream: both windows full (6 x 2 s)
  await until(`caudal playlist with ${WARMUP_SEGMENTS} segments`, 60, async () => segments(await getText(rungUrl)) >= WARMUP_SEGMENTS);
  await until(`nginx-rtmp playlist with ${WARMUP_SEGMENTS} segments`, 60, async () => segments(await getText(nginxUrl)) >= WARMUP_SEGMENTS);
  describe('caudal', await getText(rungUrl));
  describe('nginx-rtmp', await getText(nginxUrl));

  // (a) JOINS viewers per server, alternating, each sampling SECS/JOINS seconds
  const views = { ll: [], caudal: [], nginx: [] };
  for (let j = 0; j < JOINS; j++) {
    views.ll.push(await view('caudal LL-HLS (edge)', llMaster, SECS / JOINS, true));
    views.caudal.push(await view('caudal HLS (edge)', master, SECS / JOINS));
    views.nginx.push(await view('nginx-rtmp', nginxUrl, SECS / JOINS));
  }
  results.latency.push(summarize('caudal LL-HLS', llMaster, views.ll));
  results.latency.push(summarize('caudal HLS', master, views.caudal));
  results.latency.push(summarize('nginx-rtmp', nginxUrl, views.nginx));

  // (b) live, alternating too
  const ttffs = {
    caudalLl: { name: 'caudal live LL-HLS, bench page -> edge', url: PAGE + '?ll=1&src=' + encodeURIComponent(llMaster), runs: [] },
    caudalPage: { name: 'caudal live HLS, bench page -> edge', url: PAGE + '?src=' + encodeURIComponent(master), runs: [] },
    caudalWatch: BFF ? { name: 'caudal live, watch page (bff + edge)', url: `${BFF}/watch/${id}`, runs: [] } : null,
    nginx: { name: 'nginx-rtmp live, bench page', url: PAGE + '?src=' + encodeURIComponent(nginxUrl), runs: [] },
  };
  for (let i = 0; i < RUNS; i++) {
    for (const t of Object.values(ttffs)) if (t) t.runs.push(await firstFrame(t.url));
  }
  await pub.stop();
  for (const t of Object.values(ttffs)) if (t) results.ttff.push(ttffResult(t));

  // (b) the recording
  const vod = await signed(false);
  await until('caudal recording (vod.m3u8) at the edge', 60, () => getText(vod));
  const rec = [{ name: 'caudal recorded, bench page -> edge', url: PAGE + '?src=' + encodeURIComponent(vod), runs: [] }];
  if (BFF) {
    await until('bff: video recorded', 30, async () => {
      const r = await fetch(`${BFF}/v1/videos/${id}`).then((r) => r.json()).catch(() => null);
      return r && r.video && r.video.status === 'recorded' && r.playback;
    });
    rec.push({ name: 'caudal recorded, watch page (bff + edge)', url: `${BFF}/watch/${id}`, runs: [] });
  }
  for (let i = 0; i < RUNS; i++) for (const t of rec) t.runs.push(await firstFrame(t.url));
  for (const t of rec) results.ttff.push(ttffResult(t));
  await browser.close();

  if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, JSON.stringify(results, null, 2));

  const out = [];
  out.push('');
  out.push(`(a) glass-to-glass latency, s: stamped frame shown in the browser (${JOINS} viewers x ${fmt(SECS / JOINS)} s of frames per server, hls.js ${HLS_VERSION} defaults, same page)`);
  out.push('    ' + 'server'.padEnd(16) + 'median  p95     min     max     frames  unreadable  rung(s)  stalls      fatal errors');
  for (const r of results.latency) {
    const l = r.latency;
    out.push('    ' + r.name.padEnd(16) + [l.median, l.p95, l.min, l.max].map((v) => fmt(v).padEnd(8)).join('') +
      String(r.frames).padEnd(8) + String(r.unreadable).padEnd(12) + r.heights.padEnd(9) +
      `${r.stalls} (${fmt(r.stalledSecs)} s)`.padEnd(12) + (r.errors.length ? r.errors.join(', ') : 'none'));
  }
  const [l, c, n] = results.latency;
  out.push(`    ratio caudal LL-HLS / nginx-rtmp: median ${fmt(l.latency.median / n.latency.median)}, p95 ${fmt(l.latency.p95 / n.latency.p95)}`);
  out.push(`    ratio caudal HLS / nginx-rtmp: median ${fmt(c.latency.median / n.latency.median)}, p95 ${fmt(c.latency.p95 / n.latency.p95)}`);
  for (const r of results.latency) out.push(`    ${r.name.padEnd(16)}each viewer's median: ${r.perViewer.map(fmt).join(' ')}`);
  out.push('    where it comes from (medians): player = hls.latency, how far playback is behind the end of the');
  out.push('    playlist the player has; playlist = the rest, how old that end is (segmenting, upload, caches, polling)');
  for (const r of results.latency) {
    const player = r.hlsLatency?.median;
    out.push(`    ${r.name.padEnd(16)}player ${fmt(player)}  playlist ${fmt(player == null ? null : r.latency.median - player)}` +
      (r.pdtLatency ? `  (cross-check: wall clock - hls.playingDate from EXT-X-PROGRAM-DATE-TIME: ${fmt(r.pdtLatency.median)})` : '  (no EXT-X-PROGRAM-DATE-TIME)'));
  }
  out.push('');
  out.push(`(b) time to first frame, s: navigation start -> currentTime > 0, fresh browser context each run (${RUNS} runs)`);
  for (const r of results.ttff) {
    out.push('    ' + r.name.padEnd(42) + `median ${fmt(r.ttff.median)}  runs ${r.runs.map(fmt).join(' ')}`);
  }
  console.log(out.join('\n'));
}

main().catch(async (e) => {
  console.error('[bench] failed:', e.message);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
});
