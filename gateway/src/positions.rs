//! Where a connection stands in each room it follows.
//!
//! The hub reads and moves a connection's position for every message it writes to the socket.
//! Most connections follow one room (the per-room endpoint), and a map keeps even one entry in
//! an allocation of its own: with thousands of sockets, that was two cache misses per
//! delivery, before and after the batch of writes (BENCHMARKS.md, "The hub's own cost per
//! delivery"). So the first room's position lives inline, and only further rooms go to a map.

use std::collections::HashMap;

use crate::session::Position;

/// Positions by room id: the first room inline, any others in a map.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    first: Option<(i64, Position)>,
    others: HashMap<i64, Position>,
}

impl Positions {
    /// The position in `room_id`, if the connection follows it.
    pub(crate) fn get(&self, room_id: i64) -> Option<Position> {
        match self.first {
            Some((room, at)) if room == room_id => Some(at),
            _ => self.others.get(&room_id).copied(),
        }
    }

    /// The position in `room_id` to move, if the connection follows it.
    pub(crate) fn get_mut(&mut self, room_id: i64) -> Option<&mut Position> {
        match &mut self.first {
            Some((room, at)) if *room == room_id => Some(at),
            _ => self.others.get_mut(&room_id),
        }
    }

    /// Sets the position in `room_id`, following it if it did not yet.
    pub(crate) fn insert(&mut self, room_id: i64, at: Position) {
        if let Some(position) = self.get_mut(room_id) {
            *position = at;
        } else if self.first.is_none() {
            self.first = Some((room_id, at));
        } else {
            self.others.insert(room_id, at);
        }
    }

    /// Stops following `room_id`.
    pub(crate) fn remove(&mut self, room_id: i64) {
        if self.first.is_some_and(|(room, _)| room == room_id) {
            self.first = None;
        } else {
            self.others.remove(&room_id);
        }
    }

    /// The rooms followed.
    pub(crate) fn rooms(&self) -> Vec<i64> {
        self.first
            .iter()
            .map(|(room, _)| *room)
            .chain(self.others.keys().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(last_id: i64) -> Position {
        Position {
            last_id,
            last_seq: Some(last_id),
        }
    }

    fn sorted(positions: &Positions) -> Vec<i64> {
        let mut rooms = positions.rooms();
        rooms.sort_unstable();
        rooms
    }

    #[test]
    fn rooms_are_kept_apart_inline_and_in_the_map() {
        let mut positions = Positions::default();
        assert!(positions.get(1).is_none());
        positions.insert(1, at(10));
        positions.insert(2, at(20));
        positions.insert(3, at(30));
        positions.insert(2, at(21));
        positions.insert(1, at(11));
        assert_eq!(sorted(&positions), [1, 2, 3]);
        assert_eq!(positions.get(1).map(|p| p.last_id), Some(11));
        assert_eq!(positions.get(2).map(|p| p.last_id), Some(21));
        if let Some(p) = positions.get_mut(3) {
            p.last_id = 31;
        }
        assert_eq!(positions.get(3).map(|p| p.last_id), Some(31));
    }

    #[test]
    fn a_room_removed_is_gone_and_can_come_back_once() {
        let mut positions = Positions::default();
        positions.insert(1, at(10));
        positions.insert(2, at(20));
        positions.remove(1);
        assert!(positions.get(1).is_none());
        assert_eq!(sorted(&positions), [2]);
        // Room 2 sits in the map, the inline slot is free: setting it again must not make two.
        positions.insert(2, at(22));
        positions.insert(4, at(40));
        assert_eq!(sorted(&positions), [2, 4]);
        assert_eq!(positions.get(2).map(|p| p.last_id), Some(22));
        positions.insert(1, at(12));
        assert_eq!(sorted(&positions), [1, 2, 4]);
        assert_eq!(positions.get(1).map(|p| p.last_id), Some(12));
        positions.remove(1);
        positions.remove(2);
        positions.remove(4);
        assert!(positions.rooms().is_empty());
    }
}
