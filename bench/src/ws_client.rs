//! A lean WebSocket client for the fan-out load: the handshake and the few frames the load
//! generator needs, written by hand over a shared `TcpStream`.
//!
//! The load generator shares the machine's two cores with the server it measures, so what it
//! spends per delivery is taken from the server. With tokio-tungstenite (a split stream behind a
//! lock, a buffer zeroed per read, UTF-8 checks) it spent more CPU per delivery than the raw
//! broadcaster it was measuring. Here a receiver reads straight into its own buffer and looks at
//! the bytes where they lie; the server's frames are small and unfragmented.

use std::io;
use std::sync::Arc;

use std::io::Cursor;

use anyhow::bail;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

/// Bytes of a receiver's buffer to start with; it grows for a larger frame.
const INITIAL_BUFFER: usize = 1024;
/// Largest handshake answer accepted.
const MAX_HANDSHAKE: usize = 16 * 1024;
/// Largest frame accepted from the server.
const MAX_FRAME: usize = 1 << 20;

/// Opens a WebSocket on `stream` at `path` of `host`: the connection's reading and writing
/// halves.
pub async fn open(stream: TcpStream, host: &str, path: &str) -> anyhow::Result<(Reader, Writer)> {
    let stream = Arc::new(stream);
    // The server answers with a digest of this key; any 16 bytes in base64 will do for a load
    // generator, which does not check the answer's digest either.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: Y2hhdGJvYXJkLWJlbmNoIQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    write_all(&stream, request.as_bytes()).await?;
    let mut reader = Reader {
        stream: stream.clone(),
        buf: vec![0; INITIAL_BUFFER],
        start: 0,
        end: 0,
        writer: Writer {
            stream,
            mask: Arc::new(Mutex::new(0x9e37_79b9)),
        },
    };
    let head_len = loop {
        if let Some(at) = find(&reader.buf[..reader.end], b"\r\n\r\n") {
            break at + 4;
        }
        if reader.end >= MAX_HANDSHAKE {
            bail!("the handshake's answer is over {MAX_HANDSHAKE} bytes");
        }
        if !reader.fill(0).await? {
            bail!("closed during the handshake");
        }
    };
    let head = String::from_utf8_lossy(&reader.buf[..head_len]);
    if !head.starts_with("HTTP/1.1 101") {
        bail!(
            "no upgrade: {}",
            head.lines().next().unwrap_or_default().trim()
        );
    }
    // Frames that came with the answer stay in the buffer.
    reader.start = head_len;
    let writer = reader.writer.clone();
    Ok((reader, writer))
}

/// The reading half: text frames in order; pings are answered on the way.
pub struct Reader {
    stream: Arc<TcpStream>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    writer: Writer,
}

impl Reader {
    /// The next text frame's payload; `None` once the server closed the connection.
    pub async fn next_text(&mut self) -> anyhow::Result<Option<&[u8]>> {
        loop {
            let unread = &self.buf[self.start..self.end];
            let Some((header, len, payload)) = server_header(unread)? else {
                if !self.fill(0).await? {
                    return Ok(None);
                }
                continue;
            };
            if unread.len() < len + payload {
                if !self.fill(len + payload).await? {
                    return Ok(None);
                }
                continue;
            }
            let from = self.start + len;
            let to = from + payload;
            self.start = to;
            match header.opcode {
                OpCode::Data(Data::Text) => return Ok(Some(&self.buf[from..to])),
                OpCode::Control(Control::Close) => return Ok(None),
                OpCode::Control(Control::Ping) => {
                    let pong = Frame::pong(self.buf[from..to].to_vec());
                    self.writer.send(pong).await?;
                }
                _ => {} // pongs, binary and continuation frames: not the server's
            }
        }
    }

    /// Reads more from the socket, first making room for the `needed` bytes of the frame begun
    /// in the buffer (0 when its length is not known yet); false at the end of the stream.
    async fn fill(&mut self, needed: usize) -> anyhow::Result<bool> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.start + needed > self.buf.len() || self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if needed > self.buf.len() || self.end == self.buf.len() {
                let grown = needed.max(self.buf.len() * 2);
                self.buf.resize(grown, 0);
            }
        }
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The writing half: whole, masked frames, one writer at a time.
#[derive(Clone)]
pub struct Writer {
    stream: Arc<TcpStream>,
    /// The state of the masks' generator; holding it is the right to write.
    mask: Arc<Mutex<u32>>,
}

impl Writer {
    /// Sends a text frame.
    pub async fn send_text(&self, text: &str) -> anyhow::Result<()> {
        self.send(Frame::message(
            text.as_bytes().to_vec(),
            OpCode::Data(Data::Text),
            true,
        ))
        .await
    }

    async fn send(&self, mut frame: Frame) -> anyhow::Result<()> {
        let mut mask = self.mask.lock().await;
        // xorshift: clients must mask their frames, not with any particular key.
        *mask ^= *mask << 13;
        *mask ^= *mask >> 17;
        *mask ^= *mask << 5;
        frame.header_mut().mask = Some(mask.to_be_bytes());
        let mut bytes = Vec::with_capacity(frame.len());
        frame.format(&mut bytes)?;
        Ok(write_all(&self.stream, &bytes).await?)
    }
}

/// The header of the server frame at the start of `bytes` (tungstenite's parser), with its own
/// length and its payload's, once the header is there (the payload may still be on its way).
fn server_header(bytes: &[u8]) -> anyhow::Result<Option<(FrameHeader, usize, usize)>> {
    let mut cursor = Cursor::new(bytes);
    let Some((header, payload)) = FrameHeader::parse(&mut cursor)? else {
        return Ok(None);
    };
    if header.mask.is_some() {
        bail!("the server masked a frame");
    }
    if !header.is_final {
        bail!("the server fragmented a frame");
    }
    let payload = usize::try_from(payload)?;
    if payload > MAX_FRAME {
        bail!("a frame of {payload} bytes");
    }
    Ok(Some((header, usize::try_from(cursor.position())?, payload)))
}

/// Writes all of `bytes`, waiting for room as needed.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masked_or_fragmented_server_frames_are_refused() {
        assert!(server_header(&[0x81, 0x85, 1, 2, 3, 4, 0, 0, 0, 0, 0]).is_err());
        assert!(server_header(&[0x01, 0x01, b'a']).is_err());
        let header = server_header(&[0x81, 126, 1, 44]).unwrap();
        assert_eq!(
            header.map(|(_, len, payload)| (len, payload)),
            Some((4, 300))
        );
    }

    /// A server that answers the handshake in two writes, the second with a first frame, then
    /// sends a frame larger than the reader's buffer in pieces, a ping, and a close.
    #[tokio::test]
    async fn frames_arrive_whole_however_the_bytes_are_cut_and_pings_are_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = "y".repeat(3 * INITIAL_BUFFER);
        let server = tokio::spawn({
            let big = big.clone();
            async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                while find(&request, b"\r\n\r\n").is_none() {
                    let mut chunk = [0; 256];
                    let n = socket.read(&mut chunk).await.unwrap();
                    request.extend_from_slice(&chunk[..n]);
                }
                // The client reads the first part alone unless the machine is slow to run it.
                socket.write_all(b"HTTP/1.1 101 Switching").await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let mut answer = b" Protocols\r\n\r\n".to_vec();
                answer.extend(chatboard_core::shared_stream::text_frame("first"));
                socket.write_all(&answer).await.unwrap();
                let frame = chatboard_core::shared_stream::text_frame(&big);
                for piece in frame.chunks(700) {
                    socket.write_all(piece).await.unwrap();
                    socket.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
                socket.write_all(&[0x89, 2, b'h', b'i']).await.unwrap();
                // The pong: final, masked, two bytes long.
                let mut pong = [0; 8];
                let answered = socket.read_exact(&mut pong);
                tokio::time::timeout(std::time::Duration::from_secs(30), answered)
                    .await
                    .expect("a pong")
                    .unwrap();
                socket.write_all(&[0x88, 0]).await.unwrap();
                pong
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, _writer) = open(stream, "test", "/ws").await.unwrap();
        assert_eq!(reader.next_text().await.unwrap(), Some(&b"first"[..]));
        assert_eq!(reader.next_text().await.unwrap(), Some(big.as_bytes()));
        assert_eq!(reader.next_text().await.unwrap(), None);
        let pong = server.await.unwrap();
        assert_eq!(pong[..2], [0x8A, 0x82]);
        let unmasked = [pong[6] ^ pong[2], pong[7] ^ pong[3]];
        assert_eq!(&unmasked, b"hi");
    }

    #[tokio::test]
    async fn a_refused_upgrade_says_what_the_server_answered() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let answer = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
            socket.write_all(answer).await.unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let error = open(stream, "test", "/ws").await.err().unwrap();
        assert_eq!(error.to_string(), "no upgrade: HTTP/1.1 401 Unauthorized");
    }
}
