//! The frame rate a connection is held to (20 frames a second, as a burst too), with the time
//! the gateway itself did not read credited.

use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::FRAMES_PER_SECOND;

/// The longest pause credited, in seconds of frames at the allowed rate.
const MAX_CREDITED_SECS: u32 = 30;

/// The shortest stretch of the session's own work credited: a live event's usual handling is
/// far shorter, and a frame or two of credit for each would add up to a rate above the limit.
const OWN_WORK_CREDITED_FROM: Duration = Duration::from_millis(200);

/// The clock of every session's frame limiter. Making a clock tests the CPU for a usable time
/// stamp counter (`cpuid`, which a virtual machine traps), so the process makes one and each
/// limiter holds a copy, instead of one per connection.
static FRAME_CLOCK: LazyLock<DefaultClock> = LazyLock::new(DefaultClock::default);

fn frame_limiter() -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(FRAMES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct_with_clock(Quota::per_second(rate), FRAME_CLOCK.clone())
}

/// The frame rate a connection is held to, counted as frames are read. While the session does
/// not read (too many answers wait for their commits), frames wait in the socket, and are read
/// together once it reads again: the time it did not read is credited at the allowed rate, so
/// a client that kept to the rate is not closed for the gateway's own pause.
pub(super) struct FrameAllowance {
    limiter: DefaultDirectRateLimiter,
    paused_since: Option<Instant>,
    credit: u32,
}

impl FrameAllowance {
    pub(super) fn new() -> Self {
        Self {
            limiter: frame_limiter(),
            paused_since: None,
            credit: 0,
        }
    }

    /// Notes whether the session reads frames now.
    pub(super) fn reading(&mut self, reading: bool) {
        self.reading_at(reading, Instant::now());
    }

    fn reading_at(&mut self, reading: bool, now: Instant) {
        match (reading, self.paused_since) {
            // A credit left from an earlier pause stays: the frames read after it (pings
            // answered behind the waiting acks) can fill the answers and pause reads again
            // before the frames sent during the first pause are all read.
            (false, None) => self.paused_since = Some(now),
            (true, Some(since)) => {
                self.paused_since = None;
                self.credit(now.saturating_duration_since(since));
            }
            _ => {}
        }
    }

    /// Credits `busy`, time the session spent on work of its own (catching rooms up from the
    /// database) while frames waited in the socket unread, when it is long enough to matter:
    /// after a bus outage every connection catches up at once, and the frames its client kept
    /// sending at the rate meanwhile would otherwise be read as a flood and closed with 4008.
    /// Says whether it was credited (the client's silence meanwhile is then the session's too).
    pub(super) fn own_work(&mut self, busy: Duration) -> bool {
        let credited = busy >= OWN_WORK_CREDITED_FROM;
        if credited {
            self.credit(busy);
        }
        credited
    }

    fn credit(&mut self, paused: Duration) {
        let owed = paused.as_secs_f64() * f64::from(FRAMES_PER_SECOND);
        // At most what a client could have sent in `MAX_CREDITED_SECS` at the rate: a long
        // stall is no licence for a flood afterwards.
        self.credit = self
            .credit
            .saturating_add(owed.ceil() as u32)
            .min(FRAMES_PER_SECOND * MAX_CREDITED_SECS);
    }

    /// Whether reads have waited for answers, for less than `grace`: a token's expiry is not
    /// acted on meanwhile (its renewal may be among the frames not read), and no longer.
    pub(super) fn paused_within(&self, grace: Duration) -> bool {
        self.paused_since
            .is_some_and(|since| since.elapsed() < grace)
    }

    /// Counts one frame read; false when it is over the rate.
    pub(super) fn admit(&mut self) -> bool {
        if self.credit > 0 {
            self.credit -= 1;
            return true;
        }
        self.limiter.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames admitted one after another, at most `up_to`.
    fn admitted(allowance: &mut FrameAllowance, up_to: u32) -> u32 {
        (0..up_to).take_while(|_| allowance.admit()).count() as u32
    }

    #[test]
    fn a_pause_is_credited_at_the_rate_up_to_a_bound() {
        let start = Instant::now();
        let mut allowance = FrameAllowance::new();
        allowance.reading_at(false, start);
        allowance.reading_at(true, start + Duration::from_secs(2));
        // Two seconds at 20 a second, then the limiter's own burst of 20.
        assert_eq!(admitted(&mut allowance, 1_000), 40 + 20);

        let mut allowance = FrameAllowance::new();
        allowance.reading_at(false, start);
        allowance.reading_at(true, start + Duration::from_secs(600));
        assert_eq!(
            admitted(&mut allowance, 10_000),
            FRAMES_PER_SECOND * MAX_CREDITED_SECS + 20
        );
    }

    #[test]
    fn credit_gathers_over_pauses_up_to_the_bound() {
        let start = Instant::now();
        let mut allowance = FrameAllowance::new();
        for n in 0..4 {
            let at = start + Duration::from_secs(20 * n);
            allowance.reading_at(false, at);
            allowance.reading_at(true, at + Duration::from_secs(10));
        }
        // 40 s of pauses, credited up to 30 s worth, then the burst.
        assert_eq!(
            admitted(&mut allowance, 10_000),
            FRAMES_PER_SECOND * MAX_CREDITED_SECS + 20
        );
    }

    #[test]
    fn the_sessions_own_long_work_is_credited_its_short_work_not() {
        let mut allowance = FrameAllowance::new();
        for _ in 0..1_000 {
            allowance.own_work(OWN_WORK_CREDITED_FROM / 2);
        }
        assert_eq!(admitted(&mut allowance, 1_000), 20, "the burst alone");
        let mut allowance = FrameAllowance::new();
        allowance.own_work(Duration::from_secs(3));
        assert_eq!(admitted(&mut allowance, 1_000), 60 + 20);
    }
}
