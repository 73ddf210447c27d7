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
  }

  /** Reads the members again. */
  async load() {
    // The room list's count may be old (rooms grow and shrink while it stands): a large room's
    // is read again, one row, before its member list is given up.
    if (this.room.members_count > RECEIPTS_UP_TO) {
      const { members_count: count } = await api('GET', `/api/rooms/${this.room.id}/`);
      this.room.members_count = count;
    }
    const members = this.room.members_count > RECEIPTS_UP_TO
      ? null : await api('GET', `/api/rooms/${this.room.id}/members/`);
    if (members) this.room.members_count = members.length;
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
    if (!this.memberIds && this.room.members_count > RECEIPTS_UP_TO) {
      return `${this.room.members_count.toLocaleString('en')} members`;
    }
    const ids = this.memberIds || [];
    const online = ids.filter((id) => id === state.me.id || state.online.has(id)).length;
    return `${ids.length} member${ids.length === 1 ? '' : 's'} · ${online} online`;
  }

  /** Takes note of someone heard in the room; true when they are new to it (read the members
   * again: their seat, name and read pointer). */
  heardFrom(userId) {
    if (!userId || !this.memberIds || this.memberIds.includes(userId)) return false;
    this.memberIds.push(userId);
    return true;
  }

  /** Takes note of another member's read pointer; true when receipts changed. */
  read(userId, lastReadMsgId) {
    // A room without receipts (too large) keeps no read pointers.
    if (userId === state.me.id || !this.memberIds) return false;
    this.readers.set(userId, lastReadMsgId);
    return true;
  }
}
