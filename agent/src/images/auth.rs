//! Registry credentials from pull secrets (`kubernetes.io/dockerconfigjson` and
//! `kubernetes.io/dockercfg`), matched to an image's registry as kubelet's keyring
//! matches them: the secret's registry key (`https://index.docker.io/v1/`,
//! `registry.example.com:5000`, `registry.example.com/team`) against the image's
//! domain and path.

use base64::Engine as _;
use serde_json::Value;
use stevedore_proto::{cri::AuthConfig, image::Reference};

/// Docker Hub's names in docker configs.
const DOCKER_HUB_KEYS: &[&str] = &["index.docker.io", "docker.io", "registry-1.docker.io"];

/// Normalizes a docker config key to `host[:port][/path]`.
fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
    let k = k.trim_end_matches('/');
    let k = k.strip_suffix("/v1").or_else(|| k.strip_suffix("/v2")).unwrap_or(k);
    let (host, path) = k.split_once('/').map_or((k, ""), |(h, p)| (h, p));
    let host = if DOCKER_HUB_KEYS.contains(&host) { "docker.io" } else { host };
    if path.is_empty() { host.to_string() } else { format!("{host}/{path}") }
}

/// Whether a config key covers `image`: same registry, and the key's path (if any)
/// a prefix of the image's repository.
fn covers(key: &str, image: &Reference) -> bool {
    let k = normalize_key(key);
    let (host, path) = k.split_once('/').map_or((k.as_str(), ""), |(h, p)| (h, p));
    host == image.domain
        && (path.is_empty() || image.path == path || image.path.starts_with(&format!("{path}/")))
}

/// One registry entry of a docker config as CRI's `AuthConfig`.
fn auth_config(entry: &Value) -> AuthConfig {
    let s = |k: &str| entry[k].as_str().unwrap_or_default().to_string();
    let (mut username, mut password) = (s("username"), s("password"));
    if let Some(auth) = entry["auth"].as_str()
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(auth)
        && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
    {
        (username, password) = (u.to_string(), p.to_string());
    }
    AuthConfig {
        username,
        password,
        auth: String::new(),
        // Empty, as kubelet sends it: the key already matched the image's registry,
        // and containerd 1.6 `url.Parse`s a server address, so a schemeless one
        // (`registry:5000`) fails the pull and one without a port never matches the
        // host, dropping the credentials.
        server_address: String::new(),
        identity_token: s("identitytoken"),
        registry_token: s("registrytoken"),
    }
}

/// The credentials `secret_data` (a Secret's data, decoded) holds for `image`, most
/// specific key first.
pub fn credentials_for(
    secret_type: &str,
    data: &std::collections::BTreeMap<String, Vec<u8>>,
    image: &Reference,
) -> Vec<AuthConfig> {
    let entries: Option<Value> = match secret_type {
        "kubernetes.io/dockercfg" => data.get(".dockercfg").and_then(|b| serde_json::from_slice(b).ok()),
        _ => data
            .get(".dockerconfigjson")
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .map(|v| v["auths"].clone()),
    };
    let mut matched: Vec<(usize, AuthConfig)> = entries
        .as_ref()
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| covers(k, image))
        .map(|(k, e)| (normalize_key(k).len(), auth_config(e)))
        .collect();
    matched.sort_by_key(|m| std::cmp::Reverse(m.0));
    matched.into_iter().map(|(_, a)| a).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use stevedore_proto::image::parse;

    use super::*;

    fn data(v: Value) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(".dockerconfigjson".to_string(), serde_json::to_vec(&v).unwrap())])
    }

    #[test]
    fn keys_match_by_registry_and_path() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw");
        let d = data(json!({"auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "registry.example.com:5000": {"username": "ci", "password": "x"},
            "registry.example.com:5000/team": {"username": "team", "password": "y"},
        }}));
        let hub = credentials_for("kubernetes.io/dockerconfigjson", &d, &parse("nginx:1.27").unwrap());
        assert_eq!((hub.len(), hub[0].username.as_str(), hub[0].password.as_str()), (1, "bob", "pw"));
        let team = credentials_for(
            "kubernetes.io/dockerconfigjson",
            &d,
            &parse("registry.example.com:5000/team/app").unwrap(),
        );
        assert_eq!(
            team.iter().map(|a| a.username.as_str()).collect::<Vec<_>>(),
            ["team", "ci"],
            "most specific first"
        );
        let other = credentials_for(
            "kubernetes.io/dockerconfigjson",
            &d,
            &parse("registry.example.com:5000/teamx/app").unwrap(),
        );
        assert_eq!(
            other.iter().map(|a| a.username.as_str()).collect::<Vec<_>>(),
            ["ci"],
            "a path prefix ends at /"
        );
        assert!(
            credentials_for("kubernetes.io/dockerconfigjson", &d, &parse("quay.io/x").unwrap()).is_empty()
        );
        let cfg = BTreeMap::from([(
            ".dockercfg".to_string(),
            br#"{"quay.io": {"username": "q", "password": "p"}}"#.to_vec(),
        )]);
        assert_eq!(
            credentials_for("kubernetes.io/dockercfg", &cfg, &parse("quay.io/x").unwrap())[0].username,
            "q"
        );
    }
}
