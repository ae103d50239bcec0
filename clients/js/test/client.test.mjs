// The JS client against a real `bcast-local serve` (and its real redis-server).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { BcastClient, BcastError, parseRetryAfter } from '../bcast.js';
import { startServer, accountId, until, listening, redisCommand } from './server.mjs';

/** A fetch that records every request the client sends. */
function recordingFetch(calls, inner = fetch) {
  return async (url, init) => {
    calls.push({ url: String(url), method: init?.method ?? 'GET', at: Date.now(), auth: init?.headers?.authorization });
    return inner(url, init);
  };
}

describe('with default settings', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  test('logs in, receives published events in order, and rotates the key on every request', async () => {
    const account = accountId();
    const received = [];
    const calls = [];
    const client = new BcastClient({
      baseUrl: server.url,
      pollInterval: 100,
      fetch: recordingFetch(calls),
      onEvents: (events) => received.push(...events),
    });
    const session = await client.login(await server.token('wp', account));
    assert.equal(session.account_id, account);
    assert.equal(session.client, 'wp');
    assert.equal('client_key' in session, false, 'the key stays inside the client');
    assert.equal(client.loggedIn, true);
    client.start();
    await server.publish({ events: [1, 2, 3].map((n) => ({ client: 'wp', account_id: account, data: { n } })) });
    await until(() => received.length >= 3, 5000, 'three events');
    await client.stop();
    assert.deepEqual(received.map((e) => e.data.n), [1, 2, 3]);
    assert.equal(client.cursor, received[2].cursor);
    // Each answer named a new key and the client moved on to it: only requests that overlapped
    // (the poll and heartbeat loops starting together) shared one.
    const keys = calls.filter((c) => !c.url.endsWith('/login')).map((c) => c.auth);
    const distinct = new Set(keys).size;
    assert.ok(distinct >= 2, `${distinct} keys over ${keys.length} requests`);
    assert.ok(keys.length - distinct <= 2, `${keys.length} requests with ${distinct} keys`);
    assert.equal(client.rotations, distinct);
    // Another client of the same account does not see another account's events.
    const other = new BcastClient({ baseUrl: server.url });
    await other.login(await server.token('wp', accountId()), { since: null });
    assert.deepEqual((await other.poll()).events, []);
  });

  test('without a cursor it reads the retained history, with one it resumes after it', async () => {
    const account = accountId();
    const [first] = await server.publish({ client: 'api', account_id: account, data: 'a' });
    await server.publish({ client: 'api', account_id: account, data: 'b' });
    const client = new BcastClient({ baseUrl: server.url });
    await client.login(await server.token('api', account), { since: null });
    const page = await client.poll();
    assert.deepEqual(page.events.map((e) => e.data), ['a', 'b']);
    assert.equal(page.missed, false);
    const resumed = new BcastClient({ baseUrl: server.url });
    await resumed.login(await server.token('api', account), { since: first.cursor });
    assert.deepEqual((await resumed.poll()).events.map((e) => e.data), ['b']);
    const fromNow = new BcastClient({ baseUrl: server.url });
    await fromNow.login(await server.token('api', account));
    assert.deepEqual((await fromNow.poll()).events, []);
  });

  test('overlapping requests share one successor key and the session goes on', async () => {
    const account = accountId();
    const calls = [];
    const client = new BcastClient({ baseUrl: server.url, fetch: recordingFetch(calls) });
    await client.login(await server.token('wp', account));
    // Three requests leave with the same key before any answer comes back.
    const results = await Promise.all([client.heartbeat(), client.heartbeat(), client.poll()]);
    assert.equal(results.length, 3);
    const sent = calls.slice(1).map((c) => c.auth);
    assert.equal(new Set(sent).size, 1, 'the overlapping requests used one key');
    assert.equal(client.rotations, 1, 'all three answers named the same successor');
    // The successor works, again and again.
    await server.publish({ client: 'wp', account_id: account, data: 'after' });
    assert.deepEqual((await client.poll()).events.map((e) => e.data), ['after']);
    assert.equal((await client.heartbeat()).pending, 0);
    assert.equal(client.rotations, 3);
  });

  test('concurrent polls are one request, so no event is delivered twice', async () => {
    const account = accountId();
    const received = [];
    const client = new BcastClient({ baseUrl: server.url, onEvents: (e) => received.push(...e) });
    await client.login(await server.token('wp', account));
    await server.publish({ client: 'wp', account_id: account, data: 1 });
    const [a, b] = await Promise.all([client.poll(), client.poll()]);
    assert.equal(a, b);
    assert.equal(received.length, 1);
  });

  test('a revoked session ends the client and stops its loops', async () => {
    const account = accountId();
    let ended = null;
    const calls = [];
    const client = new BcastClient({
      baseUrl: server.url,
      pollInterval: 50,
      fetch: recordingFetch(calls),
      onSessionEnd: (e) => {
        ended = e;
      },
    });
    await client.login(await server.token('app', account));
    client.start();
    await until(() => client.rotations >= 1, 3000, 'a first rotation');
    assert.equal((await server.revokeAll('app', account)).status, 204);
    await until(() => ended !== null, 3000, 'the session end');
    assert.ok(ended instanceof BcastError);
    assert.equal(ended.status, 401);
    assert.equal(ended.code, 'client_key_invalid');
    assert.equal(client.loggedIn, false);
    await until(() => !client.running, 1000, 'the loops to stop');
    const count = calls.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(calls.length, count, 'no request after the session ended');
    await assert.rejects(client.poll(), (e) => e.code === 'not_logged_in');
    await client.stop();
  });

  test('stop waits for requests in flight, sends nothing after, and can log out', async () => {
    const account = accountId();
    const calls = [];
    const client = new BcastClient({ baseUrl: server.url, pollInterval: 20, fetch: recordingFetch(calls) });
    await client.login(await server.token('wp', account));
    client.start();
    await until(() => calls.length >= 4, 3000, 'some polling');
    await client.stop({ logout: true });
    assert.equal(calls.at(-1).url.endsWith('/logout'), true);
    assert.equal(client.loggedIn, false);
    const count = calls.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(calls.length, count);
    const presence = await server.presence('wp', account);
    assert.equal(presence.status, 200);
    assert.equal(presence.body.online, 0, 'the logged-out session is not online');
  });

  test('login errors carry the problem code', async () => {
    const client = new BcastClient({ baseUrl: server.url });
    await assert.rejects(client.login('not-a-token'), (e) => {
      assert.ok(e instanceof BcastError);
      assert.equal(e.status, 401);
      assert.equal(e.code, 'unauthorized');
      assert.equal(e.sessionOver, true);
      return true;
    });
    assert.throws(() => client.start(), (e) => e.code === 'not_logged_in');
  });
});

test('reports missed events so the app can resync', async () => {
  const server = await startServer({ BCAST_MAX_EVENTS: '3' });
  try {
    const account = accountId();
    const missed = [];
    const client = new BcastClient({ baseUrl: server.url, onMissed: (p) => missed.push(p) });
    await client.login(await server.token('wp', account));
    await server.publish({ client: 'wp', account_id: account, data: 0 });
    let page = await client.poll();
    assert.equal(page.missed, false);
    assert.deepEqual(page.events.map((e) => e.data), [0]);
    // Five more while the client is away: two of them are trimmed before it comes back.
    await server.publish({ events: [1, 2, 3, 4, 5].map((n) => ({ client: 'wp', account_id: account, data: n })) });
    page = await client.poll();
    assert.equal(page.missed, true);
    assert.deepEqual(page.events.map((e) => e.data), [3, 4, 5]);
    assert.equal(missed.length, 1);
    // Caught up: nothing is missed any more.
    page = await client.poll();
    assert.equal(page.missed, false);
    assert.equal(missed.length, 1);
  } finally {
    await server.stop();
  }
});

test('heartbeats at the interval the server gives, and fetches at once when events are pending', async () => {
  const server = await startServer({ HEARTBEAT_INTERVAL_SECS: '1' });
  try {
    const account = accountId();
    const beats = [];
    const received = [];
    const client = new BcastClient({
      baseUrl: server.url,
      pollInterval: 60000,
      onHeartbeat: (b) => beats.push({ ...b, at: Date.now() }),
      onEvents: (e) => received.push(...e),
    });
    const session = await client.login(await server.token('wp', account));
    assert.equal(session.heartbeat_interval, 1);
    client.start();
    await until(() => beats.length >= 1, 3000, 'a first heartbeat');
    const online = await server.presence('wp', account);
    assert.equal(online.body.online, 1);
    await server.publish({ client: 'wp', account_id: account, data: 'pending' });
    // The poll interval is a minute; the heartbeat sees the pending event and wakes the poll.
    await until(() => received.length === 1, 3000, 'the pending event');
    await until(() => beats.length >= 3, 4000, 'three heartbeats');
    await client.stop();
    const gaps = beats.slice(1).map((b, i) => b.at - beats[i].at);
    for (const gap of gaps) assert.ok(gap >= 900 && gap < 2000, `heartbeat gap ${gap} ms`);
    assert.ok(beats.some((b) => b.pending >= 1));
  } finally {
    await server.stop();
  }
});

test('on 429 it reports rate_limited and sends nothing until Retry-After has passed', async () => {
  const server = await startServer({ RATE_LIMIT_PER_MIN: '3' });
  try {
    const calls = [];
    const errors = [];
    const client = new BcastClient({
      baseUrl: server.url,
      pollInterval: 10,
      fetch: recordingFetch(calls),
      onError: (e) => errors.push(e),
    });
    await client.login(await server.token('wp', accountId()));
    let limited = null;
    for (let i = 0; i < 10 && !limited; i += 1) {
      try {
        await client.poll();
      } catch (e) {
        limited = e;
      }
    }
    assert.ok(limited, 'the server rate-limited the session');
    assert.equal(limited.status, 429);
    assert.equal(limited.code, 'rate_limited');
    assert.ok(limited.retryAfter >= 1, `retryAfter ${limited.retryAfter}`);
    assert.equal(errors.at(-1), limited);
    // While the server said to wait, the loops send nothing, and stop() does not hang.
    const count = calls.length;
    client.start();
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(calls.length, count, 'a request went out during Retry-After');
    const started = Date.now();
    await client.stop();
    assert.ok(Date.now() - started < 500, 'stop waited for the backoff');
  } finally {
    await server.stop();
  }
});

test('honours Retry-After before retrying', async () => {
  const server = await startServer();
  try {
    const calls = [];
    let first = true;
    // The real server behind one synthetic 503 with Retry-After: 1.
    const flaky = async (url, init) => {
      if (first && String(url).includes('/broadcasts')) {
        first = false;
        return new Response(JSON.stringify({ code: 'unavailable', status: 503 }), {
          status: 503,
          headers: { 'retry-after': '1', 'content-type': 'application/problem+json' },
        });
      }
      return fetch(url, init);
    };
    const client = new BcastClient({ baseUrl: server.url, pollInterval: 10, fetch: recordingFetch(calls, flaky) });
    await client.login(await server.token('wp', accountId()));
    client.start();
    await until(() => calls.filter((c) => c.url.includes('/broadcasts')).length >= 2, 4000, 'a retry');
    await client.stop();
    const polls = calls.filter((c) => c.url.includes('/broadcasts'));
    const wait = polls[1].at - polls[0].at;
    assert.ok(wait >= 950, `retried after ${wait} ms`);
    assert.ok(wait < 2500, `retried after ${wait} ms`);
  } finally {
    await server.stop();
  }
});

test('backs off while Redis is down, then stops cleanly', async () => {
  const server = await startServer();
  try {
    const calls = [];
    const errors = [];
    const client = new BcastClient({
      baseUrl: server.url,
      pollInterval: 10,
      fetch: recordingFetch(calls),
      onError: (e) => errors.push(e),
    });
    await client.login(await server.token('wp', accountId()));
    assert.ok(server.redisPort > 0);
    await redisCommand(server.redisPort, 'SHUTDOWN NOSAVE');
    await until(async () => !(await listening(server.redisPort)), 3000, 'redis to stop');
    client.start();
    await new Promise((r) => setTimeout(r, 2500));
    await client.stop();
    assert.ok(errors.length >= 1);
    assert.ok(errors.every((e) => e.status === 503 && e.code === 'unavailable' && e.retryAfter === 1), JSON.stringify(errors));
    // Two loops, Retry-After 1 s, 2.5 s: a handful of requests, not a hot loop (10 ms polling).
    const sent = calls.length - 1;
    assert.ok(sent >= 2 && sent <= 8, `${sent} requests while Redis was down`);
  } finally {
    await server.stop();
  }
});

test('Ctrl-C stops bcast-local and its private redis-server', async () => {
  const server = await startServer();
  assert.equal(await listening(server.redisPort), true);
  const { code } = await server.stop('SIGINT');
  assert.equal(code, 0);
  assert.equal(await listening(server.redisPort), false);
  assert.match(server.stderr(), /private redis-server is stopped/);
});

test('with rotation off the key stays and nothing counts as a rotation', async () => {
  const server = await startServer({ ROTATION: 'off' });
  try {
    const calls = [];
    const client = new BcastClient({ baseUrl: server.url, fetch: recordingFetch(calls) });
    const account = accountId();
    await client.login(await server.token('wp', account));
    await server.publish({ client: 'wp', account_id: account, data: 'x' });
    assert.deepEqual((await client.poll()).events.map((e) => e.data), ['x']);
    await client.heartbeat();
    await client.poll();
    assert.equal(client.rotations, 0);
    assert.equal(new Set(calls.slice(1).map((c) => c.auth)).size, 1);
  } finally {
    await server.stop();
  }
});

test('a lost answer is retried with the same key, and the grace period keeps the session and the event', async () => {
  const server = await startServer();
  try {
    const calls = [];
    let drop = true;
    // The first poll reaches the server (which reads the event and rotates the key), but its
    // answer is lost on the way back.
    const lossy = async (url, init) => {
      const response = await fetch(url, init);
      if (drop && String(url).includes('/broadcasts')) {
        drop = false;
        throw new TypeError('fetch failed');
      }
      return response;
    };
    const errors = [];
    const client = new BcastClient({ baseUrl: server.url, fetch: recordingFetch(calls, lossy), onError: (e) => errors.push(e) });
    const account = accountId();
    await client.login(await server.token('wp', account));
    await server.publish({ client: 'wp', account_id: account, data: 'kept' });
    await assert.rejects(client.poll(), (e) => e.code === 'network' && e.status === 0 && e.transient);
    assert.equal(errors[0].code, 'network');
    const page = await client.poll();
    assert.deepEqual(page.events.map((e) => e.data), ['kept'], 'the event read by the lost answer comes again');
    const polls = calls.filter((c) => c.url.includes('/broadcasts'));
    assert.equal(polls[1].auth, polls[0].auth, 'the retry carried the same key');
    assert.equal(client.rotations, 1);
    await client.heartbeat();
    assert.equal(client.loggedIn, true);
    assert.equal(client.rotations, 2);
  } finally {
    await server.stop();
  }
});

test('parseRetryAfter reads seconds and dates', () => {
  assert.equal(parseRetryAfter('7'), 7);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter('soon'), null);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:00 GMT', now + 9000), 0);
});
