// The watch page's buttons under the title (watch.js calls window.caudalActions with each
// answer of GET /v1/videos/{id}): "Sign in to watch", "Subscribe" / "Cancel subscription"
// when the creator has a plan, "Buy" when the video is sold on its own. A payment that goes
// through makes watch.js ask for the video again, which then plays.
//
// For tests: #actions[data-for="<video id>"], buttons #subscribe, #cancel-subscription,
// #buy, link #signin-to-watch.

import { $, el, header, money, date, user, signInUrl } from '/static/app.js';
import { subscribe, buy, subscriptionTo, cancelSubscription } from '/static/checkout.js';

const plans = new Map(); // creator id -> plan or null (fetched once per page)
let shown = ''; // what the actions show now, to redraw only on change

async function planOf(creatorId) {
  if (!plans.has(creatorId)) {
    let plan = null;
    try {
      const r = await fetch('/v1/creators/' + encodeURIComponent(creatorId) + '?limit=1', { cache: 'no-store' });
      if (r.ok) plan = (await r.json()).plan;
    } catch (_) {}
    plans.set(creatorId, plan);
  }
  return plans.get(creatorId);
}

async function render(detail, reload) {
  const box = $('actions');
  const v = detail.video;
  const access = detail.access || {};
  const creator = detail.creator;
  const me = user();
  const mine = me && creator && me.id === creator.id;
  const plan = creator && !mine ? await planOf(creator.id) : null;
  const sub = plan ? await subscriptionTo(creator.id) : null;
  const offer = access.offer;
  const key = JSON.stringify([v.id, access.allowed, access.reason, !!me, plan && plan.price_minor, sub && sub.id, sub && sub.cancel_at_period_end]);
  if (key === shown) return;
  shown = key;
  box.textContent = '';
  box.dataset.for = v.id;

  const paid = () => {
    shown = '';
    reload();
  };
  if (mine) {
    box.append(el('a', { href: '/studio#videos', class: 'button secondary' }, 'Edit in studio'));
    return;
  }
  if (access.reason === 'login_required') {
    box.append(el('a', { href: signInUrl(), id: 'signin-to-watch', class: 'button' }, 'Sign in to watch'));
    return;
  }
  if (!access.allowed && offer && offer.kind === 'purchase') {
    box.append(el('button', {
      type: 'button', id: 'buy',
      onclick: async (e) => {
        const button = e.currentTarget; // (null once the event is over)
        button.disabled = true; // one checkout at a time
        const done = await buy(v, offer);
        button.disabled = false;
        if (done) paid();
      },
    }, 'Buy · ' + money(offer.price_minor, offer.currency)));
  }
  if (plan && sub && !sub.cancel_at_period_end) {
    box.append(
      el('span', { class: 'muted', id: 'subscribed-text' }, 'Subscribed · renews ' + date(sub.current_period_end)),
      el('button', {
        type: 'button', class: 'secondary', id: 'cancel-subscription',
        onclick: async () => {
          if (await cancelSubscription(sub, creator.display_name)) paid();
        },
      }, 'Cancel subscription'),
    );
  } else if (plan && sub) {
    box.append(el('span', { class: 'muted', id: 'subscribed-text' }, 'Subscribed until ' + date(sub.current_period_end)));
  } else if (plan) {
    box.append(el('button', {
      type: 'button', id: 'subscribe', class: !access.allowed && access.reason === 'not_subscribed' ? '' : 'secondary',
      onclick: async () => {
        if (await subscribe(creator, plan)) paid();
      },
    }, 'Subscribe · ' + money(plan.price_minor, plan.currency) + '/month'));
  }
}

let running = Promise.resolve();
window.caudalActions = (detail, reload) => {
  // one render at a time, in order of the answers
  running = running.then(() => render(detail, reload)).catch(() => {});
};

header();
