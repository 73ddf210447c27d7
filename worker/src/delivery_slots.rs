//! How the dispatcher's slots are shared: a webhook may hold a quarter of them at once and an
//! organization all but a quarter, so that neither one target that hangs nor one organization
//! pointing several webhooks at such targets holds up everybody else's deliveries, while a
//! deployment with one organization keeps most of them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// Attempts in flight, per webhook and per organization.
pub(crate) struct DeliverySlots {
    per_webhook: usize,
    per_org: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_webhook: HashMap<i64, usize>,
    by_org: HashMap<i64, usize>,
    /// The webhooks seen of each organization holding slots now: while the organization holds
    /// all it may, they are left out of claims (else a delivery handed back is claimed again
    /// at once, and again).
    webhooks_of: HashMap<i64, HashSet<i64>>,
}

impl DeliverySlots {
    /// Shares for a dispatcher of `concurrency` slots.
    pub(crate) fn new(concurrency: usize) -> Self {
        let per_webhook = (concurrency / 4).max(1);
        Self {
            per_webhook,
            // Whatever one organization takes, one webhook's share stays for the others.
            per_org: concurrency.saturating_sub(per_webhook).max(per_webhook),
            held: Mutex::new(Held::default()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The webhooks a claim should leave out now: those holding their share, and those of
    /// organizations holding theirs.
    pub(crate) fn busy_webhooks(&self) -> Vec<i64> {
        let held = self.held();
        let mut busy: HashSet<i64> = held
            .by_webhook
            .iter()
            .filter(|(_, n)| **n >= self.per_webhook)
            .map(|(w, _)| *w)
            .collect();
        for (org, n) in &held.by_org {
            if *n >= self.per_org {
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
        if of_webhook >= self.per_webhook || of_org >= self.per_org {
            if of_org == 0 {
                held.webhooks_of.remove(&org);
            }
            return false;
        }
        *held.by_webhook.entry(webhook).or_insert(0) += 1;
        *held.by_org.entry(org).or_insert(0) += 1;
        true
    }

    fn release(&self, webhook: i64, org: i64) {
        let mut held = self.held();
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
        // A slot given back (its guard dropped) opens the org again.
        drop(held.pop());
        let mut busy = slots.busy_webhooks();
        busy.sort_unstable();
        assert_eq!(busy, [1, 2]);
        assert!(slots.take(4, 10).is_some());
        drop(other);
    }
}
