// The bcast-local demo page: the JS client (served at /bcast.js) in a browser.
import { BcastClient } from '/bcast.js';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  status: $('status'),
  missed: $('missed'),
  client: /** @type {HTMLSelectElement} */ ($('client')),
  account: /** @type {HTMLInputElement} */ ($('account')),
  login: /** @type {HTMLButtonElement} */ ($('login')),
  logout: /** @type {HTMLButtonElement} */ ($('logout')),
  publish: /** @type {HTMLButtonElement} */ ($('publish')),
  data: /** @type {HTMLTextAreaElement} */ ($('data')),
  publishResult: $('publish-result'),
  key: $('key'),
  rotations: $('rotations'),
  heartbeat: $('heartbeat'),
  heartbeatEvery: $('heartbeat-every'),
  presence: $('presence'),
  cursor: $('cursor'),
  events: $('events'),
  count: $('count'),
  log: $('log'),
};

/** @type {BcastClient|null} */
let client = null;
/** @type {{client: string, account: string}|null} */
let who = null;
let received = 0;
/** @type {ReturnType<typeof setInterval>|null} */
let presenceTimer = null;

const clock = (d = new Date()) => d.toLocaleTimeString([], { hour12: false });

function log(text, error = false) {
  const li = document.createElement('li');
  li.textContent = `${clock()}  ${text}`;
  if (error) li.className = 'error';
  ui.log.prepend(li);
  while (ui.log.children.length > 50) ui.log.lastElementChild?.remove();
}

function setStatus(text, kind = '') {
  ui.status.textContent = text;
  ui.status.className = `pill ${kind}`;
}

async function showKey() {
  ui.key.textContent = (await client?.keyFingerprint()) ?? '—';
  ui.rotations.textContent = String(client?.rotations ?? 0);
  ui.cursor.textContent = client?.cursor ?? '—';
}

function showEvents(events) {
  for (const event of events) {
    received += 1;
    const li = document.createElement('li');
    li.className = 'fresh';
    li.dataset.testid = 'event';
    const time = document.createElement('time');
    time.textContent = clock(new Date(event.ts * 1000));
    const pre = document.createElement('pre');
    pre.textContent = JSON.stringify(event.data);
    li.append(time, pre);
    ui.events.prepend(li);
  }
  while (ui.events.children.length > 100) ui.events.lastElementChild?.remove();
  ui.count.textContent = String(received);
}

async function backend(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${response.status} ${data?.code ?? ''}: ${data?.detail ?? ''}`);
  return data;
}

async function refreshPresence() {
  if (!who) return;
  try {
    const p = await backend('GET', `/presence/${encodeURIComponent(who.client)}/${encodeURIComponent(who.account)}`);
    ui.presence.textContent = `${p.online} session${p.online === 1 ? '' : 's'}`;
  } catch (e) {
    ui.presence.textContent = '?';
    log(`presence: ${e.message}`, true);
  }
}

function loggedOut(text, kind = '') {
  setStatus(text, kind);
  ui.login.disabled = false;
  ui.logout.disabled = true;
  ui.publish.disabled = true;
  if (presenceTimer) clearInterval(presenceTimer);
  presenceTimer = null;
  showKey();
}

async function login(event) {
  event.preventDefault();
  if (client) await client.stop({ logout: true });
  ui.login.disabled = true;
  ui.missed.hidden = true;
  who = { client: ui.client.value, account: ui.account.value.trim() };
  try {
    const { token } = await backend('POST', '/_local/token', { client: who.client, account_id: who.account });
    client = new BcastClient({
      pollInterval: 1000,
      onEvents: (events) => {
        showEvents(events);
        showKey();
      },
      onMissed: () => {
        ui.missed.hidden = false;
        log('missed: some events were trimmed or expired before they were fetched', true);
      },
      onHeartbeat: (beat) => {
        ui.heartbeat.textContent = `${clock()} · ${beat.pending} pending`;
        ui.heartbeat.dataset.beats = String(Number(ui.heartbeat.dataset.beats ?? 0) + 1);
        ui.heartbeatEvery.textContent = `(every ${beat.heartbeat_interval} s)`;
        refreshPresence();
      },
      onKeyRotated: () => showKey(),
      onError: (e) => {
        log(`${e.code}${e.retryAfter != null ? `, retrying in ${e.retryAfter} s` : ''}`, true);
        if (e.status === 429 || e.status === 503) setStatus('backing off', 'waiting');
      },
      onSessionEnd: (e) => {
        log(`session ended: ${e.code}`, true);
        loggedOut('session ended', 'ended');
      },
    });
    const session = await client.login(token);
    client.start();
    log(`logged in as ${session.client}/${session.account_id}`);
    setStatus(`live · ${session.client}/${session.account_id}`, 'live');
    ui.heartbeatEvery.textContent = `(every ${session.heartbeat_interval} s)`;
    ui.logout.disabled = false;
    ui.publish.disabled = false;
    showKey();
    refreshPresence();
    presenceTimer = setInterval(refreshPresence, 3000);
  } catch (e) {
    log(`login failed: ${e.message}`, true);
    loggedOut('logged out');
  }
}

async function logout() {
  ui.logout.disabled = true;
  await client?.stop({ logout: true });
  log('logged out');
  loggedOut('logged out');
  await refreshPresence();
}

async function publish(event) {
  event.preventDefault();
  if (!who) return;
  let data;
  try {
    data = JSON.parse(ui.data.value);
  } catch {
    ui.publishResult.textContent = 'data is not valid JSON';
    return;
  }
  ui.publish.disabled = true;
  try {
    const { results } = await backend('POST', '/publish', { client: who.client, account_id: who.account, data });
    ui.publishResult.textContent = `stored at cursor ${results[0].cursor}`;
    log(`published to ${results[0].key}`);
  } catch (e) {
    ui.publishResult.textContent = e.message;
    log(`publish failed: ${e.message}`, true);
  } finally {
    ui.publish.disabled = !client?.loggedIn;
  }
}

$('login-form').addEventListener('submit', login);
$('publish-form').addEventListener('submit', publish);
ui.logout.addEventListener('click', logout);
$('missed-dismiss').addEventListener('click', () => {
  ui.missed.hidden = true;
});
window.addEventListener('pagehide', () => {
  client?.stop();
});
document.body.dataset.ready = 'true';
