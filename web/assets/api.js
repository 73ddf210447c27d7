// The REST client and the session's tokens.
//
// Where the tokens live, and why:
// - The access token (15 minutes) is kept in this module's memory only: nothing persists it,
//   so it is gone with the tab.
// - The refresh token is kept in localStorage under this origin, so a reload or a second tab
//   stays signed in. Only scripts of this origin can read it (the browser's same-origin rule),
//   and the page's Content-Security-Policy allows scripts from this origin only, with no
//   inline script, which is what stands between a stored token and injected code. Refresh
//   tokens rotate on every use; tabs take turns (a Web Lock, or where a plain-http origin has
//   none, a lock kept in localStorage) and always present the newest one, because presenting
//   a used one revokes the whole family.

const REFRESH_KEY = 'chatboard.refresh';
const LOCK = 'chatboard-refresh';
const STORAGE_LOCK_KEY = 'chatboard.refresh-lock';
// How long a claim on the storage lock lasts unless its tab renews it (a tab closed while
// holding it frees it so), and how long a tab lets a racing tab's claim land before it trusts
// its own.
const STORAGE_LOCK_LEASE_MS = 15_000;
const STORAGE_LOCK_SETTLE_MS = 50;

/** An error the API answered (or a network failure: status 0). */
export class ApiError extends Error {
  constructor(status, body = {}, retryAfter = null) {
    super(body.detail || (status === 0 ? 'Cannot reach the server. Check your connection.' : `Request failed (${status}).`));
    this.status = status;
    this.code = body.code || (status === 0 ? 'network' : 'error');
    this.errors = body.errors || null;
    this.retryAfter = retryAfter;
  }

  /** The detail with each field's problems, and when to try again, for showing to a person. */
  get fullMessage() {
    let text = this.message;
    if (this.errors) {
      const fields = Object.entries(this.errors).map(([field, problems]) => `${field}: ${[].concat(problems).join(', ')}`);
      text = `${text} ${fields.join('; ')}`;
    }
    const wait = Number(this.retryAfter);
    if (wait > 0) text = `${text} Try again in ${wait >= 90 ? `${Math.ceil(wait / 60)} minutes` : `${wait} seconds`}.`;
    return text;
  }
}

let access = null;
let accessExpiresAt = 0;
// Whom this tab shows: a renewal that brings another user's token (signed in from another
// tab, which replaced the refresh token both share) must not act for them under this one's
// name and rooms.
let shownUser = null;

/** The user this tab signed in as and shows. */
export function signedInAs(userId) {
  shownUser = userId;
}

/** The user an access token is for (its payload's `user_id`), or null. */
function userOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).user_id ?? null;
  } catch {
    return null;
  }
}

/** Whether a refresh token is stored (the user signed in earlier in this browser). */
export function hasSession() {
  return localStorage.getItem(REFRESH_KEY) !== null;
}

function keep(tokens) {
  access = tokens.access;
  accessExpiresAt = Date.now() + (tokens.expires_in || 900) * 1000;
  localStorage.setItem(REFRESH_KEY, tokens.refresh);
}

// Counts sign-outs: a renewal that answers after one (given up on by the sign-out) must not
// store its tokens and sign this browser back in.
let signOuts = 0;

function forget() {
  signOuts += 1;
  shownUser = null;
  access = null;
  accessExpiresAt = 0;
  localStorage.removeItem(REFRESH_KEY);
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  return new ApiError(response.status, body, response.headers.get('Retry-After'));
}

// A request with no answer by then fails (and a message can be retried, with the same
// client_msg_id) instead of showing "Sending…" for good.
const REQUEST_TIMEOUT_MS = 30_000;
// An upload that makes no progress for this long fails.
const UPLOAD_STALL_MS = 60_000;

/** One request; with `patient`, no deadline: a refresh whose answer was given up on while the
 * server rotated the token would leave this browser holding a used one, which the next
 * renewal would present, revoking the session everywhere. */
async function send(method, path, body, token, { patient = false } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const abort = new AbortController();
  const timer = patient ? null : setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: abort.signal,
    });
    // The body is read under the same deadline.
    const bytes = await response.arrayBuffer();
    const empty = [204, 205, 304].includes(response.status);
    return new Response(empty ? null : bytes, { status: response.status, headers: response.headers });
  } catch {
    throw new ApiError(0, abort.signal.aborted ? { detail: 'The server did not answer in time. Check your connection.' } : {});
  } finally {
    clearTimeout(timer);
  }
}

async function renew() {
  const run = async () => {
    const refresh = localStorage.getItem(REFRESH_KEY);
    if (!refresh) throw new ApiError(401, { detail: 'Please sign in.', code: 'not_authenticated' });
    const before = signOuts;
    const response = await send('POST', '/auth/token/refresh/', { refresh }, undefined, { patient: true });
    if (signOuts !== before) throw new ApiError(401, { detail: 'Please sign in.', code: 'not_authenticated' });
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401) {
        // Only forget the token if no other tab replaced it meanwhile.
        if (localStorage.getItem(REFRESH_KEY) === refresh) forget();
        onSignedOut();
      }
      throw error;
    }
    keep(await response.json());
    const renewedFor = userOf(access);
    if (shownUser !== null && renewedFor !== null && renewedFor !== shownUser) {
      // Another user's session now: start this tab again as them, rather than act for them
      // while showing someone else.
      access = null;
      location.reload();
      throw new ApiError(401, { detail: 'Signed in as someone else in another tab.', code: 'not_authenticated' });
    }
    return access;
  };
  return withRefreshLock(run);
}

/** Runs `run` while no other tab of this origin touches the refresh token. */
function withRefreshLock(run) {
  return navigator.locks ? navigator.locks.request(LOCK, run) : withStorageLock(run);
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Web Lock's stand-in where there is none (insecure origins): a claim in localStorage,
 * written, left to settle, and trusted if still ours. The holder renews its lease while it
 * runs (a refresh may take long); a claim whose lease lapsed (its tab closed) is taken over.
 * Like a Web Lock, it waits as long as another tab holds it. */
async function withStorageLock(run) {
  const me = newClientMsgId();
  const held = () => {
    try {
      return JSON.parse(localStorage.getItem(STORAGE_LOCK_KEY)) || null;
    } catch {
      return null;
    }
  };
  const claim = () => localStorage.setItem(STORAGE_LOCK_KEY, JSON.stringify({ owner: me, until: Date.now() + STORAGE_LOCK_LEASE_MS }));
  for (;;) {
    const current = held();
    if (!current || current.until < Date.now()) {
      claim();
      await pause(STORAGE_LOCK_SETTLE_MS);
      if (held()?.owner === me) break;
    }
    await pause(STORAGE_LOCK_SETTLE_MS + Math.random() * 100);
  }
  const renewal = setInterval(() => held()?.owner === me && claim(), STORAGE_LOCK_LEASE_MS / 3);
  try {
    return await run();
  } finally {
    clearInterval(renewal);
    if (held()?.owner === me) localStorage.removeItem(STORAGE_LOCK_KEY);
  }
}

/** When the access token in hand expires, in ms since the epoch (0 without one). */
export function accessTokenExpiresAt() {
  return access ? accessExpiresAt : 0;
}

/** Drops the access token, so the next call renews it: the one in hand, or only `refused` if
 * named (the server refused that one; another request may have renewed it since). */
export function forgetAccessToken(refused) {
  if (refused === undefined || access === refused) access = null;
}

let renewing = null;

/** A valid access token, renewed through the refresh token when (nearly) expired. */
export async function accessToken() {
  if (access && Date.now() < accessExpiresAt - 30_000) return access;
  renewing ??= renew().finally(() => { renewing = null; });
  return renewing;
}

/** Calls the API as the signed-in user; a 401 renews the token once and retries. */
export async function api(method, path, body) {
  const token = await accessToken();
  let response = await send(method, path, body, token);
  if (response.status === 401) {
    // Only the token refused: another request may have renewed it meanwhile, and dropping
    // that one would renew (and rotate the refresh token) once more for nothing.
    forgetAccessToken(token);
    response = await send(method, path, body, await accessToken());
  }
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

/** Calls an endpoint that needs no token (register, sign in). */
async function anonymous(method, path, body) {
  const response = await send(method, path, body);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** Signs in; the tokens are kept as described above. */
export async function signIn(email, password) {
  keep(await anonymous('POST', '/auth/token/', { email, password }));
}

/** Registers and signs in. */
export async function register(fields) {
  await anonymous('POST', '/auth/register/', fields);
  await signIn(fields.email, fields.password);
}

/** Revokes this browser's refresh family and forgets the tokens. Resolves with whether the
 * server ended the session (or it had ended already); false when the server could not be told,
 * which leaves the session valid there until its refresh token expires. */
export async function signOut() {
  const attempt = (async () => {
    // A valid access token first (renewing rotates the refresh token), then the newest refresh
    // token, so the family really is revoked on the server.
    const token = await accessToken();
    const run = async () => {
      const refresh = localStorage.getItem(REFRESH_KEY);
      if (!refresh) return true;
      // With a deadline, unlike a renewal: nothing is rotated, and a lost answer costs nothing.
      const response = await send('POST', '/auth/logout/', { refresh }, token);
      // 401: the session had ended already.
      return response.ok || response.status === 401;
    };
    return withRefreshLock(run);
  })();
  try {
    // A renewal that never ends (a dead connection) must not keep the tokens on this device:
    // they are forgotten below whatever happened, so giving up on it is safe.
    return await Promise.race([attempt, pause(REQUEST_TIMEOUT_MS).then(() => false)]);
  } catch (error) {
    // A refresh token the server no longer takes: that session has ended already.
    return error instanceof ApiError && error.status === 401;
  } finally {
    forget();
  }
}

/** Changes the password. Every login of the account ends on the server; this browser's goes on
 * with the tokens of the new one (kept while no other tab renews, so none renews with a token
 * the change revoked). Throws the `ApiError` (400 names the field at fault). */
export async function changePassword(current, next) {
  const token = await accessToken();
  const run = async () => {
    const body = { current_password: current, new_password: next };
    const response = await send('POST', '/auth/password/', body, token, { patient: true });
    if (!response.ok) throw await errorOf(response);
    keep(await response.json());
  };
  await withRefreshLock(run);
}

let signedOutHandler = () => {};

/** Called when the session ends on its own (refresh token revoked or expired). */
export function onSessionEnded(handler) {
  signedOutHandler = handler;
}

function onSignedOut() {
  signedOutHandler();
}

/** A new `client_msg_id`: what makes sending a message idempotent. */
export function newClientMsgId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

/** The API's `next` link (a path, or an absolute URL) as a same-origin path and query. */
export function nextPath(next) {
  const url = new URL(next, location.origin);
  // Only this origin, and never a path a browser would read as another host ("//host/...").
  if (url.origin !== location.origin || url.pathname.startsWith('//')) throw new ApiError(0, { detail: 'The server sent an unexpected link.' });
  return url.pathname + url.search;
}

/** PUTs a file to a presigned URL, reporting progress (0..1). fetch has no upload progress. */
export function putFile(presigned, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(presigned.method || 'PUT', presigned.upload_url);
    for (const [name, value] of Object.entries(presigned.headers || {})) xhr.setRequestHeader(name, value);
    // A large file on a slow link may take long; one that makes no progress for this long (or
    // whose answer never comes) has stalled, and fails so it can be retried.
    let stall = null;
    const progressed = () => {
      clearTimeout(stall);
      stall = setTimeout(() => xhr.abort(), UPLOAD_STALL_MS);
    };
    const settle = (outcome) => {
      clearTimeout(stall);
      outcome();
    };
    xhr.upload.onprogress = (event) => {
      progressed();
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => settle(() => (xhr.status < 300 ? resolve() : reject(new ApiError(xhr.status, { detail: `The upload failed (${xhr.status}).` }))));
    xhr.onerror = () => settle(() => reject(new ApiError(0)));
    xhr.onabort = () => settle(() => reject(new ApiError(0, { detail: 'The upload stalled. Check your connection.' })));
    progressed();
    xhr.send(file);
  });
}
