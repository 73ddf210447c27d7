//! A read storm: every member of every seeded room on a socket, one message posted into each
//! room, then every member marks it read at once (as clients do when a message arrives in the
//! room they look at). Measures what the receipts cost the gateway and how many `read` frames
//! reach the sockets: in a room of N members that is N (each reader's own) or N² (everyone's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::ws_load::{Socket, Target};
use crate::ws_seed::WsSeeded;

/// Connections opened at once.
const CONNECT_CONCURRENCY: usize = 128;
/// How long no `read` frame may arrive before the storm counts as over.
const QUIET: Duration = Duration::from_secs(2);
/// Longest wait for every reader's own receipt.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// What every socket's reader task counts.
#[derive(Default)]
struct Counts {
    /// `read` frames received, on every socket.
    read_frames: AtomicU64,
    /// Sockets that have heard their own user's receipt.
    own_heard: AtomicU64,
    /// Sockets the server closed during the run (a close frame, or the connection ended).
    closed: AtomicU64,
    /// Of those, the ones closed before their own user's receipt came.
    closed_unheard: AtomicU64,
    /// When the last `read` frame arrived.
    last_read: Mutex<Option<Instant>>,
    /// When the last frame of any kind arrived.
    last_any: Mutex<Option<Instant>>,
}

/// One member's open socket, greeted.
struct Member {
    room: i64,
    user_id: i64,
    socket: Socket,
}

/// Runs the storm over every seeded room and prints one report.
pub async fn storm(target: &Target, seeded: &WsSeeded) -> anyhow::Result<()> {
    let members = seeded.members()?;
    let connecting = Instant::now();
    let cpu_connecting = target.gateway_cpu();
    let opened: Vec<anyhow::Result<Member>> = futures::stream::iter(members.iter().enumerate())
        .map(|(n, &(room, token))| async move {
            let mut socket = target.connect(room, token, n).await?;
            let user_id = greeting_user(&mut socket).await?;
            Ok(Member {
                room,
                user_id,
                socket,
            })
        })
        .buffered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut open = Vec::with_capacity(opened.len());
    for member in opened {
        open.push(member?);
    }
    // The first member of each room posts its message (the state lists the rooms' members
    // in order, the sender first).
    let mut posted = std::collections::HashMap::new();
    for member in open.iter_mut() {
        if let std::collections::hash_map::Entry::Vacant(slot) = posted.entry(member.room) {
            slot.insert(post_and_ack(&mut member.socket, member.room).await?);
        }
    }
    let counts = Arc::new(Counts::default());
    let mut writers: Vec<(SplitSink<Socket, Ws>, i64)> = Vec::with_capacity(open.len());
    for member in open {
        let (writer, reader) = member.socket.split();
        writers.push((writer, posted[&member.room]));
        tokio::spawn(count_frames(reader, member.user_id, counts.clone()));
    }
    // The arrivals' presence notices and the posts' deliveries are not the storm's: they
    // arrive first.
    until_quiet(&counts.last_any, Instant::now() + MAX_WAIT).await;
    // Less the quiet wait itself, which costs the server next to nothing.
    let settled = connecting.elapsed().saturating_sub(QUIET);
    println!(
        "{} sockets opened, greeted and quiet (presence notices passed) in {:.1} s; server CPU {}",
        members.len(),
        settled.as_secs_f64(),
        cpu_between(cpu_connecting, target.gateway_cpu()),
    );
    let reads_before = counts.read_frames.load(Ordering::Relaxed);
    let cpu_before = target.gateway_cpu();
    let started = Instant::now();
    let sent: Vec<anyhow::Result<()>> = futures::stream::iter(writers.iter_mut())
        .map(|(writer, msg_id)| {
            let frame = format!(r#"{{"type":"read","msg_id":{msg_id}}}"#);
            async move { Ok(writer.send(Ws::Text(frame.into())).await?) }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let sent_in = started.elapsed();
    let sent_ok = sent.iter().filter(|r| r.is_ok()).count();
    let sockets = writers.len() as u64;
    let deadline = started + MAX_WAIT;
    while counts.own_heard.load(Ordering::Relaxed) + counts.closed_unheard.load(Ordering::Relaxed)
        < sockets
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let own_done = started.elapsed();
    // Others' receipts may still be on their way: until none has come for a while.
    until_quiet(&counts.last_read, deadline).await;
    let last_read = counts
        .last_read
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .map(|at| at.duration_since(started));
    // The quiet wait's idle CPU is counted too; the gateway spends next to none of it.
    let cpu = cpu_between(cpu_before, target.gateway_cpu());
    let frames = counts.read_frames.load(Ordering::Relaxed) - reads_before;
    let closed = counts.closed.load(Ordering::Relaxed);
    println!(
        "{} rooms, {sockets} sockets: {sent_ok} receipts sent in {:.0} ms; {frames} read frames delivered \
         ({:.1} per receipt); every reader's own in {:.0} ms, the last frame at {}; \
         gateway CPU {cpu}; {} sockets closed",
        posted.len(),
        sent_in.as_secs_f64() * 1000.0,
        frames as f64 / sent_ok.max(1) as f64,
        own_done.as_secs_f64() * 1000.0,
        last_read
            .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "none".to_owned()),
        closed,
    );
    for (mut writer, _) in writers {
        let _ = writer.close().await;
    }
    Ok(())
}

/// The CPU time between two readings, for the report.
fn cpu_between(before: Option<Duration>, after: Option<Duration>) -> String {
    match (before, after) {
        (Some(before), Some(after)) => format!("{} ms", after.saturating_sub(before).as_millis()),
        _ => "unknown (no --gateway-pid)".to_owned(),
    }
}

/// Until nothing has been stamped into `last` for [`QUIET`] (or `deadline` passes).
async fn until_quiet(last: &Mutex<Option<Instant>>, deadline: Instant) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let at = *last.lock().unwrap_or_else(PoisonError::into_inner);
        if at.is_none_or(|at| at.elapsed() >= QUIET) || Instant::now() >= deadline {
            return;
        }
    }
}

/// Waits for the `connection` greeting and returns the user id it names.
async fn greeting_user(socket: &mut Socket) -> anyhow::Result<i64> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .context("no greeting within 30 s")?;
        match frame {
            Some(Ok(Ws::Text(text))) => {
                let value: Value = serde_json::from_str(text.as_str())?;
                if value["type"] == "connection" {
                    return value["user_id"]
                        .as_i64()
                        .context("greeting without user_id");
                }
            }
            Some(Ok(Ws::Close(frame))) => bail!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before the greeting"),
        }
    }
}

/// Posts one message into `room` over `socket` and returns its id from the `ack`.
async fn post_and_ack(socket: &mut Socket, room: i64) -> anyhow::Result<i64> {
    let client_msg_id = format!("storm-{room}-{}", std::process::id());
    let frame = serde_json::json!({
        "type": "message",
        "body": "read me",
        "client_msg_id": client_msg_id,
    });
    socket.send(Ws::Text(frame.to_string().into())).await?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .context("no ack within 30 s")?;
        match next {
            Some(Ok(Ws::Text(text))) => {
                let value: Value = serde_json::from_str(text.as_str())?;
                if value["type"] == "ack" {
                    return value["id"].as_i64().context("ack without id");
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before the ack"),
        }
    }
}

/// Reads one socket until it ends, counting `read` frames and whether its own user's came.
async fn count_frames(
    mut reader: futures::stream::SplitStream<Socket>,
    user_id: i64,
    counts: Arc<Counts>,
) {
    let own = format!(r#""user_id":{user_id},"#);
    let mut heard_own = false;
    while let Some(frame) = reader.next().await {
        let text = match frame {
            Ok(Ws::Text(text)) => text,
            Ok(Ws::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let text = text.as_str();
        *counts
            .last_any
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if !text.starts_with(r#"{"type":"read""#) {
            continue;
        }
        counts.read_frames.fetch_add(1, Ordering::Relaxed);
        *counts
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if !heard_own && text.contains(&own) {
            heard_own = true;
            counts.own_heard.fetch_add(1, Ordering::Relaxed);
        }
    }
    counts.closed.fetch_add(1, Ordering::Relaxed);
    if !heard_own {
        counts.closed_unheard.fetch_add(1, Ordering::Relaxed);
    }
}
