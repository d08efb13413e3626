// The web app as people use it, against the whole platform (scripts/tests.d/browser.sh), in
// headless Chromium with nothing but the pages: no API call is made by the test itself except
// to check what the pages did.
//
// - A new visitor signs up, becomes a creator, sets a plan and subscribers-only broadcasts,
//   creates and copies a stream key; ffmpeg publishes with that key (keyframes every 6 s, so
//   the studio has advice to give); the studio shows the stream's health and the advice; the
//   creator renames the broadcast. A second visitor (another browser context) signs up, finds
//   the stream by typing in the search box, is denied, subscribes through the checkout, and
//   watches.
// - A third visitor buys a video: a declined card shows a message and gives no access; a
//   double click on Pay with a good card makes one purchase, and the video plays.
// - Sign-in messages: wrong password, taken email, too many attempts.
// - Every page: a screenshot in web/test-artifacts/ (desktop and phone width), no horizontal
//   scrolling at 375 px, and axe-core finds no serious or critical violation.
//
//   CAUDAL_BFF_URL, CAUDAL_EDGE_URL, CAUDAL_RTMP_URL   as for the other browser tests
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { ARTIFACTS, BFF, RTMP, launch } from './support.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const PASSWORD = 'correct horse battery staple';

const tag = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);

let browser;
let publisher = null;
const creator = { name: 'Ada ' + tag, email: `ada-${tag}@example.com` };
let liveId = null;
let liveTitle = null;

before(async () => {
  browser = await launch(['CAUDAL_BFF_URL', 'CAUDAL_RTMP_URL']);
});

after(async () => {
  if (publisher && publisher.exitCode === null) publisher.kill('SIGKILL');
  if (browser) await browser.close();
});

async function newPage(opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `app-${name}.png`), fullPage: true });

// axe-core on the page as it is now: no serious or critical violation
async function accessible(page, name) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${name}: accessibility violations ${JSON.stringify(bad, null, 1)}`);
  return result;
}

async function signUp(page, name, email) {
  await page.goto(`${BFF}/signup`);
  await page.waitForFunction(() => document.body.dataset.state === 'signup');
  await page.fill('#signup-name', name);
  await page.fill('#signup-email', email);
  await page.fill('#signup-password', PASSWORD);
  await page.click('#signup-form button[type=submit]');
  await page.waitForURL(`${BFF}/`);
  await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
}

// what the API says, asked with the page's own session (the access token the page holds)
async function asPage(page, p) {
  return page.evaluate(async (p) => {
    const r = await window.caudal.api(p);
    return { status: r.status, body: await r.json() };
  }, p);
}

async function pay(page, card, { dblclick = false } = {}) {
  await page.waitForSelector('#checkout[open]');
  await page.fill('#card-number', card);
  if (dblclick) await page.dblclick('#pay');
  else await page.click('#pay');
}

test('a new visitor becomes a creator, streams with a copied key and sees its health; another signs up, searches, subscribes and watches', { timeout: 300_000 }, async () => {
  const page = await newPage({ permissions: ['clipboard-read', 'clipboard-write'] });
  await page.goto(`${BFF}/`);
  await page.waitForFunction(() => document.body.dataset.signedIn === 'no');
  assert.equal(await page.isVisible('header a[href="/signup"]'), true);
  await signUp(page, creator.name, creator.email);
  assert.match(await page.textContent('header nav'), new RegExp(creator.name));

  // the studio: become a creator
  await page.click('header a[href="/studio"]');
  await page.waitForFunction(() => document.body.dataset.state === 'viewer');
  await page.click('#become-creator');
  await page.waitForFunction(() => document.body.dataset.state === 'studio');

  // a plan, and new broadcasts for subscribers only
  await page.fill('#plan-price', '4.99');
  await page.fill('#plan-currency', 'EUR');
  await page.click('#plan-save');
  await page.waitForFunction(() => /Saved/.test(document.getElementById('plan-status').textContent));
  await page.selectOption('#defaults-access', 'subscribers');
  await page.click('#defaults-save');
  await page.waitForFunction(() => /Saved/.test(document.getElementById('defaults-status').textContent));

  // a stream key, shown once, copied with the button
  await page.fill('#key-label', 'OBS at home');
  await page.click('#create-key');
  await page.waitForSelector('#new-key-value');
  const key = (await page.textContent('#new-key-value')).trim();
  assert.match(key, /^live_/);
  await page.click('#copy-key');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  assert.match(await page.textContent('#obs-server'), /^rtmp:\/\//);
  assert.equal((await page.textContent('#obs-key')).trim(), key);
  await shot(page, 'studio-new-key');

  // OBS stands in: ffmpeg with keyframes every 6 s (the advice asks for 2 s)
  publisher = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=48000',
    '-t', '150', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '180', '-keyint_min', '180',
    '-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'flv', `${RTMP}/${key}`], { stdio: 'ignore' });

  // the studio notices the broadcast and shows its health with the advice
  await page.waitForFunction(() => {
    const k = document.getElementById('health-keyframe');
    return k && /\d/.test(k.textContent);
  }, null, { timeout: 60_000, polling: 500 });
  await page.waitForFunction(() => /Keyframe/i.test(document.getElementById('health-advice').textContent), null, { timeout: 40_000, polling: 500 });
  const keyframe = parseFloat(await page.textContent('#health-keyframe'));
  assert.ok(keyframe > 5 && keyframe < 7, `keyframe interval ${keyframe}`);
  assert.ok(parseFloat(await page.textContent('#health-kbps')) > 0);
  assert.match(await page.textContent('#health-advice'), /Keyframe Interval to 2 s/);
  await shot(page, 'studio-live');

  // the broadcast in the video list, renamed from the studio
  const row = page.locator('#video-table tr[data-status="live"]').first();
  await row.waitFor({ timeout: 20_000 });
  liveId = await row.getAttribute('data-id');
  assert.match(await row.textContent(), /broadcast of/);
  liveTitle = `Harbour tour ${tag}`;
  await row.locator('button.edit').click();
  await page.fill('#edit-title', liveTitle);
  await page.fill('#edit-tags', 'boats, harbour');
  await page.click('#edit-save');
  await page.locator(`#video-table tr[data-id="${liveId}"]`, { hasText: liveTitle }).waitFor({ timeout: 10_000 });
  assert.deepEqual(page.errors, []);

  // a second visitor: signs up, types in the search box, picks the suggestion
  const viewer = await newPage();
  await signUp(viewer, 'Viewer ' + tag, `viewer-${tag}@example.com`);
  // on the home page the broadcast's card shows a frame of the stream (home refreshes every 15 s)
  const poster = viewer.locator(`#live li.card[data-id="${liveId}"] img`);
  await poster.waitFor({ timeout: 40_000 });
  await viewer.waitForFunction((id) => {
    const i = document.querySelector(`#live li.card[data-id="${id}"] img`);
    return i && i.complete && i.naturalWidth > 0;
  }, liveId, { timeout: 10_000 });
  await shot(viewer, 'home-live');
  await viewer.click('#site-search');
  await viewer.keyboard.type(`harbour tour ${tag.slice(0, 5)}`, { delay: 30 });
  const suggestion = viewer.locator(`#site-search-results a[data-id="${liveId}"]`);
  await suggestion.waitFor({ timeout: 10_000 });
  await shot(viewer, 'search-suggestions');
  await viewer.keyboard.press('ArrowDown');
  await viewer.keyboard.press('Enter');
  await viewer.waitForURL(`${BFF}/watch/${liveId}`);
  await viewer.waitForFunction(() => document.body.dataset.state === 'denied', null, { timeout: 20_000 });
  assert.equal(await viewer.getAttribute('body', 'data-reason'), 'not_subscribed');
  await viewer.click('#subscribe');
  await shot(viewer, 'checkout');
  await pay(viewer, '4242 4242 4242 4242');
  await viewer.waitForFunction(() => document.body.dataset.state === 'playing', null, { timeout: 60_000 });
  await viewer.waitForSelector('#cancel-subscription');
  await viewer.waitForFunction(() => window.caudalPlayer.video.currentTime > 3, null, { timeout: 30_000 });
  assert.equal(await viewer.textContent('#title'), liveTitle);
  const subs = await asPage(viewer, '/v1/me/subscriptions');
  assert.equal(subs.body.subscriptions.length, 1);
  assert.equal(subs.body.subscriptions[0].subscription.status, 'active');
  await shot(viewer, 'watch-subscribed');

  // the creator's page shows the subscription; the account page lists it
  await viewer.click('#creator a');
  await viewer.waitForFunction(() => document.body.dataset.state === 'ready');
  assert.equal(await viewer.getAttribute('#offer', 'data-subscribed'), 'yes');
  await viewer.goto(`${BFF}/account`);
  await viewer.waitForFunction(() => document.body.dataset.state === 'ready');
  assert.match(await viewer.textContent('#subscriptions'), new RegExp(creator.name));
  assert.deepEqual(viewer.errors, []);
  await viewer.context().close();
  await page.context().close();
});

test('buying a video: a declined card gives no access, a double click on Pay makes one purchase', { timeout: 180_000 }, async () => {
  assert.ok(liveId, 'the first test made the broadcast');
  // the creator sells the broadcast on its own
  const studio = await newPage();
  await studio.goto(`${BFF}/signin?next=/studio`);
  await studio.waitForFunction(() => document.body.dataset.state === 'signin');
  await studio.fill('#signin-email', creator.email);
  await studio.fill('#signin-password', PASSWORD);
  await studio.click('#signin-form button[type=submit]');
  await studio.waitForURL(`${BFF}/studio`);
  await studio.waitForFunction(() => document.body.dataset.state === 'studio');
  const row = studio.locator(`#video-table tr[data-id="${liveId}"]`);
  await row.waitFor();
  await row.locator('button.edit').click();
  await studio.selectOption('#edit-access', 'purchase');
  await studio.fill('#edit-price', '2.50');
  await studio.fill('#edit-currency', 'EUR');
  await studio.click('#edit-save');
  await studio.locator(`#video-table tr[data-id="${liveId}"]`, { hasText: /2\.50/ }).waitFor({ timeout: 10_000 });
  await studio.context().close();

  const buyer = await newPage();
  await signUp(buyer, 'Buyer ' + tag, `buyer-${tag}@example.com`);
  await buyer.goto(`${BFF}/watch/${liveId}`);
  await buyer.waitForFunction(() => document.body.dataset.state === 'denied', null, { timeout: 20_000 });
  assert.equal(await buyer.getAttribute('body', 'data-reason'), 'not_purchased');

  // declined: a message, still no access, nothing bought
  await buyer.click('#buy');
  await pay(buyer, '4000 0000 0000 0002');
  await buyer.waitForFunction(() => document.getElementById('checkout').dataset.state === 'declined');
  assert.match(await buyer.textContent('#checkout-error'), /declined/);
  await shot(buyer, 'checkout-declined');
  await buyer.click('#checkout-cancel');
  assert.equal(await buyer.getAttribute('body', 'data-state'), 'denied');
  let mine = await asPage(buyer, '/v1/me/purchases');
  assert.equal(mine.body.purchases.filter((p) => p.purchase.status === 'completed').length, 0);
  let detail = await asPage(buyer, `/v1/videos/${liveId}`);
  assert.equal(detail.body.access.allowed, false);

  // a good card, Pay double-clicked: one purchase, and the video plays
  const posts = [];
  buyer.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/v1/purchases')) posts.push(r.headers()['idempotency-key']);
  });
  await buyer.click('#buy');
  await pay(buyer, '4242 4242 4242 4242', { dblclick: true });
  await buyer.waitForFunction(() => document.body.dataset.state === 'playing', null, { timeout: 60_000 });
  mine = await asPage(buyer, '/v1/me/purchases');
  const bought = mine.body.purchases.filter((p) => p.purchase.video_id === liveId && p.purchase.status === 'completed');
  assert.equal(bought.length, 1, JSON.stringify(mine.body));
  assert.ok(posts.length >= 1 && new Set(posts).size === 1, `purchase requests ${JSON.stringify(posts)}`);
  detail = await asPage(buyer, `/v1/videos/${liveId}`);
  assert.equal(detail.body.access.reason, 'purchased');
  await buyer.goto(`${BFF}/account`);
  await buyer.waitForFunction(() => document.body.dataset.state === 'ready');
  assert.equal(await buyer.locator(`#purchases li[data-video-id="${liveId}"]`).count(), 1);
  // a viewer's upload page sends them to the studio to become a creator
  await buyer.goto(`${BFF}/upload`);
  await buyer.waitForFunction(() => document.body.dataset.state === 'not-creator');
  assert.equal(await buyer.getAttribute('#not-creator a', 'href'), '/studio');
  assert.deepEqual(buyer.errors, []);
  await buyer.context().close();
});

test('sign-in messages: wrong password, taken email, too many attempts', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(`${BFF}/signup`);
  await page.waitForFunction(() => document.body.dataset.state === 'signup');
  await page.fill('#signup-name', 'Someone');
  await page.fill('#signup-email', creator.email);
  await page.fill('#signup-password', PASSWORD);
  await page.click('#signup-form button[type=submit]');
  await page.waitForSelector('#signup-error:not([hidden])');
  assert.match(await page.textContent('#signup-error'), /already exists/);
  await page.fill('#signup-password', 'short');
  await page.click('#signup-form button[type=submit]');
  await page.waitForFunction(() => /Password/.test(document.getElementById('signup-error').textContent));

  await page.click('#to-signin');
  await page.waitForFunction(() => document.body.dataset.state === 'signin');
  const victim = `nobody-${tag}@example.com`;
  let message = '';
  for (let i = 0; i < 12 && !/Too many attempts/.test(message); i++) {
    await page.fill('#signin-email', i === 0 ? creator.email : victim);
    await page.fill('#signin-password', 'not the password');
    await page.click('#signin-form button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.state === 'signin' && !document.getElementById('signin-error').hidden);
    message = await page.textContent('#signin-error');
    if (i === 0) assert.equal(message, 'Wrong email or password.');
    await page.evaluate(() => (document.getElementById('signin-error').hidden = true));
  }
  assert.match(message, /Too many attempts\. Try again in \d+ seconds?\./);
  await shot(page, 'signin-rate-limited');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('every page: screenshots, no serious accessibility violation, usable at a phone width', { timeout: 180_000 }, async () => {
  assert.ok(liveId, 'the first test made the broadcast');
  const pages = [
    ['home', '/', () => document.body.dataset.state === 'ready'],
    ['signin', '/signin', () => document.body.dataset.state === 'signin'],
    ['signup', '/signup', () => document.body.dataset.state === 'signup'],
    ['search', `/search?q=harbour`, () => ['results', 'empty'].includes(document.body.dataset.state)],
    ['watch', `/watch/${liveId}`, () => ['denied', 'playing', 'offline'].includes(document.body.dataset.state)],
  ];
  const signedIn = [
    ['creator', null, () => document.body.dataset.state === 'ready'],
    ['account', '/account', () => document.body.dataset.state === 'ready'],
    ['studio', '/studio', () => document.body.dataset.state === 'studio'],
    ['upload', '/upload', () => document.body.dataset.state === 'pick'],
  ];
  for (const [width, height, suffix] of [[1280, 800, ''], [375, 740, '-phone']]) {
    const page = await newPage({ viewport: { width, height } });
    const visit = async ([name, url, ready]) => {
      await page.goto(BFF + url);
      await page.waitForFunction(ready, null, { timeout: 20_000 });
      await shot(page, name + suffix);
      if (!suffix) await accessible(page, name);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${name} at ${width} px scrolls sideways by ${overflow} px`);
    };
    for (const p of pages) await visit(p);
    // signed in as the creator for the rest
    const login = await page.context().request.post(BFF + '/v1/auth/web/login', { data: { email: creator.email, password: PASSWORD } });
    assert.equal(login.status(), 200);
    await page.goto(`${BFF}/`);
    await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    // ?next= stays on this site, however it is written ("/<tab>/host" is "//host" to a browser)
    await page.goto(`${BFF}/signin?next=${encodeURIComponent('/\t/evil.example/x')}`);
    await page.waitForURL(`${BFF}/`);
    await page.goto(`${BFF}/signin?next=${encodeURIComponent('/search?q=boats')}`);
    await page.waitForURL(`${BFF}/search?q=boats`);
    const me = await asPage(page, '/v1/me');
    signedIn[0][1] = `/creators/${me.body.id}`;
    for (const p of signedIn) await visit(p);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  }
});
