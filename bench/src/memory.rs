//! `memory`: what a burst of sign-ups, sign-ins and posts leaves in a server's resident memory.
//! Registers `users` accounts and signs each in, `concurrency` at a time, then posts `posts`
//! messages into one room from as many connections, and reads the server's VmRSS from /proc
//! before, after each phase, and after a quiet spell (memory an allocator gives back shows
//! there).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no process {pid}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// Answers by status code, for the report.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    busy: AtomicUsize,
    other: AtomicUsize,
}

impl Tally {
    fn count(&self, status: reqwest::StatusCode) {
        let bucket = match status.as_u16() {
            200 | 201 => &self.ok,
            503 => &self.busy,
            _ => &self.other,
        };
        bucket.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        format!(
            "{} ok, {} busy (503), {} other",
            self.ok.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed)
        )
    }
}

/// POSTs `body` to `api` + `path`, retrying a 503 after its `Retry-After` as a client should.
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
    tally: &Tally,
) -> anyhow::Result<Value> {
    for _ in 0..60 {
        let mut request = http.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().await?;
        let status = resp.status();
        tally.count(status);
        if status.as_u16() == 503 {
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        if !status.is_success() {
            bail!("{url}: {status}: {}", resp.text().await.unwrap_or_default());
        }
        return Ok(resp.json().await?);
    }
    bail!("{url}: still busy after 60 tries")
}

/// Runs the burst against `api` and prints the server `pid`'s memory along the way.
pub async fn run(
    api: &str,
    pid: u32,
    users: usize,
    posts: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let api = api.trim_end_matches('/');
    let run_id = std::process::id();
    let at_start = rss_kib(pid)?;
    println!("RSS at start: {} MiB", at_start / 1024);

    let started = Instant::now();
    let tally = Tally::default();
    let tokens: Vec<String> = stream::iter(0..users)
        .map(|i| {
            let (http, tally) = (&http, &tally);
            async move {
                let email = format!("mem{run_id}-{i}@bench.example");
                let account = json!({"email": email, "password": "benchmark-password"});
                post(
                    http,
                    &format!("{api}/auth/register/"),
                    None,
                    &account,
                    tally,
                )
                .await?;
                let pair = post(http, &format!("{api}/auth/token/"), None, &account, tally).await?;
                pair["access"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no access token")
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<anyhow::Result<String>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let signed_in = started.elapsed();
    let after_signups = rss_kib(pid)?;
    println!(
        "{users} sign-ups and {users} sign-ins at {concurrency} concurrent in {:.1} s ({}); RSS {} MiB",
        signed_in.as_secs_f64(),
        tally.line(),
        after_signups / 1024
    );

    let owner = tokens.first().context("no users")?;
    let tally = Tally::default();
    let org = post(
        &http,
        &format!("{api}/api/orgs/"),
        Some(owner),
        &json!({"name": format!("Memory {run_id}")}),
        &tally,
    )
    .await?;
    let org_id = org["id"].as_i64().context("org id")?;
    let room = post(
        &http,
        &format!("{api}/api/rooms/"),
        Some(owner),
        &json!({"org": org_id, "name": "memory", "access_level": "PUBLIC"}),
        &tally,
    )
    .await?;
    let room_id = room["id"].as_i64().context("room id")?;
    let started = Instant::now();
    let sent = stream::iter(0..posts)
        .map(|i| {
            let (http, tally) = (&http, &tally);
            async move {
                let body = json!({"body": format!("message {i} of the memory benchmark, a line of ordinary length")});
                post(http, &format!("{api}/api/rooms/{room_id}/messages/"), Some(owner), &body, tally).await
            }
        })
        .buffer_unordered(concurrency)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    let after_posts = rss_kib(pid)?;
    println!(
        "{sent} posts at {concurrency} concurrent in {:.1} s ({}); RSS {} MiB",
        started.elapsed().as_secs_f64(),
        tally.line(),
        after_posts / 1024
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled = rss_kib(pid)?;
    println!("RSS 10 s later: {} MiB", settled / 1024);
    println!(
        "| {users} sign-ups + sign-ins, {sent} posts, {concurrency} concurrent | {} | {} | {} | {} |",
        at_start / 1024,
        after_signups / 1024,
        after_posts / 1024,
        settled / 1024
    );
    Ok(())
}
