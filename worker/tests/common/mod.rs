//! Shared setup: a migrated store with one room, and posts into it (each writes outbox events).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly by design

use std::sync::Arc;

use chatboard_core::model::AccessLevel;
use chatboard_core::store::{NewMessage, NewRoom, NewUser, Store};
use chrono::Utc;

/// A store with a room, returning (store, room, author).
pub async fn store_with_room(url: &str) -> (Arc<dyn Store>, i64, i64) {
    let store = chatboard_core::store::connect(url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = Utc::now();
    let user = store
        .create_user(
            NewUser {
                email: "w@example.com".into(),
                password_hash: "!".into(),
                first_name: String::new(),
                last_name: String::new(),
            },
            now,
        )
        .await
        .unwrap();
    let org = store.create_org(user.id, "Work", now).await.unwrap();
    let room = store
        .create_room(
            NewRoom {
                org_id: org.id,
                name: "jobs".into(),
                access_level: AccessLevel::Public,
                created_by: user.id,
            },
            now,
        )
        .await
        .unwrap();
    (store, room.id, user.id)
}

pub async fn post(store: &Arc<dyn Store>, room: i64, sender: i64, n: usize) {
    for i in 0..n {
        let message = NewMessage {
            room_id: room,
            sender_id: sender,
            body: format!("m{i}"),
            client_msg_id: None,
        };
        store.post_message(message, Utc::now()).await.unwrap();
    }
}
