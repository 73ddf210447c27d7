//! Which refusals from the mail server are final for the email they answer. A 5xx reply is
//! not always about the email: a wrong or rotated password (535), authentication required
//! (530), a relay or sender policy (5.7.x), a daily quota or a blocked address are the server
//! refusing this sender, and every email would fail with it. Those are retried (each email's
//! attempts are bounded anyway); only a refusal of the recipient or of the message itself is
//! given up on at once.

/// Whether a permanent (5xx) reply `code` with its text `text` refuses this email for good.
pub fn refused_for_good(code: u16, text: &str) -> bool {
    // The enhanced status code (RFC 3463), when the server gives one, says what was refused.
    if let Some((class, subject, detail)) = enhanced_status(text) {
        return class == 5
            && match subject {
                // Address status: no such mailbox, bad address syntax.
                1 => true,
                // Mailbox status: disabled, or the message too big for it; not "full" (5.2.2),
                // which its owner may mend.
                2 => detail != 2,
                // Mail system status (message too big) and content (media) refusals.
                3 | 6 => true,
                // Security and policy (5.7.x: authentication, relaying, a blocked sender),
                // network and routing, protocol: the server's refusal of the sender.
                _ => false,
            };
    }
    // Without one: mailbox unavailable, user not local, mailbox name not allowed.
    matches!(code, 550 | 551 | 553)
}

/// The first `class.subject.detail` in `text`.
fn enhanced_status(text: &str) -> Option<(u16, u16, u16)> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .find_map(|word| {
            let mut parts = word.split('.');
            let class = parts.next()?.parse().ok()?;
            let subject = parts.next()?.parse().ok()?;
            let detail = parts.next()?.parse().ok()?;
            (parts.next().is_none()
                && matches!(class, 2 | 4 | 5)
                && subject < 1000
                && detail < 1000)
                .then_some((class, subject, detail))
        })
}

#[cfg(test)]
mod tests {
    use super::refused_for_good;

    #[test]
    fn the_recipient_or_the_message_refused_is_final() {
        assert!(refused_for_good(550, "5.1.1 no such mailbox"));
        assert!(refused_for_good(553, "5.1.3 bad address syntax"));
        assert!(refused_for_good(552, "5.3.4 message too big"));
        assert!(refused_for_good(550, "mailbox unavailable"));
        assert!(refused_for_good(551, "user not local"));
    }

    #[test]
    fn the_sender_refused_is_retried() {
        assert!(!refused_for_good(
            535,
            "5.7.8 authentication credentials invalid"
        ));
        assert!(!refused_for_good(530, "5.7.0 authentication required"));
        assert!(!refused_for_good(535, "authentication failed"));
        assert!(!refused_for_good(550, "5.7.1 relaying denied"));
        assert!(!refused_for_good(554, "5.7.1 client host blocked"));
        assert!(!refused_for_good(554, "no SMTP service here"));
        assert!(!refused_for_good(552, "5.2.2 mailbox full"));
        assert!(!refused_for_good(
            550,
            "5.4.1 recipient address rejected: access denied"
        ));
    }
}
