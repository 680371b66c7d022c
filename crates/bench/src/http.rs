//! The load generator's HTTP/1.1 client: what a closed loop of requests needs and no more.

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A keep-alive HTTP/1.1 connection, one request at a time. Reads only what wagate sends: a
/// head, then a Content-Length body.
pub struct HttpConnection {
    stream: TcpStream,
    buf: Vec<u8>,
}

pub struct Answer {
    pub status: u16,
    /// The server will close the connection after this answer.
    pub close: bool,
}

impl HttpConnection {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        // Requests are written whole; Nagle would only hold them back.
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(8192) })
    }

    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        self.stream.write_all(request).await.context("writing a request")?;
        self.buf.clear();
        let mut scanned: usize = 0;
        let head_len = loop {
            let from = scanned.saturating_sub(3);
            if let Some(i) = self.buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                break from + i + 4;
            }
            scanned = self.buf.len();
            self.fill().await?;
        };
        let head = parse_head(&self.buf[..head_len])?;
        let total = head_len + head.content_length;
        while self.buf.len() < total {
            self.fill().await?;
        }
        ensure!(self.buf.len() == total, "the server sent more than the answer to the one request in flight");
        Ok(Answer { status: head.status, close: head.close })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8192);
        }
        let n = self.stream.read_buf(&mut self.buf).await.context("reading an answer")?;
        ensure!(n > 0, "the server closed the connection mid-answer");
        Ok(())
    }
}

struct Head {
    status: u16,
    content_length: usize,
    close: bool,
}

fn parse_head(head: &[u8]) -> anyhow::Result<Head> {
    let text = std::str::from_utf8(head).context("the answer's head is not UTF-8")?;
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let (name, value) = line.split_once(':').with_context(|| format!("not a header: {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().with_context(|| format!("bad Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("the answer is Transfer-Encoding: {value}; the bench client reads Content-Length bodies only");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.split(',').any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
    }
    let content_length = match content_length {
        Some(n) => n,
        None if status < 200 || status == 204 || status == 304 => 0,
        None => bail!("a {status} answer without Content-Length; the bench client cannot tell where it ends"),
    };
    Ok(Head { status, content_length, close })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_with_content_length() {
        let head = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\nContent-Length: 17\r\n\r\n";
        let parsed = parse_head(head).unwrap();
        assert_eq!((parsed.status, parsed.content_length, parsed.close), (202, 17, false));
        let closing = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive, close\r\n\r\n");
        assert!(closing.unwrap().close);
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().content_length, 0);
        assert!(parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").is_err());
    }
}
