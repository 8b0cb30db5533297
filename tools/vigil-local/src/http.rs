//! The little HTTP/1.1 the local stack speaks itself: reading one request (head and
//! `Content-Length` body) off a connection, reading a header, and writing a JSON response.
//! Used by the fault proxy ([`crate::faults`]), and by the local Lambda Invoke API and IoT data
//! plane (vigil-stack); AWS SDK requests carry a `Content-Length` and no chunked bodies.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Largest request head accepted; AWS SDK heads are a few KiB.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted; well above any Vigil request.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Reads one request (head and `Content-Length` body); `None` when the client closed first.
pub async fn read_request(
    client: &mut TcpStream,
    buffered: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let head_end = loop {
        if let Some(i) = find(buffered, b"\r\n\r\n") {
            break i + 4;
        }
        if buffered.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffered.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).into_owned();
    if header(&head, "transfer-encoding").is_some() {
        return Err(std::io::Error::other(
            "chunked request bodies are not proxied",
        ));
    }
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(std::io::Error::other("request body too large"));
    }
    while buffered.len() < head_end + length {
        let mut chunk = [0u8; 65536];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffered.extend_from_slice(&chunk[..n]);
    }
    let body = buffered[head_end..head_end + length].to_vec();
    buffered.drain(..head_end + length);
    Ok(Some((head, body)))
}

/// A header's value (first occurrence, name case-insensitive).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A JSON response: status line, `Content-Type`, `Content-Length`, `headers`, the body.
pub fn json_response(status: u16, headers: &[(&str, &str)], body: &serde_json::Value) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let body = body.to_string();
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_whatever_their_case() {
        let head = "POST / HTTP/1.1\r\nContent-Length: 3\r\nX-Amz-Invocation-Type: Event\r\n\r\n";
        assert_eq!(header(head, "content-length"), Some("3"));
        assert_eq!(header(head, "x-amz-invocation-type"), Some("Event"));
        assert_eq!(header(head, "authorization"), None);
        assert_eq!(find(head.as_bytes(), b"\r\n\r\n"), Some(head.len() - 4));
    }
}
