//! The mailer: sends queued emails over SMTP (lettre), or, with no SMTP server configured,
//! logs them and writes each to a file. Emails are claimed under a lease like webhook
//! deliveries, retried with backoff on temporary failures and given up on permanent ones.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatboard_core::config::EmailSettings;
use chatboard_store::{DueEmail, EmailKind, EmailResult, EmailStore, QueuedDigest};
use chrono::{SubsecRound, Utc};
use futures::FutureExt;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use crate::delivery::backoff;
use crate::digest::{compose, unsubscribe_url};
use crate::service::WorkerMetrics;
use crate::smtp_refusal::refused_for_good;

/// Attempts per email before it is marked failed: 30 s doubling to an hour between them, so
/// 20 to 40 hours. A mail server away for hours (maintenance, an outage) delays mail rather
/// than losing it; refusals of the recipient or the message are final at once anyway.
const MAX_ATTEMPTS: i32 = 48;
/// Emails claimed per round: few, since they are sent one after another and all of them
/// must be sent within the lease.
const CLAIM_BATCH: u32 = 10;
/// How long a claim lasts.
const LEASE: Duration = Duration::from_secs(600);
/// The longest one send may take, all its SMTP steps together (each has its own 30 s timeout,
/// and a send takes up to ten): the whole batch then fits in the lease, with room to record
/// the outcomes, so no other worker claims an email this one is still sending.
const SEND_TIMEOUT: Duration = Duration::from_secs(LEASE.as_secs() / (CLAIM_BATCH as u64 + 2));
/// The delay before an email's first retry in the binaries.
const RETRY_BASE: Duration = Duration::from_secs(30);
/// How often to look for due emails when nothing wakes the mailer.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Longest error text kept.
const ERROR_MAX: usize = 500;
/// Recording an email's outcome is given up this long before its claim lapses.
const RECORD_GIVE_UP_BEFORE: Duration = Duration::from_secs(5);

/// Why the mailer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    /// `CHATBOARD_EMAIL_FROM` is not an address.
    #[error("CHATBOARD_EMAIL_FROM is not a valid address: {0}")]
    From(String),
    /// `CHATBOARD_SMTP_URL` could not be used.
    #[error("CHATBOARD_SMTP_URL: {0}")]
    Smtp(String),
}

/// How the mailer paces its sends: [`EmailTiming::default`] in the binaries, shorter in tests.
#[derive(Debug, Clone, Copy)]
pub struct EmailTiming {
    /// Delay before an email's first retry (doubling after each further failure).
    pub retry_base: Duration,
    /// The longest one send may take, all its SMTP steps together.
    pub send_timeout: Duration,
}

impl EmailTiming {
    /// Retries after 50 ms rather than 30 s, for tests.
    pub fn quick() -> Self {
        Self {
            retry_base: Duration::from_millis(50),
            ..Self::default()
        }
    }
}

impl Default for EmailTiming {
    fn default() -> Self {
        Self {
            retry_base: RETRY_BASE,
            send_timeout: SEND_TIMEOUT,
        }
    }
}

/// Where emails go.
enum Outbound {
    /// An SMTP server: its connection pool, and how to start a new one.
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        builder: AsyncSmtpTransportBuilder,
    },
    /// The log, and files in a directory when one is set.
    Log(Option<PathBuf>),
}

/// Sends queued emails.
pub struct Mailer {
    store: Arc<dyn EmailStore>,
    outbound: Outbound,
    from: Mailbox,
    timing: EmailTiming,
    metrics: Arc<WorkerMetrics>,
    wake: Arc<Notify>,
    /// The web client's address, for digests written again before they are sent.
    public_url: Option<String>,
}

impl Mailer {
    /// A mailer per `settings`, paced by `timing`; `wake` is notified when this process queued
    /// emails.
    pub fn new(
        store: Arc<dyn EmailStore>,
        settings: &EmailSettings,
        timing: EmailTiming,
        metrics: Arc<WorkerMetrics>,
        wake: Arc<Notify>,
    ) -> Result<Self, MailSetupError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailSetupError::From(e.to_string()))?;
        let outbound = match &settings.smtp_url {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailSetupError::Smtp(e.to_string()))?
                    .timeout(Some(Duration::from_secs(30)));
                Outbound::Smtp {
                    transport: builder.clone().build(),
                    builder,
                }
            }
            None => Outbound::Log(settings.outbox_dir.clone()),
        };
        Ok(Self {
            store,
            outbound,
            from,
            timing,
            metrics,
            wake,
            public_url: settings.public_url.clone(),
        })
    }

    /// Sends until `stop` resolves.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        if let Outbound::Log(dir) = &self.outbound {
            match dir {
                Some(dir) => {
                    tracing::info!(dir = %dir.display(), "no SMTP server configured (CHATBOARD_SMTP_URL): emails are logged and written to files")
                }
                None => tracing::info!(
                    "no SMTP server configured (CHATBOARD_SMTP_URL): emails are logged"
                ),
            }
        }
        if self
            .public_url
            .as_deref()
            .is_some_and(|url| !url.starts_with("https://"))
        {
            tracing::warn!("CHATBOARD_PUBLIC_URL is not https: digests' unsubscribe links go without the one-click header (RFC 8058), which mailbox providers ask of senders in bulk");
        }
        tokio::pin!(stop);
        let mut pause = Duration::ZERO;
        let mut stopping = false;
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
            let now = Utc::now();
            // Stored to the microsecond: the claim is recognised by this exact value.
            let lease_until = (now + LEASE).trunc_subsecs(6);
            let due = match self
                .store
                .claim_due_emails(now, lease_until, CLAIM_BATCH)
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming emails failed; retrying");
                    pause = (pause * 2).clamp(IDLE_POLL, Duration::from_secs(10));
                    continue;
                }
            };
            pause = if due.len() as u32 == CLAIM_BATCH {
                Duration::ZERO
            } else {
                IDLE_POLL
            };
            let mut unsent = Vec::new();
            for email in due {
                // Asked to stop, the send under way finishes (it is bounded, and cutting it off
                // could send it twice) and the rest of the batch is handed back at once: each
                // send may take its whole timeout, longer than a pod is given to stop.
                if stopping || (&mut stop).now_or_never().is_some() {
                    stopping = true;
                    unsent.push(email.id);
                    continue;
                }
                // Nor is one sent that might outlast the claim (slow sends, or an outcome the
                // database kept refusing): the claim lapsing mid-send, another claim would
                // send it again. Handed back, it goes with the next claim.
                if lease_until - Utc::now() < self.send_fits_in() {
                    unsent.push(email.id);
                    continue;
                }
                let id = email.id;
                let kind = email.email.kind.as_str();
                // Claimed with the batch, maybe minutes ago: an invitation revoked or used since
                // (its email settled), or gone with its organization, is not sent. A database
                // that cannot say leaves it to be sent, as before the check.
                match self.store.email_still_claimed(id, lease_until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(
                            email_id = id,
                            kind,
                            "email withdrawn while it waited in its batch; not sent"
                        );
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, email_id = id, "could not check the email is still to be sent; sending it")
                    }
                }
                let result = self.send(email).await;
                let label = match &result {
                    // No mail server: written to the log (and a file), not sent.
                    EmailResult::Sent if matches!(self.outbound, Outbound::Log(_)) => "logged",
                    EmailResult::Sent => "sent",
                    EmailResult::Retry { .. } => "retry",
                    EmailResult::Failed { .. } => "failed",
                };
                self.metrics.emails.with_label_values(&[kind, label]).inc();
                // Tried again while the claim holds: given up, the claim lapses and the email
                // is sent again (at-least-once), a second invitation or digest for a database
                // away a moment. A mailer asked to stop tries once more, at most.
                let give_up_at = lease_until
                    - chrono::Duration::from_std(RECORD_GIVE_UP_BEFORE).unwrap_or_default();
                let mut pause = Duration::from_millis(100);
                loop {
                    let recorded = self
                        .store
                        .record_email(id, lease_until, result.clone(), Utc::now())
                        .await;
                    let Err(e) = recorded else { break };
                    if stopping || Utc::now() + pause >= give_up_at {
                        tracing::error!(error = %e, email_id = id, "recording an email failed; it goes again once its claim lapses");
                        break;
                    }
                    tracing::warn!(error = %e, email_id = id, "recording an email failed; retrying");
                    tokio::select! {
                        () = &mut stop => stopping = true,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
            if !unsent.is_empty() {
                if let Err(e) = self
                    .store
                    .release_emails(&unsent, lease_until, Utc::now())
                    .await
                {
                    // They wait for their lease to lapse, then go.
                    tracing::warn!(error = %e, emails = unsent.len(), "handing emails back failed");
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// The claim time one more send needs: its timeout, and the outcome's recording.
    fn send_fits_in(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timing.send_timeout + RECORD_GIVE_UP_BEFORE)
            .unwrap_or(chrono::Duration::MAX)
    }

    #[tracing::instrument(skip_all, fields(email_id = due.id, kind = due.email.kind.as_str()))]
    async fn send(&mut self, due: DueEmail) -> EmailResult {
        let attempts = due.attempts + 1;
        // The digest's read counts against the send's budget: the batch must fit its lease.
        let started = tokio::time::Instant::now();
        let budget = self.timing.send_timeout;
        let (due, unsubscribe) = match tokio::time::timeout(budget, self.as_it_stands(due)).await {
            Ok(Ok(Some(written))) => written,
            Ok(Ok(None)) => {
                return EmailResult::Failed {
                    error: "the recipient turned emails off or is gone".to_owned(),
                }
            }
            Ok(Err(error)) => return self.after_failure(attempts, error),
            Err(_) => {
                let error = "reading the digest's messages took too long".to_owned();
                return self.after_failure(attempts, error);
            }
        };
        let email = &due.email;
        let message = due
            .email
            .to
            .parse::<Mailbox>()
            .map_err(|e| e.to_string())
            .and_then(|to| {
                let builder = Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(email.subject.clone())
                    // RFC 5322 asks for one; relays and spam filters hold its absence against us.
                    .message_id(None)
                    .header(ContentType::TEXT_PLAIN);
                let builder = match unsubscribe {
                    // RFC 2369 and 8058: mail clients offer the link as an unsubscribe button
                    // (large senders must, for Gmail and Yahoo). One-click is for HTTPS links
                    // only (RFC 8058, 3.1).
                    Some(url) if url.starts_with("https://") => builder
                        .header(ListUnsubscribe(url))
                        .header(ListUnsubscribePost),
                    Some(url) => builder.header(ListUnsubscribe(url)),
                    None => builder,
                };
                builder.body(email.body.clone()).map_err(|e| e.to_string())
            });
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return EmailResult::Failed {
                    error: format!("cannot build the email: {e}"),
                }
            }
        };
        let send_timeout = budget.saturating_sub(started.elapsed());
        let outcome = match &mut self.outbound {
            Outbound::Smtp { transport, builder } => {
                match tokio::time::timeout(send_timeout, transport.send(message)).await {
                    Err(_) => {
                        // The send was cut off between a command and its answer, and its
                        // connection goes back to the pool as if whole: the next email on it
                        // would read this one's late answers as its own (a stale 250 taken for
                        // its own, a 503 failing it for good). A new pool starts clean; the old
                        // one closes its connections once they are returned.
                        *transport = builder.clone().build();
                        Err(format!(
                            "the mail server took longer than {} ms",
                            send_timeout.as_millis()
                        ))
                    }
                    Ok(Ok(_)) => Ok(()),
                    // A 5xx answer refusing the recipient or the message will not change on
                    // retry; one refusing the sender (a bad password, a policy) may, and would
                    // fail every email alike meanwhile.
                    Ok(Err(e))
                        if e.is_permanent()
                            && e.status().is_some_and(|code| {
                                refused_for_good(u16::from(code), &e.to_string())
                            }) =>
                    {
                        return EmailResult::Failed {
                            error: truncate(&e.to_string()),
                        }
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                }
            }
            Outbound::Log(dir) => {
                tracing::info!(
                    email_id = due.id,
                    kind = email.kind.as_str(),
                    to = %email.to,
                    subject = %email.subject,
                    "email (no SMTP server configured)"
                );
                match dir {
                    Some(dir) => write_file(dir, due.id, &message.formatted()).await,
                    None => Ok(()),
                }
            }
        };
        match outcome {
            Ok(()) => EmailResult::Sent,
            Err(error) => self.after_failure(attempts, error),
        }
    }

    /// A digest written again from its messages as they stand (one deleted since it was
    /// queued shows as deleted, never with its text), with its unsubscribe link; `None` when it
    /// is not to be sent. Other emails, and digests queued without their lines, as they are.
    async fn as_it_stands(&self, mut due: DueEmail) -> Result<Option<Written>, String> {
        if due.email.kind != EmailKind::Digest {
            return Ok(Some((due, None)));
        }
        match self.store.queued_digest(due.id).await {
            Ok(QueuedDigest::AsWritten) => Ok(Some((due, None))),
            Ok(QueuedDigest::Withdrawn) => Ok(None),
            Ok(QueuedDigest::Lines(recipient, lines)) => {
                let public_url = self.public_url.as_deref();
                due.email = compose(&recipient, &lines, public_url);
                Ok(Some((due, unsubscribe_url(&recipient, public_url))))
            }
            Err(e) => Err(format!("reading the digest's messages failed: {e}")),
        }
    }

    /// The outcome of the `attempts`th failed attempt: another later, or none.
    fn after_failure(&self, attempts: i32, error: String) -> EmailResult {
        if attempts >= MAX_ATTEMPTS {
            EmailResult::Failed {
                error: truncate(&error),
            }
        } else {
            EmailResult::Retry {
                error: truncate(&error),
                next_attempt_at: Utc::now() + backoff(self.timing.retry_base, attempts as u32),
            }
        }
    }
}

/// An email as it is to be sent, and the link of its `List-Unsubscribe` header, if it has one.
type Written = (DueEmail, Option<String>);

/// The `List-Unsubscribe` header: the link (`<https://…>`) that turns the emails off.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let url = s.trim().trim_start_matches('<').trim_end_matches('>');
        Ok(Self(url.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// The `List-Unsubscribe-Post` header (RFC 8058): the link works with a single POST, without
/// a page to confirm on, so mail clients may follow it for the user.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// Writes one email as `<id>.eml` (RFC 5322, as it would have been sent).
///
/// The bytes go to `<id>.eml.part` first and are renamed into place, so whoever
/// watches the directory for `*.eml` never reads a half-written email.
async fn write_file(dir: &std::path::Path, id: i64, bytes: &[u8]) -> Result<(), String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{id:08}.eml"));
    let part = dir.join(format!("{id:08}.eml.part"));
    tokio::fs::write(&part, bytes)
        .await
        .map_err(|e| format!("{}: {e}", part.display()))?;
    tokio::fs::rename(&part, &path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn truncate(text: &str) -> String {
    text.chars().take(ERROR_MAX).collect()
}
