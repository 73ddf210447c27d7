// The message view of one room: its history (history.js) drawn, live frames, edits, deletes,
// typing, read receipts; what the user sends goes through its outbox (outbox.js).
//
// Each message is laid out once, when it arrives; scrolling then only paints what comes on
// screen, so a long history scrolls smoothly (web/e2e/history.test.mjs measures it). Typing
// announcements are typing.js's, the edit box edit.js's, the member count and read pointers
// roster.js's.

import { api } from './api.js';
import { displayName, h, longTime, replace, shortTime, toast } from './dom.js';
import { failed, markedRead, paneHeader, refreshRooms, roomTitle, state } from './app.js';
import { editInPlace } from './edit.js';
import { fileView, releaseFiles } from './files.js';
import { HELD_MAX, RoomHistory } from './history.js';
import { MentionCompleter, bodyWithMentions } from './mentions.js';
import { Outbox } from './outbox.js';
import { applyReactionFrame, mergeReactions, react, reactionChips, reactionPicker, withoutMine } from './reactions.js';
import { Roster } from './roster.js';
import { ThreadPanel } from './thread.js';
import { Typing } from './typing.js';

// The shortest time between two reads told to the server (see `sendRead`).
const READ_EVERY_MS = 1000;
/** The frames that change messages: played again over the page a fresh start reads. */
const REPLAYED_AFTER_START_OVER = new Set(['message', 'message.updated', 'message.deleted', 'reaction.added', 'reaction.removed', 'thread.updated']);

export class RoomView extends RoomHistory {
  constructor(room) {
    super(room);
    // When a read was last told to the server, and the send waiting to tell the next.
    this.readSentAt = 0;
    this.readSend = null;
    this.roster = new Roster(room);
    this.myRead = state.unread.get(room.id)?.last_read_msg_id || 0;
    this.build();
    this.outbox = new Outbox(room.id, this.pendingList, {
      arrive: (messages) => this.arrive(messages),
      toBottom: () => this.toBottom(),
      lostAfterClose: (item, error) => {
        const what = item.body ? `“${item.body.slice(0, 40)}${item.body.length > 40 ? '…' : ''}”` : item.upload?.name ?? 'A message';
        toast(`${what} in ${roomTitle(this.room)} was not sent: ${error}`, 'error');
      },
      // The text of a message discarded for its file (a type or size the API refuses, which
      // no retry mends) goes back to an empty composer, to be sent without it.
      giveBack: (body) => {
        if (this.input.value) return;
        this.input.value = body;
        this.onInput();
        this.input.focus();
      },
    });
  }

  build() {
    const title = roomTitle(this.room);
    this.list = h('ol', {
      class: 'messages',
      onmouseover: (event) => this.showActions(event.target.closest?.('li.msg')),
      onfocusin: (event) => this.showActions(event.target.closest?.('li.msg')),
      onkeydown: (event) => this.onListKey(event),
    });
    this.pendingList = h('ol', { class: 'messages pending' });
    this.top = h('div', { class: 'history-top' });
    this.scroller = h('div', {
      class: 'scroller', role: 'log', 'aria-label': `Messages in ${title}`,
      onscroll: () => this.onScroll(),
    }, this.top, this.list, this.pendingList);
    // An image that loads takes its own height: a view at the bottom stays there (no scroll
    // event says the content grew). Load events do not bubble, so they are caught on the way in.
    // The browser may lay the image out at its size before `load`, and a scroll event in
    // between finds the view that far from the bottom and unpins it: with the image in the last
    // message, a view within its height of the bottom was at the bottom before it grew.
    this.pinned = true;
    this.scroller.addEventListener('load', (event) => {
      const messages = this.list.querySelectorAll(':scope > li.msg');
      const last = event.target.closest?.('li.msg') === messages[messages.length - 1];
      const grew = event.target.getBoundingClientRect?.().height || 0;
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
      if (this.pinned || (last && fromBottom < grew + 48)) this.scroller.scrollTop = this.scroller.scrollHeight;
    }, true);
    this.jump = h('button', { class: 'jump', hidden: true, onclick: () => this.toBottom() }, 'New messages ↓');
    const typingLine = h('div', { class: 'typing', 'aria-live': 'polite' });
    this.typing = new Typing(this.room.id, typingLine);
    this.input = h('textarea', {
      rows: 1, placeholder: `Message ${title}`, 'aria-label': `Message ${title}`,
      onkeydown: (event) => this.onKey(event), oninput: () => this.onInput(),
    });
    this.fileInput = h('input', {
      type: 'file', class: 'visually-hidden',
      onchange: () => this.onFile(),
    });
    this.composer = h('form', { class: 'composer', onsubmit: (event) => { event.preventDefault(); this.sendTyped(); } },
      h('label', { class: 'attach', title: 'Attach a file' },
        h('img', { src: new URL('./attach.svg', import.meta.url).href, alt: 'Attach a file', width: 22, height: 22 }),
        this.fileInput),
      this.input,
      h('button', { type: 'submit' }, 'Send'));
    this.completer = new MentionCompleter(this.input, this.room.id);
    this.info = h('span', { class: 'room-info' });
    // Busy until its first page is in (assistive technology waits; so do the browser tests).
    this.element = h('section', { class: 'room', 'aria-label': title, 'aria-busy': 'true' },
      paneHeader(title, this.info),
      this.scroller, this.jump, typingLine, this.completer.list, this.composer);
    this.visibility = () => this.markRead();
    document.addEventListener('visibilitychange', this.visibility);
  }

  async mounted() {
    // What has the focus as the room opens (the link or button that opened it, or nothing);
    // the sidebar may draw it anew meanwhile, hence a key rather than the element.
    const keyOf = (el) => (!el || el === document.body ? null : el.getAttribute('href') ?? `${el.tagName}:${el.textContent}`);
    const before = keyOf(document.activeElement);
    try {
      await Promise.all([this.loadLatest(), this.loadMembers()]);
    } catch (error) {
      failed(error);
      // Without its first page the room shows only what arrives live: read it again, later
      // each time, rather than wait for the socket's next reconnect.
      if (!this.loaded) this.retryLatest(2000);
    }
    if (this.destroyed) return;
    // Unless the person moved on while the room loaded (to a button, the search box, a
    // dialog, or within the room: "Load older messages" as soon as the first page showed,
    // while the member list was still on its way): the focus is theirs then.
    const now = keyOf(document.activeElement);
    const untouched = now === null || now === before || document.activeElement === this.input;
    if (untouched && matchMedia('(pointer: fine)').matches) this.input.focus();
    this.element.setAttribute('aria-busy', 'false');
  }

  destroy() {
    // A read waiting for its turn goes now: the view that would send it is going.
    if (this.readSend) {
      clearTimeout(this.readSend);
      this.readSentAt = 0;
      this.readSend = null;
      this.sendRead();
    }
    const unsent = this.outbox.close();
    if (unsent) toast(`${unsent} unsent message${unsent === 1 ? '' : 's'} in ${roomTitle(this.room)} discarded.`, 'error');
    // Messages that came while the view was scrolled up were not counted in the room's badge
    // (it was open): the server's count is the one to show now.
    const newest = this.ids.findLast((id) => this.messages.get(id).sender !== state.me.id);
    if (newest > this.myRead || this.behind) refreshRooms();
    this.destroyed = true;
    releaseFiles(this.list);
    this.typing.destroy();
    document.removeEventListener('visibilitychange', this.visibility);
  }


  onScroll() {
    this.pinned = this.nearBottom();
    // Down where the messages that waited would be: the newest page, as when the room opened
    // (once the catch-up is over, if one runs).
    if (this.pinned && this.startOverIfBehind()) return;
    if (this.scroller.scrollTop < 300) this.loadOlder(true);
    if (this.nearBottom()) this.jump.hidden = true;
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.markRead(), 200);
  }

  nearBottom() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 48;
  }

  toBottom() {
    // The button goes once the newest page is in (at the bottom); if it fails, it stays.
    if (this.startOverIfBehind()) return;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.jump.hidden = true;
    this.markRead();
  }

  /** Once a catch-up is over: the newest page the reader asked for meanwhile. */
  caughtUp() {
    if (!this.newestWanted) return;
    this.newestWanted = false;
    this.startOverIfBehind();
  }

  /** Starts over from the newest page if messages wait behind the view (see `arrive`): at
   * once, or once a running catch-up is over (see `caughtUp`); not while a message is being
   * edited (they come later). Whether it did or will. */
  startOverIfBehind() {
    if (!this.behind || this.editing) return false;
    if (this.catchingUp) this.newestWanted = true;
    else this.startOver().catch(failed);
    return true;
  }

  /** New messages at the end: keep the view pinned to the bottom if it was there. A view
   * scrolled up that holds HELD_MAX already lets newer ones wait (one left a little above the
   * bottom all day held every message); they come with the newest page once the reader goes
   * down (see `behind`). */
  arrive(messages) {
    const pinned = this.nearBottom();
    // Behind, nothing new is drawn even at the bottom: it would follow the view past a gap.
    if (this.behind || (!pinned && this.ids.length >= HELD_MAX)) {
      this.behind = true;
      // Not drawn, but one of the reader's own is confirmed all the same.
      for (const m of messages) this.outbox.settle(m.client_msg_id, m.sender);
      if (messages.some((m) => m.sender !== state.me.id)) this.jump.hidden = false;
      return;
    }
    const added = this.insert(messages);
    if (pinned) {
      this.trimOldest();
      this.scroller.scrollTop = this.scroller.scrollHeight;
    } else if (added.some((m) => m.sender !== state.me.id)) this.jump.hidden = false;
    this.markRead();
  }

  draw(message) {
    const mine = message.sender === state.me.id;
    const sender = state.members.get(message.sender);
    const live = !message.is_deleted;
    const root = message.parent_id ? this.messages.get(message.parent_id) : null;
    return h('li', {
      class: `msg${mine ? ' mine' : ''}${message.is_deleted ? ' deleted' : ''}`, id: `m-${message.id}`,
      dataset: { id: message.id }, tabindex: message.id === this.current ? '0' : '-1',
    },
      message.parent_id ? h('button', { class: 'link in-thread', onclick: () => this.openThread(message.parent_id) },
        `↳ replied in a thread${root && root.body ? `: ${root.body.slice(0, 60)}` : ''}`) : null,
      h('div', { class: 'meta' },
        h('span', { class: 'author' }, mine ? 'You' : displayName(sender)),
        h('time', { datetime: message.created_at, title: longTime(message.created_at) }, shortTime(message.created_at)),
        message.edited_at && live ? h('span', { class: 'edited' }, '(edited)') : null),
      message.is_deleted
        ? h('div', { class: 'body' }, 'This message was deleted.')
        : [message.body ? h('div', { class: 'body' }, bodyWithMentions(message.body)) : null, message.file ? fileView(message.file) : null],
      reactionChips(message, (emoji) => react(this.messages.get(message.id) || message, emoji, (answer) => this.setReactions(message.id, answer))),
      message.reply_count ? h('button', { class: 'link replies', onclick: () => this.openThread(message.id) },
        `${message.reply_count} ${message.reply_count === 1 ? 'reply' : 'replies'}`,
        message.last_reply_at ? ` · last ${shortTime(message.last_reply_at)}` : '') : null);
  }

  /** The actions of the message under the pointer or the focus. One toolbar moves from message
   * to message, so a page of messages costs no buttons until one is used. */
  showActions(node) {
    const message = this.messages.get(Number(node?.dataset.id));
    if (!message || this.editing || (this.toolbarFor === message.id && node.contains(this.toolbar))) return;
    const mine = message.sender === state.me.id;
    const live = !message.is_deleted;
    this.toolbarFor = message.id;
    this.toolbar = h('div', { class: 'msg-actions' },
      live ? h('button', { class: 'link', onclick: (event) => this.pickReaction(message, event.currentTarget) }, 'React') : null,
      h('button', { class: 'link', onclick: () => this.openThread(message.parent_id || message.id) }, 'Reply'),
      mine && live && message.body ? h('button', { class: 'link', onclick: () => this.edit(message) }, 'Edit') : null,
      mine && live ? h('button', { class: 'link', onclick: () => this.remove(message) }, 'Delete') : null);
    this.list.querySelector('.msg-actions')?.remove();
    node.append(this.toolbar);
  }

  /** Arrow keys move between messages (one of them is in the Tab order at a time). */
  onListKey(event) {
    const node = event.target.closest?.('li.msg');
    if (!node || event.target !== node) return;
    const at = this.ids.indexOf(Number(node.dataset.id));
    const to = { ArrowUp: at - 1, ArrowDown: at + 1, Home: 0, End: this.ids.length - 1 }[event.key];
    if (to === undefined || to < 0 || to >= this.ids.length) return;
    event.preventDefault();
    this.focusMessage(this.ids[to]);
  }

  focusMessage(id) {
    this.currentChosen = true;
    const old = this.nodes.get(this.current);
    if (old) old.tabIndex = -1;
    this.current = id;
    const node = this.nodes.get(id);
    node.tabIndex = 0;
    node.focus();
  }

  /** Replaces the React button with a row of emoji; picking one reacts. */
  pickReaction(message, button) {
    const picker = reactionPicker((emoji) => {
      picker.replaceWith(button);
      // The focus stays with the message (the picked emoji's button is gone with the picker).
      button.focus();
      react(this.messages.get(message.id) || message, emoji, (answer) => this.setReactions(message.id, answer));
    });
    button.replaceWith(picker);
    picker.querySelector('button')?.focus();
  }

  /** Shows a reaction change's answer: the reactions as of `version` (merged with what newer
   * frames said), or for a removal the reader's emoji taken off what is shown now. */
  setReactions(id, answer) {
    const known = this.messages.get(id);
    if (!known) return;
    if (answer.removed) {
      const reactions = withoutMine(known, answer.removed, answer.since);
      if (reactions) this.insert([{ ...known, reactions }]);
      return;
    }
    this.insert([{ ...known, ...mergeReactions(known, answer.reactions, answer.version) }]);
  }

  // ---- threads ------------------------------------------------------------------------------

  openThread(rootId) {
    this.thread?.element.remove();
    this.thread = new ThreadPanel(this.room, rootId, () => this.closeThread());
    this.element.append(this.thread.element);
    this.element.classList.add('with-thread');
    this.thread.open();
  }

  closeThread() {
    this.thread?.element.remove();
    this.thread = null;
    this.element.classList.remove('with-thread');
    // On a touch screen focusing the composer would bring the keyboard up over the room.
    if (matchMedia('(pointer: fine)').matches) this.input.focus();
  }

  // ---- sending ------------------------------------------------------------------------------

  onKey(event) {
    if (this.completer.onKey(event)) return;
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.sendTyped();
    }
  }

  sendTyped() {
    const body = this.input.value;
    if (!body.trim()) return;
    this.input.value = '';
    this.typing.stopped();
    this.outbox.queue({ body });
  }

  onFile() {
    const file = this.fileInput.files[0];
    this.fileInput.value = '';
    if (!file) return;
    const body = this.input.value.trim();
    this.input.value = '';
    const preview = file.type.startsWith('image/') ? URL.createObjectURL(file) : null;
    this.outbox.queue({ body, upload: file, preview, progress: 0 });
  }

  // ---- edits and deletes --------------------------------------------------------------------

  edit(message) {
    this.editing = message.id;
    const redraw = () => {
      this.editing = null;
      const fresh = this.draw(this.messages.get(message.id));
      releaseFiles(this.nodes.get(message.id));
      this.nodes.get(message.id).replaceWith(fresh);
      this.nodes.set(message.id, fresh);
      this.drawReceipts();
      fresh.focus();
    };
    editInPlace(this.nodes.get(message.id), message.body, {
      save: async (body) => {
        try {
          const updated = await api('PATCH', `/api/rooms/${this.room.id}/messages/${message.id}/`, { body });
          this.messages.set(message.id, { ...this.messages.get(message.id), ...updated });
          redraw();
        } catch (error) {
          failed(error);
        }
      },
      cancel: redraw,
    });
  }

  async remove(message) {
    if (!confirm('Delete this message for everyone?')) return;
    try {
      await api('DELETE', `/api/rooms/${this.room.id}/messages/${message.id}/`);
      this.insert([{ ...message, is_deleted: true, body: '', file: null }]);
    } catch (error) {
      failed(error);
    }
  }

  // ---- typing, members, receipts ------------------------------------------------------------

  onInput() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
    this.typing.typed(this.input.value !== '');
  }

  async loadMembers() {
    await this.roster.load();
    this.drawInfo();
    this.drawReceipts();
  }

  drawInfo() {
    replace(this.info, this.roster.info());
  }

  /** "Seen by …" under the newest message each other member has read. */
  drawReceipts() {
    for (const old of this.list.querySelectorAll('.receipt')) old.remove();
    const byMessage = new Map();
    for (const [userId, readUpTo] of this.roster.readers) {
      // The newest message up to their pointer that someone else sent: their own say nothing.
      let at = this.position(readUpTo + 1) - 1;
      while (at >= 0 && this.messages.get(this.ids[at]).sender === userId) at -= 1;
      if (!readUpTo || at < 0) continue;
      const id = this.ids[at];
      byMessage.set(id, [...(byMessage.get(id) || []), displayName(state.members.get(userId))]);
    }
    for (const [id, names] of byMessage) {
      this.nodes.get(id)?.append(h('div', { class: 'receipt' }, `Seen by ${names.join(', ')}`));
    }
  }

  /** Marks read up to the newest message on screen, when the page is visible. */
  markRead() {
    // Not before the first page is in: a message that arrived live would mark the history
    // before it read, unseen.
    if (document.visibilityState !== 'visible' || this.destroyed || !this.loaded || this.ids.length === 0) return;
    const bottom = this.scroller.getBoundingClientRect().bottom;
    let seen = 0;
    for (let i = this.ids.length - 1; i >= 0; i -= 1) {
      const node = this.nodes.get(this.ids[i]);
      if (node.getBoundingClientRect().top < bottom) {
        seen = this.ids[i];
        break;
      }
    }
    if (seen <= this.myRead) return;
    this.myRead = seen;
    this.sendRead();
    markedRead(this.room.id, seen);
  }

  /** Tells the server the reader's pointer: at once, then at most once every `READ_EVERY_MS`
   * with the newest (a busy room brings more messages a second than the gateway takes frames
   * from a socket, 20, and closed it for the reads). */
  sendRead() {
    if (this.readSend) return;
    const send = () => {
      this.readSend = null;
      this.readSentAt = Date.now();
      const seen = this.myRead;
      if (!state.live?.send({ type: 'read', room: this.room.id, msg_id: seen })) {
        api('POST', `/api/rooms/${this.room.id}/read/${seen}/`).catch(() => {});
      }
    };
    const wait = this.readSentAt + READ_EVERY_MS - Date.now();
    if (wait <= 0) send();
    else this.readSend = setTimeout(send, wait);
  }

  /** The org's member list changed: names in messages, receipts and the typing line. */
  namesChanged() {
    for (const message of this.messages.values()) {
      // The message being edited keeps its edit box; it is drawn again when the edit ends.
      if (this.editing === message.id) continue;
      const old = this.nodes.get(message.id);
      const node = this.draw(message);
      this.nodes.set(message.id, node);
      // Focus inside a message drawn again stays on it, as when a message changes.
      const focused = old?.contains(document.activeElement);
      releaseFiles(old);
      old?.replaceWith(node);
      if (focused) node.focus();
    }
    this.drawReceipts();
    this.typing.draw();
  }

  // ---- live frames --------------------------------------------------------------------------

  /** Whether a page that may hold any message is on its way (the first, or a catch-up's). */
  awaitingPage() {
    return !this.loaded || this.catchingUp;
  }

  /** A live frame; `replayed` when `startOver` plays it again over its page (the thread
   * view, which it does not touch, has had it). */
  onFrame(frame, replayed = false) {
    if (frame.room !== this.room.id && frame.type !== 'presence' && frame.type !== 'presence_snapshot') return;
    if (this.meanwhile && REPLAYED_AFTER_START_OVER.has(frame.type)) this.meanwhile.push(frame);
    const someone = frame.type === 'message' ? frame.sender : frame.user_id;
    if (frame.type !== 'presence' && this.roster.heardFrom(someone)) this.loadMembers().catch(() => {});
    switch (frame.type) {
      case 'message':
        this.arrive([frame]);
        // Live frames follow each other without a gap, once any catch-up is done.
        if (!this.catchingUp && !this.gapOwed) this.streamedTo = Math.max(this.streamedTo, frame.id);
        break;
      case 'message.updated': {
        const known = this.messages.get(frame.id);
        // Frames mark no reaction as the reader's (one frame serves every reader): keep ours.
        if (known) {
          this.insert([{ ...known, ...frame, reactions: known.reactions, reactions_version: known.reactions_version, emojiVersions: known.emojiVersions }]);
        }
        else if (this.awaitingPage()) this.early.set(frame.id, frame);
        break;
      }
      case 'message.deleted': {
        const known = this.messages.get(frame.id);
        if (known) this.insert([{ ...known, is_deleted: true, body: '', file: null }]);
        else if (this.awaitingPage()) this.early.set(frame.id, frame);
        break;
      }
      case 'typing':
        this.typing.heard(frame);
        break;
      case 'read':
        if (this.roster.read(frame.user_id, frame.last_read_msg_id)) this.drawReceipts();
        break;
      case 'presence':
      case 'presence_snapshot':
        this.drawInfo();
        break;
      case 'reaction.added':
      case 'reaction.removed': {
        const known = this.messages.get(frame.message_id);
        const next = known && applyReactionFrame(known, frame, state.me.id);
        if (next) this.insert([{ ...known, ...next }]);
        break;
      }
      case 'thread.updated': {
        // Newer is a later reply, or more of them: an older one announced again (an API
        // restarting) is not news, but a reply after retention lowered the count is.
        const known = this.messages.get(frame.root_id);
        const later = frame.last_reply_at && (!known?.last_reply_at || Date.parse(frame.last_reply_at) > Date.parse(known.last_reply_at));
        if (known && (later || frame.reply_count >= (known.reply_count || 0))) {
          this.insert([{ ...known, reply_count: frame.reply_count, last_reply_at: frame.last_reply_at, repliers: frame.repliers }]);
        }
        break;
      }
      default:
    }
    if (!replayed) this.thread?.onFrame(frame);
  }
}
