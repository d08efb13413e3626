// A creator's page (/creators/{id}): name, monthly plan with Subscribe / Cancel, and the
// public videos (GET /v1/creators/{id}, a page at a time).
//
// For tests: body[data-state] = loading | ready | notfound | error;
// #offer[data-subscribed="yes|no"].

import { $, el, header, card, money, date, errorMessage, user } from '/static/app.js';
import { subscribe, subscriptionTo, cancelSubscription } from '/static/checkout.js';

const id = decodeURIComponent(location.pathname.split('/')[2] || '');
let cursor = null;
let page = null;

async function fetchPage() {
  const u = new URLSearchParams({ limit: '24' });
  if (cursor) u.set('cursor', cursor);
  const r = await fetch('/v1/creators/' + encodeURIComponent(id) + '?' + u, { cache: 'no-store' });
  if (!r.ok) {
    const e = new Error(await errorMessage(r));
    e.status = r.status;
    throw e;
  }
  return r.json();
}

async function renderOffer() {
  const box = $('offer');
  box.textContent = '';
  const { creator, plan } = page;
  const me = user();
  if (!plan) {
    $('plan-text').textContent = 'No subscription offered.';
    return;
  }
  $('plan-text').textContent = 'Subscription: ' + money(plan.price_minor, plan.currency) + ' a month';
  if (me && me.id === creator.id) {
    box.append(el('a', { href: '/studio#plan', class: 'button secondary' }, 'Edit your plan'));
    return;
  }
  const sub = await subscriptionTo(creator.id);
  box.dataset.subscribed = sub ? 'yes' : 'no';
  if (sub && !sub.cancel_at_period_end) {
    box.append(
      el('span', { class: 'muted', id: 'subscribed-text' }, 'Subscribed · renews ' + date(sub.current_period_end)),
      el('button', {
        type: 'button', class: 'secondary', id: 'cancel-subscription',
        onclick: async () => {
          if (await cancelSubscription(sub, creator.display_name)) renderOffer();
        },
      }, 'Cancel subscription'),
    );
  } else if (sub) {
    box.append(el('span', { class: 'muted', id: 'subscribed-text' }, 'Subscribed until ' + date(sub.current_period_end) + ' (canceled)'));
  } else {
    box.append(el('button', {
      type: 'button', id: 'subscribe',
      onclick: async () => {
        if (await subscribe(creator, plan)) renderOffer();
      },
    }, 'Subscribe · ' + money(plan.price_minor, plan.currency) + '/month'));
  }
}

async function more() {
  try {
    const p = await fetchPage();
    for (const c of p.videos) $('videos').append(card(c));
    cursor = p.next_cursor;
    $('more').hidden = !cursor;
  } catch (e) {
    $('creator-error').textContent = e.message;
    $('creator-error').hidden = false;
  }
}

$('more').addEventListener('click', async () => {
  const b = $('more');
  if (b.disabled) return; // a page is on its way
  b.disabled = true;
  try {
    await more();
  } finally {
    b.disabled = false;
  }
});
await header();
try {
  page = await fetchPage();
} catch (e) {
  document.body.dataset.state = e.status === 404 ? 'notfound' : 'error';
  $('creator-name').textContent = e.status === 404 ? 'No such creator' : 'Creator';
  $('creator-error').textContent = e.status === 404 ? 'This creator does not exist.' : e.message;
  $('creator-error').hidden = false;
  throw e;
}
const { creator } = page;
document.title = creator.display_name + ' · Caudal';
$('creator-name').textContent = creator.display_name;
if (creator.avatar_url) $('avatar').append(el('img', { src: creator.avatar_url, alt: '' }));
else $('avatar').textContent = creator.display_name.charAt(0).toUpperCase();
for (const c of page.videos) $('videos').append(card(c));
$('videos-empty').hidden = page.videos.length > 0;
cursor = page.next_cursor;
$('more').hidden = !cursor;
await renderOffer();
document.body.dataset.state = 'ready';
