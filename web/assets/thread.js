// A thread beside the room: its root, its replies (paged with the room's cursors, live after
// that), a composer that answers in the thread, and the reader's pointer in it.

import { api, newClientMsgId, nextPath } from './api.js';
import { displayName, h, replace, shortTime } from './dom.js';
import { failed, state } from './app.js';
import { enableNextPage, ListView, showNextPage } from './listview.js';
import { bodyWithMentions } from './mentions.js';

/** The least time between two read-pointer requests of one thread panel. */
const READ_EVERY_MS = 2000;

export class ThreadPanel {
  constructor(room, rootId, onClose) {
    this.room = room;
    this.rootId = rootId;
    this.replies = new Map();
    this.list = h('ol', { class: 'messages' });
    this.rootBox = h('ol', { class: 'messages thread-root' });
    this.more = h('div', { class: 'history-top' });
    this.input = h('textarea', { rows: 1, 'aria-label': 'Reply in the thread', placeholder: 'Reply…' });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.followButton = h('button', { class: 'link', onclick: () => this.toggleFollow() });
    this.element = h('aside', { class: 'thread', 'aria-label': 'Thread' },
      h('header', { class: 'room-header' },
        h('h2', {}, 'Thread'), this.followButton,
        h('button', { class: 'link close', 'aria-label': 'Close the thread', onclick: onClose }, '✕')),
      h('div', { class: 'scroller' }, this.rootBox, this.more, this.list),
      h('form', { class: 'composer', onsubmit: (event) => { event.preventDefault(); this.send(); } },
        this.input, h('button', { type: 'submit' }, 'Reply')));
  }

  async open() {
    if (await this.loadNewest()) this.input.focus();
  }

  /** After a reconnect: the root and the newest replies as they stand now, those missed while
   * the socket was down included, and the earlier replies held read again (one may have been
   * edited or deleted meanwhile). */
  async catchUp() {
    const oldestHeld = Math.min(...this.replies.keys());
    if (!(await this.loadNewest())) return;
    let reached = this.newestPageFrom;
    try {
      for (let pages = 0; this.older && reached > oldestHeld && pages < 20; pages += 1) {
        const page = await api('GET', nextPath(this.older));
        this.add(page.results);
        for (const reply of page.results) reached = Math.min(reached, reply.id);
        this.older = page.next;
      }
    } catch (error) {
      failed(error);
    }
    this.drawMore();
  }

  /** The root and the newest page of replies (those already here are not drawn twice), with
   * earlier replies from that page on; whether it worked. */
  async loadNewest() {
    try {
      const page = await api('GET', `/api/rooms/${this.room.id}/messages/${this.rootId}/thread/?limit=50`);
      this.rootId = page.root.id;
      this.root = page.root;
      this.following = page.following;
      this.drawRoot();
      this.add(page.results);
      this.newestPageFrom = Math.min(...page.results.map((reply) => reply.id));
      this.older = page.next;
      this.drawMore();
      this.markRead();
      return true;
    } catch (error) {
      failed(error);
      return false;
    }
  }

  drawRoot() {
    replace(this.rootBox, this.item(this.root));
    replace(this.followButton, this.following ? 'Unfollow' : 'Follow');
  }

  drawMore() {
    // Where a keyboard paging back goes on from once the replies end: the earliest.
    const earliest = this.list.querySelector('li');
    if (earliest) earliest.tabIndex = -1;
    showNextPage(this.more, 'Earlier replies', this.older && (() => this.loadOlder()), earliest);
  }

  async loadOlder() {
    try {
      const page = await api('GET', nextPath(this.older));
      this.add(page.results);
      this.older = page.next;
      this.drawMore();
    } catch (error) {
      enableNextPage(this.more);
      failed(error);
    }
  }

  item(message) {
    return h('li', { class: 'msg', dataset: { id: message.id } },
      h('div', { class: 'meta' },
        h('span', { class: 'author' }, message.sender === state.me.id ? 'You' : displayName(state.members.get(message.sender))),
        h('time', { datetime: message.created_at }, shortTime(message.created_at))),
      h('div', { class: 'body' }, message.is_deleted ? 'This message was deleted.' : bodyWithMentions(message.body || '')));
  }

  /** Replies in id order, each once (a page, a live frame and a POST's answer may overlap). */
  add(messages) {
    for (const message of messages) {
      if (message.parent_id !== this.rootId) continue;
      const node = this.item(message);
      const old = this.replies.get(message.id);
      this.replies.set(message.id, { message, node });
      if (old) {
        old.node.replaceWith(node);
        continue;
      }
      const after = [...this.replies.keys()].filter((id) => id > message.id).sort((a, b) => a - b)[0];
      this.list.insertBefore(node, after === undefined ? null : this.replies.get(after).node);
    }
  }

  async send() {
    const body = this.input.value;
    if (!body.trim()) return;
    this.input.value = '';
    // Sent again after a failure, the same reply keeps its id: if the first try was stored
    // after all (the answer was lost), it is not stored twice.
    const clientMsgId = this.unsent?.body === body ? this.unsent.id : newClientMsgId();
    try {
      const reply = await api('POST', `/api/rooms/${this.room.id}/messages/`, {
        body, parent_id: this.rootId, client_msg_id: clientMsgId,
      });
      this.unsent = null;
      this.add([reply]);
      this.following = true;
      this.drawRoot();
    } catch (error) {
      this.unsent = { body, id: clientMsgId };
      // Given back to the box, before whatever was typed since the send (up to 30 s ago):
      // neither is lost.
      const since = this.input.value;
      this.input.value = since.trim() ? `${body}\n\n${since}` : body;
      failed(error);
    }
  }

  async toggleFollow() {
    try {
      await api(this.following ? 'DELETE' : 'PUT', `/api/rooms/${this.room.id}/messages/${this.rootId}/thread/follow/`);
      this.following = !this.following;
      this.drawRoot();
    } catch (error) {
      failed(error);
    }
  }

  /** Moves the thread's read pointer to the newest reply shown, at most once every
   * READ_EVERY_MS: replies arriving meanwhile are read by one request at the end of the wait,
   * so a busy thread does not spend the per-user request limit a request per reply. */
  markRead() {
    const newest = Math.max(0, ...this.replies.keys());
    if (!newest || document.visibilityState !== 'visible' || newest <= (this.readTo || 0)) return;
    const wait = (this.readAt || 0) + READ_EVERY_MS - Date.now();
    if (wait > 0) {
      // A panel closed meanwhile reads nothing more.
      this.readTimer ??= setTimeout(() => {
        this.readTimer = null;
        if (this.element.isConnected) this.markRead();
      }, wait);
      return;
    }
    this.readAt = Date.now();
    this.readTo = newest;
    api('POST', `/api/rooms/${this.room.id}/messages/${this.rootId}/thread/read/${newest}/`)
      .catch(() => { this.readTo = 0; });
  }

  onFrame(frame) {
    if (frame.room !== this.room.id) return;
    if (frame.type === 'message' && frame.parent_id === this.rootId) {
      this.add([frame]);
      this.markRead();
    } else if ((frame.type === 'message.updated' || frame.type === 'message.deleted') && frame.id === this.rootId) {
      this.root = { ...this.root, ...frame, ...(frame.type === 'message.deleted' ? { is_deleted: true, body: '' } : {}) };
      this.drawRoot();
    } else if ((frame.type === 'message.updated' || frame.type === 'message.deleted') && this.replies.has(frame.id)) {
      const known = this.replies.get(frame.id).message;
      this.add([{ ...known, ...frame, ...(frame.type === 'message.deleted' ? { is_deleted: true, body: '' } : {}) }]);
    }
  }
}

/** `#/org/:id/threads`: the threads the reader follows, newest reply first, with unread counts. */
export class FollowedThreadsView extends ListView {
  constructor() {
    super('Threads you follow', `/auth/me/threads/?limit=50&org=${state.org.id}`, (t) => h('li', { class: 'result' },
        h('a', { href: `#/org/${state.org.id}/room/${t.room}/thread/${t.root.id}` },
          h('div', { class: 'meta' },
            h('span', { class: 'author' }, displayName(state.members.get(t.root.sender))),
            h('span', {}, `${t.root.reply_count} ${t.root.reply_count === 1 ? 'reply' : 'replies'}`),
            t.unread_replies ? h('span', { class: 'badge', title: `${t.unread_replies} unread` }, String(t.unread_replies)) : null),
          h('div', { class: 'body' }, t.root.is_deleted ? 'This message was deleted.' : bodyWithMentions(t.root.body || '')))),
    'You follow no threads here yet. Reply in one, or follow it from its panel.');
  }
}
