// A room's members as its view shows them: how many, how many of them are online, and where
// each other member has read up to ("Seen by …").
//
// Larger rooms show their member count alone: no "Seen by" and no online count. Both need the
// whole member list with each member's read pointer, fetched on every visit (a megabyte in a
// room of 5,000, opened by all of them at once after a restart), and "Seen by" fifty names says
// little anyway. The server sends others' receipts and presence only in rooms up to the same
// size (`SMALL_ROOM_MEMBERS` in core/src/model.rs).

import { api } from './api.js';
import { state } from './app.js';

const RECEIPTS_UP_TO = 50;

export class Roster {
  constructor(room) {
    this.room = room;
    // Member ids, in a room small enough for receipts once read; null otherwise.
    this.memberIds = null;
    // Each other member's read pointer, by user id (small rooms only).
    this.readers = new Map();
    // The read under way, and whether another is wanted after it (someone new was heard).
    this.loading = null;
    this.again = false;
  }

  /** Reads the members again: one read at a time, another after it if asked meanwhile. */
  load() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.again = false;
          await this.readOnce();
        } while (this.again);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  async readOnce() {
    let count = this.room.members_count;
    // The room list's count may be old (rooms grow and shrink while it stands): a large room's
    // is read again, one row, before its member list is given up (the listed one if that fails).
    if (count > RECEIPTS_UP_TO) {
      const fresh = await api('GET', `/api/rooms/${this.room.id}/`).catch(() => null);
      if (fresh) count = fresh.members_count;
    }
    const members = count > RECEIPTS_UP_TO ? null : await api('GET', `/api/rooms/${this.room.id}/members/`);
    if (members) count = members.length;
    // All at once, after the reads: the view draws from these at any moment.
    this.room.members_count = count;
    if (!members || members.length > RECEIPTS_UP_TO) {
      // Grown past it (or never under): no receipts, no online count, as the server sends none.
      this.memberIds = null;
      this.readers = new Map();
    } else {
      this.readers = new Map(members.filter((m) => m.user_id !== state.me.id).map((m) => [m.user_id, m.last_read_msg_id || 0]));
      this.memberIds = members.map((m) => m.user_id);
    }
  }

  /** The line under the room's name. */
  info() {
    if (!this.memberIds) {
      // Large, or not read yet.
      const count = this.room.members_count;
      return `${count.toLocaleString('en')} member${count === 1 ? '' : 's'}`;
    }
    const ids = this.memberIds;
    const online = ids.filter((id) => id === state.me.id || state.online.has(id)).length;
    return `${ids.length} member${ids.length === 1 ? '' : 's'} · ${online} online`;
  }

  /** Takes note of someone heard in the room; true when they are new to it (read the members
   * again: their seat, name and read pointer). */
  heardFrom(userId) {
    if (!userId) return false;
    if (this.loading) {
      // The read under way may have been answered before they came: one more after it.
      if (!this.memberIds?.includes(userId)) this.again = true;
      return false;
    }
    return Boolean(this.memberIds) && !this.memberIds.includes(userId);
  }

  /** Takes note of another member's read pointer; true when receipts changed. */
  read(userId, lastReadMsgId) {
    // A room without receipts (too large) keeps no read pointers.
    if (userId === state.me.id || !this.memberIds) return false;
    this.readers.set(userId, lastReadMsgId);
    return true;
  }
}
