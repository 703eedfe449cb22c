//! The lean unary gRPC path for etcd's write methods (`KV/Put`, `KV/DeleteRange`,
//! `KV/Txn`): what a write costs on the leader besides Raft and the apply.
//!
//! ```text
//!  HTTP/2 request ─► one gRPC frame (5-byte prefix + PutRequest bytes)
//!                      │ decode once to check it; the log carries the bytes as sent
//!                      ▼
//!                    kv::propose_write ─► Proposer ─► Raft ─► apply encodes the response
//!                      │                                      body without its header
//!                      ▼
//!  HTTP/2 reply   ◄─ prefix + header field + body, then the `grpc-status: 0` trailer
//! ```
//!
//! tonic's generic unary path decodes the request into a message that the handler encodes
//! again for the log, and decodes the applied response only to set its header and encode it
//! once more; it also boxes the handler's future, wraps the body in a streaming decoder and
//! the reply in a streaming encoder. Here the request bytes go into the log as they came
//! (after one decode to check them, the same decode the apply makes), and the reply is the
//! header field followed by the applied body: protobuf lets a message's fields be encoded
//! separately and concatenated. The wire format, status codes and messages are tonic's, so
//! clients cannot tell the paths apart (the `unary_writes_*` tests compare them).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http;
use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use prost::Message;
use tonic::Status;

use super::kv::{propose_write, WriteRequest};
use super::{record_handled, Node};

/// gRPC's message prefix: a compression flag byte and a big-endian u32 length.
const PREFIX_BYTES: usize = 5;

/// A gRPC reply with its body and trailers.
pub type GrpcResponse = http::Response<tonic::body::Body>;

/// Serves one unary call of write method `R`. `limit` is the largest request message
/// accepted (tonic's `max_decoding_message_size`).
pub async fn serve<R: WriteRequest>(
    node: Arc<Node>,
    req: http::Request<hyper::body::Incoming>,
    limit: usize,
) -> Result<GrpcResponse, Infallible> {
    let encoded = match read_message(req.into_body(), limit).await {
        Ok(m) => m,
        Err(status) => return Ok(status.into_http()),
    };
    let msg = match R::decode(encoded.as_ref()) {
        Ok(m) => m,
        Err(e) => {
            let status = Status::internal(format!("failed to decode Protobuf message: {e}"));
            return Ok(status.into_http());
        }
    };
    let start = Instant::now();
    let result = propose_write(&node, &msg, encoded.to_vec()).await;
    record_handled(&node, R::METHOD, start, result.as_ref().err());
    Ok(match result {
        Ok((body, revision)) => {
            let header = node.header(revision).unwrap_or_default();
            reply(&header, &body)
        }
        Err(e) => Status::from(e).into_http(),
    })
}

/// Reads the request body: exactly one uncompressed gRPC message of at most `limit` bytes.
/// Errors carry tonic's codes and messages for the same faults.
async fn read_message(body: hyper::body::Incoming, limit: usize) -> Result<Bytes, Status> {
    let too_large = |found: String| {
        Status::out_of_range(format!(
            "Error, decoded message length too large: found {found} bytes, the limit is: {limit} bytes"
        ))
    };
    let collected = Limited::new(body, PREFIX_BYTES + limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large(format!("more than {limit}"))
            } else {
                Status::unknown(format!("reading the request body failed: {e}"))
            }
        })?;
    let buf = collected.to_bytes();
    split_message(buf, limit).map_err(|e| match e {
        FrameError::TooLarge(n) => too_large(n.to_string()),
        FrameError::Compressed => {
            Status::unimplemented("Message compressed, compression support not enabled.")
        }
        FrameError::Malformed(what) => Status::internal(format!("malformed gRPC request: {what}")),
    })
}

/// What is wrong with a unary request body.
#[derive(Debug, PartialEq)]
enum FrameError {
    /// The message is longer than the limit.
    TooLarge(usize),
    /// The message is compressed; this server enables no compression.
    Compressed,
    /// Not exactly one gRPC message.
    Malformed(&'static str),
}

/// Splits a request body into its one gRPC message.
fn split_message(buf: Bytes, limit: usize) -> Result<Bytes, FrameError> {
    if buf.len() < PREFIX_BYTES {
        return Err(FrameError::Malformed("no message"));
    }
    match buf[0] {
        0 => {}
        1 => return Err(FrameError::Compressed),
        _ => return Err(FrameError::Malformed("invalid compression flag")),
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > limit {
        return Err(FrameError::TooLarge(len));
    }
    match (buf.len() - PREFIX_BYTES).cmp(&len) {
        std::cmp::Ordering::Less => Err(FrameError::Malformed("message cut short")),
        std::cmp::Ordering::Greater => Err(FrameError::Malformed("more than one message")),
        std::cmp::Ordering::Equal => Ok(buf.slice(PREFIX_BYTES..)),
    }
}

/// The framed reply message: `header` as field 1, then `body` (the response's other fields).
fn encode_reply(header: &etcd_client::proto::PbResponseHeader, body: &[u8]) -> Bytes {
    let header_len = header.encoded_len();
    let len = 1 + prost::length_delimiter_len(header_len) + header_len + body.len();
    let mut buf = BytesMut::with_capacity(PREFIX_BYTES + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    prost::encoding::message::encode(1, header, &mut buf);
    buf.put_slice(body);
    buf.freeze()
}

fn reply(header: &etcd_client::proto::PbResponseHeader, body: &[u8]) -> GrpcResponse {
    let mut trailers = http::HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let mut resp = http::Response::new(tonic::body::Body::new(UnaryBody {
        data: Some(encode_reply(header, body)),
        trailers: Some(trailers),
    }));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// A reply body of one data frame followed by the trailers.
struct UnaryBody {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl Body for UnaryBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::{PbKeyValue, PbPutResponse, PbResponseHeader};

    fn framed(flag: u8, msg: &[u8]) -> Bytes {
        let mut b = vec![flag];
        b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        b.extend_from_slice(msg);
        Bytes::from(b)
    }

    // One uncompressed message within the limit is split off its prefix; anything else is
    // refused with the reason.
    #[test]
    fn request_frames() {
        assert_eq!(split_message(framed(0, b"abc"), 10).unwrap(), &b"abc"[..]);
        assert_eq!(split_message(framed(0, b""), 10).unwrap(), &b""[..]);
        assert_eq!(
            split_message(framed(0, b"abcdef"), 5),
            Err(FrameError::TooLarge(6))
        );
        assert_eq!(
            split_message(framed(1, b"abc"), 10),
            Err(FrameError::Compressed)
        );
        assert!(matches!(
            split_message(framed(7, b"abc"), 10),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            split_message(Bytes::from_static(&[0, 0, 0]), 10),
            Err(FrameError::Malformed(_))
        ));
        let cut = framed(0, b"abc").slice(..6);
        assert!(matches!(
            split_message(cut, 10),
            Err(FrameError::Malformed(_))
        ));
        let mut two = framed(0, b"abc").to_vec();
        two.extend_from_slice(&framed(0, b"d"));
        assert!(matches!(
            split_message(Bytes::from(two), 10),
            Err(FrameError::Malformed(_))
        ));
    }

    // The reply (header field + headerless body) decodes to the full response, equal to
    // what encoding the response with its header gives.
    #[test]
    fn reply_is_the_response_with_its_header() {
        let header = PbResponseHeader {
            cluster_id: 7,
            member_id: 9,
            revision: 42,
            raft_term: 3,
        };
        let full = PbPutResponse {
            header: Some(header),
            prev_kv: Some(PbKeyValue {
                key: b"k".to_vec(),
                value: b"old".to_vec(),
                create_revision: 2,
                mod_revision: 5,
                version: 3,
                lease: 0,
            }),
        };
        let mut headerless = full.clone();
        headerless.header = None;
        let framed = encode_reply(&header, &headerless.encode_to_vec());
        let msg = split_message(framed, 1 << 20).unwrap();
        assert_eq!(PbPutResponse::decode(msg.as_ref()).unwrap(), full);
        assert_eq!(msg.as_ref(), full.encode_to_vec().as_slice());
    }
}
