//! HTTP clients for URLs that others choose (an account's Graph base URL, the media URLs its
//! answers name): no redirects, no proxy, and destinations checked against the address policy
//! when the connection is made, so a name that resolves to an internal address (DNS rebinding
//! included) is refused as a literal one is.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, RequestBuilder, Url};
use wagate_domain::network::{AddressPolicy, NonPublic};

/// A destination the address policy refuses: its host and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{host} {} a non-public address ({kind}); wagate connects to loopback, private, link-local and other non-public \
     addresses only inside the ranges [network] allow_private (or WAGATE_ALLOW_PRIVATE) names, such as \
     127.0.0.0/8",
    if *.resolved { "resolves only to" } else { "is" }
)]
pub struct AddressRefused {
    pub host: String,
    pub kind: NonPublic,
    /// The host is a name whose addresses were refused, not an address itself.
    pub resolved: bool,
}

impl AddressRefused {
    /// The refusal behind a failed request, if that is why it failed.
    pub fn of(e: &reqwest::Error) -> Option<&Self> {
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            if let Some(refused) = c.downcast_ref::<Self>() {
                return Some(refused);
            }
            cause = c.source();
        }
        None
    }
}

/// Resolves names, keeping only the addresses the policy allows.
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(kind) => {
                        tracing::debug!(%host, address = %a.ip(), %kind, "address refused by the address policy");
                        refused.get_or_insert(kind);
                        false
                    }
                })
                .collect();
            match refused {
                Some(kind) if allowed.is_empty() => Err(AddressRefused { host, kind, resolved: true }.into()),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// A client that follows no redirect, sends no `Referer` and uses no proxy, and, with a policy,
/// connects only to the addresses the policy allows.
#[derive(Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    policy: Option<Arc<AddressPolicy>>,
}

impl OutboundClient {
    /// `builder` with timeouts and the like; `policy` None for destinations wagate trusts (its
    /// own in-process sandbox).
    pub fn new(builder: reqwest::ClientBuilder, policy: Option<Arc<AddressPolicy>>) -> reqwest::Result<Self> {
        // A redirect would be a second request to a destination nobody checked: its status is
        // the answer. No proxy: reqwest takes HTTP_PROXY/HTTPS_PROXY/ALL_PROXY from the
        // environment by default, and a proxy resolves the host itself, out of the policy's reach.
        let mut builder = builder.redirect(reqwest::redirect::Policy::none()).referer(false).no_proxy();
        if let Some(policy) = &policy {
            builder = builder.dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }));
        }
        Ok(Self { http: builder.build()?, policy })
    }

    /// A request to `url`, refused before anything is sent when its host is an address the
    /// policy refuses (the resolver is not asked about addresses). The URL parser has already
    /// made `127.1` and `2130706433` into 127.0.0.1.
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, AddressRefused> {
        if let (Some(policy), Ok(parsed)) = (&self.policy, Url::parse(url)) {
            literal_refused(policy, &parsed)?;
        }
        Ok(self.http.request(method, url))
    }
}

/// Refuses a URL whose host is an address the policy refuses; a name passes (it is judged by
/// what it resolves to, when connecting).
pub fn literal_refused(policy: &AddressPolicy, url: &Url) -> Result<(), AddressRefused> {
    // An IPv6 host keeps its brackets in a URL; a name never parses as an address.
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>()
        && let Err(kind) = policy.check(ip)
    {
        return Err(AddressRefused { host: ip.to_string(), kind, resolved: false });
    }
    Ok(())
}

/// A loopback listener that answers every request with `answer` (raw HTTP/1.1).
#[cfg(test)]
pub(crate) async fn answering(answer: &'static str) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(allow: &[&str]) -> OutboundClient {
        let policy = AddressPolicy::new(allow.iter().map(|c| c.parse().unwrap()).collect());
        OutboundClient::new(reqwest::Client::builder(), Some(Arc::new(policy))).unwrap()
    }

    #[tokio::test]
    async fn addresses_are_refused_before_sending_and_names_when_connecting() {
        let port = answering("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await.port();
        let strict = client(&[]);
        for (url, host) in [
            (format!("http://127.0.0.1:{port}/"), "127.0.0.1"),
            (format!("http://127.1:{port}/"), "127.0.0.1"),
            (format!("http://2130706433:{port}/"), "127.0.0.1"),
            (format!("http://[::1]:{port}/"), "::1"),
            (format!("http://[::ffff:127.0.0.1]:{port}/"), "::ffff:127.0.0.1"),
            ("http://169.254.169.254/latest/meta-data/".to_owned(), "169.254.169.254"),
        ] {
            let refused = strict.request(Method::GET, &url).err().unwrap_or_else(|| panic!("{url} passed"));
            assert_eq!((refused.host.as_str(), refused.resolved), (host, false), "{url}");
        }
        // A name is judged by what it resolves to, when connecting.
        let e = strict.request(Method::GET, &format!("http://localhost:{port}/")).unwrap().send().await.unwrap_err();
        let refused = AddressRefused::of(&e).unwrap_or_else(|| panic!("not refused by policy: {e:?}"));
        assert_eq!((refused.host.as_str(), refused.kind, refused.resolved), ("localhost", NonPublic::Loopback, true));
        assert!(refused.to_string().contains("allow_private"), "{refused}");

        // Inside the allow-list both get through to the listener.
        let allowed = client(&["127.0.0.0/8", "::1/128"]);
        for url in [format!("http://127.1:{port}/"), format!("http://localhost:{port}/")] {
            let resp =
                allowed.request(Method::GET, &url).unwrap().send().await.unwrap_or_else(|e| panic!("{url}: {e:?}"));
            assert_eq!(resp.status(), 204, "{url}");
        }
    }
}
