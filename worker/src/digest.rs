//! Digest emails: messages that arrived while a member was offline gather per member (see
//! [`crate::jobs`]); once the oldest has waited a window, they go out as one email, never one
//! per message.

use std::sync::Arc;
use std::time::Duration;

use chatboard_store::{
    DigestLine, DigestRecipient, EmailKind, EmailStore, OutgoingEmail, StoreError,
};
use chrono::Utc;
use tokio::sync::Notify;

/// Members whose digests are written per round at most.
const USERS_PER_ROUND: u32 = 100;
/// Messages one digest covers at most (the rest go into the next one).
const MESSAGES_PER_DIGEST: u32 = 500;
/// Messages shown in full in one digest; the others are counted.
const LINES_SHOWN: usize = 20;
/// Longest message text quoted.
const QUOTE_MAX: usize = 200;
/// How often the lines of settled digests left behind are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Writes due digests into the email queue.
pub struct DigestWriter {
    store: Arc<dyn EmailStore>,
    window: Duration,
    mention_delay: Duration,
    public_url: Option<String>,
    mailer_wake: Arc<Notify>,
}

impl DigestWriter {
    /// A writer for digests gathered over `window`, or `mention_delay` once one of their
    /// messages mentions the member; `mailer_wake` hears of queued emails.
    pub fn new(
        store: Arc<dyn EmailStore>,
        window: Duration,
        mention_delay: Duration,
        public_url: Option<String>,
        mailer_wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            window,
            mention_delay,
            public_url,
            mailer_wake,
        }
    }

    /// Writes digests until `stop` resolves, looking a few times per window.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let shortest = self.window.min(self.mention_delay);
        let every = (shortest / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
        tokio::pin!(stop);
        let mut pause = every;
        let mut pruned = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
            // A round that took as many members as it may is followed by the next at once:
            // more may be due (a backlog drained), and each round waiting `every` capped the
            // digests at a hundred per interval.
            // Now and then, not every round: it reads the whole table of lines.
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = tokio::time::Instant::now();
                if let Err(e) = self.store.prune_digest_lines().await {
                    tracing::warn!(error = %e, "pruning settled digests' lines failed");
                }
            }
            pause = match self.write_round().await {
                Ok((_, full)) if full => Duration::ZERO,
                Ok(_) => every,
                Err(e) => {
                    tracing::warn!(error = %e, "writing digests failed; retrying");
                    every
                }
            };
        }
    }

    /// Writes the digests that are due (a round's worth at most); returns how many.
    pub async fn write_due(&self) -> Result<usize, StoreError> {
        Ok(self.write_round().await?.0)
    }

    /// One round: the digests written, and whether it took as many members as a round may.
    async fn write_round(&self) -> Result<(usize, bool), StoreError> {
        let now = Utc::now();
        let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
        let (cutoff, mention_cutoff) = (ago(self.window), ago(self.mention_delay));
        let mut written = 0;
        let due = self
            .store
            .due_digests(cutoff, mention_cutoff, USERS_PER_ROUND)
            .await?;
        let full = due.len() >= USERS_PER_ROUND as usize;
        for user in due {
            let Some((recipient, lines)) = self.store.digest_of(user, MESSAGES_PER_DIGEST).await?
            else {
                continue;
            };
            if lines.is_empty() {
                continue;
            }
            let ids: Vec<i64> = lines.iter().map(|l| l.message_id).collect();
            let email = compose(&recipient, &lines, self.public_url.as_deref());
            if self
                .store
                .queue_digest(user, &ids, email, Utc::now())
                .await?
            {
                written += 1;
            }
        }
        if written > 0 {
            self.mailer_wake.notify_one();
        }
        Ok((written, full))
    }
}

/// The link that turns `recipient`'s digests off without signing in: for the email's text and
/// its `List-Unsubscribe` header. `None` without a public URL or a token.
pub fn unsubscribe_url(recipient: &DigestRecipient, public_url: Option<&str>) -> Option<String> {
    let (url, token) = (public_url?, recipient.unsubscribe_token.as_deref()?);
    // The token is URL-safe base64: it goes into the query as it is.
    Some(format!("{url}/api/email/unsubscribe/?token={token}"))
}

/// The digest email for `lines` (oldest first), grouped by room.
pub fn compose(
    recipient: &DigestRecipient,
    lines: &[DigestLine],
    public_url: Option<&str>,
) -> OutgoingEmail {
    let count = lines.len();
    let noun = if count == 1 { "message" } else { "messages" };
    let first_org = lines.first().map(|l| l.org_name.as_str()).unwrap_or("");
    let subject = if !first_org.is_empty() && lines.iter().all(|l| l.org_name == first_org) {
        format!("{count} new {noun} in {first_org} on ChatBoard")
    } else {
        format!("{count} new {noun} on ChatBoard")
    };
    let mut body = String::from("While you were away:\n");
    // Rooms in the order their first message arrived.
    let mut rooms: Vec<(&str, &str)> = Vec::new();
    for line in lines.iter().take(LINES_SHOWN) {
        if !rooms.contains(&(line.room_name.as_str(), line.org_name.as_str())) {
            rooms.push((line.room_name.as_str(), line.org_name.as_str()));
        }
    }
    for (room, org) in rooms {
        body.push_str(&format!("\n#{room} ({org})\n"));
        for line in lines
            .iter()
            .take(LINES_SHOWN)
            .filter(|l| l.room_name == room && l.org_name == org)
        {
            let quoted: String = line.body.chars().take(QUOTE_MAX).collect();
            let quoted = if quoted.len() < line.body.len() {
                format!("{quoted}…")
            } else {
                quoted
            };
            let text = match (&line.file_name, line.deleted) {
                (_, true) => "(deleted)".to_owned(),
                (Some(file), false) if quoted.is_empty() => format!("[file: {file}]"),
                (Some(file), false) => format!("{quoted} [file: {file}]"),
                (None, false) => quoted,
            };
            body.push_str(&format!(
                "  {} at {} UTC: {}\n",
                line.sender,
                line.created_at.format("%H:%M"),
                text.replace('\n', " ")
            ));
        }
    }
    if count > LINES_SHOWN {
        body.push_str(&format!("\n…and {} more.\n", count - LINES_SHOWN));
    }
    if let Some(url) = public_url {
        body.push_str(&format!("\nOpen ChatBoard: {url}/\n"));
    }
    body.push_str("\nYou get this digest because email notifications are on for your account. ");
    match unsubscribe_url(recipient, public_url) {
        Some(link) => body.push_str(&format!("To turn them off: {link}\n")),
        None => body
            .push_str("To turn them off: PATCH /auth/me/ with {\"email_notifications\": false}.\n"),
    }
    OutgoingEmail {
        kind: EmailKind::Digest,
        to: recipient.address.clone(),
        subject,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i64, room: &str, body: &str) -> DigestLine {
        DigestLine {
            message_id: id,
            room_name: room.into(),
            org_name: "Acme".into(),
            sender: "Ada Lovelace".into(),
            body: body.into(),
            file_name: None,
            deleted: body.is_empty(),
            created_at: Utc::now(),
        }
    }

    fn bob(token: Option<&str>) -> DigestRecipient {
        DigestRecipient {
            address: "bob@example.com".into(),
            unsubscribe_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn groups_by_room_and_counts_what_it_does_not_show() {
        let mut lines = vec![
            line(1, "general", "hello"),
            line(2, "random", ""),
            line(3, "general", "again"),
        ];
        let email = compose(&bob(None), &lines, Some("https://chat.example.com"));
        assert_eq!(email.subject, "3 new messages in Acme on ChatBoard");
        assert!(
            email.body.contains("#general (Acme)\n  Ada Lovelace at "),
            "{}",
            email.body
        );
        let general = email.body.find("#general").unwrap_or(0);
        let random = email.body.find("#random").unwrap_or(0);
        assert!(general < random && email.body.contains("(deleted)"));
        assert!(email.body.contains("https://chat.example.com/"));
        let mut with_file = line(9, "general", "");
        with_file.deleted = false;
        with_file.file_name = Some("q3.pdf".into());
        let email = compose(&bob(None), &[with_file], None);
        assert_eq!(email.subject, "1 new message in Acme on ChatBoard");
        assert!(email.body.contains(": [file: q3.pdf]"), "{}", email.body);
        lines.extend((4..30).map(|i| line(i, "general", "more")));
        let email = compose(&bob(None), &lines, None);
        assert!(email.body.contains("…and 9 more."), "{}", email.body);
        assert_eq!(email.body.matches(": more").count(), 17);
    }

    #[test]
    fn the_way_out_is_a_link_when_there_is_one() {
        let lines = [line(1, "general", "hello")];
        let email = compose(
            &bob(Some("tok-en_1")),
            &lines,
            Some("https://chat.example.com"),
        );
        assert!(
            email
                .body
                .contains("off: https://chat.example.com/api/email/unsubscribe/?token=tok-en_1\n"),
            "{}",
            email.body
        );
        // Without a public URL there is no link to give, and without a token no link to make.
        for (token, url) in [(Some("t"), None), (None, Some("https://chat.example.com"))] {
            let email = compose(&bob(token), &lines, url);
            assert!(email.body.contains("PATCH /auth/me/"), "{}", email.body);
            assert!(!email.body.contains("unsubscribe"), "{}", email.body);
        }
    }
}
