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

/// A CA: its certificate, its key and when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ca {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (empty for a retired CA, which signs nothing more).
    pub key_pem: String,
    /// When it expires.
    pub not_after: SystemTime,
}

/// How long a CA lives, in serving-certificate lifetimes: a CA signs several
/// renewals before it is replaced.
const CA_LIFETIMES: u32 = 5;

impl Ca {
    /// A new self-signed CA valid from `now` for [`CA_LIFETIMES`] × `validity`.
    fn generate(now: SystemTime, validity: Duration) -> Result<Self, Error> {
        let key = KeyPair::generate()?;
        let not_after = now + validity * CA_LIFETIMES;
        let cert = ca_params(now - SKEW, not_after)?.self_signed(&key)?;
        Ok(Self { cert_pem: cert.pem(), key_pem: key.serialize_pem(), not_after })
    }

    /// Whether it is still valid at `t`.
    fn valid_at(&self, t: SystemTime) -> bool {
        self.not_after > t
    }
}

/// The webhook's certificates, as PEM (what the Secret holds): the CA signing the
/// serving certificate, the next CA published ahead of its use, the previous CA
/// still trusted until it expires, and the serving certificate.
///
/// A CA is replaced without a moment in which a client and a server disagree: the
/// next CA joins the trust bundle one renewal before it signs anything, so by the time
/// a replica serves a certificate it signed, every client has had a whole renewal
/// period to get the bundle that trusts it; and the CA it replaces stays in the bundle
/// until it expires, for replicas still serving what it signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The CAs clients should trust, the `caBundle` of webhook configurations and
    /// CRDs: the signing CA, then the next one, then the retired one.
    pub ca_pem: String,
    /// The CA that signed the serving certificate.
    pub ca: Ca,
    /// The CA that will sign the following renewals, published already.
    pub next_ca: Option<Ca>,
    /// The previous signing CA, trusted until it expires.
    pub retired_ca: Option<Ca>,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
    /// When the serving certificate expires.
    pub not_after: SystemTime,
    /// When it was issued.
    pub not_before: SystemTime,
}

/// Allowance for clock skew between nodes: certificates are valid from this long
/// before they are made.
const SKEW: Duration = Duration::from_secs(300);

/// A CA's subject, unique per CA (several can be in one bundle), derived from its
/// expiry so that it can be rebuilt as the issuer of what it signs.
fn ca_name(not_after: SystemTime) -> String {
    let secs = not_after.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("stevedore-webhook-ca-{secs}")
}

fn ca_params(not_before: SystemTime, not_after: SystemTime) -> Result<CertificateParams, Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, ca_name(not_after));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before.into();
    ca.not_after = not_after.into();
    Ok(ca)
}

impl Bundle {
    /// A new CA and a serving certificate for `dns_names` (the Service's
    /// `name.namespace.svc` forms), valid from `now` for `validity`.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn generate(dns_names: &[String], now: SystemTime, validity: Duration) -> Result<Self, Error> {
        Self::issue(Ca::generate(now, validity)?, None, None, dns_names, now, validity)
    }

    /// A new serving certificate for `dns_names`, valid from `now` for `validity`,
    /// signed by the current CA while it outlives the certificate, else by the next
    /// CA (published one renewal ago), else, when there is none, by a new CA.
    ///
    /// # Errors
    /// A CA key does not parse, or generation failed.
    pub fn renew(&self, dns_names: &[String], now: SystemTime, validity: Duration) -> Result<Self, Error> {
        let leaf_end = now + validity + SKEW;
        let retire = |ca: &Ca| ca.valid_at(now).then(|| Ca { key_pem: String::new(), ..ca.clone() });
        let (signer, next, retired) = if self.ca.valid_at(leaf_end) {
            let retired = self.retired_ca.clone().filter(|r| r.valid_at(now));
            (self.ca.clone(), self.next_ca.clone(), retired)
        } else if let Some(next) = self.next_ca.clone().filter(|n| n.valid_at(leaf_end)) {
            (next, None, retire(&self.ca))
        } else {
            (Ca::generate(now, validity)?, None, retire(&self.ca))
        };
        Self::issue(signer, next, retired, dns_names, now, validity)
    }

    fn issue(
        ca: Ca,
        mut next_ca: Option<Ca>,
        retired_ca: Option<Ca>,
        dns_names: &[String],
        now: SystemTime,
        validity: Duration,
    ) -> Result<Self, Error> {
        // The following renewal, two thirds of a lifetime from now, needs a signer
        // that outlives its certificate: if this CA will not, publish the next now.
        let following_leaf_end = now + validity * 2 / 3 + validity + SKEW;
        if next_ca.is_none() && !ca.valid_at(following_leaf_end) {
            next_ca = Some(Ca::generate(now, validity)?);
        }
        // The issuer is rebuilt from the CA's subject and key: a serving certificate
        // names its issuer by subject and key identifier, both the same as the stored
        // CA certificate's.
        let issuer =
            rcgen::Issuer::new(ca_params(now - SKEW, ca.not_after)?, KeyPair::from_pem(&ca.key_pem)?);
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
        let ca_pem = [Some(&ca), next_ca.as_ref(), retired_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|c| c.cert_pem.as_str())
            .collect::<String>();
        Ok(Self {
            ca_pem,
            ca,
            next_ca,
            retired_ca,
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
        let first = Bundle::generate(&names, t0, 30 * day).unwrap();
        assert!(trusted(&first.ca_pem, &first, "svc.ns.svc", t0));
        assert!(!trusted(&first.ca_pem, &first, "other.ns.svc", t0));
        let second = first.renew(&names, t0 + 20 * day, 30 * day).unwrap();
        assert_eq!(second.ca_pem, first.ca_pem, "the trust bundle stays");
        assert_ne!(second.cert_pem, first.cert_pem);
        assert!(trusted(&first.ca_pem, &second, "svc.ns.svc", t0 + 20 * day));
    }

    #[test]
    fn cas_are_replaced_without_a_moment_of_distrust() {
        // Renewed on time (at two thirds of each certificate's life) for twenty
        // lifetimes: every new certificate is trusted by the bundle published one
        // renewal before it (clients not yet updated), every old one by the new
        // bundle (replicas not yet rotated), and CAs do get replaced.
        let names = vec!["svc.ns.svc".to_owned()];
        let validity = Duration::from_secs(30 * 86_400);
        let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut current = Bundle::generate(&names, now, validity).unwrap();
        let mut signers = std::collections::BTreeSet::from([current.ca.cert_pem.clone()]);
        for _ in 0..30 {
            now += validity * 2 / 3;
            assert!(current.needs_renewal(now));
            let next = current.renew(&names, now, validity).unwrap();
            assert!(trusted(&current.ca_pem, &next, "svc.ns.svc", now), "new certificate, old bundle");
            assert!(trusted(&next.ca_pem, &current, "svc.ns.svc", now), "old certificate, new bundle");
            assert!(next.ca_pem.matches("BEGIN CERTIFICATE").count() <= 3);
            signers.insert(next.ca.cert_pem.clone());
            current = next;
        }
        assert!(signers.len() >= 4, "CAs were replaced: {}", signers.len());
    }

    #[test]
    fn a_late_renewal_past_every_ca_makes_a_new_one() {
        let names = vec!["svc.ns.svc".to_owned()];
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        let first = Bundle::generate(&names, t0, 10 * day).unwrap();
        let late = first.renew(&names, t0 + 400 * day, 10 * day).unwrap();
        assert_ne!(late.ca, first.ca);
        assert!(late.retired_ca.is_none(), "an expired CA is not carried");
        assert!(trusted(&late.ca_pem, &late, "svc.ns.svc", t0 + 400 * day));
    }
}
