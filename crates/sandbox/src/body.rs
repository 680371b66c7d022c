//! Request bodies read up to a limit, and query strings, whose failures each API answers in its
//! own error shape (axum's own rejections are plain text).

use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::QueryRejection;

/// JSON and form bodies of the Graph paths other than sends and uploads: Meta's are small.
pub const JSON_LIMIT: usize = 1024 * 1024;

/// How much of a body too large to keep is kept, to show what it was.
pub const HEAD_KEPT: usize = 1024;

/// A body over its limit is still read, and thrown away, up to this size: the client is usually
/// still writing it, and would otherwise see a broken connection instead of the answer.
const DRAIN_MAX: u64 = 32 * 1024 * 1024;

#[derive(Debug)]
pub enum BodyError {
    /// Over `limit`: its first bytes, and its size (counted up to 32 MiB).
    TooLarge { limit: usize, head: Bytes, size: u64 },
    /// The body could not be read to its end.
    Broken(String),
}

/// Reads `body` whole if it has at most `limit` bytes.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut size: u64 = 0;
    let mut over = false;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        size += data.len() as u64;
        if !over {
            kept.extend_from_slice(&data);
            if size > limit as u64 {
                over = true;
                kept.truncate(HEAD_KEPT);
                kept.shrink_to_fit();
            }
        }
        if over && size > DRAIN_MAX {
            break;
        }
    }
    if over { Err(BodyError::TooLarge { limit, head: Bytes::from(kept), size }) } else { Ok(Bytes::from(kept)) }
}

/// The parameter a query string's rejection is about, if it names one, and why. axum words them
/// `Failed to deserialize query string: limit: invalid digit found in string`.
pub fn query_fault(rejection: &QueryRejection) -> (Option<String>, String) {
    let text = rejection.body_text();
    let rest = text.split_once(": ").map_or(text.as_str(), |(_, rest)| rest);
    match rest.split_once(": ") {
        Some((param, why))
            if param != "."
                && !param.is_empty()
                && param.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.[]".contains(&b)) =>
        {
            (Some(param.to_owned()), why.to_owned())
        }
        _ => (None, rest.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_keeps_only_its_head() {
        assert_eq!(read(Body::from("12345"), 5).await.unwrap(), "12345");
        let big = "x".repeat(HEAD_KEPT * 3);
        match read(Body::from(big.clone()), HEAD_KEPT * 2).await {
            Err(BodyError::TooLarge { limit, head, size }) => {
                assert_eq!((limit, head.len(), size), (HEAD_KEPT * 2, HEAD_KEPT, big.len() as u64));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn query_faults_name_their_parameter() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<usize>,
        }
        let uri: axum::http::Uri = "/?limit=-1".parse().unwrap();
        let rejection = axum::extract::Query::<Q>::try_from_uri(&uri).unwrap_err();
        let (param, why) = query_fault(&rejection);
        assert_eq!(param.as_deref(), Some("limit"), "{why}");
    }
}
