// @-mentions: highlighted in messages, completed in the composer from the room's members, and
// the page of messages that mention the reader.

import { api } from './api.js';
import { displayName, h, replace, shortTime } from './dom.js';
import { failed, roomTitle, state } from './app.js';
import { ListView } from './listview.js';

// `@room`, `@here` or `@address`, at the start or after a space or punctuation; trailing
// sentence punctuation is not part of it (the server's rule, README "Mentions").
const MENTION = /(^|[\s([{,;"'])@(room|here|[^\s@]+@[^\s@]*[^\s@.!?:])/g;

/** A message body as text nodes, with mentions of members (and @room/@here) highlighted. */
export function bodyWithMentions(body) {
  const parts = [];
  let last = 0;
  for (const match of body.matchAll(MENTION)) {
    const start = match.index + match[1].length;
    const name = match[2];
    const member = [...state.members.values()].find((m) => m.email === name.toLowerCase());
    if (name !== 'room' && name !== 'here' && !member) continue;
    const mine = name === 'room' || name === 'here' || member?.user_id === state.me.id;
    parts.push(body.slice(last, start));
    parts.push(h('span', { class: `mention${mine ? ' me' : ''}`, title: member ? displayName(member) : `everyone ${name === 'here' ? 'online' : 'in the room'}` }, `@${name}`));
    last = start + 1 + name.length;
  }
  parts.push(body.slice(last));
  return parts;
}

/** Completes `@` in a textarea from the room's members (prefix search on the server). */
export class MentionCompleter {
  constructor(input, roomId) {
    this.input = input;
    this.roomId = roomId;
    this.options = [];
    this.active = 0;
    // Counts lookups (and closings), so that only the latest answer is shown.
    this.lookups = 0;
    this.list = h('ul', { class: 'completions', role: 'listbox', id: `mentions-${roomId}`, hidden: true });
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-controls', this.list.id);
    input.addEventListener('input', () => this.lookup());
    // Closed a moment after the focus leaves (a click on an option picks first), unless it is
    // back by then: a lookup begun meanwhile would otherwise be closed, its answer dropped.
    input.addEventListener('blur', () => setTimeout(() => {
      if (document.activeElement !== input) this.close();
    }, 150));
  }

  /** The `@prefix` being typed at the caret, if any. */
  token() {
    const before = this.input.value.slice(0, this.input.selectionStart);
    const match = before.match(/(^|\s)@([^\s@]*)$/);
    return match ? { prefix: match[2], start: before.length - match[2].length - 1 } : null;
  }

  lookup() {
    clearTimeout(this.timer);
    const token = this.token();
    if (!token) return this.close();
    const asked = ++this.lookups;
    this.timer = setTimeout(async () => {
      try {
        const found = token.prefix
          ? await api('GET', `/api/rooms/${this.roomId}/members/?q=${encodeURIComponent(token.prefix)}&limit=6`)
          : [];
        // Answers may come out of order: one for an older prefix, or for a word since sent or
        // left, would offer (and Enter would pick) someone the reader is no longer typing.
        const now = this.token();
        if (asked !== this.lookups || now?.prefix !== token.prefix || now.start !== token.start) return;
        const everyone = ['room', 'here'].filter((word) => word.startsWith(token.prefix.toLowerCase()))
          .map((word) => ({ insert: word, label: word === 'room' ? '@room: everyone in the room' : '@here: everyone online' }));
        this.show([
          ...found.filter((m) => m.user_id !== state.me.id).map((m) => ({ insert: m.email, label: `${displayName(m)} <${m.email}>` })),
          ...everyone,
        ]);
      } catch (error) {
        failed(error);
      }
    }, 120);
  }

  show(options) {
    this.options = options;
    this.active = 0;
    if (options.length === 0) return this.close();
    replace(this.list, options.map((option, i) => h('li', {
      role: 'option', id: `${this.list.id}-${i}`, 'aria-selected': i === 0 ? 'true' : 'false',
      onmousedown: (event) => { event.preventDefault(); this.pick(i); },
    }, option.label)));
    this.list.hidden = false;
    this.input.setAttribute('aria-activedescendant', `${this.list.id}-0`);
  }

  close() {
    this.lookups += 1;
    this.options = [];
    this.list.hidden = true;
    this.input.removeAttribute('aria-activedescendant');
  }

  /** Handles a key in the textarea; true when the completer used it. */
  onKey(event) {
    if (this.list.hidden || this.options.length === 0) return false;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      this.active = (this.active + (event.key === 'ArrowDown' ? 1 : this.options.length - 1)) % this.options.length;
      [...this.list.children].forEach((li, i) => li.setAttribute('aria-selected', i === this.active ? 'true' : 'false'));
      this.input.setAttribute('aria-activedescendant', `${this.list.id}-${this.active}`);
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      this.pick(this.active);
    } else if (event.key === 'Escape') {
      this.close();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  pick(index) {
    const token = this.token();
    const option = this.options[index];
    if (!token || !option) return this.close();
    const value = this.input.value;
    const caret = this.input.selectionStart;
    const inserted = `@${option.insert} `;
    this.input.value = value.slice(0, token.start) + inserted + value.slice(caret);
    const at = token.start + inserted.length;
    this.input.setSelectionRange(at, at);
    this.close();
    this.input.focus();
  }
}

/** `#/org/:id/mentions`: messages that mention the reader, newest first. */
export class MentionsView extends ListView {
  constructor() {
    super('Mentions', `/auth/me/mentions/?limit=50&org=${state.org.id}`,
      (m) => resultItem(m, bodyWithMentions(m.body)), 'Nobody has mentioned you yet.');
  }
}

/** One found message: where, who, when, and a link to its room. */
export function resultItem(message, content) {
  const room = state.rooms.get(message.room);
  return h('li', { class: 'result' },
    h('a', { href: `#/org/${state.org.id}/room/${message.room}` },
      h('div', { class: 'meta' },
        h('span', { class: 'author' }, displayName(state.members.get(message.sender))),
        h('span', {}, room ? roomTitle(room) : ''),
        h('time', { datetime: message.created_at }, shortTime(message.created_at))),
      h('div', { class: 'body' }, content)));
}
