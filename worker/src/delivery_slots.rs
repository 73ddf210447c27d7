//! How the dispatcher's slots are shared: a webhook may hold a quarter of them at once and an
//! organization all but a quarter, so that neither one target that hangs nor one organization
//! pointing several webhooks at such targets holds up everybody else's deliveries, while a
//! deployment with one organization keeps most of them. And the last quarter goes one slot to
//! each organization: once three quarters are in flight, an organization holding a slot takes
//! no more, so several organizations whose targets hang (anyone may make organizations) keep
//! the others out only when there are more of them than a quarter of the slots.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// Attempts in flight, per webhook and per organization.
pub(crate) struct DeliverySlots {
    per_webhook: usize,
    per_org: usize,
    /// Slots in flight beyond which only organizations holding none take one.
    crowded: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_webhook: HashMap<i64, usize>,
    by_org: HashMap<i64, usize>,
    /// Slots held in all.
    total: usize,
    /// The webhooks seen of each organization holding slots now: while the organization holds
    /// all it may, they are left out of claims (else a delivery handed back is claimed again
    /// at once, and again).
    webhooks_of: HashMap<i64, HashSet<i64>>,
}

impl DeliverySlots {
    /// Shares for a dispatcher of `concurrency` slots.
    pub(crate) fn new(concurrency: usize) -> Self {
        let per_webhook = (concurrency / 4).max(1);
        // Whatever one organization takes, one webhook's share stays for the others.
        let per_org = concurrency.saturating_sub(per_webhook).max(per_webhook);
        Self {
            per_webhook,
            per_org,
            crowded: per_org,
            held: Mutex::new(Held::default()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The webhooks a claim should leave out now: those holding their share, and those of
    /// organizations holding theirs (or, while the slots are crowded, any).
    pub(crate) fn busy_webhooks(&self) -> Vec<i64> {
        let held = self.held();
        let mut busy: HashSet<i64> = held
            .by_webhook
            .iter()
            .filter(|(_, n)| **n >= self.per_webhook)
            .map(|(w, _)| *w)
            .collect();
        for (org, n) in &held.by_org {
            if self.org_is_full(*n, held.total) {
                busy.extend(held.webhooks_of.get(org).into_iter().flatten());
            }
        }
        busy.into_iter().collect()
    }

    /// Takes a slot for an attempt of `webhook`'s, of `org`'s, if both have one left; it is
    /// given back when the guard goes, however the attempt ends. A refusal is remembered: the
    /// webhook is left out of claims while its organization is full.
    pub(crate) fn take(self: &Arc<Self>, webhook: i64, org: i64) -> Option<SlotGuard> {
        self.count_in(webhook, org).then(|| SlotGuard {
            slots: self.clone(),
            webhook,
            org,
        })
    }

    fn count_in(&self, webhook: i64, org: i64) -> bool {
        let mut held = self.held();
        held.webhooks_of.entry(org).or_default().insert(webhook);
        let of_webhook = held.by_webhook.get(&webhook).copied().unwrap_or(0);
        let of_org = held.by_org.get(&org).copied().unwrap_or(0);
        if of_webhook >= self.per_webhook || self.org_is_full(of_org, held.total) {
            if of_org == 0 {
                held.webhooks_of.remove(&org);
            }
            return false;
        }
        *held.by_webhook.entry(webhook).or_insert(0) += 1;
        *held.by_org.entry(org).or_insert(0) += 1;
        held.total += 1;
        true
    }

    /// Whether an organization holding `of_org` slots, with `total` held in all, takes no more.
    fn org_is_full(&self, of_org: usize, total: usize) -> bool {
        of_org >= self.per_org || (of_org > 0 && total >= self.crowded)
    }

    fn release(&self, webhook: i64, org: i64) {
        let mut held = self.held();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_webhook.get_mut(&webhook) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.by_webhook.remove(&webhook);
            }
        }
        if let Some(n) = held.by_org.get_mut(&org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.by_org.remove(&org);
                held.webhooks_of.remove(&org);
            }
        }
    }
}

/// A slot held, given back when dropped.
pub(crate) struct SlotGuard {
    slots: Arc<DeliverySlots>,
    webhook: i64,
    org: i64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.release(self.webhook, self.org);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::DeliverySlots;

    #[test]
    fn a_webhook_takes_a_quarter_and_an_organization_the_rest_but_one_share() {
        let slots = Arc::new(DeliverySlots::new(8));
        // Webhooks 1 to 3 of org 10: two slots each, then no more.
        let mut held = Vec::new();
        for webhook in [1, 1, 2, 2, 3, 3] {
            held.push(slots.take(webhook, 10).expect("a slot"));
        }
        assert!(slots.take(1, 10).is_none());
        // The org holds 6 of 8: its webhook 4 waits, another org's does not.
        assert!(slots.take(4, 10).is_none());
        let mut busy = slots.busy_webhooks();
        busy.sort_unstable();
        assert_eq!(busy, [1, 2, 3, 4]);
        let other = slots.take(5, 20).expect("another org's slot");
        // Slots given back (their guards dropped) open the org again, once the last quarter
        // is free: it stays for organizations holding few.
        drop(held.pop());
        let mut busy = slots.busy_webhooks();
        busy.sort_unstable();
        assert_eq!(busy, [1, 2, 3, 4, 5], "crowded: each org keeps to its own");
        drop(other);
        let mut busy = slots.busy_webhooks();
        busy.sort_unstable();
        assert_eq!(busy, [1, 2]);
        assert!(slots.take(4, 10).is_some());
    }

    #[test]
    fn the_last_quarter_goes_one_slot_to_each_organization() {
        // 64 slots: a webhook 16, an organization 48; past 48 in flight, one per organization.
        let slots = Arc::new(DeliverySlots::new(64));
        let mut held = Vec::new();
        // Organization 10's three hanging webhooks take its 48.
        for webhook in [1, 2, 3] {
            for _ in 0..16 {
                held.push(slots.take(webhook, 10).expect("a slot of org 10"));
            }
        }
        // Fifteen more organizations with hanging targets: one slot each, then no more.
        for org in 20..35 {
            held.push(slots.take(org, org).expect("an organization's one slot"));
            assert!(slots.take(org, org).is_none());
        }
        let busy = slots.busy_webhooks();
        assert_eq!(busy.len(), 3 + 15, "{busy:?}");
        // Another organization still gets its slot.
        held.push(slots.take(40, 40).expect("the last organization's slot"));
        // Uncrowded again, an organization takes more than one.
        held.truncate(16);
        for _ in 0..16 {
            held.push(slots.take(50, 50).expect("a slot while there is room"));
        }
    }
}
