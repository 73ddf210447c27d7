// "… is typing" in one room, both ways: what this person types is announced over the live
// socket (at most every few seconds while they type, and "stopped" once they pause, send or
// leave), and others' announcements are shown in the room's typing line until they stop or
// go quiet.

import { displayName, replace } from './dom.js';
import { state } from './app.js';

const SEND_EVERY_MS = 3000;
const IDLE_MS = 4000;
const SHOWN_MS = 6000;

export class Typing {
  /** For room `roomId`, drawing others' typing in `line`. */
  constructor(roomId, line) {
    this.roomId = roomId;
    this.line = line;
    // Who is typing, each with the timer that forgets them if no "stopped" comes.
    this.typists = new Map();
    this.lastSent = 0;
    this.idleTimer = null;
  }

  /** The composer changed: `hasText` whether anything is in it. */
  typed(hasText) {
    if (!hasText) return this.stopped();
    if (Date.now() - this.lastSent > SEND_EVERY_MS) this.send(true);
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.send(false), IDLE_MS);
  }

  /** This person stopped typing (sent, cleared, or left the room). */
  stopped() {
    this.send(false);
  }

  send(isTyping) {
    if (!isTyping && !this.lastSent) return;
    this.lastSent = isTyping ? Date.now() : 0;
    if (!isTyping) clearTimeout(this.idleTimer);
    state.live?.send({ type: 'typing', room: this.roomId, is_typing: isTyping });
  }

  /** Someone's `typing` frame for this room. */
  heard(frame) {
    if (frame.user_id === state.me.id) return;
    clearTimeout(this.typists.get(frame.user_id));
    if (frame.is_typing) {
      this.typists.set(frame.user_id, setTimeout(() => {
        this.typists.delete(frame.user_id);
        this.draw();
      }, SHOWN_MS));
    } else {
      this.typists.delete(frame.user_id);
    }
    this.draw();
  }

  /** The typing line, names as the member list has them now. */
  draw() {
    const names = [...this.typists.keys()].map((id) => displayName(state.members.get(id)));
    replace(this.line, names.length === 0 ? ''
      : names.length === 1 ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`);
  }

  /** The room is closed: "stopped" if this person was typing, and no timer left running. */
  destroy() {
    this.stopped();
    clearTimeout(this.idleTimer);
    for (const timer of this.typists.values()) clearTimeout(timer);
  }
}
