//! Reactions: adding and removing an emoji on a message, and telling each reader which of a
//! message's reactions are theirs.

use chatboard_core::bus::BusEvent;
use chatboard_core::events::ReactionChanged;
use chatboard_core::model::Message;
use chatboard_store::ReactionOutcome;
use chrono::{SubsecRound, Utc};
use tracing::instrument;

use crate::access::writable;
use crate::error::ChatResult;
use crate::validate::Validator;
use crate::Chat;

/// Most different emoji one message may carry.
pub const MAX_REACTIONS_PER_MESSAGE: usize = 20;

/// Longest emoji or shortcode looked at (the longest emoji sequences are about 35 bytes).
const EMOJI_INPUT_MAX: usize = 64;

/// The emoji `input` names, as Unicode: an emoji itself (any of its spellings, such as with or
/// without the variation selector, becomes its fully qualified form) or a GitHub (gemoji)
/// `:shortcode:`. `None` for anything else.
pub fn normalize_emoji(input: &str) -> Option<&'static str> {
    let input = input.trim();
    if input.is_empty() || input.len() > EMOJI_INPUT_MAX {
        return None;
    }
    let emoji = match input
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
    {
        Some(code) if !code.is_empty() => emojis::get_by_shortcode(code),
        _ => emojis::get(input),
    }?;
    Some(emoji.as_str())
}

impl Chat {
    /// Adds (`add`) or removes the reader's reaction to a message of a room they sit in. Both
    /// are idempotent: adding twice or removing what is not there changes nothing and announces
    /// nothing. The message comes back as `user_id` sees it.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn react(
        &self,
        user_id: i64,
        room_id: i64,
        msg_id: i64,
        emoji: &str,
        add: bool,
    ) -> ChatResult<ReactionOutcome> {
        let mut v = Validator::default();
        let emoji = normalize_emoji(emoji);
        if emoji.is_none() {
            v.add(
                "emoji",
                "Use a Unicode emoji or a :shortcode: from GitHub's list (gemoji).",
            );
        }
        v.finish()?;
        let emoji = emoji.unwrap_or_default();
        writable(&self.member_access(room_id, user_id).await?)?;
        // The event's time is the stored one, to the microsecond.
        let now = Utc::now().trunc_subsecs(6);
        let outcome = if add {
            self.store()
                .add_reaction(
                    room_id,
                    msg_id,
                    user_id,
                    emoji,
                    MAX_REACTIONS_PER_MESSAGE,
                    now,
                )
                .await?
        } else {
            self.store()
                .remove_reaction(room_id, msg_id, user_id, emoji, now)
                .await?
        };
        if outcome.changed {
            let changed = ReactionChanged {
                room: room_id,
                message_id: msg_id,
                emoji: emoji.to_owned(),
                user_id,
                count: outcome.count,
                version: outcome.message.reactions_version,
                at: now,
            };
            let event = if add {
                BusEvent::ReactionAdded(changed)
            } else {
                BusEvent::ReactionRemoved(changed)
            };
            self.announcer().publish(event).await;
        }
        Ok(outcome)
    }

    /// Sets `me` on the reactions `reader` added, in messages as the store returned them (where
    /// `me` is always false). One lookup for all the messages that have reactions at all.
    pub async fn mark_own_reactions(
        &self,
        reader: i64,
        messages: &mut [Message],
    ) -> ChatResult<()> {
        let reacted: Vec<i64> = messages
            .iter()
            .filter(|m| !m.reactions.is_empty())
            .map(|m| m.id)
            .collect();
        if reacted.is_empty() {
            return Ok(());
        }
        let mine = self.store().reactions_by(reader, &reacted).await?;
        for message in messages.iter_mut() {
            for reaction in &mut message.reactions {
                reaction.me = mine
                    .iter()
                    .any(|(id, emoji)| *id == message.id && *emoji == reaction.emoji);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_and_shortcodes_become_one_spelling() {
        assert_eq!(normalize_emoji("👍"), Some("👍"));
        assert_eq!(normalize_emoji(":+1:"), normalize_emoji("👍"));
        assert_eq!(normalize_emoji(":thumbsup:"), Some("👍"));
        assert_eq!(normalize_emoji(" :tada: "), Some("🎉"));
        assert_eq!(normalize_emoji("👍🏽"), Some("👍🏽"));
        assert_eq!(normalize_emoji("❤"), normalize_emoji("❤️"));
        for bad in [
            "",
            "a",
            "::",
            ":nope-not-a-code:",
            "👍👍",
            "hello 👍",
            ":tada",
        ] {
            assert_eq!(normalize_emoji(bad), None, "{bad:?}");
        }
    }
}
