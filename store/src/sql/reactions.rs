//! Reactions: the rows, the counts on the message (kept under its row lock) and the events.
//!
//! Changes are group-committed (`write_queue`): the messages of a batch are locked and read in
//! one go with each reactor's own emoji (`lock_for_reactions`), every change is decided in Rust
//! in turn, and all that changed is written in one go (`record_reactions`). On PostgreSQL each
//! of those is one statement, whatever the batch's size.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::outbox::EventRow;
use super::write_queue::{write_each, Batched};
use super::{begin_write, lock_for_reactions, record_reactions, SqlStore, Tx, WritePool};
use crate::sql::rows::{encode_reactions, placeholders, read_only_code, MessageRow};
use crate::{ReactionOutcome, ReactionStore, StoreError, StoreResult};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::{DomainEvent, ReactionChanged};
use chatboard_core::model::{Message, ReactionCount};

/// Most message ids one `reactions_by` statement names.
const IDS_PER_STATEMENT: usize = 500;

/// One person adding or removing one emoji on one message: a job of the reaction queues
/// (group-committed, see `write_queue`; queued by room like posts).
pub(super) struct PendingReaction {
    pub(super) room_id: i64,
    pub(super) msg_id: i64,
    pub(super) user_id: i64,
    pub(super) emoji: String,
    pub(super) add: bool,
    /// Most different emoji the message may carry (adding only).
    pub(super) max_distinct: usize,
    pub(super) now: DateTime<Utc>,
    /// Its room's write queue.
    pub(super) queue: i64,
}

/// A message locked for reaction changes, with the emoji one reactor has on it.
#[derive(sqlx::FromRow)]
pub(super) struct LockedRow {
    /// The reactor.
    reactor: i64,
    #[sqlx(flatten)]
    message: MessageRow,
    /// Their emoji on the message, space-separated.
    own: String,
    /// Whether the reactor sits in the message's room (read under the lock: a seat lost since
    /// the caller's check refuses the change).
    seated: bool,
    /// Whether the room's organization is suspended, and whether archived, likewise.
    org_suspended: bool,
    org_archived: bool,
}

impl LockedRow {
    /// Why the reactor may not change reactions here, if they may not: `None` inside for no
    /// seat (not found), else the organization's read-only state.
    fn refusal(&self) -> Option<Option<ErrorCode>> {
        if !self.seated {
            return Some(None);
        }
        read_only_code(self.org_suspended, self.org_archived).map(Some)
    }
}

/// The emoji `reactor` has on the message `m` (an alias of `messages`), space-separated, and
/// whether they may change them (`LockedRow::refusal`): columns for `lock_for_reactions`.
pub(super) fn own_emoji_column(reactor: &str) -> String {
    format!(
        "COALESCE((SELECT string_agg(r.emoji, ' ') FROM reactions r \
           WHERE r.message_id = m.id AND r.user_id = {reactor}), '') AS own, \
         EXISTS (SELECT 1 FROM room_members rm \
           WHERE rm.room_id = m.room_id AND rm.user_id = {reactor}) AS seated, \
         (SELECT o.suspended FROM rooms ro JOIN orgs o ON o.id = ro.org_id \
           WHERE ro.id = m.room_id) AS org_suspended, \
         (SELECT o.archived_at IS NOT NULL FROM rooms ro JOIN orgs o ON o.id = ro.org_id \
           WHERE ro.id = m.room_id) AS org_archived"
    )
}

/// What a batch of reaction changes writes: the net effect on the rows (a reaction added and
/// removed again within the batch writes nothing), the messages' final counts, the rooms whose
/// cached pages go stale, and one event per change.
#[derive(Default)]
pub(super) struct ReactionWrites {
    /// Rows to add: (room, message, emoji, user, time).
    pub(super) added: Vec<(i64, i64, String, i64, DateTime<Utc>)>,
    /// Rows to remove: (message, emoji, user).
    pub(super) removed: Vec<(i64, String, i64)>,
    /// The messages' new counts: (room, message, stored counts, reactions version).
    pub(super) counts: Vec<(i64, i64, Option<String>, i64)>,
    /// Rooms whose edit version goes up, ascending.
    pub(super) rooms: Vec<i64>,
    /// The events, in the order the changes were made.
    pub(super) events: Vec<EventRow>,
}

/// The count of `emoji` among `counts` (0 when absent).
fn count_of(counts: &[ReactionCount], emoji: &str) -> i64 {
    counts
        .iter()
        .find(|c| c.emoji == emoji)
        .map_or(0, |c| c.count)
}

/// `counts` after one person added (`add`) or removed `emoji`.
fn count_change(counts: &mut Vec<ReactionCount>, emoji: &str, add: bool) {
    match counts.iter_mut().find(|c| c.emoji == emoji) {
        Some(entry) if add => entry.count += 1,
        Some(entry) => entry.count -= 1,
        None if add => counts.push(ReactionCount {
            emoji: emoji.to_owned(),
            count: 1,
            me: false,
        }),
        None => {}
    }
    counts.retain(|c| c.count > 0);
}

/// The outcome as the reactor sees it: `me` set on their own emoji.
fn outcome(mut message: Message, own: &[String], emoji: &str, changed: bool) -> ReactionOutcome {
    for reaction in &mut message.reactions {
        reaction.me = own.contains(&reaction.emoji);
    }
    let count = count_of(&message.reactions, emoji);
    ReactionOutcome {
        message,
        changed,
        count,
    }
}

/// One change against the message and the reactor's emoji as they stand (both updated): the
/// event when it changes anything, `None` when it changes nothing (added twice, or removed what
/// is not there), or a refusal: adding to a deleted message, or a new emoji beyond
/// `max_distinct`.
fn decide(
    message: &mut Message,
    own: &mut Vec<String>,
    job: &PendingReaction,
) -> StoreResult<Option<DomainEvent>> {
    let emoji = job.emoji.as_str();
    if job.add {
        if message.is_deleted {
            return Err(StoreError::Conflict(ErrorCode::MessageDeleted));
        }
        let known = message.reactions.iter().any(|c| c.emoji == emoji);
        if !known && message.reactions.len() >= job.max_distinct {
            return Err(StoreError::Conflict(ErrorCode::TooManyReactions));
        }
    }
    if own.iter().any(|e| e == emoji) == job.add {
        return Ok(None);
    }
    count_change(&mut message.reactions, emoji, job.add);
    message.reactions_version += 1;
    if job.add {
        own.push(emoji.to_owned());
    } else {
        own.retain(|e| e != emoji);
    }
    let changed = ReactionChanged {
        room: job.room_id,
        message_id: job.msg_id,
        emoji: emoji.to_owned(),
        user_id: job.user_id,
        count: count_of(&message.reactions, emoji),
        version: message.reactions_version,
        at: job.now,
    };
    Ok(Some(if job.add {
        DomainEvent::ReactionAdded(changed)
    } else {
        DomainEvent::ReactionRemoved(changed)
    }))
}

/// Decides and writes a batch of reaction changes inside `tx` (a batch of one for a change
/// alone): every message locked first, each change decided in turn against what the earlier ones
/// left, then all of it written at once. One answer per change; a refusal writes nothing and
/// leaves the transaction usable. `Err` only when the database fails.
async fn apply_all(
    tx: &mut Tx<'_>,
    jobs: &[PendingReaction],
) -> StoreResult<Vec<StoreResult<ReactionOutcome>>> {
    let mut keys: Vec<(i64, i64, i64)> = jobs
        .iter()
        .map(|j| (j.room_id, j.msg_id, j.user_id))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut messages: HashMap<i64, Message> = HashMap::new();
    let mut own: HashMap<(i64, i64), Vec<String>> = HashMap::new();
    let mut refused: HashMap<(i64, i64), Option<ErrorCode>> = HashMap::new();
    for row in lock_for_reactions(tx, &keys).await? {
        if let Some(refusal) = row.refusal() {
            refused.insert((row.message.id, row.reactor), refusal);
        }
        let message = Message::from(row.message);
        own.insert(
            (message.id, row.reactor),
            row.own.split_whitespace().map(str::to_owned).collect(),
        );
        messages.entry(message.id).or_insert(message);
    }
    let before = own.clone();
    let mut writes = ReactionWrites::default();
    let mut changed_messages = BTreeSet::new();
    let mut added_at = HashMap::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        // Locked by (room, id): a message of another room is not there for this change.
        let message = messages
            .get_mut(&job.msg_id)
            .filter(|m| m.room == job.room_id);
        let (Some(message), Some(mine)) = (message, own.get_mut(&(job.msg_id, job.user_id))) else {
            answers.push(Err(StoreError::NotFound));
            continue;
        };
        if let Some(refusal) = refused.get(&(job.msg_id, job.user_id)) {
            answers.push(Err(
                refusal.map_or(StoreError::NotFound, StoreError::Forbidden)
            ));
            continue;
        }
        let answer = match decide(message, mine, job) {
            Ok(Some(event)) => {
                writes
                    .events
                    .push(EventRow::new(message.org, &event, job.now)?);
                changed_messages.insert((message.room, message.id));
                if job.add {
                    added_at.insert((job.msg_id, job.user_id, job.emoji.clone()), job.now);
                }
                Ok(outcome(message.clone(), mine, &job.emoji, true))
            }
            Ok(None) => Ok(outcome(message.clone(), mine, &job.emoji, false)),
            Err(refused) => Err(refused),
        };
        answers.push(answer);
    }
    if writes.events.is_empty() {
        return Ok(answers);
    }
    for ((msg_id, user_id), now) in &own {
        let was = before
            .get(&(*msg_id, *user_id))
            .map_or(&[][..], Vec::as_slice);
        for emoji in now.iter().filter(|e| !was.contains(e)) {
            let key = (*msg_id, *user_id, emoji.clone());
            let (Some(at), Some(message)) = (added_at.get(&key), messages.get(msg_id)) else {
                continue;
            };
            writes
                .added
                .push((message.room, *msg_id, emoji.clone(), *user_id, *at));
        }
        for emoji in was.iter().filter(|e| !now.contains(e)) {
            writes.removed.push((*msg_id, emoji.clone(), *user_id));
        }
    }
    for (room_id, msg_id) in &changed_messages {
        if let Some(message) = messages.get(msg_id) {
            writes.counts.push((
                *room_id,
                *msg_id,
                encode_reactions(&message.reactions),
                message.reactions_version,
            ));
        }
    }
    writes.rooms = changed_messages.iter().map(|(room, _)| *room).collect();
    writes.rooms.dedup();
    record_reactions(tx, &writes).await?;
    Ok(answers)
}

#[async_trait]
impl Batched for PendingReaction {
    type Output = ReactionOutcome;

    fn queue(&self) -> i64 {
        self.queue
    }

    async fn write_one(write: &WritePool, job: &Self) -> StoreResult<ReactionOutcome> {
        let mut tx = begin_write(write).await?;
        let answer = apply_all(&mut tx, std::slice::from_ref(job))
            .await?
            .pop()
            .unwrap_or(Err(StoreError::NotFound))?;
        tx.commit().await?;
        Ok(answer)
    }

    /// One transaction for the lot; should the database fail, nothing of it is kept and the
    /// changes go one by one, each for an answer of its own.
    async fn write_batch(write: &WritePool, jobs: &[Self]) -> Vec<StoreResult<ReactionOutcome>> {
        let together = async {
            let mut tx = begin_write(write).await?;
            let answers = apply_all(&mut tx, jobs).await?;
            tx.commit().await?;
            StoreResult::Ok(answers)
        };
        match together.await {
            Ok(answers) => answers,
            Err(e) => {
                tracing::warn!(error = %e, reactions = jobs.len(), "a batch of reactions failed; storing them one by one");
                write_each(write, jobs).await
            }
        }
    }
}

#[async_trait]
impl ReactionStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_reaction(
        &self,
        room_id: i64,
        msg_id: i64,
        user_id: i64,
        emoji: &str,
        max_distinct: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<ReactionOutcome> {
        let job = PendingReaction {
            room_id,
            msg_id,
            user_id,
            emoji: emoji.to_owned(),
            add: true,
            max_distinct,
            now,
            queue: self.queue_of(room_id),
        };
        self.reaction_queues.submit(&self.write, job).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_reaction(
        &self,
        room_id: i64,
        msg_id: i64,
        user_id: i64,
        emoji: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReactionOutcome> {
        let job = PendingReaction {
            room_id,
            msg_id,
            user_id,
            emoji: emoji.to_owned(),
            add: false,
            max_distinct: usize::MAX,
            now,
            queue: self.queue_of(room_id),
        };
        self.reaction_queues.submit(&self.write, job).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn reactions_by(
        &self,
        user_id: i64,
        message_ids: &[i64],
    ) -> StoreResult<Vec<(i64, String)>> {
        let mut found = Vec::new();
        for chunk in message_ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT message_id, emoji FROM reactions WHERE user_id = $1 AND message_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (i64, String)>(&sql).bind(user_id);
            for id in chunk {
                query = query.bind(*id);
            }
            found.extend(query.fetch_all(&self.read).await?);
        }
        Ok(found)
    }
}
