//! A minimal HTTP/2 client connection for unary calls (RFC 9113), under skiff-bench's gRPC
//! client ([`super::grpc`]).
//!
//! On one machine the load generator's CPU competes with the members it measures, and with
//! the `h2` crate's client about 40% of skiff-bench's CPU went to its general stream
//! machinery (stream store, prioritisation queues, per-frame tracing spans), and a fifth to
//! socket writes carrying fewer than two requests each. A benchmark only needs unary calls:
//! HEADERS + DATA out, HEADERS + DATA + trailing HEADERS back. This connection does exactly
//! that, from one task that owns the socket:
//!
//! ```text
//!  client tasks ─► Http2Conn::call ─► channel ─► connection task ─► one write per round
//!                                                     │  (yields once first, so every
//!                                                     │   client woken by the last read
//!                                                     │   has queued its next request)
//!                  oneshot ◄── Response ◄── frames ◄──┘
//! ```
//!
//! Request header blocks are encoded once per method ([`request_headers`]: literal fields,
//! no dynamic table), so a request is a memcpy of that block and of the framed message.
//! Reply header blocks go through `h2`'s HPACK decoder (exposed by the workspace's patch).
//! What a conforming client must still do is done: the server's SETTINGS (concurrent
//! streams, initial window, frame size) are honoured and acknowledged, flow control both
//! ways (requests wait for window; received data is returned with WINDOW_UPDATE), PING is
//! answered, RST_STREAM fails its call, GOAWAY fails the calls the server will not process,
//! and CONTINUATION frames are joined. No server push (disabled in our SETTINGS), no
//! priorities, no TLS.
//!
//! [`Conn`] is the protocol state (frames in → replies and bytes out), free of I/O and unit
//! tested; [`run`] moves bytes between it and the socket.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::ops::ControlFlow;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::hpack::{Decoder, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// The connection preface a client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame header: 24-bit length, type, flags, 31-bit stream id.
const FRAME_HEADER_BYTES: usize = 9;
/// The largest frame we accept (the protocol's default; we do not raise it).
const MAX_RECV_FRAME_BYTES: usize = 16_384;
/// Our receive windows, per stream and for the connection: replies (ranges of many keys)
/// rarely wait for a window update.
const RECV_WINDOW: u32 = 8 << 20;
/// The initial window both sides start from (RFC 9113 §6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;
/// The HPACK dynamic table size (the protocol's default; we do not change it).
const HEADER_TABLE_BYTES: usize = 4_096;
/// Stream ids are 31 bits; client streams are odd.
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

// Frame types and flags.
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

// Settings identifiers.
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// Error codes (RFC 9113 §7) this client names.
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const FRAME_SIZE_ERROR: u32 = 0x6;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The server reset the stream with this error code.
    Reset(u32),
    /// The server sent GOAWAY before processing the call.
    GoingAway,
    /// The connection failed or closed (I/O error, or the server broke the protocol).
    Connection(String),
}

impl CallError {
    /// The name of an HTTP/2 error code.
    pub fn reason_name(code: u32) -> &'static str {
        match code {
            0x0 => "NO_ERROR",
            PROTOCOL_ERROR => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
            REFUSED_STREAM => "REFUSED_STREAM",
            CANCEL => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "unknown error code",
        }
    }

    /// Whether the server refused the stream before processing it (safe to retry).
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            CallError::Reset(REFUSED_STREAM) | CallError::GoingAway
        )
    }

    /// Whether the server cancelled the stream.
    pub fn is_cancel(&self) -> bool {
        matches!(self, CallError::Reset(CANCEL))
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Reset(code) => write!(
                f,
                "stream reset by the server: {} ({code:#x})",
                Self::reason_name(*code)
            ),
            CallError::GoingAway => write!(f, "the server is closing the connection (GOAWAY)"),
            CallError::Connection(m) => write!(f, "connection error: {m}"),
        }
    }
}

/// The parts of a reply a gRPC client reads, from its header block and its trailers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Response {
    /// `:status` of the first header block.
    pub status: Option<u16>,
    /// The last `grpc-status` seen (trailers, or the headers of a trailers-only reply).
    pub grpc_status: Option<Bytes>,
    /// The last `grpc-message` seen.
    pub grpc_message: Option<Bytes>,
    /// The DATA payloads, joined.
    pub data: BytesMut,
}

/// The result of one call.
pub type CallResult = Result<Response, CallError>;

/// One request handed to the connection task.
struct Call {
    /// HPACK block of the request headers ([`request_headers`]).
    headers: Bytes,
    body: Bytes,
    reply: oneshot::Sender<CallResult>,
}

/// A client connection; cloning shares it. Calls from any task are multiplexed on it.
#[derive(Clone)]
pub struct Http2Conn {
    calls: mpsc::UnboundedSender<Call>,
}

impl Http2Conn {
    /// Starts the client side of HTTP/2 on `socket` (prior knowledge, no upgrade) in a task
    /// of its own, which ends when the connection fails or every handle is dropped and no
    /// call is left.
    pub fn start(socket: TcpStream) -> Http2Conn {
        let (calls, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, rx));
        Http2Conn { calls }
    }

    /// Sends a request (`headers` from [`request_headers`], `body` as the DATA) and waits
    /// for the whole reply.
    pub async fn call(&self, headers: Bytes, body: Bytes) -> CallResult {
        let (reply, rx) = oneshot::channel();
        let closed = || CallError::Connection("the connection is closed".into());
        self.calls
            .send(Call {
                headers,
                body,
                reply,
            })
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// The HPACK block of a gRPC request's headers: `POST`, `http`, `path`, `authority`,
/// `content-type: application/grpc`, `te: trailers`. Every field is a literal without
/// indexing (or a static-table entry), so the block is the same for every request and the
/// server's decoder state is never touched by it.
pub fn request_headers(authority: &str, path: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(0x80 | 3); // :method POST (static index 3)
    b.put_u8(0x80 | 6); // :scheme http (static index 6)
    literal_indexed_name(&mut b, 4, path.as_bytes()); // :path
    literal_indexed_name(&mut b, 1, authority.as_bytes()); // :authority
    literal_indexed_name(&mut b, 31, b"application/grpc"); // content-type
    b.put_u8(0x00); // literal without indexing, new name
    hpack_string(&mut b, b"te");
    hpack_string(&mut b, b"trailers");
    b.freeze()
}

/// Literal header field without indexing, name from the static table (RFC 7541 §6.2.2).
fn literal_indexed_name(b: &mut BytesMut, name_index: usize, value: &[u8]) {
    hpack_int(b, 4, 0x00, name_index);
    hpack_string(b, value);
}

/// A string literal without Huffman coding.
fn hpack_string(b: &mut BytesMut, s: &[u8]) {
    hpack_int(b, 7, 0x00, s.len());
    b.put_slice(s);
}

/// An integer with an N-bit prefix (RFC 7541 §5.1); `flags` fills the bits above it.
fn hpack_int(b: &mut BytesMut, prefix_bits: u8, flags: u8, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        b.put_u8(flags | value as u8);
        return;
    }
    b.put_u8(flags | max as u8);
    value -= max;
    while value >= 128 {
        b.put_u8((value % 128) as u8 | 0x80);
        value /= 128;
    }
    b.put_u8(value as u8);
}

/// What the server's SETTINGS allow us.
struct PeerSettings {
    max_concurrent_streams: usize,
    initial_window: i64,
    max_frame: usize,
}

/// One open stream.
struct Stream {
    reply: oneshot::Sender<CallResult>,
    response: Response,
    /// The first header block (the response headers) has arrived.
    got_headers: bool,
    /// Request body not yet sent (waiting for send window).
    unsent: Bytes,
    send_window: i64,
    /// Bytes received on the stream not yet returned with WINDOW_UPDATE.
    recv_unacked: u32,
}

/// A header block being received in HEADERS + CONTINUATION frames.
struct PartialBlock {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

/// The protocol state of one client connection; see the module docs.
pub struct Conn {
    /// Bytes to write to the socket.
    out: BytesMut,
    next_id: u32,
    streams: HashMap<u32, Stream>,
    /// Calls waiting for a stream slot (the server's concurrency limit).
    waiting: VecDeque<Call>,
    /// Streams with body bytes waiting for send window, oldest first.
    blocked: VecDeque<u32>,
    peer: PeerSettings,
    /// Connection-level send window.
    send_window: i64,
    /// Connection-level bytes received not yet returned.
    recv_unacked: u32,
    decoder: Decoder,
    partial: Option<PartialBlock>,
    /// Set by GOAWAY: the last stream id the server will process.
    going_away: Option<u32>,
}

/// A connection-level failure: every call fails with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnError(pub String);

impl Default for Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl Conn {
    /// A new connection whose first bytes (preface, SETTINGS, connection window) are queued.
    pub fn new() -> Conn {
        let mut c = Conn {
            out: BytesMut::with_capacity(16 * 1024),
            next_id: 1,
            streams: HashMap::new(),
            waiting: VecDeque::new(),
            blocked: VecDeque::new(),
            peer: PeerSettings {
                // Until the server's SETTINGS arrive (RFC 9113 §6.5.2: initially unlimited).
                max_concurrent_streams: usize::MAX,
                initial_window: DEFAULT_WINDOW,
                max_frame: MAX_RECV_FRAME_BYTES,
            },
            send_window: DEFAULT_WINDOW,
            recv_unacked: 0,
            decoder: Decoder::new(HEADER_TABLE_BYTES),
            partial: None,
            going_away: None,
        };
        c.out.put_slice(PREFACE);
        let settings = [
            (SETTINGS_ENABLE_PUSH, 0),
            (SETTINGS_INITIAL_WINDOW_SIZE, RECV_WINDOW),
        ];
        c.frame_head(settings.len() * 6, SETTINGS, 0, 0);
        for (id, value) in settings {
            c.out.put_u16(id);
            c.out.put_u32(value);
        }
        c.window_update(0, RECV_WINDOW - DEFAULT_WINDOW as u32);
        c
    }

    /// Takes the bytes queued for the socket.
    pub fn take_output(&mut self) -> BytesMut {
        self.out.split()
    }

    /// Whether bytes are queued for the socket.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether no call is open or waiting.
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.waiting.is_empty()
    }

    /// Opens a stream for `call`, or queues it while the server's stream limit is reached.
    fn start(&mut self, call: Call) {
        if self.going_away.is_some() {
            let _ = call.reply.send(Err(CallError::GoingAway));
            return;
        }
        if self.streams.len() >= self.peer.max_concurrent_streams {
            self.waiting.push_back(call);
            return;
        }
        if self.next_id > MAX_STREAM_ID {
            let _ = call.reply.send(Err(CallError::Connection(
                "the connection has used all its stream ids".into(),
            )));
            return;
        }
        if call.headers.len() > self.peer.max_frame {
            let _ = call.reply.send(Err(CallError::Connection(format!(
                "request headers of {} bytes exceed the server's frame size {}",
                call.headers.len(),
                self.peer.max_frame
            ))));
            return;
        }
        let id = self.next_id;
        self.next_id += 2;
        let flags = END_HEADERS | if call.body.is_empty() { END_STREAM } else { 0 };
        self.frame_head(call.headers.len(), HEADERS, flags, id);
        self.out.put_slice(&call.headers);
        self.streams.insert(
            id,
            Stream {
                reply: call.reply,
                response: Response::default(),
                got_headers: false,
                unsent: call.body,
                send_window: self.peer.initial_window,
                recv_unacked: 0,
            },
        );
        if !self.send_body(id) {
            self.blocked.push_back(id);
        }
    }

    /// Sends as much of stream `id`'s body as the windows allow; `true` when all is sent.
    fn send_body(&mut self, id: u32) -> bool {
        let Some(s) = self.streams.get_mut(&id) else {
            return true; // ended: nothing left to send
        };
        while !s.unsent.is_empty() {
            let room = s
                .send_window
                .min(self.send_window)
                .min(self.peer.max_frame as i64);
            if room <= 0 {
                return false;
            }
            let n = (room as usize).min(s.unsent.len());
            let chunk = s.unsent.split_to(n);
            s.send_window -= n as i64;
            self.send_window -= n as i64;
            let flags = if s.unsent.is_empty() { END_STREAM } else { 0 };
            frame_head(&mut self.out, n, DATA, flags, id);
            self.out.put_slice(&chunk);
        }
        true
    }

    /// Retries the streams waiting for send window, in order.
    fn unblock(&mut self) {
        for _ in 0..self.blocked.len() {
            let Some(id) = self.blocked.pop_front() else {
                break;
            };
            if !self.send_body(id) {
                self.blocked.push_back(id);
            }
        }
    }

    /// Opens waiting calls while the stream limit allows.
    fn promote(&mut self) {
        while self.streams.len() < self.peer.max_concurrent_streams {
            match self.waiting.pop_front() {
                Some(call) => self.start(call),
                None => break,
            }
        }
    }

    /// Ends stream `id` with `result` (however it ended: reply, reset, GOAWAY); any body
    /// it had not sent yet is dropped.
    fn finish(&mut self, id: u32, result: Result<(), CallError>) {
        if !self.blocked.is_empty() {
            self.blocked.retain(|&b| b != id);
        }
        if let Some(s) = self.streams.remove(&id) {
            let _ = s.reply.send(result.map(|()| s.response));
        }
        self.promote();
    }

    /// Fails every open and waiting call (the connection is over).
    pub fn fail_all(&mut self, err: &ConnError) {
        let e = CallError::Connection(err.0.clone());
        for (_, s) in self.streams.drain() {
            let _ = s.reply.send(Err(e.clone()));
        }
        for call in self.waiting.drain(..) {
            let _ = call.reply.send(Err(e.clone()));
        }
        self.blocked.clear();
    }

    /// Consumes every complete frame at the front of `buf`.
    pub fn receive(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        while buf.len() >= FRAME_HEADER_BYTES {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if len > MAX_RECV_FRAME_BYTES {
                return Err(ConnError(format!(
                    "the server sent a frame of {len} bytes (FRAME_SIZE_ERROR)"
                )));
            }
            if buf.len() < FRAME_HEADER_BYTES + len {
                buf.reserve(FRAME_HEADER_BYTES + len - buf.len());
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & MAX_STREAM_ID;
            buf.advance(FRAME_HEADER_BYTES);
            let payload = buf.split_to(len);
            self.frame(kind, flags, stream, payload)?;
        }
        Ok(())
    }

    /// Handles one frame.
    fn frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        mut payload: BytesMut,
    ) -> Result<(), ConnError> {
        if let Some(p) = &self.partial {
            if kind != CONTINUATION || stream != p.stream {
                return Err(ConnError(
                    "a header block was interrupted by another frame (PROTOCOL_ERROR)".into(),
                ));
            }
        }
        match kind {
            DATA => self.data(flags, stream, payload),
            HEADERS => {
                if flags & PADDED != 0 {
                    payload = unpad(payload)?;
                }
                if flags & PRIORITY_FLAG != 0 {
                    if payload.len() < 5 {
                        return Err(ConnError("HEADERS too short for its priority".into()));
                    }
                    payload.advance(5);
                }
                let block = PartialBlock {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    block: payload,
                };
                self.header_fragment(flags, block)
            }
            CONTINUATION => {
                let Some(mut p) = self.partial.take() else {
                    return Err(ConnError("CONTINUATION without a header block".into()));
                };
                p.block.unsplit(payload);
                self.header_fragment(flags, p)
            }
            RST_STREAM => {
                if payload.len() != 4 {
                    return Err(ConnError("RST_STREAM of the wrong size".into()));
                }
                let code = payload.get_u32();
                self.finish(stream, Err(CallError::Reset(code)));
                Ok(())
            }
            SETTINGS => self.settings(flags, stream, payload),
            PING => {
                if payload.len() != 8 || stream != 0 {
                    return Err(ConnError("malformed PING".into()));
                }
                if flags & ACK == 0 {
                    self.frame_head(8, PING, ACK, 0);
                    self.out.put_slice(&payload);
                }
                Ok(())
            }
            GOAWAY => {
                if payload.len() < 8 {
                    return Err(ConnError("GOAWAY too short".into()));
                }
                let last = payload.get_u32() & MAX_STREAM_ID;
                self.going_away = Some(last);
                let refused: Vec<u32> = self
                    .streams
                    .keys()
                    .copied()
                    .filter(|&id| id > last)
                    .collect();
                for id in refused {
                    self.finish(id, Err(CallError::GoingAway));
                }
                for call in self.waiting.drain(..) {
                    let _ = call.reply.send(Err(CallError::GoingAway));
                }
                Ok(())
            }
            WINDOW_UPDATE => {
                if payload.len() != 4 {
                    return Err(ConnError("WINDOW_UPDATE of the wrong size".into()));
                }
                let inc = (payload.get_u32() & MAX_STREAM_ID) as i64;
                if stream == 0 {
                    if inc == 0 {
                        return Err(ConnError("WINDOW_UPDATE of 0 (PROTOCOL_ERROR)".into()));
                    }
                    self.send_window += inc;
                    if self.send_window > MAX_STREAM_ID as i64 {
                        return Err(ConnError("connection window overflow".into()));
                    }
                } else if let Some(s) = self.streams.get_mut(&stream) {
                    s.send_window += inc;
                }
                self.unblock();
                Ok(())
            }
            PUSH_PROMISE => Err(ConnError(
                "PUSH_PROMISE although push is disabled (PROTOCOL_ERROR)".into(),
            )),
            // PRIORITY and unknown frame types are ignored (RFC 9113 §5.5).
            _ => Ok(()),
        }
    }

    fn data(&mut self, flags: u8, stream: u32, payload: BytesMut) -> Result<(), ConnError> {
        let flow_len = payload.len() as u32;
        let payload = if flags & PADDED != 0 {
            unpad(payload)?
        } else {
            payload
        };
        // Every DATA byte counts against the connection window, known stream or not.
        self.recv_unacked += flow_len;
        if self.recv_unacked >= RECV_WINDOW / 2 {
            let n = std::mem::take(&mut self.recv_unacked);
            self.window_update(0, n);
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(()); // a stream we already ended (reset): nothing to deliver
        };
        s.response.data.unsplit(payload);
        s.recv_unacked += flow_len;
        let end = flags & END_STREAM != 0;
        if !end && s.recv_unacked >= RECV_WINDOW / 2 {
            let n = std::mem::take(&mut s.recv_unacked);
            self.window_update(stream, n);
        }
        if end {
            self.finish(stream, Ok(()));
        }
        Ok(())
    }

    /// Decodes the block if this frame ended it (END_HEADERS), else waits for CONTINUATION.
    fn header_fragment(&mut self, flags: u8, block: PartialBlock) -> Result<(), ConnError> {
        if flags & END_HEADERS != 0 {
            self.header_block(block)
        } else {
            self.partial = Some(block);
            Ok(())
        }
    }

    /// Decodes a complete header block (always, to keep the HPACK table in step) and
    /// records what a gRPC reply needs.
    fn header_block(&mut self, mut p: PartialBlock) -> Result<(), ConnError> {
        let mut status = None;
        let mut grpc_status = None;
        let mut grpc_message = None;
        self.decoder
            .decode(&mut Cursor::new(&mut p.block), |h| {
                match h {
                    Header::Status(s) => status = Some(s.as_u16()),
                    Header::Field { name, value } => match name.as_str() {
                        "grpc-status" => {
                            grpc_status = Some(Bytes::copy_from_slice(value.as_bytes()))
                        }
                        "grpc-message" => {
                            grpc_message = Some(Bytes::copy_from_slice(value.as_bytes()))
                        }
                        _ => {}
                    },
                    _ => {}
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| {
                ConnError(format!(
                    "undecodable reply headers: {e:?} (COMPRESSION_ERROR)"
                ))
            })?;
        let Some(s) = self.streams.get_mut(&p.stream) else {
            return Ok(());
        };
        if !s.got_headers {
            s.got_headers = true;
            s.response.status = status;
        }
        if grpc_status.is_some() {
            s.response.grpc_status = grpc_status;
        }
        if grpc_message.is_some() {
            s.response.grpc_message = grpc_message;
        }
        if p.end_stream {
            self.finish(p.stream, Ok(()));
        }
        Ok(())
    }

    fn settings(&mut self, flags: u8, stream: u32, mut payload: BytesMut) -> Result<(), ConnError> {
        if stream != 0 || !payload.len().is_multiple_of(6) {
            return Err(ConnError("malformed SETTINGS".into()));
        }
        if flags & ACK != 0 {
            return Ok(());
        }
        while payload.has_remaining() {
            let (id, value) = (payload.get_u16(), payload.get_u32());
            match id {
                SETTINGS_MAX_CONCURRENT_STREAMS => {
                    self.peer.max_concurrent_streams = value as usize;
                }
                SETTINGS_INITIAL_WINDOW_SIZE => {
                    if value > MAX_STREAM_ID {
                        return Err(ConnError(
                            "initial window over 2^31-1 (FLOW_CONTROL_ERROR)".into(),
                        ));
                    }
                    let delta = value as i64 - self.peer.initial_window;
                    self.peer.initial_window = value as i64;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                    }
                }
                SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(ConnError(format!("max frame size {value} out of range")));
                    }
                    self.peer.max_frame = value as usize;
                }
                _ => {} // header table size (we never index), push, header list size, unknown
            }
        }
        self.frame_head(0, SETTINGS, ACK, 0);
        self.unblock();
        self.promote();
        Ok(())
    }

    fn window_update(&mut self, stream: u32, increment: u32) {
        self.frame_head(4, WINDOW_UPDATE, 0, stream);
        self.out.put_u32(increment);
    }

    fn frame_head(&mut self, len: usize, kind: u8, flags: u8, stream: u32) {
        frame_head(&mut self.out, len, kind, flags, stream);
    }
}

fn frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// The payload of a PADDED frame without its pad length byte and padding.
fn unpad(mut payload: BytesMut) -> Result<BytesMut, ConnError> {
    if payload.is_empty() {
        return Err(ConnError("padded frame without a pad length".into()));
    }
    let pad = payload.get_u8() as usize;
    if pad > payload.len() {
        return Err(ConnError(
            "padding longer than the frame (PROTOCOL_ERROR)".into(),
        ));
    }
    payload.truncate(payload.len() - pad);
    Ok(payload)
}

/// What woke the connection task.
enum Event {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Call(Option<Call>),
}

/// The connection task: moves bytes between the socket and a [`Conn`] until the
/// connection fails or every handle is gone and no call is left.
async fn run(socket: TcpStream, mut calls: mpsc::UnboundedReceiver<Call>) {
    let (mut rd, mut wr) = socket.into_split();
    let mut conn = Conn::new();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    // Bytes being written, and how many of them went.
    let mut pending = BytesMut::new();
    let mut written = 0;
    let mut yielded = false;
    let mut handles_open = true;
    let failure = loop {
        while let Ok(call) = calls.try_recv() {
            conn.start(call);
        }
        if written == pending.len() && conn.has_output() {
            // Yield once before writing: the client tasks the last read woke queue their next
            // requests first, and they all leave in this write.
            if !yielded {
                yielded = true;
                tokio::task::yield_now().await;
                continue;
            }
            pending = conn.take_output();
            written = 0;
            yielded = false;
        }
        if !handles_open && conn.is_idle() && written == pending.len() {
            break None;
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(64 * 1024);
        }
        let event = tokio::select! {
            biased;
            r = rd.read_buf(&mut rbuf) => Event::Read(r),
            r = wr.write(&pending[written..]), if written < pending.len() => Event::Wrote(r),
            c = calls.recv(), if handles_open => Event::Call(c),
        };
        match event {
            Event::Read(Ok(0)) => break Some(ConnError("the server closed the connection".into())),
            Event::Read(Ok(_)) => {
                if let Err(e) = conn.receive(&mut rbuf) {
                    break Some(e);
                }
            }
            Event::Read(Err(e)) | Event::Wrote(Err(e)) => break Some(ConnError(e.to_string())),
            Event::Wrote(Ok(n)) => written += n,
            Event::Call(Some(call)) => conn.start(call),
            Event::Call(None) => handles_open = false,
        }
    };
    if let Some(e) = failure {
        tracing::debug!(error = %e.0, "benchmark connection ended");
        conn.fail_all(&e);
        calls.close();
        while let Ok(call) = calls.try_recv() {
            let _ = call.reply.send(Err(CallError::Connection(e.0.clone())));
        }
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of `bytes` as (type, flags, stream, payload).
    fn frames(mut bytes: BytesMut) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = bytes.get_uint(3) as usize;
            let (kind, flags, stream) = (bytes.get_u8(), bytes.get_u8(), bytes.get_u32());
            out.push((kind, flags, stream, bytes.split_to(len).to_vec()));
        }
        out
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        frame_head(&mut b, payload.len(), kind, flags, stream);
        b.put_slice(payload);
        b
    }

    fn settings(pairs: &[(u16, u32)]) -> BytesMut {
        let mut p = BytesMut::new();
        for (id, v) in pairs {
            p.put_u16(*id);
            p.put_u32(*v);
        }
        frame(SETTINGS, 0, 0, &p)
    }

    /// A connection past its opening bytes.
    fn conn() -> Conn {
        let mut c = Conn::new();
        c.take_output();
        c
    }

    fn call(c: &mut Conn, body: &[u8]) -> oneshot::Receiver<CallResult> {
        let (reply, rx) = oneshot::channel();
        c.start(Call {
            headers: request_headers("h:1", "/p"),
            body: Bytes::copy_from_slice(body),
            reply,
        });
        rx
    }

    /// A reply header block: `:status 200` from the static table (if `status`), then
    /// literal fields. (Blocks with Huffman coding and the dynamic table come from real
    /// servers in `tests/grpc_wire.rs` and `tests/bench_tool.rs`.)
    fn reply_headers(fields: &[(&str, &str)], status: bool) -> Vec<u8> {
        let mut b = BytesMut::new();
        if status {
            b.put_u8(0x80 | 8); // :status 200
        }
        for (n, v) in fields {
            b.put_u8(0x00);
            hpack_string(&mut b, n.as_bytes());
            hpack_string(&mut b, v.as_bytes());
        }
        b.to_vec()
    }

    // The opening bytes: preface, SETTINGS (push off, our window), connection window.
    #[test]
    fn opens_with_preface_settings_and_window() {
        let mut out = Conn::new().take_output();
        assert!(out.starts_with(PREFACE));
        out.advance(PREFACE.len());
        let f = frames(out);
        assert_eq!(f[0].0, SETTINGS);
        assert_eq!(f[0].3, vec![0, 2, 0, 0, 0, 0, 0, 4, 0, 0x80, 0, 0]);
        assert_eq!(f[1].0, WINDOW_UPDATE);
        assert_eq!(
            u32::from_be_bytes(f[1].3.clone().try_into().unwrap()),
            RECV_WINDOW - 65_535
        );
    }

    // The request block decodes (with h2's decoder) to the gRPC request headers.
    #[test]
    fn request_headers_decode() {
        let long_path = format!("/{}", "x".repeat(300));
        let mut block = BytesMut::from(&request_headers("127.0.0.1:2379", &long_path)[..]);
        let mut seen = Vec::new();
        Decoder::new(4096)
            .decode(&mut Cursor::new(&mut block), |h| {
                seen.push(match h {
                    Header::Method(m) => format!(":method {m}"),
                    Header::Scheme(s) => format!(":scheme {}", &*s),
                    Header::Path(p) => format!(":path {}", p.len()),
                    Header::Authority(a) => format!(":authority {}", &*a),
                    Header::Field { name, value } => {
                        format!("{name} {}", value.to_str().unwrap())
                    }
                    other => format!("{other:?}"),
                });
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                ":method POST".to_string(),
                ":scheme http".into(),
                format!(":path {}", long_path.len()),
                ":authority 127.0.0.1:2379".into(),
                "content-type application/grpc".into(),
                "te trailers".into(),
            ]
        );
    }

    // A whole unary exchange: HEADERS + DATA out; headers, data in two frames and trailers
    // back; the reply joins them; received data is acknowledged once past half the window.
    #[test]
    fn unary_exchange() {
        let mut c = conn();
        let mut rx = call(&mut c, b"hello");
        let out = frames(c.take_output());
        assert_eq!(out[0].0, HEADERS);
        assert_eq!((out[0].1, out[0].2), (END_HEADERS, 1));
        assert_eq!((out[1].0, out[1].1, out[1].2), (DATA, END_STREAM, 1));
        assert_eq!(out[1].3, b"hello");
        let mut input = frame(
            HEADERS,
            END_HEADERS,
            1,
            &reply_headers(&[("content-type", "application/grpc")], true),
        );
        input.unsplit(frame(DATA, 0, 1, b"ab"));
        input.unsplit(frame(DATA, 0, 1, b"cd"));
        input.unsplit(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &reply_headers(&[("grpc-status", "5"), ("grpc-message", "gone")], false),
        ));
        // Split mid-frame: the rest waits for more bytes.
        let mut first = input.split_to(12);
        c.receive(&mut first).unwrap();
        assert_eq!(first.len(), 12);
        first.unsplit(input);
        c.receive(&mut first).unwrap();
        assert!(first.is_empty());
        let r = rx.try_recv().unwrap().unwrap();
        assert_eq!(r.status, Some(200));
        assert_eq!(&r.data[..], b"abcd");
        assert_eq!(r.grpc_status.as_deref(), Some(&b"5"[..]));
        assert_eq!(r.grpc_message.as_deref(), Some(&b"gone"[..]));
        assert!(c.is_idle());
    }

    // A body larger than the server's window and frame size goes out in frames of at most
    // the frame size, waits for WINDOW_UPDATE, then finishes.
    #[test]
    fn request_body_respects_flow_control() {
        let mut c = conn();
        c.receive(&mut settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 20_000)]))
            .unwrap();
        let acked = frames(c.take_output());
        assert_eq!((acked[0].0, acked[0].1), (SETTINGS, ACK));
        let body = vec![7u8; 50_000];
        let _rx = call(&mut c, &body);
        let out = frames(c.take_output());
        let sent: Vec<usize> = out
            .iter()
            .filter(|f| f.0 == DATA)
            .map(|f| f.3.len())
            .collect();
        assert_eq!(sent, vec![16_384, 3_616], "stream window 20,000");
        assert!(out.iter().all(|f| f.1 & END_STREAM == 0));
        // The stream gets more window, but the connection's (65,535) is the limit now.
        c.receive(&mut frame(WINDOW_UPDATE, 0, 1, &100_000u32.to_be_bytes()))
            .unwrap();
        let out = frames(c.take_output());
        let sent: usize = out.iter().map(|f| f.3.len()).sum();
        assert_eq!(
            sent, 30_000,
            "the rest of the body fits the connection window"
        );
        assert_eq!(out.last().unwrap().1, END_STREAM);
    }

    // Blocked by the connection window, a body goes on after a connection WINDOW_UPDATE.
    #[test]
    fn connection_window_blocks_and_resumes() {
        let mut c = conn();
        c.receive(&mut settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)]))
            .unwrap();
        c.take_output();
        let _rx = call(&mut c, &vec![1u8; 70_000]);
        let sent: usize = frames(c.take_output())
            .iter()
            .filter(|f| f.0 == DATA)
            .map(|f| f.3.len())
            .sum();
        assert_eq!(sent, 65_535);
        c.receive(&mut frame(WINDOW_UPDATE, 0, 0, &10_000u32.to_be_bytes()))
            .unwrap();
        let out = frames(c.take_output());
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].1, out[0].3.len()), (END_STREAM, 4_465));
    }

    // A stream the server ends while its body waits for window sends no more of it.
    #[test]
    fn ended_stream_leaves_the_blocked_queue() {
        let mut c = conn();
        let mut rx = call(&mut c, &vec![1u8; 70_000]);
        c.take_output();
        c.receive(&mut frame(RST_STREAM, 0, 1, &CANCEL.to_be_bytes()))
            .unwrap();
        assert!(rx.try_recv().unwrap().unwrap_err().is_cancel());
        c.receive(&mut frame(WINDOW_UPDATE, 0, 0, &10_000u32.to_be_bytes()))
            .unwrap();
        assert!(!c.has_output(), "nothing sent for the reset stream");
        assert!(c.blocked.is_empty());
    }

    // The server's stream limit queues calls until a stream ends.
    #[test]
    fn concurrency_limit_queues_calls() {
        let mut c = conn();
        c.receive(&mut settings(&[(SETTINGS_MAX_CONCURRENT_STREAMS, 1)]))
            .unwrap();
        c.take_output();
        let mut first = call(&mut c, b"a");
        let mut second = call(&mut c, b"b");
        let out = frames(c.take_output());
        assert!(out.iter().all(|f| f.2 == 1), "only stream 1 opened");
        c.receive(&mut frame(RST_STREAM, 0, 1, &REFUSED_STREAM.to_be_bytes()))
            .unwrap();
        let e = first.try_recv().unwrap().unwrap_err();
        assert!(e.is_refused());
        let out = frames(c.take_output());
        assert!(
            out.iter().all(|f| f.2 == 3),
            "stream 3 opened after 1 ended"
        );
        assert!(second.try_recv().is_err(), "still in flight");
    }

    // PING is answered; GOAWAY fails the calls above its last stream and refuses new ones;
    // CONTINUATION joins a header block.
    #[test]
    fn ping_goaway_and_continuation() {
        let mut c = conn();
        c.receive(&mut frame(PING, 0, 0, b"12345678")).unwrap();
        let out = frames(c.take_output());
        assert_eq!(out, vec![(PING, ACK, 0, b"12345678".to_vec())]);

        let mut one = call(&mut c, b"a");
        let mut three = call(&mut c, b"b");
        c.take_output();
        let block = reply_headers(&[("grpc-status", "0")], true);
        let mut input = frame(HEADERS, 0, 1, &block[..3]);
        input.unsplit(frame(CONTINUATION, END_HEADERS, 1, &block[3..]));
        let mut goaway = BytesMut::new();
        goaway.put_u32(1);
        goaway.put_u32(0);
        input.unsplit(frame(GOAWAY, 0, 0, &goaway));
        input.unsplit(frame(DATA, END_STREAM, 1, b"x"));
        c.receive(&mut input).unwrap();
        let r = one.try_recv().unwrap().unwrap();
        assert_eq!(
            (r.status, r.grpc_status.as_deref()),
            (Some(200), Some(&b"0"[..]))
        );
        assert_eq!(three.try_recv().unwrap().unwrap_err(), CallError::GoingAway);
        let mut later = call(&mut c, b"c");
        assert_eq!(later.try_recv().unwrap().unwrap_err(), CallError::GoingAway);
    }

    // Protocol violations fail the connection with a message.
    #[test]
    fn protocol_errors() {
        let mut c = conn();
        let mut big = BytesMut::new();
        frame_head(&mut big, MAX_RECV_FRAME_BYTES + 1, DATA, 0, 1);
        assert!(c.receive(&mut big).unwrap_err().0.contains("FRAME_SIZE"));
        let mut c = conn();
        let mut input = frame(HEADERS, 0, 1, &[0x88]);
        input.unsplit(frame(DATA, 0, 1, b"x"));
        assert!(c.receive(&mut input).unwrap_err().0.contains("interrupted"));
        let mut c = conn();
        let mut rx = call(&mut c, b"a");
        let err = c
            .receive(&mut frame(PUSH_PROMISE, 0, 1, &[0; 4]))
            .unwrap_err();
        c.fail_all(&err);
        assert!(matches!(
            rx.try_recv().unwrap(),
            Err(CallError::Connection(_))
        ));
    }

    // Received data is returned to the server before the window runs out.
    #[test]
    fn received_data_is_acknowledged() {
        let mut c = conn();
        let _rx = call(&mut c, b"a");
        c.take_output();
        let chunk = vec![0u8; MAX_RECV_FRAME_BYTES];
        let mut updates = Vec::new();
        for _ in 0..(RECV_WINDOW as usize / 2 / MAX_RECV_FRAME_BYTES) {
            c.receive(&mut frame(DATA, 0, 1, &chunk)).unwrap();
            updates.extend(
                frames(c.take_output())
                    .into_iter()
                    .filter(|f| f.0 == WINDOW_UPDATE)
                    .map(|f| f.2),
            );
        }
        assert_eq!(
            updates,
            vec![0, 1],
            "connection and stream windows topped up"
        );
    }
}
