// "Browse rooms": the rooms of the organization this user does not sit in and may join, found
// by the start of their name. The server lists at most 50 at a time, so a long list is
// narrowed by typing rather than paged.

import { api } from './api.js';
import { h, refocus, replace, toast } from './dom.js';

const SHOWN = 50;

/** Opens the dialog; resolves with the room joined (its full object), or null. */
export async function browseRooms(orgId) {
  const first = await joinable(orgId, '');
  if (first.length === 0) {
    toast('You are in every room you can join.');
    return null;
  }
  const opener = document.activeElement;
  return new Promise((resolve) => {
    let joined = null;
    let asked = 0;
    const list = h('ul', { class: 'browse-list', 'aria-label': 'Rooms you can join' });
    const note = h('p', { class: 'browse-note', role: 'status' });
    const filter = h('input', {
      type: 'search', 'aria-label': 'Name starts with', placeholder: 'Name starts with…', autocomplete: 'off',
    });
    const dialog = h('dialog', { class: 'dialog', 'aria-label': 'Join a room' },
      h('h2', {}, 'Join a room'), filter, note, list,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Close')));

    const join = async (room, button) => {
      button.disabled = true;
      try {
        await api('POST', `/api/rooms/${room.id}/join/`);
        joined = await api('GET', `/api/rooms/${room.id}/`);
        dialog.close();
      } catch (error) {
        button.disabled = false;
        toast(error.fullMessage || String(error), 'error');
      }
    };
    const draw = (rooms) => {
      replace(list, rooms.map((room) => {
        const button = h('button', { class: 'secondary', 'aria-label': `Join # ${room.name}` }, 'Join');
        button.addEventListener('click', () => join(room, button));
        return h('li', {}, h('span', {}, `# ${room.name} (${room.members_count})`), button);
      }));
      replace(note, rooms.length === 0 ? 'No room you can join starts with that.'
        : rooms.length >= SHOWN ? `The first ${SHOWN} by name: type the start of a name to find others.` : '');
    };
    // Answers may come back out of order: only the latest question's is drawn.
    let timer;
    filter.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const mine = ++asked;
        try {
          const rooms = await joinable(orgId, filter.value.trim());
          if (mine === asked) draw(rooms);
        } catch (error) {
          if (mine === asked) toast(error.fullMessage || String(error), 'error');
        }
      }, 200);
    });
    dialog.addEventListener('close', () => {
      clearTimeout(timer);
      dialog.remove();
      // Not after a join: the room it opens takes the focus.
      if (!joined) refocus(opener);
      resolve(joined);
    });
    draw(first);
    document.body.append(dialog);
    dialog.showModal();
  });
}

function joinable(orgId, prefix) {
  return api('GET', `/api/orgs/${orgId}/search/rooms/?joinable=true&limit=${SHOWN}&q=${encodeURIComponent(prefix)}`);
}
