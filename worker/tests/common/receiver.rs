//! A real HTTP receiver for webhook tests: it records every request, checks its signature
//! with the secret registered for its path (computed here independently of the worker's
//! code), and answers with scripted status codes (200 once the script runs out).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use testing::RefusedPort;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// `X-ChatBoard-Event`.
    pub event: String,
    /// `X-ChatBoard-Delivery`.
    pub delivery: String,
    /// Whether `X-ChatBoard-Signature` matched the registered secret and the timestamp is fresh.
    pub signature_ok: bool,
    /// The parsed body.
    pub body: Value,
    /// What the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    secrets: Mutex<HashMap<String, String>>,
    script: Mutex<VecDeque<u16>>,
    delay: Mutex<Duration>,
    received: Mutex<Vec<Received>>,
    in_flight: Mutex<(usize, usize)>,
}

/// A running receiver.
pub struct Receiver {
    /// `http://127.0.0.1:port`.
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let timestamp = header("x-chatboard-timestamp");
    let Some(given) = header("x-chatboard-signature").strip_prefix("sha256=") else {
        return false;
    };
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    fresh && mac.verify_slice(&given).is_ok()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    {
        let mut flight = shared.in_flight.lock().unwrap();
        flight.0 += 1;
        flight.1 = flight.1.max(flight.0);
    }
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    shared.in_flight.lock().unwrap().0 -= 1;
    let path = uri.path().to_owned();
    let secret = shared.secrets.lock().unwrap().get(&path).cloned();
    let signature_ok = secret.is_some_and(|s| verify(&s, &headers, &body));
    let answered = shared.script.lock().unwrap().pop_front().unwrap_or(200);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    shared.received.lock().unwrap().push(Received {
        path,
        event: header("x-chatboard-event"),
        delivery: header("x-chatboard-delivery"),
        signature_ok,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

impl Receiver {
    /// Starts a receiver on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    /// Starts a receiver on `port`, which refused connections until now.
    pub async fn start_on(port: RefusedPort) -> Self {
        Self::serve(port.listen()).await
    }

    async fn serve(listener: tokio::net::TcpListener) -> Self {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(axum::routing::post(handle))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            shared,
            server,
        }
    }

    /// The URL for `path`, whose requests are checked against `secret`.
    pub fn url(&self, path: &str, secret: &str) -> String {
        self.shared
            .secrets
            .lock()
            .unwrap()
            .insert(path.to_owned(), secret.to_owned());
        format!("{}{path}", self.base)
    }

    /// The next requests get these status codes, in order.
    pub fn script(&self, codes: &[u16]) {
        self.shared.script.lock().unwrap().extend(codes);
    }

    /// Every request waits this long before it is answered.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// The most requests it held at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.lock().unwrap().1
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received, or panics after `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "receiver: condition not met within {within:?}; got {} requests",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops listening.
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
