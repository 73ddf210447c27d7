//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    auth, email, health, mentions, messages, orgs, reactions, rooms, search, threads, uploads,
    webhooks,
};

/// The ChatBoard REST API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ChatBoard API",
        description = "Team chat: accounts, organizations, rooms and messages.\n\n\
            Conventions: JSON in and out; every path also answers without its trailing slash; \
            errors are `{detail, code, errors?}`; authenticated endpoints take \
            `Authorization: Bearer <access token>` and are limited per user \
            (`X-RateLimit-Limit`, `X-RateLimit-Remaining`, `Retry-After` on 429); register, \
            token and password changes are limited per client address, token refresh by a \
            per-address budget of its own; bodies over 1 MiB answer 413; while the database \
            cannot be reached requests answer 503 `unavailable` with `Retry-After`; \
            every response carries `X-Request-Id`.\n\n\
            Live events: WebSockets at `GET /ws/rooms/{room_id}/?token=..[&since=msg_id]` (one \
            room, replay then live without gap or duplicate) and `GET /ws/?token=..` (all of the \
            user's rooms; frames carry `room`), served by the gateway (the same port on a single \
            node). The token may be sent as the `bearer.<JWT>` subprotocol instead. Frames \
            (JSON text): server `connection`, `message` (a reply carries `parent_id`), \
            `message.updated`, `message.deleted`, `thread.updated` (a root's `reply_count`, \
            `last_reply_at`, `repliers`), `reaction.added`, `reaction.removed`, `mention` (on `/ws/` only, to those mentioned: \
            `{room, message}`), `left` (on `/ws/` only: `{room, reason}`, the socket no longer follows \
            the room, `not_member` for a lost seat, `no_room` for a deleted room), `typing`, \
            `presence`, `read`, `ack`, `pong`, `authenticated`, `error`; \
            client `message` (with `parent_id` to reply), `typing`, \
            `read`, `ping`, `auth` (`{token}`: a renewed access token of the same user, \
            answered `authenticated` `{expires_at}`; a connection closes with 4001 once its \
            token has expired, unless renewed). Answers (`ack`, `pong`, `error`) follow the order of the frames \
            they answer; up to 16 frames may await theirs (a message its commit) before the \
            gateway stops reading. A message into a room without a seat closes a per-room \
            socket with 4003; on `/ws/` it answers `error` `not_found`, and what the socket \
            follows changes only with the rooms' own events. Close codes: 4001 unauthenticated, 4003 not a member, 4004 no such \
            room, 4008 rate limit (20 frames/s), frame over 64 KiB or too many connections, \
            4009 too slow, 1012 server restarting. See README.md, 'Live events over WebSocket'."
    ),
    paths(
        auth::register, auth::token, auth::refresh, auth::logout, auth::change_password, auth::me, auth::update_me,
        auth::unread_counts, email::page, email::unsubscribe,
        orgs::list, orgs::create, orgs::get, orgs::rename, orgs::delete, orgs::members, orgs::invite, orgs::invitations, orgs::revoke_invitation,
        orgs::accept_invite, orgs::set_role, orgs::remove_member,
        rooms::list, rooms::create, rooms::open_dm, rooms::get, rooms::update, rooms::delete,
        rooms::join, rooms::leave, rooms::invite, rooms::members, rooms::mark_read,
        messages::list, messages::post, messages::edit, messages::delete,
        reactions::add, reactions::remove, mentions::mine,
        search::messages, search::rooms, search::members,
        threads::page, threads::follow, threads::unfollow, threads::mark_read, threads::followed,
        webhooks::list, webhooks::create, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::events, webhooks::test,
        uploads::presign, uploads::complete, uploads::cancel, uploads::mine, uploads::get, uploads::download,
        health::live, health::ready, health::metrics,
    ),
    modifiers(&BearerAuth, &SignedInResponses),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "orgs", description = "Organizations, members and invitations"),
        (name = "rooms", description = "Rooms, direct messages, membership and read receipts"),
        (name = "messages", description = "Messages with cursor paging"),
        (name = "reactions", description = "Emoji reactions: any member adds or removes their own; \
            one of each emoji per person, at most 20 different emoji per message. An emoji is a \
            Unicode emoji or a GitHub (gemoji) `:shortcode:`, stored as the emoji (so `:+1:` and 👍 \
            are the same reaction). Messages carry `reactions: [{emoji, count, me}]` in the order \
            each emoji was first added; `me` is the caller's own (always false in WebSocket frames, \
            which all readers share). Frames, outbox events and webhook types: `reaction.added`, \
            `reaction.removed` (`{room, message_id, emoji, user_id, count, version, at}`): \
            `count` is the emoji's after the change, `version` the message's `reactions_version` \
            after it (one higher per change). Frames may arrive in another order than their \
            changes: per emoji the highest version is current, and frames at or below the \
            `reactions_version` of a message object read later are older news. Deleting a \
            message drops its reactions."),
        (name = "search", description = "Full-text search over the messages of the organization's \
            rooms the caller sits in (PostgreSQL: a tsvector with a GIN index, the \
            'simple' configuration; SQLite: FTS5 with the unicode61 tokenizer; the same syntax and \
            words on both). Query: every word must appear (any case, Greek's final sigma ς as σ; no stemming); `\"exact \
            phrase\"`; `-word` or `-\"phrase\"` leaves out; `pre*` matches words starting with \
            `pre` (2 characters at least); words are runs of letters and digits (`e-mail` is the phrase `e mail`); at most \
            10 terms. Filters: `room`, `from` (user id), `before`/`after` (a date or RFC 3339 time), \
            `has=file`, `in=thread`. The newest 20 matches of each of the caller's rooms (200 in \
            all; 200 of the room `room` names) are ranked by relevance, newer first among equals; `snippet` is HTML-escaped text around the matches with each match in \
            `<mark>`. Edits and deletes reach the index in their own transaction. A new message \
            is indexed by the worker (on the single node, the one in the process) a moment after \
            it is posted (within about a tenth of a second while the worker keeps up); until then \
            on PostgreSQL only searches for frequent words, which read messages directly, find \
            it, and on SQLite none. \
            `search/rooms/` and `search/members/` find rooms and members by name prefix."),
        (name = "mentions", description = "`@user@example.com` mentions a member of the room by \
            address (an `@` at the start of the text or after a space or punctuation; unknown \
            addresses stay plain text; at most 50 per message), `@room` everyone seated in the room \
            and `@here` those of them online when it is posted (neither in a room of more \
            members than `CHATBOARD_ROOM_MENTIONS_MAX_MEMBERS`, 1,000 by default). The sender is \
            never mentioned. \
            Resolved when a message is posted and again when it is edited (only people an edit \
            mentions for the first time are notified); deleting a message drops its mentions. \
            Message objects list the members mentioned by address in `mentions`. Unread counts \
            carry `mentions` per room; mentioned people get a `mention` frame on their `/ws/` \
            socket and a `message.mentioned` event (one per person; a webhook type too); a \
            mentioned member who is offline is emailed after `CHATBOARD_EMAIL_MENTION_DELAY` \
            instead of the digest window. `GET /api/rooms/{id}/members/?q=` completes names."),
        (name = "threads", description = "A message may answer another of its room (`parent_id`); \
            replying to a reply joins the root's thread. Roots carry `reply_count`, `last_reply_at` \
            and `repliers` (the latest three distinct repliers, newest first); replies take the \
            room's order like any message and are in the timeline unless `?threads=roots`. \
            Replying follows the thread, and the root's author follows it at the first answer \
            from someone else; an unfollow holds until the user follows again or replies. \
            Deleting a root leaves its replies reachable (the root shows as deleted); deleted \
            replies stay counted in `reply_count`."),
        (name = "uploads", description = "Files go straight to object storage: presign, PUT the bytes \
            to `upload_url` with `headers`, then complete. Uploads expire after 30 days (configurable); \
            never-completed ones are removed after 24 hours. Attach a ready upload to a message with \
            `file_id`; message objects carry `file.download_url` = `/api/uploads/{id}/download/`, a \
            stable link that redirects to a fresh short-lived URL."),
        (name = "webhooks", description = "Signed event deliveries to HTTP endpoints. Each delivery is \
            `POST url` with body `{id, type, created_at, org_id, data}` and headers \
            `X-ChatBoard-Event`, `X-ChatBoard-Delivery`, `X-ChatBoard-Timestamp` (unix seconds) and \
            `X-ChatBoard-Signature: sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<raw body>\")>`. \
            A 2xx within the timeout (10 s) is success; otherwise it is retried with exponential \
            backoff and jitter up to the attempt limit (8), then marked failed; a 410 switches the \
            webhook off. At-least-once: de-duplicate on the event id."),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The answers every signed-in endpoint may give besides its own: `401` (no or a bad token),
/// `429` (the per-user request limit, with `Retry-After`) and `503` (a database outage), added
/// where an operation does not list them already; and `503` to every other one but the probes.
struct SignedInResponses;

impl Modify for SignedInResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        const OUTAGE: &str = "`unavailable`: the database cannot be reached for now; `Retry-After` says when to try again";
        for (path, item) in openapi.paths.paths.iter_mut() {
            // Probes and scrapes answer during an outage; everything else may not.
            let probe = path.starts_with("/health/") || path == "/metrics";
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.as_ref().is_none_or(Vec::is_empty) {
                    if probe {
                        continue;
                    }
                    // Signing in and up, refreshing, invitations and the unsubscribe link
                    // answer `unavailable` during an outage too (see `outage.rs`).
                    match operation.responses.responses.get_mut("503") {
                        Some(utoipa::openapi::RefOr::T(busy)) => {
                            if !busy.description.contains("`unavailable`") {
                                busy.description = format!("{}; or {OUTAGE}", busy.description);
                            }
                        }
                        Some(utoipa::openapi::RefOr::Ref(_)) => {}
                        None => {
                            operation
                                .responses
                                .responses
                                .insert("503".to_owned(), error(OUTAGE).into());
                        }
                    }
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.entry("401".to_owned()).or_insert_with(|| {
                    error("`not_authenticated`: no token, or not a valid one").into()
                });
                responses.entry("429".to_owned()).or_insert_with(|| {
                    error("`rate_limited`: over the per-user request limit; `Retry-After` says when to come back").into()
                });
                responses
                    .entry("503".to_owned())
                    .or_insert_with(|| error(OUTAGE).into());
            }
        }
    }
}
