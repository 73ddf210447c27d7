//! Lost seats reach open sockets even when their first announcement does not (a multiplexed
//! one is told with a `left` frame), and an old loss announced again never undoes a newer
//! seat. In both shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

/// What a restarting API process does first: announce the last changes again.
async fn api_restarts(p: &Platform) {
    let window = Duration::from_secs(60);
    p.app.state.chat.reannounce_recent(window).await.unwrap();
}

/// Bob leaves a room and the API dies between the commit and the announcement: his open socket
/// went on receiving the room's messages until it reconnected. The leave is in the outbox now,
/// and the next API process announces it again at start-up.
async fn a_leave_never_announced_is_announced_at_the_next_start(p: Arc<Platform>) {
    let (general, alice, bob, org) = p.team().await;
    let other = p.room(org, &alice, "other").await;
    p.room_action(&bob, other, "join").await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    // The leave, committed and never announced.
    assert!(p
        .app
        .state
        .store
        .remove_room_member(general, bob.id)
        .await
        .unwrap());
    api_restarts(&p).await;
    // The client hears that the room left its list.
    let (left, _) = frame_of(&mut all, "left").await;
    assert_eq!(
        (left["room"].as_i64(), left["reason"].as_str()),
        (Some(general), Some("not_member")),
        "{left}"
    );
    p.post(&alice, general, "not for bob any more").await;
    let marker = p.post(&alice, other, "for bob").await;
    loop {
        let (message, _) = frame_of(&mut all, "message").await;
        assert_ne!(message["room"].as_i64(), Some(general), "{message}");
        if message["id"].as_i64() == Some(marker) {
            break;
        }
    }
}

/// Bob leaves a room and joins it again; then an API starts and announces his leave again. His
/// socket must go on following the room: the gateway checks a loss before acting on it.
async fn an_old_leave_announced_again_does_not_undo_a_new_seat(p: Arc<Platform>) {
    let (general, alice, bob, _org) = p.team().await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    p.room_action(&bob, general, "leave").await;
    p.room_action(&bob, general, "join").await;
    let back = p.post(&alice, general, "welcome back").await;
    assert_eq!(
        message_in(&mut all, general).await["id"].as_i64(),
        Some(back)
    );
    api_restarts(&p).await;
    let next = p.post(&alice, general, "still here").await;
    assert_eq!(
        message_in(&mut all, general).await["id"].as_i64(),
        Some(next)
    );
}

both_shapes!(
    a_leave_never_announced_is_announced_at_the_next_start,
    an_old_leave_announced_again_does_not_undo_a_new_seat,
);
