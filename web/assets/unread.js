// The unread counts beside each room: the server's, read with the room list, and what this tab
// has learnt since from frames (messages and mentions in rooms not open) and from its own reads.

import { state } from './app.js';

// Reads of the counts under way, and the messages and mentions counted from frames meanwhile:
// a count read before one of them came would otherwise drop it (see `takeCounts`).
let reads = 0;
let countedMeanwhile = [];

/** `reading` (a read of the server's counts, with what is read beside them), awaited; frames
 * counted meanwhile are kept for `takeCounts`, which its caller runs in the same turn. */
export async function whileCountsRead(reading) {
  reads += 1;
  try {
    return await reading;
  } finally {
    reads -= 1;
    // Kept until the answer is taken (later in this turn) and while another read waits.
    if (!reads) setTimeout(() => { if (!reads) countedMeanwhile = []; });
  }
}

/** Counts `frame`'s message as unread in its room; with `mention`, a mention frame's mention. */
export function countUnread(frame, mention) {
  const counts = state.unread.get(frame.room) || { unread_count: 0, mentions: 0 };
  if (mention) counts.mentions += 1;
  else counts.unread_count += 1;
  state.unread.set(frame.room, counts);
  if (reads) countedMeanwhile.push({ room: frame.room, id: mention ? frame.message?.id : frame.id, mention });
}

/** Makes counts the server gave (by room) the ones shown, with what this tab knows better. */
export function takeCounts(loaded) {
  // A room read here after the counts were read keeps what this tab knows of it (the read,
  // and what came after it): the older count would stand until the next refresh.
  const readHere = new Set();
  for (const [roomId, counts] of loaded) {
    const local = state.unread.get(roomId);
    if (local && (local.last_read_msg_id || 0) > (counts.last_read_msg_id || 0)) {
      Object.assign(counts, { unread_count: local.unread_count, mentions: local.mentions, last_read_msg_id: local.last_read_msg_id });
      readHere.add(roomId);
    }
  }
  // A message counted from its frame while the counts were read, newer than the newest they
  // knew of, is counted on them too (a room read here has its own count, which has it).
  for (const { room, id, mention } of countedMeanwhile) {
    const counts = loaded.get(room);
    if (!counts || readHere.has(room) || !(id > (counts.last_msg_id || 0))) continue;
    if (mention) counts.mentions += 1;
    else counts.unread_count += 1;
  }
  state.unread = loaded;
}
