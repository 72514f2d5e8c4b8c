//! The HTTPS client kube-apiserver uses to call admission and conversion webhooks,
//! without a cluster network: a `service` reference is resolved to a local address
//! by a caller-provided [`ServiceResolver`], while TLS still verifies the server
//! against the `caBundle` with SNI `name.namespace.svc` (or the URL's host).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Resolves a webhook `service` reference (namespace, name, port) to the local
/// address that serves it.
pub trait ServiceResolver: Send + Sync {
    /// The address for `name.namespace.svc:port`, or `None` if there is no such Service.
    fn resolve(&self, namespace: &str, name: &str, port: i32) -> Option<SocketAddr>;
}

impl<F> ServiceResolver for F
where
    F: Fn(&str, &str, i32) -> Option<SocketAddr> + Send + Sync,
{
    fn resolve(&self, namespace: &str, name: &str, port: i32) -> Option<SocketAddr> {
        self(namespace, name, port)
    }
}

/// A `service` reference of a webhook client config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// URL path; `/` when unset.
    pub path: Option<String>,
    /// Port; 443 when unset.
    pub port: Option<i32>,
}

/// Where and how to call a webhook: the common part of admissionregistration's and
/// apiextensions' `WebhookClientConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// `https://host:port/path`.
    pub url: Option<String>,
    /// A Service in the cluster.
    pub service: Option<ServiceRef>,
    /// PEM CA certificates that must have signed the webhook's serving certificate.
    /// Without one nothing is trusted here (there are no system roots in the simulation).
    pub ca_bundle: Option<Vec<u8>>,
}

impl From<&k8s_openapi::api::admissionregistration::v1::WebhookClientConfig> for ClientConfig {
    fn from(c: &k8s_openapi::api::admissionregistration::v1::WebhookClientConfig) -> Self {
        Self {
            url: c.url.clone(),
            service: c.service.as_ref().map(|s| ServiceRef {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                path: s.path.clone(),
                port: s.port,
            }),
            ca_bundle: c.ca_bundle.as_ref().map(|b| b.0.clone()),
        }
    }
}

impl From<&k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::WebhookClientConfig>
    for ClientConfig
{
    fn from(
        c: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::WebhookClientConfig,
    ) -> Self {
        Self {
            url: c.url.clone(),
            service: c.service.as_ref().map(|s| ServiceRef {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                path: s.path.clone(),
                port: s.port,
            }),
            ca_bundle: c.ca_bundle.as_ref().map(|b| b.0.clone()),
        }
    }
}

/// Why a webhook call failed; rendered as Go's HTTP client errors are
/// (`Post "https://…": context deadline exceeded`).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Neither `url` nor `service`, or a URL that does not parse.
    #[error("invalid webhook client config: {0}")]
    Config(String),
    /// The Service does not resolve.
    #[error("Post {url:?}: service {service} not found")]
    Resolve {
        /// The URL called.
        url: String,
        /// `name.namespace.svc:port`.
        service: String,
    },
    /// The `caBundle` holds no usable certificate.
    #[error("Post {url:?}: invalid caBundle: {reason}")]
    CaBundle {
        /// The URL called.
        url: String,
        /// Why.
        reason: String,
    },
    /// TCP connect failed.
    #[error("Post {url:?}: dial tcp: {source}")]
    Connect {
        /// The URL called.
        url: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name, ...).
    #[error("Post {url:?}: tls: failed to verify certificate: {source}")]
    Tls {
        /// The URL called.
        url: String,
        /// The I/O error wrapping rustls' reason.
        #[source]
        source: std::io::Error,
    },
    /// HTTP exchange failed.
    #[error("Post {url:?}: {source}")]
    Http {
        /// The URL called.
        url: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The webhook answered with a non-2xx status.
    #[error("the server responded with the status code {status} but did not return more information: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The body, lossy UTF-8.
        body: String,
    },
    /// The body is not JSON.
    #[error("the server responded with a body that is not JSON: {0}")]
    Decode(#[source] serde_json::Error),
    /// The webhook did not answer within its timeout.
    #[error("Post {url:?}: context deadline exceeded")]
    Timeout {
        /// The URL called.
        url: String,
    },
}

/// Calls webhooks over HTTPS; see the module docs.
#[derive(Clone)]
pub struct WebhookClient {
    resolver: Arc<dyn ServiceResolver>,
}

impl fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookClient").finish_non_exhaustive()
    }
}

enum Dial {
    Addr(SocketAddr),
    Host(String, u16),
}

struct Target {
    dial: Dial,
    sni: ServerName<'static>,
    authority: String,
    path_and_query: String,
    url: String,
}

impl WebhookClient {
    /// A client resolving Services with `resolver`.
    pub fn new(resolver: Arc<dyn ServiceResolver>) -> Self {
        Self { resolver }
    }

    fn target(&self, cfg: &ClientConfig, timeout: Duration) -> Result<Target, CallError> {
        let query = format!("timeout={}s", timeout.as_secs());
        if let Some(svc) = &cfg.service {
            let port = svc.port.unwrap_or(443);
            let host = format!("{}.{}.svc", svc.name, svc.namespace);
            let path = svc.path.clone().unwrap_or_else(|| "/".into());
            let path_and_query = format!("{path}?{query}");
            let url = format!("https://{host}:{port}{path_and_query}");
            let addr = self
                .resolver
                .resolve(&svc.namespace, &svc.name, port)
                .ok_or_else(|| CallError::Resolve { url: url.clone(), service: format!("{host}:{port}") })?;
            let sni = ServerName::try_from(host.clone()).map_err(|e| CallError::Config(e.to_string()))?;
            return Ok(Target {
                dial: Dial::Addr(addr),
                sni,
                authority: format!("{host}:{port}"),
                path_and_query,
                url,
            });
        }
        let Some(raw) = cfg.url.as_deref() else {
            return Err(CallError::Config("neither url nor service is set".into()));
        };
        let uri: Uri = raw.parse().map_err(|e| CallError::Config(format!("url {raw:?}: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(CallError::Config(format!("url {raw:?}: scheme must be https")));
        }
        let host = uri.host().ok_or_else(|| CallError::Config(format!("url {raw:?} has no host")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let path = uri.path();
        let path_and_query = match uri.query() {
            Some(q) => format!("{path}?{q}&{query}"),
            None => format!("{path}?{query}"),
        };
        let sni = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.clone()).map_err(|e| CallError::Config(e.to_string()))?,
        };
        let authority = uri.authority().map(ToString::to_string).unwrap_or_default();
        let url = format!("https://{authority}{path_and_query}");
        Ok(Target { dial: Dial::Host(host, port), sni, authority, path_and_query, url })
    }

    fn tls(cfg: &ClientConfig, url: &str) -> Result<TlsConnector, CallError> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &cfg.ca_bundle {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CallError::CaBundle { url: url.into(), reason: e.to_string() })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(CallError::CaBundle { url: url.into(), reason: "no certificate".into() });
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CallError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// POSTs `body` as JSON to the webhook and returns its JSON answer, all within `timeout`.
    ///
    /// # Errors
    /// Any failure to reach the webhook or read a 2xx JSON answer from it.
    pub async fn post_json(
        &self,
        cfg: &ClientConfig,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let target = self.target(cfg, timeout)?;
        let url = target.url.clone();
        match tokio::time::timeout(timeout, self.exchange(cfg, target, body)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout { url }),
        }
    }

    async fn exchange(&self, cfg: &ClientConfig, t: Target, body: &Value) -> Result<Value, CallError> {
        let url = t.url.clone();
        let connector = Self::tls(cfg, &url)?;
        let tcp = match &t.dial {
            Dial::Addr(a) => TcpStream::connect(a).await,
            Dial::Host(h, p) => TcpStream::connect((h.as_str(), *p)).await,
        }
        .map_err(|source| CallError::Connect { url: url.clone(), source })?;
        let tls = connector
            .connect(t.sni, tcp)
            .await
            .map_err(|source| CallError::Tls { url: url.clone(), source })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|source| CallError::Http { url: url.clone(), source })?;
        let req = Request::post(t.path_and_query.as_str())
            .header(header::HOST, t.authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| CallError::Config(e.to_string()))?;
        let exchange = async move {
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            drop(sender); // lets the connection future finish
            Ok::<_, hyper::Error>((status, bytes))
        };
        let (result, _conn) = tokio::join!(exchange, conn);
        let (status, bytes) = result.map_err(|source| CallError::Http { url: url.clone(), source })?;
        tracing::debug!(webhook.url = %url, http.status = status.as_u16(), "webhook answered");
        if !status.is_success() {
            return Err(CallError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        serde_json::from_slice(&bytes).map_err(CallError::Decode)
    }
}

/// A random RFC 4122 version-4 UUID, as kube-apiserver gives each review request.
pub(crate) fn new_uid() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut bytes = [0_u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}
