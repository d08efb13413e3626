// Sign in (/signin) and sign up (/signup) on one page. Both start a browser session through
// /v1/auth/web/* (the refresh token goes into an HttpOnly cookie) and then go to `?next=`
// (a path of this site) or home. Messages: wrong password, email taken, rate limited (with
// the wait), and the form's own checks.
//
// For tests: body[data-state] = signin | signup | busy | done.

import { $, header, signIn, signUp, nextPath } from '/static/app.js';

const mode = location.pathname === '/signup' ? 'signup' : 'signin';

function show(which) {
  document.body.dataset.state = which;
  $('signin').hidden = which !== 'signin';
  $('signup').hidden = which !== 'signup';
  document.title = (which === 'signup' ? 'Sign up' : 'Sign in') + ' · Caudal';
}

function fail(id, message) {
  const e = $(id);
  e.textContent = message;
  e.hidden = !message;
}

// keep ?next= when switching between the two forms
for (const a of [$('to-signup'), $('to-signin')]) {
  const n = new URLSearchParams(location.search).get('next');
  if (n) a.href += '?next=' + encodeURIComponent(n);
}

async function submit(form, errorId, run) {
  const button = form.querySelector('button[type=submit]');
  fail(errorId, '');
  const bad = [...form.elements].find((i) => i.willValidate && !i.checkValidity());
  if (bad) {
    const label = bad.closest('label');
    const name = label ? label.firstChild.textContent.trim() : bad.name;
    fail(errorId, name + ': ' + bad.validationMessage);
    bad.focus();
    return;
  }
  button.disabled = true;
  const before = document.body.dataset.state;
  document.body.dataset.state = 'busy';
  let res;
  try {
    res = await run();
  } catch (_) {
    res = { ok: false, message: 'Caudal cannot be reached. Check your connection and try again.' };
  }
  button.disabled = false;
  if (!res.ok) {
    document.body.dataset.state = before;
    fail(errorId, res.message);
    return;
  }
  document.body.dataset.state = 'done';
  location.href = nextPath('/');
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  submit(e.target, 'signin-error', () => signIn($('signin-email').value.trim(), $('signin-password').value));
});

$('signup-form').addEventListener('submit', (e) => {
  e.preventDefault();
  submit(e.target, 'signup-error', () =>
    signUp($('signup-email').value.trim(), $('signup-password').value, $('signup-name').value.trim()),
  );
});

const s = await header();
if (s) {
  // already signed in: nothing to do here
  location.replace(nextPath('/'));
} else {
  show(mode);
  $(mode === 'signup' ? 'signup-name' : 'signin-email').focus();
}
