//! Mentions in a message's text: `@user@example.com` names a member of the room by address,
//! `@room` everyone seated in it, `@here` those of them online. Resolved when the message is
//! posted or edited; the store keeps who was mentioned.

use chatboard_core::model::{Message, RoomMember};
use chatboard_store::Mentioned;

use crate::error::ChatResult;
use crate::Chat;

/// Most different addresses one message may mention (the rest are plain text).
pub const MAX_NAMED_MENTIONS: usize = 50;

/// Characters that end a mention: whitespace and punctuation that does not occur in addresses.
const STOPS: &[char] = &[
    '(', ')', '<', '>', '[', ']', '{', '}', ',', ';', '"', '\'', '`',
];
/// Sentence punctuation dropped from a mention's end (`@room.`, `ask @bob@example.com!`).
const TRAILING: &[char] = &['.', '!', '?', ':'];

/// What a text mentions, before it is matched against the room.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MentionText {
    /// Addresses, lowercase, each once, in order of appearance.
    pub emails: Vec<String>,
    /// `@room` appears.
    pub room: bool,
    /// `@here` appears.
    pub here: bool,
}

/// Finds the mentions in `text`. An `@` starts one only at the start of the text or after a
/// character that cannot be part of an address, so `bob@example.com` alone is not a mention.
pub fn parse_mentions(text: &str) -> MentionText {
    let mut found = MentionText::default();
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        let starts = c == '@' && !previous.is_some_and(is_address_char);
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[at + 1..];
        let end = rest
            .find(|c: char| c.is_whitespace() || STOPS.contains(&c))
            .unwrap_or(rest.len());
        let token = rest[..end].trim_end_matches(TRAILING);
        if token.eq_ignore_ascii_case("room") {
            found.room = true;
        } else if token.eq_ignore_ascii_case("here") {
            found.here = true;
        } else if is_address(token) && found.emails.len() < MAX_NAMED_MENTIONS {
            let email = token.to_lowercase();
            if !found.emails.contains(&email) {
                found.emails.push(email);
            }
        }
    }
    found
}

/// Characters an address may contain before its `@`, besides letters and digits.
fn is_address_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@')
}

/// `local@domain.tld`, loosely: what could be a member's address.
fn is_address(token: &str) -> bool {
    let Some((local, domain)) = token.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

impl Chat {
    /// Who `body`, sent by `sender` to the room, mentions: the members it names (in order,
    /// unknown addresses ignored) and everyone it reaches (`@room`: every member; `@here`:
    /// the members online now, or those of `here_reached` still seated, for an edit that keeps
    /// an `@here`; in a room over [`ChatSettings::room_mentions_max_members`] only the latter,
    /// who are nobody new), never the sender.
    pub(crate) async fn resolve_mentions(
        &self,
        room_id: i64,
        sender: i64,
        body: &str,
        here_reached: Option<&[i64]>,
    ) -> ChatResult<Mentioned> {
        if !body.contains('@') {
            return Ok(Mentioned::default());
        }
        let text = parse_mentions(body);
        let mut mentioned = Mentioned::default();
        if !text.emails.is_empty() {
            let members = self.store().members_by_email(room_id, &text.emails).await?;
            mentioned.named = text
                .emails
                .iter()
                .filter_map(|email| members.iter().find(|(e, _)| e == email).map(|(_, id)| *id))
                .collect();
        }
        let mut everyone = mentioned.named.clone();
        if text.room || text.here {
            let members = self.store().member_ids(room_id).await?;
            let max = self.settings().room_mentions_max_members;
            if let (true, Some(reached)) = (text.here, here_reached) {
                // Who it reached before, still seated: nobody new, so whatever the room's size
                // (it may have grown past the limit since).
                let seated: std::collections::HashSet<i64> = members.iter().copied().collect();
                everyone.extend(reached.iter().filter(|id| seated.contains(id)));
            }
            if max > 0 && members.len() > max as usize {
                // Each member reached is a mention row and an event carrying the message, all
                // in the post's transaction: in a room of 50,000, 200 MB a post. Named members
                // are still mentioned.
                tracing::debug!(
                    room_id,
                    members = members.len(),
                    "@room or @here in a room over the limit: reaches nobody"
                );
            } else if text.room {
                everyone.extend(members);
            } else if here_reached.is_some() {
                // Kept above.
            } else if let Some(presence) = self.0.presence.get() {
                everyone.extend(presence.online(&members));
            }
        }
        everyone.retain(|&id| id != sender);
        everyone.sort_unstable();
        everyone.dedup();
        mentioned.everyone = everyone;
        Ok(mentioned)
    }

    /// A page of the messages that mention `user_id` in rooms they sit in, newest first, older
    /// than `before` when given: at most `limit`, with whether older ones remain. Each
    /// message's reactions show which are the reader's.
    pub async fn mentions_of(
        &self,
        user_id: i64,
        org: Option<i64>,
        before: Option<i64>,
        limit: usize,
    ) -> ChatResult<(Vec<Message>, bool)> {
        let one_more = u32::try_from(limit + 1).unwrap_or(u32::MAX);
        let mut page = self
            .store()
            .mentions_of(user_id, org, before, one_more)
            .await?;
        let more = page.len() > limit;
        page.truncate(limit);
        self.mark_own_reactions(user_id, &mut page).await?;
        Ok((page, more))
    }

    /// Members of a room (a seat needed) whose address, first or last name starts with
    /// `prefix`, for completing a mention: at most `limit`, by address.
    pub async fn find_members(
        &self,
        user_id: i64,
        room_id: i64,
        prefix: &str,
        limit: u32,
    ) -> ChatResult<Vec<RoomMember>> {
        self.member_access(room_id, user_id).await?;
        Ok(self
            .store()
            .search_members(room_id, prefix.trim(), limit)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_found_where_a_person_would_see_them() {
        let found = parse_mentions(
            "Hi @Bob@Example.com, and @carol@example.com! Ping @room. mail dan@example.com \
             (@erin@example.org) @bob@example.com again, @here? @roomy @x@y",
        );
        assert_eq!(
            found.emails,
            ["bob@example.com", "carol@example.com", "erin@example.org"]
        );
        assert!(found.room);
        assert!(found.here);
        assert_eq!(parse_mentions("no mentions, a@b.c"), MentionText::default());
        assert!(!parse_mentions("@roomy").room);
        assert!(parse_mentions("@ROOM").room);
    }

    #[test]
    fn the_number_of_addresses_is_bounded() {
        let text: String = (0..80).map(|i| format!("@u{i}@example.com ")).collect();
        assert_eq!(parse_mentions(&text).emails.len(), MAX_NAMED_MENTIONS);
    }
}
