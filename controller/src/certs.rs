//! The webhook serving certificate, shared by every replica through one Secret.
//!
//! Each replica [`ensure`]s the Secret at start and then every resync: when it is
//! missing, unreadable, for other DNS names or due for renewal, the replica writes a
//! new one (create, or update at the resourceVersion it read); when two replicas race,
//! the API server lets one write win and the other reads the winner's. Every replica
//! then serves whatever the Secret holds. The Secret belongs to the controller:
//! replacing its contents by hand is undone at the next renewal.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use stevedore_proto::keys;
use tracing::info;

use crate::webhook::tls::{self, Bundle, Ca};

/// Certificate store failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("cannot {action} the webhook certificate Secret {namespace}/{name}: {source}")]
    Api {
        /// What was attempted.
        action: &'static str,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Making a certificate failed.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// Every attempt lost a race with another replica.
    #[error("the webhook certificate Secret kept changing under us ({0} attempts)")]
    Contended(usize),
}

/// Where the Secret lives and what the certificate is for.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The controller's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The DNS names the serving certificate must carry.
    pub dns_names: Vec<String>,
    /// How long a serving certificate is valid.
    pub validity: Duration,
}

/// The trust bundle (what clients put in `caBundle`).
const CA_BUNDLE: &str = "ca.crt";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
/// The CAs: (certificate key, private key, expiry annotation).
const SIGNER: (&str, &str, &str) = ("signer-ca.crt", "signer-ca.key", keys::CA_NOT_AFTER);
const NEXT: (&str, &str, &str) = ("next-ca.crt", "next-ca.key", keys::NEXT_CA_NOT_AFTER);
const RETIRED: (&str, &str, &str) = ("retired-ca.crt", "retired-ca.key", keys::RETIRED_CA_NOT_AFTER);

fn rfc3339(t: SystemTime) -> String {
    Timestamp::try_from(t).map(|t| t.to_string()).unwrap_or_default()
}

/// The Secret holding `bundle`.
pub fn to_secret(settings: &Settings, bundle: &Bundle) -> Secret {
    let text = |s: &str| ByteString(s.as_bytes().to_vec());
    let mut annotations = BTreeMap::from([
        (keys::CERT_NOT_BEFORE.to_owned(), rfc3339(bundle.not_before)),
        (keys::CERT_NOT_AFTER.to_owned(), rfc3339(bundle.not_after)),
        (keys::CERT_DNS_NAMES.to_owned(), settings.dns_names.join(",")),
    ]);
    let mut data = BTreeMap::from([
        (CA_BUNDLE.to_owned(), text(&bundle.ca_pem)),
        (TLS_CERT.to_owned(), text(&bundle.cert_pem)),
        (TLS_KEY.to_owned(), text(&bundle.key_pem)),
    ]);
    for ((cert, key, expiry), ca) in
        [(SIGNER, Some(&bundle.ca)), (NEXT, bundle.next_ca.as_ref()), (RETIRED, bundle.retired_ca.as_ref())]
    {
        let Some(ca) = ca else { continue };
        data.insert(cert.to_owned(), text(&ca.cert_pem));
        if !ca.key_pem.is_empty() {
            data.insert(key.to_owned(), text(&ca.key_pem));
        }
        annotations.insert(expiry.to_owned(), rfc3339(ca.not_after));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret.clone()),
            namespace: Some(settings.namespace.clone()),
            annotations: Some(annotations),
            labels: Some(BTreeMap::from([(keys::MANAGED_BY.to_owned(), "stevedore-controller".to_owned())])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The bundle a Secret holds, and the DNS names it is for; `None` when anything is
/// missing or unreadable (the Secret is then replaced).
pub fn from_secret(secret: &Secret) -> Option<(Bundle, Vec<String>)> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| String::from_utf8(data.get(key)?.0.clone()).ok();
    let annotations = secret.metadata.annotations.as_ref()?;
    let time = |key: &str| -> Option<SystemTime> {
        Some(SystemTime::from(annotations.get(key)?.parse::<Timestamp>().ok()?))
    };
    let ca = |(cert, key, expiry): (&str, &str, &str)| -> Option<Ca> {
        Some(Ca { cert_pem: text(cert)?, key_pem: text(key).unwrap_or_default(), not_after: time(expiry)? })
    };
    let signer = ca(SIGNER).filter(|c| !c.key_pem.is_empty())?;
    let next = match data.contains_key(NEXT.0) {
        true => Some(ca(NEXT).filter(|c| !c.key_pem.is_empty())?),
        false => None,
    };
    let retired = match data.contains_key(RETIRED.0) {
        true => Some(ca(RETIRED)?),
        false => None,
    };
    let bundle = Bundle {
        ca_pem: text(CA_BUNDLE)?,
        ca: signer,
        next_ca: next,
        retired_ca: retired,
        cert_pem: text(TLS_CERT)?,
        key_pem: text(TLS_KEY)?,
        not_after: time(keys::CERT_NOT_AFTER)?,
        not_before: time(keys::CERT_NOT_BEFORE)?,
    };
    tls::CertResolver::new(&bundle).ok()?;
    let names = annotations.get(keys::CERT_DNS_NAMES)?.split(',').map(str::to_owned).collect();
    Some((bundle, names))
}

/// What to do with the Secret as read.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Serve it: the bundle it holds.
    Keep(Box<Bundle>),
    /// Replace it by a renewal of this bundle.
    Renew(Box<Bundle>),
    /// Replace it by a new CA and certificate.
    Generate(&'static str),
}

fn judge(secret: Option<&Secret>, settings: &Settings, now: SystemTime) -> Verdict {
    let Some(secret) = secret else { return Verdict::Generate("missing") };
    let Some((bundle, names)) = from_secret(secret) else { return Verdict::Generate("unreadable") };
    if names != settings.dns_names || bundle.needs_renewal(now) {
        Verdict::Renew(Box::new(bundle))
    } else {
        Verdict::Keep(Box::new(bundle))
    }
}

/// Reads the Secret, writes a new certificate into it when needed, and returns the
/// bundle every replica should serve.
///
/// # Errors
/// The API server failed, or other writers kept winning.
pub async fn ensure(client: &Client, settings: &Settings) -> Result<Bundle, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let fail = |action, source| Error::Api {
        action,
        namespace: settings.namespace.clone(),
        name: settings.secret.clone(),
        source,
    };
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        let current = api.get_opt(&settings.secret).await.map_err(|e| fail("read", e))?;
        let now = SystemTime::now();
        let next = match judge(current.as_ref(), settings, now) {
            Verdict::Keep(bundle) => return Ok(*bundle),
            Verdict::Renew(old) => {
                info!(secret = %settings.secret, "renewing the webhook serving certificate");
                old.renew(&settings.dns_names, now, settings.validity)?
            }
            Verdict::Generate(why) => {
                info!(secret = %settings.secret, why, "making a new webhook CA and serving certificate");
                Bundle::generate(&settings.dns_names, now, settings.validity)?
            }
        };
        let mut secret = to_secret(settings, &next);
        let written = match current {
            None => api.create(&PostParams::default(), &secret).await,
            Some(old) => {
                secret.metadata.resource_version = old.metadata.resource_version;
                api.replace(&settings.secret, &PostParams::default(), &secret).await
            }
        };
        match written {
            Ok(_) => return Ok(next),
            // Another replica wrote first: read and judge its certificate.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(fail("write", e)),
        }
    }
    Err(Error::Contended(ATTEMPTS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            namespace: "stevedore-system".into(),
            secret: "stevedore-webhook-certs".into(),
            dns_names: vec!["svc.stevedore-system.svc".into()],
            validity: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn a_bundle_round_trips_through_its_secret() {
        let s = settings();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let bundle = Bundle::generate(&s.dns_names, now, s.validity).unwrap();
        let (back, names) = from_secret(&to_secret(&s, &bundle)).unwrap();
        assert_eq!(back, bundle);
        assert_eq!(names, s.dns_names);
    }

    #[test]
    fn next_and_retired_cas_round_trip_through_the_secret() {
        let s = settings();
        let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut bundle = Bundle::generate(&s.dns_names, now, s.validity).unwrap();
        let mut seen = (false, false);
        for _ in 0..20 {
            now += s.validity * 2 / 3;
            bundle = bundle.renew(&s.dns_names, now, s.validity).unwrap();
            let (back, _) = from_secret(&to_secret(&s, &bundle)).unwrap();
            assert_eq!(back, bundle);
            seen = (seen.0 || bundle.next_ca.is_some(), seen.1 || bundle.retired_ca.is_some());
        }
        assert_eq!(seen, (true, true), "renewals went through a next and a retired CA");
    }

    #[test]
    fn the_secret_is_replaced_when_missing_unreadable_renamed_or_due() {
        let s = settings();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let bundle = Bundle::generate(&s.dns_names, now, s.validity).unwrap();
        let secret = to_secret(&s, &bundle);
        assert_eq!(judge(None, &s, now), Verdict::Generate("missing"));
        assert!(matches!(judge(Some(&secret), &s, now), Verdict::Keep(_)));
        assert!(matches!(judge(Some(&secret), &s, now + s.validity * 3 / 4), Verdict::Renew(_)));
        let mut broken = secret.clone();
        broken.data.as_mut().unwrap().insert(TLS_KEY.into(), ByteString(b"garbage".to_vec()));
        assert_eq!(judge(Some(&broken), &s, now), Verdict::Generate("unreadable"));
        let mut unannotated = secret.clone();
        unannotated.metadata.annotations = None;
        assert_eq!(judge(Some(&unannotated), &s, now), Verdict::Generate("unreadable"));
        let mut moved = s.clone();
        moved.dns_names = vec!["other.stevedore-system.svc".into()];
        assert!(matches!(judge(Some(&secret), &moved, now), Verdict::Renew(_)));
    }
}
