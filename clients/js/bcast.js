// @ts-check
/**
 * bcast JS client: a dependency-free ES module for browsers and Node (18+).
 *
 * It logs in with a login token from your backend, polls `GET /broadcasts` from its cursor,
 * follows client key rotation (requests that overlap share one successor key, as the server's
 * grace period allows), heartbeats at the interval the server gives, backs off on 429/503
 * honouring `Retry-After`, reports `missed` so the app can resync, and stops cleanly.
 *
 * The client key is kept in memory only and never logged.
 *
 * @example
 *   import { BcastClient } from './bcast.js';
 *   const client = new BcastClient({
 *     baseUrl: 'http://127.0.0.1:3000',
 *     onEvents: (events) => events.forEach((e) => console.log(e.data)),
 *     onMissed: () => reloadFromMyBackend(),
 *   });
 *   await client.login(loginTokenFromMyBackend);
 *   client.start();
 *   // ...
 *   await client.stop({ logout: true });
 */

/**
 * One event of an account.
 * @typedef {Object} BcastEvent
 * @property {string} id      The event's id (the publisher's idempotency id, or a generated one).
 * @property {string} cursor  Opaque; pass it as `since` to get what came after.
 * @property {number} ts      Unix seconds (fractional) when the server stored it.
 * @property {unknown} data   What the backend published.
 */

/**
 * One answer of `GET /broadcasts`, without the client key.
 * @typedef {Object} Page
 * @property {BcastEvent[]} events  Oldest first.
 * @property {string|null} cursor   The cursor to continue from.
 * @property {boolean} more         The limit cut the answer: there is more to fetch now.
 * @property {boolean} missed       Events newer than the cursor were lost (trimmed or expired).
 * @property {number} expires_in    Seconds the session lives without another request.
 */

/**
 * One answer of `POST /heartbeat`, without the client key.
 * @typedef {Object} Heartbeat
 * @property {number} heartbeat_interval  Seconds until the next heartbeat is due.
 * @property {string|null} latest         The newest event's cursor.
 * @property {number} pending             Retained events newer than the client's cursor.
 * @property {number} expires_in
 */

/**
 * The answer of `POST /login`, without the client key.
 * @typedef {Object} Session
 * @property {string} client
 * @property {string} account_id
 * @property {string|null} cursor          The newest event's cursor at login.
 * @property {number} heartbeat_interval   Seconds.
 * @property {number} expires_in
 */

/**
 * @typedef {Object} BcastOptions
 * @property {string} [baseUrl]          Where the API is; '' (default) is the page's own origin.
 * @property {typeof fetch} [fetch]      The fetch to use (default: the global one).
 * @property {number} [pollInterval]     Milliseconds between fetches when idle (default 2000).
 * @property {number} [limit]            Events per fetch (default: the server's maximum).
 * @property {number} [requestTimeout]   Milliseconds before a request is abandoned (default 5000: keep it
 *   well under the server's rotation grace period, 10 s by default, so a retry of an abandoned
 *   request still gets the same successor key).
 * @property {number} [maxBackoff]       Longest wait after failures, in ms (default 30000).
 * @property {(events: BcastEvent[], page: Page) => void} [onEvents]  New events, oldest first.
 * @property {(page: Page) => void} [onMissed]   Some events were lost: resync from your backend.
 * @property {(beat: Heartbeat) => void} [onHeartbeat]
 * @property {(info: {rotations: number}) => void} [onKeyRotated]  The client key changed.
 * @property {(error: BcastError) => void} [onError]     A request failed; the loops retry.
 * @property {(error: BcastError) => void} [onSessionEnd] The session is over: log in again.
 */

/** Error codes that end the session whichever key the request carried. */
const SESSION_OVER = new Set(['client_key_reused', 'session_expired']);

/** A failed request: the server's problem+json, or a network failure (`status` 0). */
export class BcastError extends Error {
  /**
   * @param {{status: number, code: string, detail?: string, retryAfter?: number|null}} init
   */
  constructor({ status, code, detail, retryAfter = null }) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = 'BcastError';
    /** HTTP status, or 0 when no answer came. */
    this.status = status;
    /** The stable `code` of the problem (`rate_limited`, `unavailable`, ...), or `network`. */
    this.code = code;
    /** Seconds the server asked to wait (`Retry-After`), or null. */
    this.retryAfter = retryAfter;
  }

  /** Whether the session is over and a new login is needed. */
  get sessionOver() {
    return this.status === 401;
  }

  /** Whether waiting and trying again can succeed. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status === 503 || this.status >= 500;
  }
}

/**
 * Seconds from a `Retry-After` value (delta-seconds or an HTTP date), or null.
 * @param {string|null} value
 * @param {number} [now]
 * @returns {number|null}
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value.trim() === '') return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/** A sleep that `wake()` ends early. */
class Sleeper {
  constructor() {
    /** @type {Set<() => void>} */
    this.waiting = new Set();
  }

  /** @param {number} ms */
  sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve(undefined);
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waiting.add(done);
    });
  }

  wake() {
    for (const done of [...this.waiting]) done();
  }
}

export class BcastClient {
  /** @type {string|null} */ #key = null;
  /** @type {string|null} */ #cursor = null;
  #rotations = 0;
  #heartbeatInterval = 30;
  #running = false;
  #failures = 0;
  /** Requests wait until this time (ms since the epoch): the server's Retry-After. */
  #holdUntil = 0;
  /** @type {Promise<Page>|null} */ #pollInFlight = null;
  /** @type {Promise<void>[]} */ #loops = [];
  #pollSleep = new Sleeper();
  #beatSleep = new Sleeper();
  #holdSleep = new Sleeper();
  /** @type {Required<Pick<BcastOptions, 'baseUrl'|'pollInterval'|'requestTimeout'|'maxBackoff'>> & BcastOptions} */
  #options;
  /** @type {typeof fetch} */ #fetch;

  /** @param {BcastOptions} [options] */
  constructor(options = {}) {
    this.#options = {
      baseUrl: '',
      pollInterval: 2000,
      requestTimeout: 5000,
      maxBackoff: 30000,
      ...options,
    };
    this.#options.baseUrl = this.#options.baseUrl.replace(/\/+$/, '');
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('no fetch available: pass options.fetch');
    this.#fetch = options.fetch ? f : f.bind(globalThis);
  }

  /** Whether the client holds a session. */
  get loggedIn() {
    return this.#key !== null;
  }

  /** Whether `start()` loops are running. */
  get running() {
    return this.#running;
  }

  /** The cursor the next fetch starts after (null: from the oldest retained event). */
  get cursor() {
    return this.#cursor;
  }

  /** How many times the client key has changed since login. */
  get rotations() {
    return this.#rotations;
  }

  /**
   * A short fingerprint of the current client key (8 hex digits of its SHA-256), to show that
   * it rotates without showing the key. Null when logged out or without WebCrypto.
   * @returns {Promise<string|null>}
   */
  async keyFingerprint() {
    const key = this.#key;
    const subtle = globalThis.crypto?.subtle;
    if (!key || !subtle) return null;
    const digest = await subtle.digest('SHA-256', new TextEncoder().encode(key));
    return [...new Uint8Array(digest).slice(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  /** Seconds between heartbeats, as the server last said. */
  get heartbeatInterval() {
    return this.#heartbeatInterval;
  }

  /**
   * Logs in with a login token minted by your backend.
   * @param {string} loginToken
   * @param {{since?: string|null}} [options]  Where to start reading: omitted = from now (the
   *   login's cursor), null = every retained event, a cursor = after it (resuming).
   * @returns {Promise<Session>}
   */
  async login(loginToken, options = {}) {
    const data = await this.#request('POST', '/login', loginToken);
    this.#key = data.client_key;
    this.#rotations = 0;
    this.#heartbeatInterval = data.heartbeat_interval ?? this.#heartbeatInterval;
    this.#cursor = 'since' in options ? options.since ?? null : data.cursor ?? null;
    const { client_key: _, ...session } = data;
    return session;
  }

  /**
   * Fetches the events after the cursor once, advances the cursor and calls `onMissed` and
   * `onEvents`. Calls made while one is in flight share it, so no event is delivered twice.
   * @returns {Promise<Page>}
   */
  poll() {
    if (!this.#pollInFlight) {
      this.#pollInFlight = this.#pollOnce().finally(() => {
        this.#pollInFlight = null;
      });
    }
    return this.#pollInFlight;
  }

  async #pollOnce() {
    const params = new URLSearchParams();
    if (this.#cursor) params.set('since', this.#cursor);
    if (this.#options.limit) params.set('limit', String(this.#options.limit));
    const query = params.toString();
    const data = await this.#authed('GET', `/broadcasts${query ? `?${query}` : ''}`);
    const { client_key: _, ...page } = data;
    this.#cursor = page.cursor ?? this.#cursor;
    if (page.missed) this.#emit('onMissed', page);
    if (page.events.length > 0) this.#emit('onEvents', page.events, page);
    return /** @type {Page} */ (page);
  }

  /**
   * Sends one heartbeat: keeps the session alive and online, and says what is pending.
   * @returns {Promise<Heartbeat>}
   */
  async heartbeat() {
    const body = this.#cursor ? { cursor: this.#cursor } : undefined;
    const data = await this.#authed('POST', '/heartbeat', body);
    const { client_key: _, ...beat } = data;
    if (beat.heartbeat_interval > 0) this.#heartbeatInterval = beat.heartbeat_interval;
    this.#emit('onHeartbeat', beat);
    return /** @type {Heartbeat} */ (beat);
  }

  /** Ends the session on the server and forgets the key. */
  async logout() {
    if (!this.#key) return;
    try {
      await this.#authed('POST', '/logout');
    } catch (e) {
      if (!(e instanceof BcastError) || !e.sessionOver) throw e;
    } finally {
      this.#key = null;
    }
  }

  /** Starts polling and heartbeating in the background until `stop()` or the session ends. */
  start() {
    if (this.#running) return;
    if (!this.#key) throw new BcastError({ status: 401, code: 'not_logged_in', detail: 'log in first' });
    this.#running = true;
    this.#failures = 0;
    this.#loops = [this.#pollLoop(), this.#heartbeatLoop()];
  }

  /**
   * Stops the loops, waits for requests in flight to finish (so no rotated key is lost), and
   * optionally logs out.
   * @param {{logout?: boolean}} [options]
   */
  async stop(options = {}) {
    this.#running = false;
    this.#pollSleep.wake();
    this.#beatSleep.wake();
    this.#holdSleep.wake();
    await Promise.allSettled(this.#loops);
    this.#loops = [];
    if (options.logout) await this.logout();
  }

  async #pollLoop() {
    while (this.#running) {
      let delay = this.#options.pollInterval;
      try {
        const page = await this.poll();
        this.#failures = 0;
        if (page.more) delay = 0;
      } catch (e) {
        if (!this.#running || this.#ended(e)) break;
        delay = this.#backoff(e);
      }
      if (!this.#running) break;
      await this.#pollSleep.sleep(delay);
    }
  }

  async #heartbeatLoop() {
    while (this.#running) {
      let delay = this.#heartbeatInterval * 1000;
      try {
        const beat = await this.heartbeat();
        this.#failures = 0;
        delay = beat.heartbeat_interval * 1000;
        // Something is waiting: fetch it now rather than at the next poll.
        if (beat.pending > 0) this.#pollSleep.wake();
      } catch (e) {
        if (!this.#running || this.#ended(e)) break;
        delay = Math.min(delay, this.#backoff(e));
      }
      if (!this.#running) break;
      await this.#beatSleep.sleep(delay);
    }
  }

  /** @param {unknown} e */
  #ended(e) {
    if (e instanceof BcastError && e.sessionOver) {
      this.#running = false;
      this.#pollSleep.wake();
      this.#beatSleep.wake();
      return true;
    }
    return false;
  }

  /**
   * How long to wait after a failure: the server's Retry-After when it gave one, else an
   * exponential backoff with jitter.
   * @param {unknown} e
   */
  #backoff(e) {
    this.#failures += 1;
    const exp = Math.min(this.#options.maxBackoff, 500 * 2 ** Math.min(this.#failures - 1, 16));
    const jittered = exp / 2 + Math.random() * (exp / 2);
    if (e instanceof BcastError && e.retryAfter != null) {
      return Math.max(e.retryAfter * 1000, Math.min(jittered, 1000));
    }
    return jittered;
  }

  /**
   * A request with the current client key; follows the rotation. When requests overlap with
   * the same key, the server gives them the same successor (within its grace period): only the
   * first answer for the current key moves the key on, later ones for an older key are ignored.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async #authed(method, path, body) {
    const used = this.#key;
    if (!used) throw new BcastError({ status: 401, code: 'not_logged_in', detail: 'log in first' });
    try {
      const data = await this.#request(method, path, used, body);
      const next = data?.client_key;
      if (typeof next === 'string' && this.#key === used && next !== used) {
        this.#key = next;
        this.#rotations += 1;
        this.#emit('onKeyRotated', { rotations: this.#rotations });
      }
      return data;
    } catch (e) {
      if (e instanceof BcastError && e.sessionOver && (this.#key === used || SESSION_OVER.has(e.code))) {
        if (this.#key !== null) {
          this.#key = null;
          this.#emit('onSessionEnd', e);
        }
      }
      throw e;
    }
  }

  /**
   * One HTTP request. Waits out a Retry-After first; turns every failure into a BcastError.
   * @param {string} method
   * @param {string} path
   * @param {string} credential
   * @param {unknown} [body]
   */
  async #request(method, path, credential, body) {
    const fromLoop = this.#running;
    while (Date.now() < this.#holdUntil) {
      await this.#holdSleep.sleep(this.#holdUntil - Date.now());
      if (fromLoop && !this.#running) {
        throw new BcastError({ status: 0, code: 'stopped', detail: 'the client was stopped' });
      }
    }
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json', authorization: `Bearer ${credential}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await this.#fetch(this.#options.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#options.requestTimeout),
      });
    } catch (e) {
      const error = new BcastError({
        status: 0,
        code: 'network',
        detail: e instanceof Error ? e.message : String(e),
      });
      this.#emit('onError', error);
      throw error;
    }
    const text = await response.text().catch(() => '');
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
      if (retryAfter != null && (response.status === 429 || response.status === 503)) {
        this.#holdUntil = Math.max(this.#holdUntil, Date.now() + retryAfter * 1000);
      }
      const error = new BcastError({
        status: response.status,
        code: data?.code ?? `http_${response.status}`,
        detail: data?.detail,
        retryAfter,
      });
      this.#emit('onError', error);
      throw error;
    }
    return data;
  }

  /**
   * Calls an app callback; an exception in it never breaks the client.
   * @param {'onEvents'|'onMissed'|'onHeartbeat'|'onKeyRotated'|'onError'|'onSessionEnd'} name
   * @param {...any} args
   */
  #emit(name, ...args) {
    const callback = this.#options[name];
    if (typeof callback !== 'function') return;
    try {
      /** @type {Function} */ (callback)(...args);
    } catch (e) {
      if (name !== 'onError') {
        this.#emit('onError', new BcastError({ status: 0, code: 'callback', detail: String(e) }));
      }
    }
  }
}
