// Starts a real `bcast-local serve` (with its own private redis-server) for the tests, and
// talks to its backend routes the way an application's backend would.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The bcast-local binary: $BCAST_LOCAL_BIN, else the workspace's debug build. */
export const binary = process.env.BCAST_LOCAL_BIN ?? path.join(repo, 'target/debug/bcast-local');

/**
 * A running `bcast-local serve --port 0`.
 * @param {Record<string, string>} [env]  Extra environment (BCAST_MAX_EVENTS, ...).
 */
export async function startServer(env = {}) {
  // Only the settings a test asks for: none of the machine's bcast variables leak in.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !/^(REDIS_|BCAST_|LOGIN_|CLIENT_KEY|ROTATION|HEARTBEAT_|PRESENCE_|RATE_LIMIT|SESSION_|RUST_LOG)/.test(name),
    ),
  );
  const childEnv = { ...inherited, RUST_LOG: 'warn', ...env };
  const child = spawn(binary, ['serve', '--port', '0'], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bcast-local did not start:\n${stderr}`)), 20000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/listening on (http:\/\/\S+)/);
      if (m && stdout.includes('Press Ctrl-C')) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bcast-local exited with ${code}:\n${stderr}`));
    });
  });
  const redisPort = Number(stdout.match(/redis-server on 127\.0\.0\.1:(\d+)/)?.[1] ?? 0);

  /** @param {string} method @param {string} p @param {unknown} [body] */
  async function backend(method, p, body) {
    const response = await fetch(url + p, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
  }

  return {
    url,
    redisPort,
    stdout: () => stdout,
    stderr: () => stderr,
    /** A login token, as the application's backend would mint it. */
    async token(client, accountId, ttl) {
      const r = await backend('POST', '/_local/token', { client, account_id: accountId, ...(ttl ? { ttl } : {}) });
      if (r.status !== 201) throw new Error(`token: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.token;
    },
    /** POST /publish with one event or a batch. */
    async publish(body) {
      const r = await backend('POST', '/publish', body);
      if (r.status !== 200) throw new Error(`publish: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.results;
    },
    presence: (client, accountId) => backend('GET', `/presence/${client}/${accountId}`),
    revokeAll: (client, accountId) => backend('DELETE', `/sessions/${client}/${accountId}`),
    /** Stops the server the way Ctrl-C does; resolves with its exit. */
    async stop(signal = 'SIGINT') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Whether something accepts TCP connections on the loopback `port`. */
export function listening(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Sends one raw command to a Redis on the loopback `port` (e.g. SHUTDOWN NOSAVE). */
export function redisCommand(port, line) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(`${line}\r\n`));
    socket.setTimeout(2000, () => socket.destroy());
    socket.on('data', () => socket.end());
    socket.on('close', () => resolve(undefined));
    socket.on('error', () => resolve(undefined));
  });
}

/** Resolves when `check()` is true, or rejects after `ms`. */
export async function until(check, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let counter = 0;
/** A fresh account id, so tests sharing a server never see each other's events. */
export function accountId(prefix = 'acct') {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Date.now() % 100000}`;
}
