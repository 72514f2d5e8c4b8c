//! The webhook server's certificate: a self-signed CA and a serving certificate for
//! the webhook Service, made by the controller itself (no cert-manager), and a
//! resolver that swaps the serving certificate in place when it is rotated.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::{
    crypto::ring::sign::any_supported_type,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// Certificate failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating a key or certificate failed.
    #[error("cannot generate the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM block did not parse.
    #[error("cannot read the webhook {what} PEM: {reason}")]
    Pem {
        /// Which block.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The key is of a kind rustls cannot sign with.
    #[error("unsupported webhook private key: {0}")]
    Key(#[from] rustls::Error),
}

/// A CA and the serving certificate it signed, as PEM (what the Secret holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The CA certificate: the `caBundle` of webhook configurations and CRDs.
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
    /// When the serving certificate expires.
    pub not_after: SystemTime,
    /// When it was issued.
    pub not_before: SystemTime,
}

impl Bundle {
    /// Makes a new CA and a serving certificate for `dns_names` (the Service's
    /// `name.namespace.svc` forms), valid from `now` for `validity`.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn generate(dns_names: &[String], now: SystemTime, validity: Duration) -> Result<Self, Error> {
        let not_before = now - Duration::from_secs(300); // clock skew between nodes
        let not_after = now + validity;
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name.push(DnType::CommonName, "stevedore-webhook-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = not_before.into();
        ca.not_after = (not_after + validity).into();
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);

        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(dns_names.to_vec())?;
        leaf.distinguished_name
            .push(DnType::CommonName, dns_names.first().map_or("stevedore-webhook", String::as_str));
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        leaf.not_before = not_before.into();
        leaf.not_after = not_after.into();
        let cert = leaf.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
            not_before,
        })
    }

    /// Whether the serving certificate should be replaced at `now`: once two thirds
    /// of its life have passed, so every replica has long picked up the new one
    /// before the old one expires.
    pub fn needs_renewal(&self, now: SystemTime) -> bool {
        let life = self.not_after.duration_since(self.not_before).unwrap_or_default();
        let renew_at = self.not_before + life * 2 / 3;
        now >= renew_at
    }

    fn certified_key(&self) -> Result<CertifiedKey, Error> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Pem { what: "certificate", reason: e.to_string() })?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| Error::Pem { what: "private key", reason: e.to_string() })?;
        Ok(CertifiedKey::new(chain, any_supported_type(&key)?))
    }
}

/// Serves the current certificate; [`CertResolver::rotate`] swaps it for new
/// connections while open ones keep theirs.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// A resolver serving `bundle`'s certificate.
    ///
    /// # Errors
    /// The PEM blocks do not parse.
    pub fn new(bundle: &Bundle) -> Result<Self, Error> {
        Ok(Self { current: RwLock::new(Arc::new(bundle.certified_key()?)) })
    }

    /// Serves `bundle`'s certificate from now on.
    ///
    /// # Errors
    /// The PEM blocks do not parse (the old certificate stays).
    pub fn rotate(&self, bundle: &Bundle) -> Result<(), Error> {
        let key = Arc::new(bundle.certified_key()?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// A rustls server config using this resolver, HTTP/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_parse_and_renew_after_two_thirds_of_their_life() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let names = vec!["stevedore-webhook.stevedore-system.svc".to_owned()];
        let b = Bundle::generate(&names, now, Duration::from_secs(3600)).unwrap();
        assert!(b.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(CertResolver::new(&b).is_ok());
        assert!(!b.needs_renewal(now));
        // issued 5 minutes back for clock skew: life is 65 minutes, renew at 43m20s
        assert!(!b.needs_renewal(now + Duration::from_secs(38 * 60)));
        assert!(b.needs_renewal(now + Duration::from_secs(39 * 60)));
    }

    #[test]
    fn a_broken_pem_is_refused_and_names_the_block() {
        let now = SystemTime::now();
        let mut b = Bundle::generate(&["x.y.svc".to_owned()], now, Duration::from_secs(60)).unwrap();
        b.key_pem = "not a key".into();
        let err = CertResolver::new(&b).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
    }
}
