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
    /// The CAs clients should trust: the `caBundle` of webhook configurations and
    /// CRDs. The current CA first; while a CA is being replaced, the previous one
    /// too, so clients holding the old bundle and servers holding the new
    /// certificate still meet.
    pub ca_pem: String,
    /// The current CA's private key, kept so a renewal can sign a new serving
    /// certificate without changing the trust bundle.
    pub ca_key_pem: String,
    /// When the current CA expires.
    pub ca_not_after: SystemTime,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
    /// When the serving certificate expires.
    pub not_after: SystemTime,
    /// When it was issued.
    pub not_before: SystemTime,
}

/// The CA's subject: also the issuer of every serving certificate it signs.
const CA_NAME: &str = "stevedore-webhook-ca";
/// Allowance for clock skew between nodes: certificates are valid from this long
/// before they are made.
const SKEW: Duration = Duration::from_secs(300);

fn ca_params(not_before: SystemTime, not_after: SystemTime) -> Result<CertificateParams, Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, CA_NAME);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before.into();
    ca.not_after = not_after.into();
    Ok(ca)
}

impl Bundle {
    /// Makes a new CA and a serving certificate for `dns_names` (the Service's
    /// `name.namespace.svc` forms), valid from `now` for `validity`. The CA lives
    /// twice as long, so renewals re-use it.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn generate(dns_names: &[String], now: SystemTime, validity: Duration) -> Result<Self, Error> {
        let ca_key = KeyPair::generate()?;
        let ca_not_after = now + validity * 2;
        let ca_cert = ca_params(now - SKEW, ca_not_after)?.self_signed(&ca_key)?;
        Self::issue(ca_cert.pem(), ca_key, ca_not_after, dns_names, now, validity)
    }

    /// A new serving certificate for `dns_names`, valid from `now` for `validity`.
    /// Signed by the current CA when that outlives the new certificate, so the trust
    /// bundle stays as it is; otherwise by a new CA, with the old one kept in the
    /// bundle until it expires.
    ///
    /// # Errors
    /// The CA key does not parse, or generation failed.
    pub fn renew(&self, dns_names: &[String], now: SystemTime, validity: Duration) -> Result<Self, Error> {
        if self.ca_not_after > now + validity + SKEW {
            let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
            return Self::issue(self.ca_pem.clone(), ca_key, self.ca_not_after, dns_names, now, validity);
        }
        let mut next = Self::generate(dns_names, now, validity)?;
        if self.ca_not_after > now {
            let current = first_certificate(&self.ca_pem);
            next.ca_pem = format!("{}{current}", next.ca_pem);
        }
        Ok(next)
    }

    fn issue(
        ca_pem: String,
        ca_key: KeyPair,
        ca_not_after: SystemTime,
        dns_names: &[String],
        now: SystemTime,
        validity: Duration,
    ) -> Result<Self, Error> {
        let ca_key_pem = ca_key.serialize_pem();
        // The issuer is rebuilt from the CA's subject and key: a serving certificate
        // names its issuer by subject and key identifier, both of which are the
        // same as the stored CA certificate's.
        let issuer = rcgen::Issuer::new(ca_params(now - SKEW, ca_not_after)?, ca_key);
        let not_before = now - SKEW;
        let not_after = now + validity;
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
            ca_pem,
            ca_key_pem,
            ca_not_after,
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

/// The first PEM certificate block of `pem`, with its trailing newline.
fn first_certificate(pem: &str) -> &str {
    const END: &str = "-----END CERTIFICATE-----";
    pem.find(END).map_or(pem, |at| {
        let end = at + END.len();
        &pem[..if pem[end..].starts_with('\n') { end + 1 } else { end }]
    })
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

    /// Whether a client trusting `ca_pem` accepts `bundle`'s serving certificate for
    /// `name` at `now`.
    fn trusted(ca_pem: &str, bundle: &Bundle, name: &str, now: SystemTime) -> bool {
        use rustls::{
            client::{WebPkiServerVerifier, danger::ServerCertVerifier},
            pki_types::ServerName,
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(ca.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        let leaf = CertificateDer::from_pem_slice(bundle.cert_pem.as_bytes()).unwrap();
        let now = rustls::pki_types::UnixTime::since_unix_epoch(
            now.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
        );
        verifier
            .verify_server_cert(&leaf, &[], &ServerName::try_from(name.to_owned()).unwrap(), &[], now)
            .is_ok()
    }

    #[test]
    fn a_renewal_keeps_the_ca_while_it_outlives_the_new_certificate() {
        let names = vec!["svc.ns.svc".to_owned()];
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        let first = Bundle::generate(&names, t0, 10 * day).unwrap();
        assert!(trusted(&first.ca_pem, &first, "svc.ns.svc", t0));
        assert!(!trusted(&first.ca_pem, &first, "other.ns.svc", t0));
        // Renewed after 7 days: the CA (20 days) outlives the new certificate.
        let second = first.renew(&names, t0 + 7 * day, 10 * day).unwrap();
        assert_eq!(second.ca_pem, first.ca_pem, "the trust bundle stays");
        assert_ne!(second.cert_pem, first.cert_pem);
        assert!(trusted(&first.ca_pem, &second, "svc.ns.svc", t0 + 7 * day));
        // Renewed after 14 days: a new CA; the bundle carries both until the old
        // one expires, so old and new certificates are trusted by the new bundle.
        let third = second.renew(&names, t0 + 14 * day, 10 * day).unwrap();
        assert_ne!(third.ca_key_pem, second.ca_key_pem);
        assert!(third.ca_pem.ends_with(&second.ca_pem));
        assert!(trusted(&third.ca_pem, &third, "svc.ns.svc", t0 + 14 * day));
        assert!(trusted(&third.ca_pem, &second, "svc.ns.svc", t0 + 14 * day));
        assert!(!trusted(&first.ca_pem, &third, "svc.ns.svc", t0 + 14 * day));
        // Once the old CA has expired, the next new CA does not carry it along.
        let fourth = third.renew(&names, t0 + 40 * day, 10 * day).unwrap();
        assert_eq!(fourth.ca_pem.matches("BEGIN CERTIFICATE").count(), 1);
    }
}
