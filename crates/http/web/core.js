// Surge web UI, the shell: API calls with the session cookie, the signed-in user, routing,
// and the helpers every app's pages use. User text only ever reaches the page as text nodes
// (`el` below), never as HTML.
'use strict';

const API = '/api/v1';
const REFRESH_KEY = 'surge.refresh';

/** Builds an element: `attrs` become attributes (`on…` functions become listeners), children
 *  become text nodes unless they are already nodes. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      node.className = value;
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The signed-in user's profile, or null. */
let me = null;

/** Calls the API; answers `{ok, status, data, retryAfter}` and never throws for an HTTP error.
 *  A 401 with a refresh token in this tab renews the session cookie once and retries. */
async function api(method, path, body, options = {}) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body instanceof Blob) {
    init.body = body;
    init.headers['content-type'] = body.type || 'application/octet-stream';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  if (options.idempotencyKey) init.headers['idempotency-key'] = options.idempotencyKey;
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (error) {
    return { ok: false, status: 0, data: { error: { code: 'offline', message: 'Surge cannot be reached.' } } };
  }
  if (response.status === 401 && !options.retried && sessionStorage.getItem(REFRESH_KEY)) {
    if (await refreshSession()) return api(method, path, body, { ...options, retried: true });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  const retryAfter = Number(response.headers.get('retry-after')) || null;
  return { ok: response.ok, status: response.status, data, retryAfter };
}

async function refreshSession() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  const response = await fetch(API + '/auth/refresh', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: token }),
  }).catch(() => null);
  if (!response || !response.ok) {
    sessionStorage.removeItem(REFRESH_KEY);
    return false;
  }
  const session = await response.json();
  sessionStorage.setItem(REFRESH_KEY, session.refresh_token);
  return true;
}

/** The message of a failed call, for people. */
function problem(result) {
  const error = result.data && result.data.error;
  if (!error) return `Something went wrong (HTTP ${result.status}).`;
  const fields = error.fields ? Object.entries(error.fields).map(([f, m]) => `${f}: ${m}`) : [];
  return [error.message, ...fields].join(' — ');
}

function errorText(result) {
  return el('p', { class: 'error', role: 'alert' }, problem(result));
}

/** A short notice at the bottom of the screen. */
function toast(message) {
  const box = document.getElementById('toast');
  box.textContent = message;
  box.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove('show'), 3000);
}

function money(amount) {
  return Number(amount).toLocaleString();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** "3 min 20 s" until `iso`, or null when it has passed. */
function timeLeft(iso) {
  let seconds = Math.floor((new Date(iso) - Date.now()) / 1000);
  if (seconds <= 0) return null;
  const days = Math.floor(seconds / 86400); seconds %= 86400;
  const hours = Math.floor(seconds / 3600); seconds %= 3600;
  const minutes = Math.floor(seconds / 60); seconds %= 60;
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds} s`;
  return `${seconds} s`;
}

/** A labelled input. */
function field(label, attrs) {
  return el('label', {}, label, el('input', attrs));
}

/** A form whose submit runs `submit(values, form)`; a failure is shown above its button. */
function form(attrs, children, submitLabel, submit) {
  const status = el('div', { 'aria-live': 'polite' });
  const button = el('button', { type: 'submit' }, submitLabel);
  const node = el('form', { class: 'stack', ...attrs }, children, status, el('div', {}, button));
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.replaceChildren();
    try {
      const values = Object.fromEntries(new FormData(node).entries());
      const failure = await submit(values, node);
      if (failure) status.replaceChildren(failure instanceof Node ? failure : errorText(failure));
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

/** Makes `form` a filter: submitting it goes to `path` with its non-empty fields as the query. */
function filterTo(form, path) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = new URLSearchParams(new FormData(form));
    for (const [key, value] of [...values]) if (!value) values.delete(key);
    go(`${path}?${values}`);
  });
  return form;
}

/** A cursor-paged list: each item of each page of `path?query` goes into `container` as
 *  `render(item)`; `empty` (a list item) when the first page has none. Answers the node below
 *  the list: a More button while pages are left, or the error of a failed page. */
async function pagedInto(container, path, query, render, empty) {
  const more = el('div');
  async function load(cursor) {
    const wanted = new URLSearchParams(query);
    if (cursor) wanted.set('cursor', cursor);
    const result = await api('GET', `${path}?${wanted}`);
    if (!result.ok) { more.replaceChildren(errorText(result)); return; }
    for (const item of result.data.items) container.append(render(item));
    if (!result.data.items.length && !cursor && empty) container.append(el('li', { class: 'muted' }, empty));
    more.replaceChildren(result.data.next_cursor
      ? el('button', { type: 'button', class: 'secondary', onclick: () => load(result.data.next_cursor) }, 'More')
      : '');
  }
  await load(null);
  return more;
}

function idempotencyKey() {
  return crypto.randomUUID();
}

// ---- Routing ---------------------------------------------------------------------------------

const routes = [];
const leaving = [];
/** False until the first page is shown: the first page keeps the browser's focus order (the
 *  skip link first); later pages move the focus to the new content, for screen readers. */
let navigated = false;

/** Registers a page: `pattern` is matched against the hash path, `render(params)` answers a
 *  node (or a promise of one). */
function route(pattern, render) {
  routes.push([pattern, render]);
}

/** Runs `cleanup` when the page changes (closing event streams and timers). */
function onLeave(cleanup) {
  leaving.push(cleanup);
}

function go(path) {
  if (location.hash === '#' + path) navigate(); else location.hash = path;
}

async function navigate() {
  while (leaving.length) {
    try { leaving.pop()(); } catch { /* a cleanup never stops navigation */ }
  }
  const path = decodeURIComponent(location.hash.slice(1)) || '/';
  const main = document.getElementById('main');
  for (const link of document.querySelectorAll('.apps a')) {
    const target = link.getAttribute('href').slice(1);
    if (path.startsWith(target)) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  for (const [pattern, render] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    const page = await render(match.slice(1));
    main.replaceChildren(page);
    const heading = main.querySelector('h1');
    document.title = heading ? `${heading.textContent} — Surge` : 'Surge';
    if (navigated) main.focus();
    navigated = true;
    return;
  }
  main.replaceChildren(el('h1', {}, 'Not found'), el('p', {}, el('a', { href: '#/' }, 'Back to the start')));
}

/** The page for someone who must sign in first. */
function signInFirst(what) {
  return el('section', {}, el('h1', {}, 'Sign in first'),
    el('p', {}, `You need to be signed in to ${what}. `,
      el('a', { href: '#/login?next=' + encodeURIComponent(location.hash.slice(1)) }, 'Log in or sign up')));
}

// ---- Account ---------------------------------------------------------------------------------

async function loadMe() {
  const result = await api('GET', '/me');
  me = result.ok ? result.data : null;
  renderAccount();
}

function renderAccount() {
  const box = document.getElementById('account');
  if (me) {
    box.replaceChildren(el('span', {}, 'Signed in as ', el('strong', { id: 'whoami' }, me.nickname)),
      el('button', { type: 'button', id: 'logout', onclick: logout }, 'Log out'));
  } else {
    box.replaceChildren(el('a', { href: '#/login', id: 'login-link' }, 'Log in / sign up'));
  }
}

async function logout() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  await api('POST', '/auth/logout', { refresh_token: token || 'none' });
  sessionStorage.removeItem(REFRESH_KEY);
  me = null;
  renderAccount();
  toast('Logged out');
  go('/');
}

async function signedIn(session) {
  sessionStorage.setItem(REFRESH_KEY, session.refresh_token);
  me = session.user;
  renderAccount();
  const next = new URLSearchParams(location.hash.split('?')[1] || '').get('next');
  toast(`Welcome, ${me.nickname}`);
  go(next && next.startsWith('/') ? next : '/');
}

route(/^\/login(?:\?.*)?$/, () => {
  const login = form({ id: 'login-form', 'aria-labelledby': 'login-title' }, [
    field('Email', { name: 'email', type: 'email', required: true, autocomplete: 'username' }),
    field('Password', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
  ], 'Log in', async (v) => {
    const result = await api('POST', '/auth/login', { email: v.email, password: v.password });
    if (!result.ok) return result;
    await signedIn(result.data);
  });
  const signup = form({ id: 'signup-form', 'aria-labelledby': 'signup-title' }, [
    field('Email', { name: 'email', type: 'email', required: true, autocomplete: 'email' }),
    field('Nickname (1–10 characters)', { name: 'nickname', required: true, maxlength: 10 }),
    field('Password (8–128 characters)', { name: 'password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }),
  ], 'Sign up', async (v) => {
    const result = await api('POST', '/auth/signup', v);
    if (!result.ok) return result;
    await signedIn(result.data);
  });
  const phoneInput = el('input', { name: 'phone', type: 'tel', required: true, placeholder: '+821012345678', autocomplete: 'tel' });
  const sms = form({ id: 'sms-form', 'aria-labelledby': 'sms-title' }, [
    el('label', {}, 'Phone (international format)', phoneInput),
    el('div', { class: 'row' },
      el('button', { type: 'button', class: 'secondary', id: 'sms-send', onclick: async () => {
        const result = await api('POST', '/auth/sms/code', { phone: phoneInput.value });
        toast(result.ok ? 'Code sent' : problem(result));
      } }, 'Send me a code')),
    field('Code (6 digits)', { name: 'code', inputmode: 'numeric', pattern: '[0-9]{6}', required: true, autocomplete: 'one-time-code' }),
  ], 'Log in with the code', async (v) => {
    const result = await api('POST', '/auth/sms/login', { phone: v.phone, code: v.code });
    if (!result.ok) return result;
    await signedIn(result.data);
  });
  return el('section', {}, el('h1', {}, 'Log in or sign up'),
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h2', { id: 'login-title' }, 'Log in'), login),
      el('div', { class: 'card' }, el('h2', { id: 'signup-title' }, 'New here? Sign up'), signup),
      el('div', { class: 'card' }, el('h2', { id: 'sms-title' }, 'Log in with an SMS code'), sms)));
});

route(/^\/?$/, () => el('section', {},
  el('h1', {}, 'Surge'),
  el('p', {}, 'Five apps for the moments when everyone wants the same thing at once.'),
  el('div', { class: 'grid' },
    [['#/auctions', 'Auctions', 'Bid live; the last seconds extend when someone bids late.'],
     ['#/cinema', 'Cinema', 'Pick your seats on the map of the hall.'],
     ['#/deals', 'Deals', 'Last-minute deals from stores near you.'],
     ['#/ratings', 'Ratings', 'How hard is that LeetCode problem, really?'],
     ['#/social', 'Social', 'Write, publish, and see what everyone likes.']]
      .map(([href, name, text]) => el('a', { class: 'card', href }, el('h2', {}, name), el('p', { class: 'muted' }, text))))));
