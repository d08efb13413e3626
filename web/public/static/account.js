// The signed-in person's account (/account): display name, subscriptions (with Cancel) and
// purchases, from GET /v1/me/subscriptions and /v1/me/purchases.
//
// For tests: body[data-state] = loading | ready | error; #purchases li[data-video-id];
// #subscriptions li[data-creator-id][data-status].

import { $, el, header, api, getJson, errorMessage, money, date, signInUrl, updateUser } from '/static/app.js';
import { cancelSubscription } from '/static/checkout.js';

const s = await header();
if (!s) {
  location.replace(signInUrl());
  throw new Error('not signed in');
}

$('profile-name').value = s.user.display_name;
$('profile-email').textContent = 'Signed in as ' + s.user.email + (s.user.role !== 'viewer' ? ' · creator' : '');
$('profile-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await api('/v1/me', { method: 'PATCH', body: { display_name: $('profile-name').value.trim() } });
  if (!r.ok) {
    $('profile-status').textContent = await errorMessage(r);
    return;
  }
  updateUser(await r.json());
  $('profile-status').textContent = 'Saved.';
});

function subStatus(sub) {
  if (sub.status === 'active' && sub.cancel_at_period_end) return 'Canceled · access until ' + date(sub.current_period_end);
  if (sub.status === 'active') return 'Active · renews ' + date(sub.current_period_end);
  if (sub.status === 'incomplete') return 'Payment pending';
  return sub.status.charAt(0).toUpperCase() + sub.status.slice(1);
}

async function subscriptions() {
  const { subscriptions } = await getJson('/v1/me/subscriptions');
  const list = $('subscriptions');
  list.textContent = '';
  for (const { subscription: sub, creator } of subscriptions) {
    const name = creator ? creator.display_name : 'A creator';
    const li = el('li', { dataset: { creatorId: sub.creator_id, status: sub.status } },
      el('a', { href: '/creators/' + encodeURIComponent(sub.creator_id) }, name),
      el('span', { class: 'muted' }, money(sub.price_minor, sub.currency) + '/month · ' + subStatus(sub)));
    if (sub.status === 'active' && !sub.cancel_at_period_end) {
      li.append(el('button', {
        type: 'button', class: 'secondary',
        onclick: async () => {
          if (await cancelSubscription(sub, name)) subscriptions();
        },
      }, 'Cancel'));
    }
    list.append(li);
  }
  $('subs-empty').hidden = subscriptions.length > 0;
}

async function purchases() {
  // a declined attempt bought nothing: not listed
  const purchases = (await getJson('/v1/me/purchases')).purchases.filter((p) => p.purchase.status !== 'failed');
  const list = $('purchases');
  list.textContent = '';
  for (const { purchase: p, video } of purchases) {
    const title = video ? video.title : 'A video that is no longer available';
    list.append(el('li', { dataset: { videoId: p.video_id, status: p.status } },
      video ? el('a', { href: '/watch/' + encodeURIComponent(p.video_id) }, title) : el('span', {}, title),
      el('span', { class: 'muted' },
        money(p.price_minor, p.currency) + ' · ' + date(p.created_at) + (p.status === 'completed' ? '' : ' · ' + p.status.replace('_', ' ')))));
  }
  $('purchases-empty').hidden = purchases.length > 0;
}

try {
  await Promise.all([subscriptions(), purchases()]);
  document.body.dataset.state = 'ready';
} catch (e) {
  $('account-error').textContent = e.message;
  $('account-error').hidden = false;
  document.body.dataset.state = 'error';
}
