//! An SMTP server for tests: it speaks enough of the protocol for lettre (EHLO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT; no TLS, no AUTH), records every message it accepts, and can be told
//! to refuse the next recipients with a temporary (4xx) or permanent (5xx) answer, or to be
//! slow to answer the next message.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One accepted message.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
}

impl Mail {
    /// A header's value (the first one), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The body after the headers, with quoted-printable soft breaks and escapes undone.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        decode_quoted_printable(body)
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<Mail>>,
    refusals: Mutex<VecDeque<&'static str>>,
    /// How long to sit on the next message before answering it.
    stall: Mutex<Option<Duration>>,
}

/// A running SMTP server on a loopback port.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:<port>`, for `CHATBOARD_SMTP_URL`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Starts the server.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP sink");
        let url = format!("smtp://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, accepting.clone()));
            }
        });
        Self { url, shared, task }
    }

    /// The next recipients are refused, in turn, with these answers (`"451 ..."`, `"550 ..."`).
    pub fn refuse_next(&self, answers: &[&'static str]) {
        self.shared.refusals.lock().expect("lock").extend(answers);
    }

    /// The next message is accepted (recorded) at once, and answered only after `pause`.
    pub fn stall_next_message(&self, pause: Duration) {
        *self.shared.stall.lock().expect("lock") = Some(pause);
    }

    /// Every message accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.lock().expect("lock").clone()
    }

    /// Waits until `done` holds for the accepted messages, or panics after `within`.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mails = self.mails();
            if done(&mails) {
                return mails;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("SMTP sink: condition not met within {within:?}; got {mails:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The address inside `MAIL FROM:<...>` / `RCPT TO:<...>`.
fn angle(arg: &str) -> String {
    arg.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(arg.trim(), |(addr, _)| addr)
        .to_owned()
}

async fn session(socket: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 sink ESMTP ready\r\n").await.is_err() {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer: String = match verb.as_str() {
            "EHLO" => "250-sink\r\n250 8BITMIME\r\n".into(),
            "HELO" => "250 sink\r\n".into(),
            "MAIL" => {
                from = angle(&command);
                to.clear();
                "250 OK\r\n".into()
            }
            "RCPT" => {
                let refusal = shared.refusals.lock().expect("lock").pop_front();
                match refusal {
                    Some(answer) => format!("{answer}\r\n"),
                    None => {
                        to.push(angle(&command));
                        "250 OK\r\n".into()
                    }
                }
            }
            "DATA" => {
                if write.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(unstuffed);
                }
                shared.mails.lock().expect("lock").push(Mail {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                let stall = shared.stall.lock().expect("lock").take();
                if let Some(pause) = stall {
                    tokio::time::sleep(pause).await;
                }
                "250 queued\r\n".into()
            }
            "RSET" => {
                to.clear();
                "250 OK\r\n".into()
            }
            "NOOP" => "250 OK\r\n".into(),
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => "502 not implemented\r\n".into(),
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}
