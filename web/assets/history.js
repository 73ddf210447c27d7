// What a room view holds of its room's history, and how it comes: the first page, older pages
// on scrolling back, the catch-up after a reconnect, and live messages, merged by id and drawn in
// id order, each once; a view at the bottom lets its oldest go. room.js's RoomView builds on it
// and draws (`draw`, `drawReceipts`), marks read (`markRead`) and receives (`arrive`).
//
// Order and uniqueness: confirmed messages are kept by id and drawn in id order, whether they
// come from a page, a live frame or the catch-up after a reconnect, so each shows once, in order.

import { api, nextPath } from './api.js';
import { h, replace } from './dom.js';
import { failed, roomLost, roomTitle, state } from './app.js';
import { releaseFiles } from './files.js';
import { mergeReactions } from './reactions.js';

export const PAGE = 50;
// A view at the bottom holds this many messages at most, then lets the oldest go down to
// HELD_AFTER_TRIM: a room left open all day would otherwise grow without end. Scrolling back
// pages them in again.
export const HELD_MAX = 1000;
const HELD_AFTER_TRIM = 600;
// The pages of 100 a catch-up reads at most: a view further behind (a tab woken after a
// weekend) starts over from the newest page, with the rest behind "Load older messages",
// rather than read the whole gap (hundreds of requests, the user's own limit spent on them).
const CATCH_UP_PAGES = 20;

/** Whether two copies of a message would be drawn the same (a frame and a POST's answer). */
function sameContent(a, b) {
  return a.body === b.body && a.edited_at === b.edited_at && a.is_deleted === b.is_deleted
    && a.reply_count === b.reply_count && JSON.stringify(a.reactions) === JSON.stringify(b.reactions);
}

/** The messages of `room` a view holds, and the reading of them. */
export class RoomHistory {
  constructor(room) {
    this.room = room;
    this.messages = new Map();
    this.ids = [];
    this.nodes = new Map();
    // Every message up to this id is held: the first page, then live frames, then catch-ups.
    // A message posted over REST is not counted (others' messages before it may be missing
    // while the socket was down), so a catch-up starts from here, not from the newest held.
    this.streamedTo = 0;
    this.catchingUp = false;
    // A catch-up failed and is to be tried again: live frames meanwhile do not move
    // `streamedTo`, or the retry would start after them and leave what it missed behind.
    this.gapOwed = false;
    this.loadingLatest = false;
    // Edits and deletions announced for a message not held yet, while a page that may hold
    // it is on its way: applied when it comes.
    this.early = new Map();
    this.older = undefined;
    this.loadingOlder = false;
    this.destroyed = false;
    // Counts the view's fresh starts (`startOver`): a page asked for before one belongs to the
    // history let go, and is dropped when it comes.
    this.generation = 0;
    // While `startOver` waits for its page: the room's frames that change messages.
    this.meanwhile = null;
  }

  /** The room's newest page, as the API gives it. */
  latestPage() {
    return api('GET', `/api/rooms/${this.room.id}/messages/?limit=${PAGE}`);
  }

  async loadLatest() {
    this.loadingLatest = true;
    let page;
    try {
      page = await this.latestPage();
    } finally {
      this.loadingLatest = false;
    }
    if (this.destroyed) return;
    this.showLatest(page);
  }

  /** Draws the newest page as the view's history from there on. */
  showLatest(page) {
    const started = performance.now();
    this.insert(page.results);
    for (const message of page.results) this.streamedTo = Math.max(this.streamedTo, message.id);
    this.older = page.next;
    this.loaded = true;
    if (!this.catchingUp) this.early.clear();
    this.drawTop();
    const built = performance.now();
    this.scroller.scrollTop = this.scroller.scrollHeight;
    window.chatboardMetrics = { ...window.chatboardMetrics, firstPageRenderMs: performance.now() - started, firstPageBuildMs: built - started, firstPageCount: page.results.length };
    if (this.catchUpAfterLoad) {
      this.catchUpAfterLoad = false;
      this.onReconnected();
    }
    this.markRead();
  }

  /** Reads the first page again after `delay` ms, and on failure later again (up to 30 s),
   * until it is in; a room no longer the user's closes instead. */
  retryLatest(delay) {
    const next = Math.min(delay * 2, 30_000);
    setTimeout(async () => {
      if (this.destroyed || this.loaded) return;
      // A read already under way (a reconnect's) may fail too: look again after it.
      if (this.loadingLatest) return this.retryLatest(next);
      try {
        await this.loadLatest();
      } catch (error) {
        if (!this.lostBy(error)) this.retryLatest(next);
      }
    }, delay);
  }

  /** Whether `error` says the room is no longer the user's (the seat or the room went while
   * the socket was down: no frame says so, and the answer does not say which); it closes then. */
  lostBy(error) {
    if (error.status !== 403 && error.status !== 404) return false;
    roomLost(this.room.id, null);
    return true;
  }

  /** Pages older messages in; after a failure, scrolling asks again only once a pause has
   * passed (a limit's Retry-After, or 2 s doubling to 30 s), as the button may at once. */
  async loadOlder(fromScroll = false) {
    if (!this.older || this.loadingOlder) return;
    if (fromScroll && Date.now() < (this.olderPausedUntil || 0)) return;
    this.loadingOlder = true;
    this.drawTop();
    const generation = this.generation;
    try {
      // Pages of 100 going back (the most the API gives): half the round trips of the first's 50.
      const page = await api('GET', `/api/rooms/${this.room.id}/messages/?before=${this.ids[0]}&limit=100`);
      if (generation !== this.generation) return;
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.insert(page.results, { older: true });
      this.older = page.next;
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
      this.olderPause = 0;
    } catch (error) {
      if (this.lostBy(error)) return;
      failed(error);
      this.olderPause = Math.min((this.olderPause || 1000) * 2, 30_000);
      this.olderPausedUntil = Date.now() + Math.max(this.olderPause, (Number(error.retryAfter) || 0) * 1000);
    } finally {
      this.loadingOlder = false;
      this.drawTop();
    }
  }

  /** The button that pages older messages in, or the room's start once all are in. The button
   * stays one element while it pages (a button replaced, or disabled, while focused dropped the
   * keyboard's focus to the top of the page); at the start the focus goes to the oldest message. */
  drawTop() {
    let button = this.top.querySelector('button');
    if (!this.older) {
      const focused = button && button === document.activeElement;
      replace(this.top, h('p', { class: 'start' }, `This is the start of ${roomTitle(this.room)}.`));
      if (focused) this.nodes.get(this.ids[0])?.focus({ preventScroll: true });
      return;
    }
    if (!button) {
      button = h('button', { class: 'link', onclick: () => this.loadOlder() });
      replace(this.top, button);
    }
    button.textContent = this.loadingOlder ? 'Loading…' : 'Load older messages';
    if (this.loadingOlder) button.setAttribute('aria-busy', 'true');
    else button.removeAttribute('aria-busy');
  }

  /** After a reconnect: everything after the last message known without a gap, page by page. */
  async onReconnected() {
    if (this.destroyed) return;
    if (!this.loaded) {
      // The first page is on its way: catch up once it is in (it may predate the reconnect).
      // If it failed, load it now.
      // Once it is in, what was typed while it failed goes again.
      if (this.loadingLatest) this.catchUpAfterLoad = true;
      else await this.loadLatest().then(() => this.outbox.resendOffline(), failed);
      return;
    }
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return;
    }
    if (this.streamedTo === 0) {
      // Nothing known yet (the room was empty): whatever it holds now is new.
      await this.loadLatest().catch(failed);
      this.outbox.resendOffline();
      return;
    }
    this.catchingUp = true;
    const before = this.streamedTo;
    let after = this.streamedTo;
    let path = `/api/rooms/${this.room.id}/messages/?after=${after}&limit=100`;
    let pages = 0;
    try {
      // (A message being edited is not let go: the catch-up then reads the whole gap.)
      while (path && !this.destroyed && (pages < CATCH_UP_PAGES || this.editing)) {
        const page = await api('GET', path);
        pages += 1;
        this.arrive(page.results);
        for (const message of page.results) after = Math.max(after, message.id);
        this.streamedTo = after;
        path = page.next ? nextPath(page.next) : null;
      }
      if (path && !this.destroyed) {
        await this.startOver();
      } else {
        // Caught up; live frames since the reconnect are all held too.
        this.streamedTo = Math.max(after, this.ids.at(-1) || 0);
        this.gapOwed = false;
        // Edits, deletions, reactions and replies made while the socket was down came as no
        // frame: what the view held up to where it stood is read again, newest first, and
        // what changed is drawn (a deleted message must not stay on screen because it was not
        // among the newest).
        // Behind (messages wait below a scrolled-up view, undrawn): from the newest drawn, or
        // the read would draw the waiting ones into the view, past a gap.
        await this.readHeldAgain(this.behind ? Math.min(before, this.ids.at(-1) || before) : before);
      }
      this.thread?.catchUp();
      // Not a gap if it fails: the line under the room's name waits for the next read.
      await this.loadMembers().catch(() => {});
      // A read sent on a socket that was already dead never arrived: said again (the pointer
      // only moves forward, so repeating it is harmless).
      if (this.myRead) state.live?.send({ type: 'read', room: this.room.id, msg_id: this.myRead });
    } catch (error) {
      if (this.lostBy(error)) {
        this.catchingUp = false;
        return;
      }
      failed(error);
      // Left with a gap: try again shortly rather than wait for the next reconnect (not before
      // a limit that refused it says).
      this.gapOwed = true;
      const wait = Math.max(5000, (Number(error.retryAfter) || 0) * 1000);
      if (!this.destroyed) setTimeout(() => this.onReconnected(), wait);
    } finally {
      this.catchingUp = false;
      this.early.clear();
    }
    if (this.catchUpAgain && !this.destroyed) {
      this.catchUpAgain = false;
      return this.onReconnected();
    }
    this.outbox.resendOffline();
    if (!this.destroyed) this.caughtUp();
  }

  /** Called once a catch-up has ended: the view's turn for what waited for it. */
  caughtUp() {}

  /** Reads the newest page and lets every held message go for it, as when the room opened
   * (once it has come: a view emptied first stayed empty when the page failed). */
  async startOver() {
    const generation = ++this.generation;
    // The room's frames that come while the page is on its way: it may have been read before
    // them, and the history they went to (or, behind, did not) is let go for it. They are
    // played again over it.
    const meanwhile = [];
    this.meanwhile = meanwhile;
    let page;
    try {
      page = await this.latestPage();
    } finally {
      if (this.meanwhile === meanwhile) this.meanwhile = null;
    }
    if (this.destroyed || generation !== this.generation) return;
    this.letGo(this.ids.splice(0));
    this.nodes.clear();
    this.messages.clear();
    this.current = undefined;
    this.currentChosen = false;
    this.behind = false;
    this.streamedTo = 0;
    this.older = undefined;
    this.gapOwed = false;
    this.showLatest(page);
    for (const frame of meanwhile) this.onFrame(frame, true);
  }

  /** Reads again, in pages of 100 going back from `upTo`, the messages held down to the oldest
   * (at most HELD_MAX of them), drawing what changed. */
  async readHeldAgain(upTo) {
    const generation = this.generation;
    let cursor = upTo + 1;
    let read = 0;
    while (!this.destroyed && this.ids.length && cursor > this.ids[0] && read < HELD_MAX) {
      const page = await api('GET', `/api/rooms/${this.room.id}/messages/?before=${cursor}&limit=100`);
      if (this.destroyed || generation !== this.generation) return;
      this.insert(page.results);
      read += page.results.length;
      if (!page.next || !page.results.length) return;
      cursor = page.results.at(-1).id;
    }
  }

  /** Lets the oldest messages go once a view at the bottom holds HELD_MAX; not while one of
   * them is being edited, or while an older page is on its way. */
  trimOldest() {
    const drop = this.ids.length - HELD_AFTER_TRIM;
    if (this.ids.length <= HELD_MAX || this.loadingOlder) return;
    const dropped = this.ids.slice(0, drop);
    if (dropped.includes(this.editing)) return;
    this.letGo(this.ids.splice(0, drop));
    if (!this.messages.has(this.current)) {
      this.currentChosen = false;
      this.current = this.ids.at(-1);
      this.nodes.get(this.current).tabIndex = 0;
    }
    // There are older messages again, paged in from the oldest held.
    this.older = this.older || 'trimmed';
    this.drawTop();
  }

  /** Takes the messages `ids` (already out of `this.ids`) off the page and out of memory. A
   * message clicked long ago keeps the focus (messages take it, for their keys): it moves to
   * the composer rather than hold every message after it for the rest of the day (on a touch
   * screen it is let go instead: focusing the composer brings up the keyboard). */
  letGo(ids) {
    if (ids.some((id) => this.nodes.get(id)?.contains(document.activeElement))) {
      if (matchMedia('(pointer: fine)').matches) this.input.focus({ preventScroll: true });
      else document.activeElement.blur();
    }
    for (const id of ids) {
      const node = this.nodes.get(id);
      releaseFiles(node);
      node?.remove();
      this.nodes.delete(id);
      this.messages.delete(id);
    }
  }

  /** Adds or updates messages, drawn in id order; returns the ones that were new. A message
   * older than those held while there are older ones still to page in is left out (a page read
   * again after a reconnect, reaching below a trimmed view) unless `older` pages them in: it
   * would stand alone above a gap. */
  insert(messages, { older = false } = {}) {
    const added = [];
    let changed = false;
    // Messages whose text changed, or thread roots new here: replies quote their first words.
    const retold = new Set();
    for (let message of messages) {
      if (message.room !== this.room.id) continue;
      this.outbox.settle(message.client_msg_id, message.sender);
      if (!older && this.older && this.ids.length && message.id < this.ids[0]) continue;
      const early = this.early.get(message.id);
      if (early) {
        this.early.delete(message.id);
        message = early.type === 'message.deleted'
          ? { ...message, is_deleted: true, body: '', file: null }
          : { ...message, ...early, reactions: message.reactions, reactions_version: message.reactions_version };
      }
      const known = this.messages.get(message.id);
      // A page read before a change that a frame has brought since must not undo it: a
      // deletion is final, and an edit gives way only to a newer one.
      if (known?.is_deleted && !message.is_deleted) {
        message = { ...message, is_deleted: true, body: '', file: null };
      } else if (known?.edited_at && !(Date.parse(message.edited_at) >= Date.parse(known.edited_at))) {
        message = { ...message, body: known.body, edited_at: known.edited_at, mentions: known.mentions };
      }
      // A page's copy holds the reactions as of its `reactions_version`: frames newer than
      // that, applied meanwhile, stay.
      if (known && !('emojiVersions' in message) && message.reactions_version !== undefined) {
        message = { ...message, ...mergeReactions(known, message.reactions || [], message.reactions_version) };
      }
      if (known && sameContent(known, message)) {
        // Nothing to draw, but what the copy knows of reaction versions is kept.
        this.messages.set(message.id, message);
        continue;
      }
      this.messages.set(message.id, message);
      if (known && this.editing === message.id) continue; // Drawn again when the edit ends.
      const node = this.draw(message);
      const old = this.nodes.get(message.id);
      this.nodes.set(message.id, node);
      if (known && old) {
        if (known.body !== message.body || known.is_deleted !== message.is_deleted) retold.add(message.id);
        const focused = old.contains(document.activeElement);
        releaseFiles(old);
        old.replaceWith(node);
        if (focused) node.focus();
        changed = true;
        continue;
      }
      added.push(message);
      // A page comes newest first: its replies were drawn before their thread's first message.
      if (message.reply_count) retold.add(message.id);
      const at = this.position(message.id);
      this.ids.splice(at, 0, message.id);
      const next = this.ids[at + 1];
      this.list.insertBefore(node, next === undefined ? null : this.nodes.get(next));
    }
    if (retold.size) this.redrawReplies(retold);
    if (added.length || changed) this.drawReceipts();
    // Until the reader moves among the messages, the newest is the one in the Tab order.
    if (added.length && !this.currentChosen && this.ids.at(-1) !== this.current) {
      const old = this.nodes.get(this.current);
      if (old) old.tabIndex = -1;
      this.current = this.ids.at(-1);
      this.nodes.get(this.current).tabIndex = 0;
    }
    return added;
  }

  /** Draws again the replies held to the threads of `roots`, whose quoted words changed. */
  redrawReplies(roots) {
    for (const message of this.messages.values()) {
      if (!roots.has(message.parent_id) || this.editing === message.id) continue;
      const old = this.nodes.get(message.id);
      if (!old) continue;
      const node = this.draw(message);
      this.nodes.set(message.id, node);
      const focused = old.contains(document.activeElement);
      releaseFiles(old);
      old.replaceWith(node);
      if (focused) node.focus();
    }
  }

  position(id) {
    let low = 0;
    let high = this.ids.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.ids[mid] < id) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}
