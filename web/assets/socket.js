// The live connection: one multiplexed WebSocket (`/ws/`) for all of the user's rooms, on this
// origin (the single node serves it; behind the chart's Ingress, `/ws` goes to the gateways).
//
// The token travels as the `bearer.<JWT>` subprotocol, out of URLs and logs. The socket
// reconnects by itself: at once after `1012` (a gateway restarting), with growing, jittered
// waits after other drops, and with a fresh token after `4001`. A connection that stops
// answering (a laptop waking up, a NAT that forgot it: no close ever arrives) is given up when
// a ping gets no frame back within `PONG_WAIT_MS`, and one never greeted within
// `GREETING_WAIT_MS`. The gateway closes a connection once the
// access token it was opened with expires, so the token is renewed shortly before and handed to
// it in an `auth` frame (a failed renewal only means reconnecting after the `4001`). Every
// (re)connection fires `ready`, and
// views then fetch what they missed from the last message they hold, so every message is
// shown once, in order.

import { accessToken, accessTokenExpiresAt, forgetAccessToken } from './api.js';

const PING_EVERY_MS = 25_000;
// A connection not greeted within this (its upgrade never answered, a gateway hung behind the
// ingress) is given up: pings go only on an open socket, and the browser waits minutes.
const GREETING_WAIT_MS = 15_000;
const PONG_WAIT_MS = 10_000;
const MAX_WAIT_MS = 10_000;
// The token is renewed this long before it expires (`accessToken` renews within 30 s of it),
// and not more often than every `MIN_RENEW_WAIT_MS`.
const RENEW_BEFORE_MS = 20_000;
const MIN_RENEW_WAIT_MS = 5_000;

/** Live events as DOM events: `frame` (every frame), `ready`, `status` ({online}). */
export class Live extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.stopped = true;
    this.attempts = 0;
    this.timer = null;
    this.pinger = null;
    this.pongTimer = null;
    this.greetingTimer = null;
    this.renewTimer = null;
    this.renewedExpiresAt = 0;
    this.lastFrameAt = 0;
    // Unknown until the first attempt ends: a first connection that fails is news too.
    this.online = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    clearTimeout(this.pongTimer);
    clearTimeout(this.greetingTimer);
    clearTimeout(this.renewTimer);
    this.socket?.close(1000);
    this.socket = null;
  }

  async connect() {
    if (this.stopped) return;
    let token;
    let tokenExpiresAt;
    try {
      token = await accessToken();
      tokenExpiresAt = accessTokenExpiresAt(); // the expiry of this very token (same tick)
    } catch (error) {
      if (error.status === 401) return; // Signed out: the app shows the sign-in page.
      this.retry();
      return;
    }
    if (this.stopped || this.socket) return; // Stopped, or another attempt won, meanwhile.
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/ws/`, [`bearer.${token}`]);
    this.socket = socket;
    // The token this connection last presented: the one a refusal is about.
    this.presented = token;
    clearTimeout(this.greetingTimer);
    this.greetingTimer = setTimeout(() => {
      if (this.socket !== socket) return;
      socket.close(4000, 'no greeting');
      this.lost();
    }, GREETING_WAIT_MS);
    socket.onmessage = (event) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === 'connection') {
        clearTimeout(this.greetingTimer);
        this.attempts = 0;
        this.setOnline(true);
        this.renewLater(socket, tokenExpiresAt);
        this.dispatchEvent(new CustomEvent('ready', { detail: frame }));
      } else if (frame.type === 'authenticated') {
        this.renewLater(socket, this.renewedExpiresAt);
      }
      this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      if (event.code === 4001) {
        // The token was refused (expired in transit, or keys changed): renew before retrying.
        forgetAccessToken(this.presented);
        this.attempts = Math.max(this.attempts, 1);
      }
      // A gateway going away: another takes over at once, so the wait is short, but spread
      // (every client of that gateway comes at once); one that closed before its greeting
      // (a gateway still draining, met again) counts as a failed attempt, with its growing wait.
      this.lost(event.code === 1012 && this.attempts === 0 ? 200 + Math.random() * 800 : undefined);
    };
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.ping(socket), PING_EVERY_MS);
  }

  /** Pings, and gives the connection up if nothing at all comes back in time. */
  ping(socket) {
    if (this.socket !== socket || !this.send({ type: 'ping' })) return;
    const sentAt = Date.now();
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => {
      if (this.socket !== socket || this.lastFrameAt >= sentAt) return;
      // Closing a dead connection can take minutes to be confirmed: it is left behind at once.
      socket.close(4000, 'no answer to a ping');
      this.lost();
    }, PONG_WAIT_MS);
  }

  /** Hands the connection a renewed token shortly before the one it holds (expiring at
   * `expiresAt`, ms) expires. */
  renewLater(socket, expiresAt) {
    clearTimeout(this.renewTimer);
    if (!expiresAt) return;
    const wait = Math.max(MIN_RENEW_WAIT_MS, expiresAt - Date.now() - RENEW_BEFORE_MS);
    this.renewTimer = setTimeout(async () => {
      let token;
      try {
        token = await accessToken();
        this.renewedExpiresAt = accessTokenExpiresAt();
      } catch {
        return; // Signed out, or offline: the connection closes with 4001 and is opened again.
      }
      if (this.socket === socket) {
        this.presented = token;
        this.send({ type: 'auth', token });
      }
    }, wait);
  }

  /** The current connection is gone: shows it and tries again. */
  lost(wait) {
    this.socket = null;
    clearInterval(this.pinger);
    clearTimeout(this.pongTimer);
    clearTimeout(this.greetingTimer);
    clearTimeout(this.renewTimer);
    this.setOnline(false);
    this.retry(wait);
  }

  retry(wait) {
    if (this.stopped) return;
    this.attempts += 1;
    const backoff = Math.min(MAX_WAIT_MS, 500 * 2 ** Math.min(this.attempts - 1, 5));
    const delay = wait ?? backoff * (0.5 + Math.random() / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setOnline(online) {
    if (this.online === online) return;
    this.online = online;
    this.dispatchEvent(new CustomEvent('status', { detail: { online } }));
  }

  /** Sends a frame if connected; false otherwise (the caller falls back to REST). */
  send(frame) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }
}
