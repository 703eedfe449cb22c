//! A lean gRPC unary client for the unary workloads (`put`, `range`, `txn-put`).
//!
//! Each connection is one HTTP/2 connection ([`super::http2`]) shared by the clients on
//! it; a call opens a stream, sends the request's one message and reads the reply's message
//! and `grpc-status` trailer. `etcd_client` sends the same bytes through tonic's channel:
//! a tower buffer task, hyper's dispatch task, tonic's streaming codec and interceptor per
//! request. On one machine the load generator's CPU competes with the members it measures
//! (with `etcd_client` it took about a third of the machine at 1,000 clients), so the less
//! it spends per request, the more of the run measures the store.
//!
//! The wire format is plain gRPC, so it works against any etcd v3 endpoint; errors come
//! back as `etcd_client::Error::GRpcStatus` like the etcd client's.

use axum::http::Uri;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tonic::{Code, Status};

use super::connect::normalise;
use super::http2::{self, CallError, Http2Conn};
use super::BenchError;

/// gRPC's message prefix: a compression flag byte and a big-endian u32 length.
const PREFIX_BYTES: usize = 5;

/// A gRPC method of etcd's API on one connection: its request header block, encoded once.
#[derive(Clone)]
pub struct GrpcMethod(Bytes);

/// One HTTP/2 connection to an endpoint, shared by the clients on it (cloning shares it).
#[derive(Clone)]
pub struct UnaryConn {
    conn: Http2Conn,
    /// `host:port`, the `:authority` of every request.
    authority: String,
}

impl UnaryConn {
    /// Connects to `endpoint` (`host:port` or `http://host:port`) and makes one
    /// `Maintenance/Status` call, so a dead endpoint fails the run with its name.
    pub async fn open(endpoint: &str) -> Result<UnaryConn, BenchError> {
        let connect_err = |e: Status| BenchError::Connect {
            endpoint: endpoint.to_string(),
            source: etcd_client::Error::GRpcStatus(e),
        };
        let conn = Self::connect(endpoint).await.map_err(connect_err)?;
        let status = conn.method("/etcdserverpb.Maintenance/Status")?;
        conn.call::<_, etcd_client::proto::PbStatusResponse>(
            &status,
            &etcd_client::proto::PbStatusRequest {},
        )
        .await
        .map_err(connect_err)?;
        Ok(conn)
    }

    async fn connect(endpoint: &str) -> Result<UnaryConn, Status> {
        let base = normalise(endpoint);
        let uri: Uri = base
            .parse()
            .map_err(|e| Status::invalid_argument(format!("endpoint {endpoint:?}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(Status::invalid_argument(format!(
                "endpoint {endpoint:?}: only plain http:// endpoints are supported"
            )));
        }
        let authority = uri.authority().ok_or_else(|| {
            Status::invalid_argument(format!("endpoint {endpoint:?}: no host:port"))
        })?;
        let port = authority.port_u16().unwrap_or(2379);
        let stream = tokio::net::TcpStream::connect((authority.host(), port))
            .await
            .map_err(|e| Status::unavailable(format!("connecting to {endpoint}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Status::unavailable(format!("connecting to {endpoint}: {e}")))?;
        Ok(UnaryConn {
            conn: Http2Conn::start(stream),
            authority: format!("{}:{port}", authority.host()),
        })
    }

    /// The method at `path` (`/etcdserverpb.KV/Put`) on this connection.
    pub fn method(&self, path: &str) -> Result<GrpcMethod, BenchError> {
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(BenchError::InvalidOptions(format!(
                "method path {path:?}: not an absolute path"
            )));
        }
        Ok(GrpcMethod(http2::request_headers(&self.authority, path)))
    }

    /// Sends `req` to `method` and decodes the reply.
    pub async fn call<Req: Message, Resp: Message + Default>(
        &self,
        method: &GrpcMethod,
        req: &Req,
    ) -> Result<Resp, Status> {
        let body = self.call_framed(method, frame(req)).await?;
        Resp::decode(body).map_err(|e| Status::internal(format!("undecodable reply: {e}")))
    }

    /// One benchmark request: sends `req` and checks that the reply decodes as `Resp`,
    /// failing with the error type the driver counts.
    pub async fn round_trip<Req: Message, Resp: Message + Default>(
        &self,
        method: &GrpcMethod,
        req: &Req,
    ) -> Result<(), etcd_client::Error> {
        self.call::<Req, Resp>(method, req)
            .await
            .map(drop)
            .map_err(etcd_client::Error::GRpcStatus)
    }

    /// Sends `framed` as the request body (one gRPC-framed message, or anything else to see
    /// how a server takes it) and returns the reply's message.
    pub async fn call_framed(&self, method: &GrpcMethod, framed: Bytes) -> Result<Bytes, Status> {
        let reply = self
            .conn
            .call(method.0.clone(), framed)
            .await
            .map_err(|e| transport(&e))?;
        if reply.status != Some(200) {
            return Err(Status::unknown(match reply.status {
                Some(s) => format!("HTTP status {s}"),
                None => "reply without an HTTP status".to_string(),
            }));
        }
        // A trailers-only reply (an error) carries grpc-status in its headers.
        match grpc_status(reply.grpc_status.as_deref(), reply.grpc_message.as_deref()) {
            Some(Ok(())) => unframe(reply.data.freeze()),
            Some(Err(status)) => Err(status),
            None => Err(Status::internal("reply ended without grpc-status")),
        }
    }
}

/// A transport failure as a gRPC status, as tonic reports it.
fn transport(e: &CallError) -> Status {
    if e.is_refused() {
        Status::unavailable(e.to_string())
    } else if e.is_cancel() {
        Status::cancelled(e.to_string())
    } else if let CallError::Connection(_) = e {
        Status::unavailable(e.to_string())
    } else {
        Status::internal(format!("h2 protocol error: {e}"))
    }
}

/// The gRPC status of a reply from its `grpc-status` and `grpc-message` values: `None`
/// without `grpc-status`, `Some(Ok)` for 0.
fn grpc_status(code: Option<&[u8]>, message: Option<&[u8]>) -> Option<Result<(), Status>> {
    let code = std::str::from_utf8(code?)
        .ok()
        .and_then(|c| c.parse::<i32>().ok())
        .unwrap_or(Code::Unknown as i32);
    if code == 0 {
        return Some(Ok(()));
    }
    let message = message.map(percent_decode).unwrap_or_default();
    Some(Err(Status::new(Code::from_i32(code), message)))
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `msg` with gRPC's uncompressed message prefix.
pub fn frame(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX_BYTES + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    msg.encode(&mut buf)
        .expect("a BytesMut sized for the message has room for it");
    buf.freeze()
}

/// The one message of a reply body.
fn unframe(mut data: Bytes) -> Result<Bytes, Status> {
    if data.len() < PREFIX_BYTES {
        return Err(Status::internal("reply without a message"));
    }
    let compressed = data.get_u8();
    let len = data.get_u32() as usize;
    if compressed != 0 {
        return Err(Status::internal(
            "compressed reply (no compression was asked for)",
        ));
    }
    if data.len() != len {
        return Err(Status::internal(format!(
            "reply message of {} bytes, its prefix says {len}",
            data.len()
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::PbPutRequest;

    // A framed message unframes to its encoding; a bad prefix is refused.
    #[test]
    fn frames_round_trip() {
        let req = PbPutRequest {
            key: b"k".to_vec(),
            value: vec![7; 300],
            ..Default::default()
        };
        let framed = frame(&req);
        assert_eq!(framed.len(), PREFIX_BYTES + req.encoded_len());
        let msg = unframe(framed.clone()).unwrap();
        assert_eq!(PbPutRequest::decode(msg).unwrap(), req);
        assert!(unframe(framed.slice(..framed.len() - 1)).is_err());
        assert!(unframe(Bytes::from_static(&[0, 0])).is_err());
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert!(unframe(Bytes::from(compressed)).is_err());
    }

    // grpc-status 0 is success; other codes carry the decoded grpc-message.
    #[test]
    fn statuses_from_headers() {
        assert!(grpc_status(None, Some(b"x")).is_none());
        assert!(grpc_status(Some(b"0"), None).unwrap().is_ok());
        let s = grpc_status(Some(b"3"), Some(b"etcdserver:%20key%20is%20not%20provided"))
            .unwrap()
            .unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "etcdserver: key is not provided");
        let s = grpc_status(Some(b"zz"), None).unwrap().unwrap_err();
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }
}
