//! Opens the run's gRPC connections.
//!
//! Each connection is one HTTP/2 connection to one endpoint, of the kind the workload
//! runs over ([`Connection`]): the lean unary client of [`super::grpc`] (put, range,
//! txn-put) or an `etcd_client::Client` (the streaming workloads). Connection `i` goes to
//! endpoint `i mod len(endpoints)` (as etcd's benchmark spreads them), or every connection
//! goes to the leader with `--target-leader`. Either way the requests the client tasks
//! sharing a connection send at the same moment leave in one write, as grpc-go's writer
//! (etcd's own benchmark tool) gathers them: the etcd client's tonic channel runs over a
//! [`BatchedWrites`] socket, and the unary connection's task gathers them itself.

use std::io;

use etcd_client::Client;
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

use super::BenchError;
use crate::batched_io::BatchedWrites;

/// `http://` is added to endpoints given as `host:port`.
pub fn normalise(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Connects to one endpoint. The client connects lazily, so this only fails on a malformed
/// endpoint; [`open`] also makes a first request.
pub async fn connect_one(endpoint: &str) -> Result<Client, BenchError> {
    let url = normalise(endpoint);
    let ep = Endpoint::from_shared(url)
        .map_err(|e| BenchError::InvalidOptions(format!("endpoint {endpoint:?}: {e}")))?;
    let channel = ep.connect_with_connector_lazy(tower::service_fn(dial));
    Client::from_channel(etcd_client::Channel::Tonic(channel), None)
        .await
        .map_err(|source| BenchError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })
}

/// Opens the TCP connection under a channel: Nagle off, writes batched until a flush.
async fn dial(uri: Uri) -> io::Result<TokioIo<BatchedWrites<tokio::net::TcpStream>>> {
    let authority = uri.authority().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no host:port in {uri}"),
        )
    })?;
    let port = authority.port_u16().unwrap_or(2379);
    let stream = tokio::net::TcpStream::connect((authority.host(), port)).await?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(BatchedWrites::new(stream)))
}

/// Connects to one endpoint and makes one Status request, so the HTTP/2 connection is up
/// before the measured phase starts (and a dead endpoint fails the run with its name).
pub async fn open(endpoint: &str) -> Result<Client, BenchError> {
    let mut c = connect_one(endpoint).await?;
    c.status().await.map_err(|source| BenchError::Connect {
        endpoint: endpoint.to_string(),
        source,
    })?;
    Ok(c)
}

/// A kind of connection a workload runs over: `etcd_client`'s (streams: watch, lease
/// keep-alive) or the lean unary one of [`super::grpc`].
pub trait Connection: Clone + Send + Sync + Sized + 'static {
    /// Connects to `endpoint` and checks that it answers.
    fn open(endpoint: &str) -> impl std::future::Future<Output = Result<Self, BenchError>> + Send;
}

impl Connection for Client {
    async fn open(endpoint: &str) -> Result<Client, BenchError> {
        open(endpoint).await
    }
}

impl Connection for super::grpc::UnaryConn {
    async fn open(endpoint: &str) -> Result<Self, BenchError> {
        super::grpc::UnaryConn::open(endpoint).await
    }
}

/// Opens `conns` connections over `endpoints` (all to the leader when `target_leader`).
pub async fn connect_all<C: Connection>(
    endpoints: &[String],
    conns: usize,
    target_leader: bool,
) -> Result<Vec<C>, BenchError> {
    if endpoints.is_empty() || conns == 0 {
        return Err(BenchError::InvalidOptions(
            "--endpoints and --conns need at least one entry".into(),
        ));
    }
    let targets = if target_leader {
        vec![find_leader(endpoints).await?]
    } else {
        endpoints.to_vec()
    };
    let mut out = Vec::with_capacity(conns);
    for i in 0..conns {
        out.push(C::open(&targets[i % targets.len()]).await?);
    }
    Ok(out)
}

/// The endpoint whose Status says it is the leader (its member id equals the leader id).
pub async fn find_leader(endpoints: &[String]) -> Result<String, BenchError> {
    let mut detail = Vec::new();
    for ep in endpoints {
        let answer = async {
            let mut c = connect_one(ep).await.map_err(|e| e.to_string())?;
            let s = c.status().await.map_err(|e| e.to_string())?;
            let me = s.header().map(|h| h.member_id()).unwrap_or(0);
            Ok::<_, String>((me, s.leader()))
        }
        .await;
        match answer {
            Ok((me, leader)) if me != 0 && me == leader => return Ok(ep.clone()),
            Ok((me, leader)) => detail.push(format!("{ep}: member {me:x}, leader {leader:x}")),
            Err(e) => detail.push(format!("{ep}: {e}")),
        }
    }
    Err(BenchError::NoLeader {
        endpoints: endpoints.to_vec(),
        detail: detail.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bare host:port gets a scheme; URLs are kept.
    #[test]
    fn endpoints_are_normalised() {
        assert_eq!(normalise("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(normalise("http://h:1"), "http://h:1");
        assert_eq!(normalise("https://h:1"), "https://h:1");
    }
}
