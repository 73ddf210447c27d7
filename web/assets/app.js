// The application: session, routes (in the URL's hash, so the server serves one page) and the
// shell around the room view: organization switcher, room list with unread counts, dialogs.

import { api, ApiError, changePassword, forgetAccessToken, hasSession, onSessionEnded, signedInAs, signOut } from './api.js';
import { askForm, copyFrom, displayName, h, replace, toast } from './dom.js';
import { Live } from './socket.js';
import { authPage, invitePage, newOrgPage } from './pages.js';
import { RoomView } from './room.js';
import { AdminView } from './admin.js';
import { browseRooms as browse } from './browse.js';
import { MentionsView } from './mentions.js';
import { SearchView } from './search.js';
import { countUnread, takeCounts, whileCountsRead } from './unread.js';
import { FollowedThreadsView } from './thread.js';

const root = document.getElementById('app');

/** What the shell shows; rebuilt from the API on sign-in, org switch and reconnect. */
export const state = {
  me: null,
  orgs: [],
  org: null,
  /** Org members by user id. */
  members: new Map(),
  /** Rooms the user sits in, by id. */
  rooms: new Map(),
  /** Per room: {unread_count, mentions, last_read_msg_id}. */
  unread: new Map(),
  /** User ids online now. */
  online: new Set(),
  live: null,
  view: null,
};

// ---- routes ---------------------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  return { name: parts[0] || '', parts };
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

window.addEventListener('hashchange', () => render());
// Signed out in another tab: this one follows.
window.addEventListener('storage', (event) => {
  if (event.key === 'chatboard.refresh' && event.newValue === null && state.me) endSession('You signed out in another tab.');
});
onSessionEnded(() => endSession('Your session ended. Please sign in again.'));

/** Shows the route; when the API cannot be reached, says so with a way to try again. */
async function render() {
  try {
    await renderRoute();
  } catch (error) {
    shell = null;
    const retry = h('button', { onclick: () => render() }, 'Try again');
    replace(root, h('div', { class: 'centered' }, h('section', { class: 'card', role: 'alert', 'aria-label': 'Not loaded' },
      h('h1', {}, 'ChatBoard could not load'),
      h('p', {}, error instanceof ApiError ? error.fullMessage : String(error)),
      h('div', { class: 'actions' }, retry))));
    retry.focus();
  }
}

async function renderRoute() {
  const { name, parts } = route();
  if (name === 'invite' && parts[1]) {
    if (!state.me && !(await restore())) return authPage(root, `#/invite/${parts[1]}`, 'Sign in or register with the invited address to join.');
    return invitePage(root, parts[1]);
  }
  if (name === 'register' || name === 'signin' || !state.me) {
    if (state.me) return go('#/');
    // A session kept in this browser is taken up, on the sign-in page too: signing in beside
    // it would replace its refresh token under the other tabs, which would renew as whoever
    // signed in here while still showing their own user. Sign out first to change users.
    if (await restore()) return name === 'register' || name === 'signin' ? go('#/') : renderRoute();
    return authPage(root, '#/', null, name === 'register');
  }
  if (name === 'new-org') return newOrgPage(root);
  if (name === 'org' && parts[1]) return showOrg(Number(parts[1]), parts[2], parts[3], parts[4] === 'thread' ? Number(parts[5]) : null);
  await loadOrgs();
  if (state.orgs.length === 0) return go('#/new-org');
  const last = Number(localStorage.getItem('chatboard.org'));
  const org = state.orgs.find((o) => o.id === last) || state.orgs[0];
  return go(`#/org/${org.id}`);
}

/** Picks up a session kept from earlier (the refresh token); false when there is none.
 * Any failure but a refused session is thrown: the page offers to try again rather than a
 * sign-in, which would start a second session beside the one kept. */
async function restore() {
  if (!hasSession()) return false;
  try {
    await startSession();
    return true;
  } catch (error) {
    if (error.status !== 401) throw error;
    return false;
  }
}

/** After sign-in: who am I, and the live connection. */
export async function startSession() {
  state.me = await api('GET', '/auth/me/');
  signedInAs(state.me.id);
  state.live?.stop();
  state.live = new Live();
  state.live.addEventListener('frame', (event) => onFrame(event.detail));
  state.live.addEventListener('ready', () => onReconnected());
  state.live.addEventListener('status', (event) => showConnection(event.detail.online));
  state.live.start();
}

function endSession(message, next = '#/signin') {
  // The access token is this user's: whoever signs in next (in this tab or another) starts
  // from their own refresh token, never from it.
  forgetAccessToken();
  state.live?.stop();
  state.view?.destroy();
  Object.assign(state, { me: null, orgs: [], org: null, live: null, view: null });
  state.rooms.clear();
  state.members.clear();
  state.unread.clear();
  state.online.clear();
  // Open dialogs may show what only the person who left may see: a webhook's secret, an
  // invitation's link.
  for (const dialog of document.querySelectorAll('dialog')) dialog.remove();
  if (message) toast(message, 'error');
  go(next);
}

export async function loadOrgs() {
  state.orgs = await api('GET', '/api/orgs/');
}

/** The user's own place in the current organization changed (their role, or they left it):
 * the shell is built again from the API, so links, rooms and settings match what they may do
 * now. */
export function ownSeatChanged(left) {
  const orgId = state.org?.id;
  shell = null;
  state.org = null;
  if (left) {
    localStorage.removeItem('chatboard.org');
    go('#/');
  } else {
    go(`#/org/${orgId}`);
  }
}

// ---- the shell ------------------------------------------------------------------------------

let shell = null;
// Counts navigations: one that finds a newer one started while it waited gives way to it.
let navigation = 0;

async function showOrg(orgId, section, detail, threadId) {
  const roomId = Number(detail);
  const mine = ++navigation;
  try {
    // A new shell for another org, or after a page outside it (sign-in, new org) replaced it.
    if (!state.org || state.org.id !== orgId || !shell || !root.contains(shell.element)) {
      await loadOrgs();
      if (mine !== navigation) return;
      const org = state.orgs.find((o) => o.id === orgId);
      if (!org) {
        toast('That organization does not exist or you are not a member.', 'error');
        return go('#/');
      }
      // Applied only while this is still the latest navigation: choosing organizations in
      // quick succession (arrow keys on the switcher) must not leave an older one's rooms
      // under a newer one's name, or an older one's shell on screen.
      const loaded = await loadOrg(org.id);
      if (mine !== navigation) return;
      state.org = org;
      localStorage.setItem('chatboard.org', String(org.id));
      applyOrg(loaded);
      // Whoever chose it on the switcher (arrow keys go on through the list) keeps it.
      const switching = document.activeElement?.id === 'org-select';
      shell = buildShell();
      replace(root, shell.element);
      if (switching) shell.element.querySelector('#org-select')?.focus();
      // The connection may have failed before there was a shell to say so.
      if (state.live?.online === false) showConnection(false);
    } else if (section === 'room' && !state.rooms.has(roomId)) {
      // A room made (or a seat given) since the rooms were read: read them again before
      // saying it does not exist.
      const loaded = await loadOrg(orgId);
      if (mine !== navigation) return;
      applyOrg(loaded);
    }
  } catch (error) {
    shell = null; // Half-loaded: the next visit loads the organization again.
    // Overtaken by another navigation, or the session ended (the sign-in page is up): nothing
    // to say here.
    if (mine !== navigation || !state.me) return;
    // The page says it could not load, with a way to try again (a toast alone left an empty
    // page, or a previous organization's shell no longer kept up to date).
    throw error;
  }
  if (mine !== navigation) return;
  drawSidebar();
  state.view?.destroy();
  state.view = null;
  shell.element.classList.toggle('detail-open', Boolean(section));
  if (section === 'room' && state.rooms.has(roomId)) {
    state.view = new RoomView(state.rooms.get(roomId));
  } else if (section === 'admin' && (state.org.role === 'ADMIN' || state.org.role === 'MANAGER')) {
    state.view = new AdminView(state.org);
  } else if (section === 'admin') {
    toast('Only the organization\'s admins and managers can open this page.', 'error');
    return go(`#/org/${orgId}`);
  } else if (section === 'mentions') {
    state.view = new MentionsView();
  } else if (section === 'threads') {
    state.view = new FollowedThreadsView();
  } else if (section === 'search') {
    let query = detail || '';
    try {
      query = decodeURIComponent(query);
    } catch {
      // A malformed link: search for it as written.
    }
    state.view = new SearchView(query);
  } else if (section) {
    toast('That room does not exist or you have no seat in it.', 'error');
    return go(`#/org/${orgId}`);
  }
  replace(shell.main, state.view ? state.view.element : h('div', { class: 'empty' },
    h('h2', {}, state.org.name), h('p', {}, 'Pick a room, or start a direct message.')));
  const view = state.view;
  const mounted = view?.mounted?.();
  // The thread of the room this navigation opened, once its page is in: not of another room
  // opened meanwhile.
  if (threadId && view instanceof RoomView) mounted.then(() => { if (state.view === view) view.openThread(threadId); });
  drawSidebar();
}

/** An organization's members, rooms and unread counts, read (see `applyOrg`). */
async function loadOrg(orgId) {
  const [members, rooms, counts] = await whileCountsRead(Promise.all([
    api('GET', `/api/orgs/${orgId}/members/`),
    api('GET', `/api/rooms/?org=${orgId}`),
    api('GET', '/auth/me/unread-counts/'),
  ]));
  return {
    orgId,
    members: new Map(members.map((m) => [m.user_id, m])),
    rooms: new Map(rooms.map((r) => [r.id, r])),
    unread: new Map(counts.unread_counts.map((c) => [c.room_id, c])),
  };
}

/** What `loadOrg` read becomes the state, unless another organization is shown by now. */
function applyOrg(loaded) {
  if (state.org?.id !== loaded.orgId) return false;
  state.members = loaded.members;
  state.rooms = loaded.rooms;
  takeCounts(loaded.unread);
  return true;
}

function buildShell() {
  const lists = h('div', { class: 'side-lists' });
  const sidebar = h('nav', { class: 'sidebar', 'aria-label': 'Rooms' },
    h('div', { class: 'org-switch' },
      h('label', { for: 'org-select', class: 'visually-hidden' }, 'Organization'),
      h('select', { id: 'org-select', onchange: (e) => (e.target.value === 'new' ? go('#/new-org') : go(`#/org/${e.target.value}`)) },
        state.orgs.map((o) => h('option', { value: o.id, selected: o.id === state.org.id }, o.name)),
        h('option', { value: 'new' }, '+ New organization'))),
    searchBox(),
    lists);
  const main = h('main', { class: 'main', id: 'main' });
  const status = h('div', { class: 'connection', role: 'status' });
  return { element: h('div', { class: 'shell' }, sidebar, main, status), sidebar, lists, main, status };
}

function showConnection(online) {
  if (!shell) return;
  replace(shell.status, online ? '' : 'Reconnecting…');
  shell.status.classList.toggle('down', !online);
}

/** The other person of a DM room (its name is "a@example.com & b@example.com"). */
export function dmPartner(room) {
  const emails = room.name.split(' & ');
  const other = emails.find((email) => email !== state.me.email) ?? emails[0];
  return [...state.members.values()].find((m) => m.email === other) || { email: other };
}

export function roomTitle(room) {
  return room.is_dm ? displayName(dmPartner(room)) : `# ${room.name}`;
}

function drawSidebar() {
  if (!shell) return;
  const current = state.view instanceof RoomView ? state.view.room.id : null;
  const rooms = [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
  const entry = (room) => {
    const counts = state.unread.get(room.id) || {};
    const unread = room.id === current ? 0 : counts.unread_count || 0;
    const mentions = room.id === current ? 0 : counts.mentions || 0;
    const partner = room.is_dm ? dmPartner(room) : null;
    return h('li', {},
      h('a', {
        href: `#/org/${state.org.id}/room/${room.id}`,
        class: `room-link${unread ? ' unread' : ''}`,
        'aria-current': room.id === current ? 'page' : null,
      },
      partner ? h('span', {
        class: `dot${state.online.has(partner.user_id) ? ' online' : ''}`,
        title: state.online.has(partner.user_id) ? 'online' : 'offline',
      }) : null,
      h('span', { class: 'name' }, roomTitle(room)),
      mentions ? h('span', { class: 'badge mention', title: `${mentions} mentions` }, `@${mentions}`) : null,
      unread ? h('span', { class: 'badge', title: `${unread} unread` }, String(unread)) : null));
  };
  const isManager = state.org.role === 'ADMIN' || state.org.role === 'MANAGER';
  // The switcher and the search box are built with the shell and kept (redrawing them would
  // take the focus and the half-typed query); the lists below follow every event, and the
  // link or button that had the keyboard's focus gets it back.
  const focused = focusKeyIn(shell.lists);
  replace(shell.lists,
    h('a', { class: 'room-link', href: `#/org/${state.org.id}/mentions`, 'aria-current': state.view instanceof MentionsView ? 'page' : null },
      h('span', { class: 'name' }, '@ Mentions'),
      totalMentions() ? h('span', { class: 'badge mention' }, String(totalMentions())) : null),
    h('a', { class: 'room-link', href: `#/org/${state.org.id}/threads`, 'aria-current': state.view instanceof FollowedThreadsView ? 'page' : null },
      h('span', { class: 'name' }, '↳ Threads')),
    h('h2', {}, 'Rooms'),
    h('ul', { class: 'rooms' }, rooms.filter((r) => !r.is_dm).map(entry)),
    h('div', { class: 'side-actions' },
      isManager ? h('button', { class: 'link', onclick: createRoom }, '+ New room') : null,
      h('button', { class: 'link', onclick: browseRooms }, 'Browse rooms')),
    h('h2', {}, 'Direct messages'),
    h('ul', { class: 'rooms' }, rooms.filter((r) => r.is_dm).map(entry)),
    h('div', { class: 'side-actions' }, h('button', { class: 'link', onclick: openDm }, '+ Message someone')),
    h('div', { class: 'side-footer' },
      isManager ? h('button', { class: 'link', onclick: invite }, 'Invite people') : null,
      // MANAGERs see the same page with the open invitations alone.
      isManager ? h('a', { href: `#/org/${state.org.id}/admin` }, state.org.role === 'ADMIN' ? 'Organization settings' : 'Invitations') : null,
      h('div', { class: 'me' }, h('span', {}, displayName(state.me)),
        h('button', { class: 'link', onclick: editProfile }, 'Profile'),
        h('button', { class: 'link', onclick: askNewPassword }, 'Password'),
        h('button', { class: 'link', onclick: () => signOutHere() }, 'Sign out'))));
  if (focused) [...shell.lists.querySelectorAll('a, button')].find((el) => focusKey(el) === focused)?.focus({ preventScroll: true });
}

/** What names a link or button across redraws: its target, or its words. */
function focusKey(el) {
  return el.getAttribute('href') ?? `button:${el.textContent}`;
}

/** The focus key of the element that has the focus inside `container`, if one has. */
function focusKeyIn(container) {
  const el = document.activeElement;
  return el && el !== container && container.contains(el) ? focusKey(el) : null;
}

function searchBox() {
  const input = h('input', { type: 'search', 'aria-label': 'Search messages', placeholder: 'Search messages' });
  const form = h('form', { class: 'search-form', role: 'search' }, input);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (input.value.trim()) go(`#/org/${state.org.id}/search/${encodeURIComponent(input.value.trim())}`);
  });
  return form;
}

function totalMentions() {
  let total = 0;
  for (const [roomId, counts] of state.unread) if (state.rooms.has(roomId)) total += counts.mentions || 0;
  return total;
}

/** The header of a main pane: a back link (shown on phones) to the room list, the title. */
export function paneHeader(title, ...extra) {
  return h('header', { class: 'room-header' },
    h('a', { href: `#/org/${state.org.id}`, class: 'back', 'aria-label': 'Back to rooms' }, '‹'),
    h('h1', {}, title), ...extra);
}

export function failed(error) {
  toast(error instanceof ApiError ? error.fullMessage : String(error), 'error');
}

// ---- dialogs --------------------------------------------------------------------------------

async function askNewPassword() {
  // A refusal (a wrong current password, a new one too short) is shown in the dialog, which
  // stays open with what was typed.
  const changed = await askForm('Change password', [
    { name: 'current', label: 'Current password', type: 'password' },
    { name: 'next', label: 'New password (8 to 128 characters)', type: 'password' },
  ], 'Change', (values) => changePassword(values.current, values.next));
  if (changed) toast('Password changed. Every other session has been signed out.');
}

/** The caller's name and whether digest emails come (the same setting a digest's unsubscribe
 * link turns off). Read afresh when opened, and only what was changed is sent: the link may
 * have turned digests off, or another tab renamed the user, since this page loaded. */
async function editProfile() {
  let me;
  try {
    me = await api('GET', '/auth/me/');
  } catch (error) {
    return failed(error);
  }
  state.me = me;
  const saved = await askForm('Profile', [
    { name: 'first_name', label: 'First name', value: me.first_name, required: false, maxlength: 150 },
    { name: 'last_name', label: 'Last name', value: me.last_name, required: false, maxlength: 150 },
    { name: 'email_notifications', label: `Email me (${me.email}) about messages I miss while away`, type: 'checkbox', value: me.email_notifications },
  ], 'Save', (values) => {
    const changes = {};
    for (const name of ['first_name', 'last_name']) if (values[name].trim() !== me[name]) changes[name] = values[name].trim();
    if (values.email_notifications !== me.email_notifications) changes.email_notifications = values.email_notifications;
    return Object.keys(changes).length ? api('PATCH', '/auth/me/', changes) : me;
  });
  if (!saved) return;
  state.me = saved;
  drawSidebar();
  toast('Profile saved.');
}

async function createRoom() {
  // A refusal (a name taken, too long) is shown in the dialog, which keeps what was typed.
  const room = await askForm('New room', [
    { name: 'name', label: 'Name', placeholder: 'design' },
    { name: 'access_level', label: 'Who can join', options: [['PUBLIC', 'Everyone in the organization'], ['MANAGER_ONLY', 'Managers and admins'], ['PRIVATE', 'Invited people only']] },
  ], 'Create', (values) => api('POST', '/api/rooms/', { org: state.org.id, name: values.name.trim(), access_level: values.access_level }));
  if (!room) return;
  state.rooms.set(room.id, room);
  go(`#/org/${state.org.id}/room/${room.id}`);
}

/** Signs out, then shows `next` (the sign-in page). */
export async function signOutHere(next = '#/signin') {
  const ended = await signOut();
  endSession(ended ? undefined : 'Signed out on this device, but the server could not be reached to end the '
    + 'session there. Sign in and out again, or change your password, to end it now.', next);
}

async function browseRooms() {
  try {
    const room = await browse(state.org.id);
    if (!room) return;
    state.rooms.set(room.id, room);
    go(`#/org/${state.org.id}/room/${room.id}`);
  } catch (error) {
    failed(error);
  }
}

async function openDm() {
  const others = [...state.members.values()].filter((m) => m.user_id !== state.me.id);
  if (others.length === 0) return toast('Nobody else is in this organization yet. Invite someone first.');
  const room = await askForm('Message someone', [
    { name: 'user', label: 'Person', options: others.map((m) => [String(m.user_id), `${displayName(m)} (${m.email})${state.online.has(m.user_id) ? ' · online' : ''}`]) },
  ], 'Open', (values) => api('POST', '/api/rooms/dm/', { org: state.org.id, user_id: Number(values.user) }));
  if (!room) return;
  state.rooms.set(room.id, room);
  go(`#/org/${state.org.id}/room/${room.id}`);
}

async function invite() {
  const roles = state.org.role === 'ADMIN' ? [['MEMBER', 'Member'], ['MANAGER', 'Manager'], ['ADMIN', 'Admin']] : [['MEMBER', 'Member'], ['MANAGER', 'Manager']];
  const created = await askForm('Invite someone', [
    { name: 'email', label: 'Email address', type: 'email', placeholder: 'bob@example.com' },
    { name: 'role', label: 'Role', options: roles },
  ], 'Invite', (values) => api('POST', `/api/orgs/${state.org.id}/invite/`, values));
  if (!created) return;
  try {
    showInviteLink(created);
    // The settings page, if open, lists open invitations: this one too now.
    await state.view?.drawInvites?.();
  } catch (error) {
    failed(error);
  }
}

/** The invitation's link, shown once (the token is stored only hashed). */
export function showInviteLink(created) {
  const link = `${location.origin}/#/invite/${created.token}`;
  const input = h('input', { value: link, readonly: true, 'aria-label': 'Invitation link', class: 'invite-link' });
  const dialog = h('dialog', { class: 'dialog', 'aria-label': 'Invitation' },
    h('h2', {}, `Invitation for ${created.email}`),
    h('p', {}, 'An email is on its way. You can also share this link; it works once, for that address, until ',
      new Date(created.expires_at).toLocaleDateString(), '.'),
    input,
    h('div', { class: 'actions' },
      h('button', { class: 'secondary', onclick: () => copyFrom(input, 'Link') }, 'Copy link'),
      h('button', { onclick: () => dialog.close() }, 'Done')));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.select();
}

// ---- live events ----------------------------------------------------------------------------

let membersLoading = null;

/** Someone the org list does not have yet (they joined after it was read): read it again. */
function learnMembers(frame) {
  // Only frames of this org's rooms: the socket also carries the user's other orgs.
  if (!state.org || !state.rooms.has(frame.room)) return;
  const ids = [frame.sender, frame.user_id].filter((id) => typeof id === 'number');
  if (membersLoading || ids.every((id) => state.members.has(id))) return;
  const orgId = state.org.id;
  membersLoading = api('GET', `/api/orgs/${orgId}/members/`)
    .then((members) => {
      if (state.org?.id !== orgId) return; // another organization is shown by now
      state.members = new Map(members.map((m) => [m.user_id, m]));
      drawSidebar();
      state.view?.namesChanged?.();
    }, () => {})
    .finally(() => { membersLoading = null; });
}

/** Whether room `roomId` is the one open on screen. */
function isOpen(roomId) {
  return state.view instanceof RoomView && state.view.room.id === roomId;
}

function onFrame(frame) {
  learnMembers(frame);
  switch (frame.type) {
    case 'presence':
      if (frame.status === 'online') state.online.add(frame.user_id);
      else state.online.delete(frame.user_id);
      drawSidebar();
      break;
    case 'presence_snapshot':
      // The whole state again (changes were lost on the way): whoever it does not name is offline.
      state.online = new Set(frame.online);
      drawSidebar();
      break;
    case 'message': {
      if (!state.rooms.has(frame.room)) {
        // A seat this list does not have yet (a new DM, an invitation): read the rooms again.
        if (frame.org === state.org?.id) refreshRooms();
        break;
      }
      const current = isOpen(frame.room);
      const room = state.rooms.get(frame.room);
      room.last_msg_id = Math.max(room.last_msg_id || 0, frame.id);
      // Replies count too, as the server counts them.
      if (frame.sender !== state.me?.id && !current) {
        countUnread(frame, false);
        drawSidebar();
      }
      break;
    }
    case 'left':
      roomLost(frame.room, frame.reason === 'no_room');
      break;
    case 'message.deleted': {
      // A message counted unread (or as a mention) in a room not open may be the one deleted:
      // the server leaves deleted messages out of its counts, so they are read again.
      const current = isOpen(frame.room);
      const counts = state.unread.get(frame.room);
      if (!current && counts && (counts.unread_count || counts.mentions) && frame.id > (counts.last_read_msg_id || 0)) refreshRooms();
      break;
    }
    case 'mention': {
      // An edit of a message already read may mention the user: the server counts mentions
      // only after the read pointer, and so does the badge.
      const current = isOpen(frame.room);
      const read = state.unread.get(frame.room)?.last_read_msg_id || 0;
      if (!current && (frame.message?.id || 0) > read) {
        countUnread(frame, true);
        drawSidebar();
      }
      break;
    }
    case 'message.updated': {
      // An edit may have taken a mention away: a room not open that shows mentions counts again.
      const counts = state.unread.get(frame.room);
      if (!isOpen(frame.room) && counts?.mentions && frame.id > (counts.last_read_msg_id || 0)) refreshRooms();
      break;
    }
    case 'read':
      if (frame.user_id === state.me?.id) {
        const counts = state.unread.get(frame.room);
        const newest = state.rooms.get(frame.room)?.last_msg_id || 0;
        if (frame.last_read_msg_id >= newest) {
          if (counts) Object.assign(counts, { unread_count: 0, mentions: 0, last_read_msg_id: frame.last_read_msg_id });
          drawSidebar();
        } else if (!isOpen(frame.room)) {
          // Read only so far (older history, in another tab): the server knows what is left.
          // Not for the open room, whose reader sends one such read a second while scrolled
          // up: its count is not shown, and is read again when the room is left (`destroy`).
          refreshRooms();
        }
      }
      break;
    default:
  }
  state.view?.onFrame?.(frame);
}

let refreshing = null;
let refreshAgain = false;
// Rooms lost while a read of the list was on its way: that list may still have them.
const lostMeanwhile = new Set();

/** The room is no longer the user's: the list loses it, and a view of it closes. `deleted`
 * says whether the room went (true) or the seat (false), when known (null: a read the server
 * refused, for a room lost while the socket was down, which no frame tells). */
export function roomLost(roomId, deleted) {
  const room = state.rooms.get(roomId);
  state.rooms.delete(roomId);
  state.unread.delete(roomId);
  if (refreshing) lostMeanwhile.add(roomId);
  // A seat lost, or a room deleted, in the organization shown may be the organization lost
  // (removed from it, or the organization deleted: its rooms go one by one, and nothing else
  // says so): the list read again tells (see `refreshRooms`, which folds repeated calls). Not
  // for a room of another organization (the socket carries them all).
  if (room) refreshRooms();
  if (state.view instanceof RoomView && state.view.room.id === roomId) {
    const title = roomTitle(room || state.view.room);
    if (deleted === null) toast(`${title} is no longer open to you: it was deleted, or your seat in it went.`);
    else toast(deleted ? `${title} was deleted.` : `You no longer have a seat in ${title}.`);
    go(`#/org/${state.org.id}`);
  }
  drawSidebar();
}

/** Re-reads the rooms and counts (a new seat, or after a reconnect). Asked for while a read is
 * under way, it reads once more after it: that read may have begun before what asked for this
 * one (a read elsewhere, a new seat), and its counts would stay. */
export async function refreshRooms() {
  if (!state.org) return;
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  const org = state.org;
  refreshing = loadOrg(org.id).then((loaded) => {
    for (const roomId of lostMeanwhile) {
      loaded.rooms.delete(roomId);
      loaded.unread.delete(roomId);
    }
    return applyOrg(loaded) && drawSidebar();
  }, (error) => {
    // No longer a member (removed, or the organization deleted): not shown any more.
    if ((error.status === 403 || error.status === 404) && state.org?.id === org.id) {
      toast(`${org.name} is no longer open to you.`);
      ownSeatChanged(true);
    }
  }).finally(() => {
    refreshing = null;
    lostMeanwhile.clear();
    if (refreshAgain) {
      refreshAgain = false;
      refreshRooms();
    }
  });
}

function onReconnected() {
  state.online.clear();
  refreshRooms();
  state.view?.onReconnected?.();
}

export function markedRead(roomId, msgId) {
  const counts = state.unread.get(roomId);
  if (counts) Object.assign(counts, { unread_count: 0, mentions: 0, last_read_msg_id: msgId });
  drawSidebar();
}

render();
