// Paying: the checkout dialog (card number, price, Pay) used to subscribe to a creator or to
// buy a video. A purchase carries an Idempotency-Key made when the dialog opens: Pay is
// disabled while a charge is in flight, and a retry after a timeout or a dropped connection
// sends the same key, so a double click or a retry charges once. A decline is final for that
// key: the next attempt gets a new one.
//
// The local payment provider tokenizes test cards in the page (app.js `tokenize`); a real
// provider's own script would do that step.
//
// For tests: <dialog id="checkout" data-state="open|paying|declined|error|done">.

import { el, api, errorMessage, money, tokenize, newIdempotencyKey, signInUrl, session } from '/static/app.js';

/**
 * Opens the dialog. `what`: { title, price_minor, currency, note, pay(token, key) -> Response }.
 * Resolves with the paid answer's JSON, or null when the dialog was closed without paying.
 */
export function openCheckout(what) {
  return new Promise((resolve) => {
    let key = newIdempotencyKey();
    let paid = null;
    const error = el('p', { class: 'error', id: 'checkout-error', role: 'alert', hidden: true });
    const number = el('input', {
      id: 'card-number',
      inputmode: 'numeric',
      autocomplete: 'cc-number',
      required: true,
      'aria-describedby': 'card-hint',
    });
    const pay = el('button', { type: 'submit', id: 'pay' }, 'Pay ' + money(what.price_minor, what.currency));
    const cancel = el('button', { type: 'button', class: 'secondary', id: 'checkout-cancel' }, 'Cancel');
    const form = el('form', { method: 'dialog', class: 'checkout-form' },
      el('h2', { id: 'checkout-title' }, what.title),
      el('p', { class: 'price' }, money(what.price_minor, what.currency), what.note ? ' ' + what.note : ''),
      el('label', { for: 'card-number' }, 'Card number'),
      number,
      el('p', { class: 'hint', id: 'card-hint' },
        'Test cards of the local payment provider: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined.'),
      error,
      el('div', { class: 'actions' }, pay, cancel),
    );
    const dialog = el('dialog', { id: 'checkout', 'aria-labelledby': 'checkout-title', dataset: { state: 'open' } }, form);
    document.body.append(dialog);

    const fail = (message, state) => {
      error.textContent = message;
      error.hidden = false;
      dialog.dataset.state = state;
    };
    const close = () => {
      dialog.close();
      dialog.remove();
      resolve(paid);
    };
    cancel.addEventListener('click', close);
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      if (!pay.disabled) close();
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (pay.disabled) return; // a charge is in flight: a second click does nothing
      const token = tokenize(number.value);
      if (!token) {
        fail('Enter a card number.', 'error');
        number.focus();
        return;
      }
      pay.disabled = true;
      cancel.disabled = true;
      error.hidden = true;
      dialog.dataset.state = 'paying';
      pay.textContent = 'Paying…';
      let r = null;
      try {
        r = await what.pay(token, key);
      } catch (_) {
        r = null;
      }
      pay.disabled = false;
      cancel.disabled = false;
      pay.textContent = 'Pay ' + money(what.price_minor, what.currency);
      if (r && r.ok) {
        paid = await r.json();
        dialog.dataset.state = 'done';
        close();
        return;
      }
      if (!r) {
        fail('Caudal cannot be reached. Try again: you will not be charged twice.', 'error');
        return;
      }
      const message = await errorMessage(r);
      if (r.status === 402) {
        key = newIdempotencyKey(); // declined for good: a new attempt is a new purchase
        fail(message, 'declined');
      } else {
        fail(message, 'error');
      }
    });
    dialog.showModal();
    number.focus();
  });
}

/** Subscribes to `creatorId`'s plan through the dialog; resolves with the subscription or null. */
export async function subscribe(creator, plan) {
  if (!(await session())) {
    location.href = signInUrl();
    return null;
  }
  return openCheckout({
    title: 'Subscribe to ' + creator.display_name,
    price_minor: plan.price_minor,
    currency: plan.currency,
    note: 'a month, renewed until you cancel. Subscribers watch every subscribers-only video.',
    pay: (token) => api('/v1/subscriptions', { method: 'POST', body: { creator_id: creator.id, payment_token: token } }),
  });
}

/** Buys a video through the dialog; resolves with the purchase or null. */
export async function buy(video, offer) {
  if (!(await session())) {
    location.href = signInUrl();
    return null;
  }
  return openCheckout({
    title: 'Buy “' + video.title + '”',
    price_minor: offer.price_minor,
    currency: offer.currency,
    note: 'once; watch it whenever you like.',
    pay: (token, key) =>
      api('/v1/purchases', { method: 'POST', body: { video_id: video.id, payment_token: token }, headers: { 'Idempotency-Key': key } }),
  });
}

/** The signed-in viewer's active subscription to `creatorId`, or null. */
export async function subscriptionTo(creatorId) {
  if (!(await session())) return null;
  const r = await api('/v1/me/subscriptions');
  if (!r.ok) return null;
  const { subscriptions } = await r.json();
  const s = subscriptions.find((m) => m.subscription.creator_id === creatorId && m.subscription.status === 'active');
  return s ? s.subscription : null;
}

/** Cancels after asking; resolves with the canceled subscription or null. */
export async function cancelSubscription(sub, creatorName) {
  const until = sub.current_period_end ? new Date(sub.current_period_end).toLocaleDateString() : 'the end of the month';
  if (!confirm('Cancel your subscription to ' + creatorName + '? You keep access until ' + until + '.')) return null;
  const r = await api('/v1/subscriptions/' + encodeURIComponent(sub.id), { method: 'DELETE' });
  if (!r.ok) {
    alert(await errorMessage(r));
    return null;
  }
  return r.json();
}
