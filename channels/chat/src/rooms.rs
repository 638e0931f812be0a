//! The open chats of a node, by key, with the two look-ups that come with every start and
//! every agent's keystroke kept as maps: how many chats a visitor has open, and which
//! chat an interaction is. A node holds a hundred thousand chats; neither look-up scans
//! them all under the lock that every start and resume takes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::room::Room;

/// The open chats.
#[derive(Default)]
pub struct Rooms {
    by_key: HashMap<String, Arc<Room>>,
    /// Chats open per visitor id.
    per_visitor: HashMap<String, usize>,
    /// Chat keys by interaction id.
    by_interaction: HashMap<String, String>,
}

impl Rooms {
    /// The chat with key `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<Room>> {
        self.by_key.get(key)
    }

    /// The chat of interaction `id`.
    pub fn of_interaction(&self, id: &str) -> Option<&Arc<Room>> {
        self.by_key.get(self.by_interaction.get(id)?)
    }

    /// How many chats `visitor_id` has open.
    pub fn open_of(&self, visitor_id: &str) -> usize {
        self.per_visitor.get(visitor_id).copied().unwrap_or(0)
    }

    /// Every open chat.
    pub fn values(&self) -> impl Iterator<Item = &Arc<Room>> {
        self.by_key.values()
    }

    /// How many chats are open.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Adds `room` unless a chat with its key is open already; answers the one open.
    pub fn insert_if_absent(&mut self, room: Arc<Room>) -> Arc<Room> {
        if let Some(open) = self.by_key.get(&room.key) {
            return open.clone();
        }
        *self.per_visitor.entry(room.visitor_id.clone()).or_default() += 1;
        self.by_interaction
            .insert(room.interaction_id.clone(), room.key.clone());
        self.by_key.insert(room.key.clone(), room.clone());
        room
    }

    /// Removes the chat with key `key`.
    pub fn remove(&mut self, key: &str) -> Option<Arc<Room>> {
        let room = self.by_key.remove(key)?;
        if let Some(n) = self.per_visitor.get_mut(&room.visitor_id) {
            *n -= 1;
            if *n == 0 {
                self.per_visitor.remove(&room.visitor_id);
            }
        }
        if self
            .by_interaction
            .get(&room.interaction_id)
            .is_some_and(|k| k == key)
        {
            self.by_interaction.remove(&room.interaction_id);
        }
        Some(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visitors_chats_and_an_interactions_chat_are_counted_and_found_until_removed() {
        let mut rooms = Rooms::default();
        let a = Room::new("chat:a".into(), "i-a".into(), "v-1".into());
        let b = Room::new("chat:b".into(), "i-b".into(), "v-1".into());
        rooms.insert_if_absent(a.clone());
        rooms.insert_if_absent(b);
        assert_eq!(rooms.open_of("v-1"), 2);
        let again = Room::new("chat:a".into(), "i-a".into(), "v-1".into());
        assert!(
            Arc::ptr_eq(&rooms.insert_if_absent(again), &a),
            "the open one stays"
        );
        assert_eq!(rooms.open_of("v-1"), 2, "counted once");
        assert_eq!(rooms.of_interaction("i-b").unwrap().key, "chat:b");
        rooms.remove("chat:b");
        assert_eq!(rooms.open_of("v-1"), 1);
        assert!(rooms.of_interaction("i-b").is_none());
        rooms.remove("chat:a");
        assert_eq!((rooms.open_of("v-1"), rooms.len()), (0, 0));
        assert!(rooms.per_visitor.is_empty() && rooms.by_interaction.is_empty());
    }
}
