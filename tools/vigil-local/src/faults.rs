//! [`FaultProxy`]: an HTTP proxy between the functions and the emulator that injects the
//! faults AWS can have, on command, so that tests can drive them through the whole local stack
//! (docs/FAULTS.md):
//!
//! - **down**: every connection is closed at once, before or in the middle of a request (the
//!   endpoint is unreachable; an in-flight call sees its connection reset);
//! - **a failing service** (`sns`, `dynamodb`, `sqs`, `kms`, ...): its requests are answered
//!   `503 Service Unavailable` in the protocol's own error shape, so the SDK retries and then
//!   reports a transient error, as it would for a regional outage or throttling;
//! - **a slow service**: its requests are held for a while before they are forwarded;
//! - **a hanging service**: after a given number of requests pass, the next ones are never
//!   answered (a partition that swallows requests): the caller waits until its own timeout,
//!   and when the fault is cleared the held requests are dropped, never forwarded.
//!
//! The service is read from the request's SigV4 credential scope
//! (`Credential=AKID/20261204/eu-west-2/sns/aws4_request`), so nothing of the request's content
//! is parsed. Each request is forwarded on its own upstream connection (`Connection: close`)
//! and the response streamed back whole: the emulator's own behaviour is unchanged.
//!
//! Why a proxy and not a restart of the emulator: moto keeps its state in memory, so a real
//! restart loses every table, which is not a fault AWS has (a regional outage loses no
//! committed write). From the functions' side, an endpoint that refuses connections and then
//! answers again is what a restart looks like.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http::{find, header, read_request};
use crate::{Error, Result};

/// Which faults are on.
#[derive(Debug, Default, Clone)]
struct Faults {
    down: bool,
    failing: BTreeSet<String>,
    delays: BTreeMap<String, Duration>,
    /// Service -> requests still let through before it hangs.
    hang_after: BTreeMap<String, u64>,
}

/// What the proxy did, by service.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests forwarded to the emulator.
    pub forwarded: BTreeMap<String, u64>,
    /// Requests answered 503 because their service was failing.
    pub failed: BTreeMap<String, u64>,
    /// Connections closed because the endpoint was down.
    pub refused: u64,
    /// Requests swallowed by a hanging service.
    pub swallowed: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    stats: Mutex<FaultStats>,
    /// Woken when faults change, so held requests can be dropped.
    changed: tokio::sync::Notify,
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn stats(&self) -> MutexGuard<'_, FaultStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A fault-injecting proxy in front of an emulator endpoint; stops when dropped.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`http://host:port`).
    ///
    /// Fails if `upstream` is not a plain `http://host:port` URL or no port can be bound.
    pub async fn start(upstream: &str) -> Result<FaultProxy> {
        let authority = upstream
            .strip_prefix("http://")
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| {
                Error::Definition(format!("fault proxy: {upstream} is not http://host:port"))
            })?
            .to_owned();
        let io = |source| Error::Io {
            context: "fault proxy: binding a loopback port".to_owned(),
            source,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
        let port = listener.local_addr().map_err(io)?.port();
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept(listener, authority, shared.clone()));
        Ok(FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            task,
        })
    }

    /// The proxy's URL, to use as the emulator's endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Takes the endpoint down (every connection closed at once) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.shared.faults().down = down;
    }

    /// Makes `service` (the SigV4 service name: `sns`, `dynamodb`, `sqs`, `kms`) answer 503,
    /// or stops it.
    pub fn set_failing(&self, service: &str, failing: bool) {
        let mut faults = self.shared.faults();
        if failing {
            faults.failing.insert(service.to_owned());
        } else {
            faults.failing.remove(service);
        }
    }

    /// Holds every request to `service` for `delay` before forwarding it (`None`: no delay).
    pub fn set_delay(&self, service: &str, delay: Option<Duration>) {
        let mut faults = self.shared.faults();
        match delay {
            Some(d) => faults.delays.insert(service.to_owned(), d),
            None => faults.delays.remove(service),
        };
    }

    /// Lets `passes` more requests to `service` through, then swallows every later one (never
    /// forwarded, never answered) until [`FaultProxy::clear`] or `set_hang_after(service,
    /// None)`, when the held requests' connections are closed.
    pub fn set_hang_after(&self, service: &str, passes: Option<u64>) {
        match passes {
            Some(n) => self
                .shared
                .faults()
                .hang_after
                .insert(service.to_owned(), n),
            None => self.shared.faults().hang_after.remove(service),
        };
        self.shared.changed.notify_waiters();
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        *self.shared.faults() = Faults::default();
        self.shared.changed.notify_waiters();
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> FaultStats {
        self.shared.stats().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: String, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (upstream, shared) = (upstream.clone(), shared.clone());
        tokio::spawn(async move {
            if let Err(e) = serve(client, &upstream, &shared).await {
                tracing::debug!(error = %e, "fault proxy connection ended");
            }
        });
    }
}

/// One client connection: requests one after the other (keep-alive), each judged against the
/// faults when it arrives.
async fn serve(mut client: TcpStream, upstream: &str, shared: &Shared) -> std::io::Result<()> {
    let mut buffered = Vec::new();
    loop {
        if shared.faults().down {
            shared.stats().refused += 1;
            return Ok(()); // dropping the stream closes it
        }
        let Some((head, body)) = read_request(&mut client, &mut buffered).await? else {
            return Ok(());
        };
        if shared.faults().down {
            shared.stats().refused += 1;
            return Ok(());
        }
        let service = service_of(&head).unwrap_or_else(|| "unknown".to_owned());
        let delay = shared.faults().delays.get(&service).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if swallow(shared, &service) {
            *shared.stats().swallowed.entry(service.clone()).or_default() += 1;
            // Held until the fault changes; then the connection closes unanswered.
            loop {
                let changed = shared.changed.notified();
                if !shared.faults().hang_after.contains_key(&service) {
                    return Ok(());
                }
                changed.await;
            }
        }
        if shared.faults().failing.contains(&service) {
            *shared.stats().failed.entry(service.clone()).or_default() += 1;
            client.write_all(&unavailable(&head, &service)).await?;
            continue;
        }
        let response = forward(upstream, &head, &body).await?;
        *shared.stats().forwarded.entry(service).or_default() += 1;
        client.write_all(&response).await?;
        // The response carries `Connection: close` (see `forward`): the client opens a new
        // connection for its next request.
        return Ok(());
    }
}

/// Whether a request to `service` is to be swallowed (counting down its passes).
fn swallow(shared: &Shared, service: &str) -> bool {
    match shared.faults().hang_after.get_mut(service) {
        Some(0) => true,
        Some(passes) => {
            *passes -= 1;
            false
        }
        None => false,
    }
}

/// Sends the request upstream on a new connection that the emulator closes after answering,
/// and returns the whole response with `Connection: close`.
async fn forward(upstream: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).await?;
    server
        .write_all(with_connection_close(head).as_bytes())
        .await?;
    server.write_all(body).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    let Some(end) = find(&response, b"\r\n\r\n") else {
        return Err(std::io::Error::other("the emulator sent no response head"));
    };
    let response_head = String::from_utf8_lossy(&response[..end + 4]).into_owned();
    let mut out = with_connection_close(&response_head).into_bytes();
    out.extend_from_slice(&response[end + 4..]);
    Ok(out)
}

/// `head` with any `Connection` header replaced by `Connection: close`.
fn with_connection_close(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// The 503 an AWS service answers when it cannot serve, in the request's protocol: JSON for
/// the JSON protocols (DynamoDB, SQS, KMS), XML for the query protocol (SNS).
fn unavailable(head: &str, service: &str) -> Vec<u8> {
    let json = header(head, "content-type").is_some_and(|t| t.contains("json"));
    let message = format!("{service} is unavailable (injected fault)");
    let (content_type, body) = if json {
        (
            "application/x-amz-json-1.0",
            format!(r#"{{"__type":"ServiceUnavailable","message":"{message}"}}"#),
        )
    } else {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>\
                 <Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
            ),
        )
    };
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {content_type}\r\n\
         x-amzn-ErrorType: ServiceUnavailable\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The SigV4 service name of a request: the fourth part of the credential scope.
fn service_of(head: &str) -> Option<String> {
    let auth = header(head, "authorization")?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    scope.split('/').nth(3).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
        Authorization: AWS4-HMAC-SHA256 Credential=test/20261204/eu-west-2/sns/aws4_request, \
        SignedHeaders=host, Signature=abc\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n";

    #[test]
    fn the_service_is_read_from_the_credential_scope() {
        assert_eq!(service_of(HEAD).as_deref(), Some("sns"));
        assert_eq!(service_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
    }

    #[test]
    fn forwarded_heads_close_the_connection() {
        let head = with_connection_close(HEAD);
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        assert!(!head.contains("keep-alive"));
    }

    #[test]
    fn a_503_speaks_the_requests_protocol() {
        let xml = String::from_utf8(unavailable(HEAD, "sns")).unwrap();
        assert!(xml.starts_with("HTTP/1.1 503 "));
        assert!(xml.contains("<Code>ServiceUnavailable</Code>"));
        let json_head = HEAD.replace("x-www-form-urlencoded", "x-amz-json-1.0");
        let json = String::from_utf8(unavailable(&json_head, "dynamodb")).unwrap();
        assert!(json.contains(r#""__type":"ServiceUnavailable""#), "{json}");
        let (head, body) = json.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            header(head, "content-length"),
            Some(&*body.len().to_string())
        );
    }
}
