//! The typing throttle: a flood is cut to one "started" per interval (a few more, each after a
//! "stopped"), and a "stopped" after a "started" that got through is never dropped (others
//! would see the user typing for good).

use chat::limits::{TypingThrottle, TYPING_INTERVAL, TYPING_STARTS_PER_INTERVAL};
use std::time::Duration;

const USER: i64 = 7;
const ROOM: i64 = 3;

#[tokio::test(start_paused = true)]
async fn a_flood_of_started_passes_once_per_interval() {
    let throttle = TypingThrottle::default();
    assert!(throttle.allowed(USER, ROOM, true));
    for _ in 0..10 {
        assert!(!throttle.allowed(USER, ROOM, true));
    }
    tokio::time::advance(TYPING_INTERVAL).await;
    assert!(throttle.allowed(USER, ROOM, true));
    // Another user, or the same user in another room, is counted apart.
    assert!(throttle.allowed(USER + 1, ROOM, true));
    assert!(throttle.allowed(USER, ROOM + 1, true));
}

/// started at 0 s, stopped at 1.5 s, started at 2 s, stopped at 3 s: the last "stopped" came
/// 1.5 s after the previous one, and a throttle counting each kind apart dropped it.
#[tokio::test(start_paused = true)]
async fn stopped_after_a_passed_started_is_never_dropped() {
    let throttle = TypingThrottle::default();
    assert!(throttle.allowed(USER, ROOM, true));
    tokio::time::advance(Duration::from_millis(1500)).await;
    assert!(throttle.allowed(USER, ROOM, false));
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(throttle.allowed(USER, ROOM, true));
    tokio::time::advance(Duration::from_millis(1000)).await;
    assert!(
        throttle.allowed(USER, ROOM, false),
        "the user stopped typing; others must hear it"
    );
}

/// Typing, sending the message at 0.5 s and typing the next at 1 s: the second "started" was
/// dropped (one per interval), and others saw the user stopped while they typed.
#[tokio::test(start_paused = true)]
async fn typing_again_soon_after_stopping_is_passed_on() {
    let throttle = TypingThrottle::default();
    assert!(throttle.allowed(USER, ROOM, true));
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(throttle.allowed(USER, ROOM, false));
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(
        throttle.allowed(USER, ROOM, true),
        "typing again after a stop must be heard"
    );
    // While it goes on, a repeated "started" says nothing new.
    assert!(!throttle.allowed(USER, ROOM, true));
}

#[tokio::test(start_paused = true)]
async fn flipping_cannot_fan_out_more_than_a_few_pairs_per_interval() {
    let throttle = TypingThrottle::default();
    let mut passed = 0;
    for i in 0..20 {
        if throttle.allowed(USER, ROOM, i % 2 == 0) {
            passed += 1;
        }
        tokio::time::advance(Duration::from_millis(50)).await;
    }
    // One second of flipping: the first "started"s of the interval, each with its "stopped".
    assert_eq!(passed, 2 * usize::from(TYPING_STARTS_PER_INTERVAL));
    // A repeated "stopped" says nothing new.
    assert!(!throttle.allowed(USER, ROOM, false));
}
