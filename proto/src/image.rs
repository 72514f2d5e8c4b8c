//! Image references, as containerd and Docker read them (`nginx`,
//! `registry:5000/team/app:1.2`, `app@sha256:…`), and the name and tag under which a
//! NodeImage lists an image, as OpenKruise keys it: the familiar name (Docker Hub's
//! `docker.io/` and `library/` left out) and the tag, `latest`, or the digest.
//! Also the imagePullPolicy a container naming none gets ([`default_pull_policy`]):
//! one module for every image rule the processes share.

/// Docker Hub, the registry of references without a domain.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry (`docker.io` when the reference names none).
    pub domain: String,
    /// The repository path (`library/nginx` for Docker Hub's official images).
    pub path: String,
    /// The tag, if given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), if given.
    pub digest: Option<String>,
}

impl Reference {
    /// The name without Docker Hub's domain and `library/` (`nginx`, `team/app`,
    /// `registry:5000/app`): the key of a NodeImage's images.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path.strip_prefix("library/").unwrap_or(&self.path).to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The digest if there is one, else the tag, else `latest`: a NodeImage tag.
    pub fn node_image_tag(&self) -> String {
        self.digest.clone().or_else(|| self.tag.clone()).unwrap_or_else(|| "latest".into())
    }
}

/// The reference to pull for a NodeImage's image `name` and `tag` (a digest joins
/// with `@`, a tag with `:`).
pub fn pull_reference(name: &str, tag: &str) -> String {
    if tag.contains(':') { format!("{name}@{tag}") } else { format!("{name}:{tag}") }
}

/// Parses an image reference, or says why it is not one.
///
/// # Errors
/// The reason, in containerd's words.
pub fn parse(image: &str) -> Result<Reference, String> {
    if image.is_empty() {
        return Err("repository name must have at least one component".into());
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest.split_once(':').ok_or("invalid digest format")?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !algorithm_ok || !hex_ok || (algorithm == "sha256" && hex.len() != 64) {
            return Err("invalid digest format".into());
        }
    }
    // a tag follows the last ':' after the last '/'
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err("invalid reference format".into());
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase()));
    let mut domain_of = None;
    if has_domain {
        let domain = components.remove(0);
        domain_of = Some(domain);
        let (host, port) = domain.split_once(':').map_or((domain, None), |(h, p)| (h, Some(p)));
        let host_ok = host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
        if !host_ok || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
            return Err("invalid reference format".into());
        }
    }
    if name.len() > 255 {
        return Err("repository name must not be more than 255 characters".into());
    }
    for c in &components {
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("repository name must be lowercase".into());
        }
        if !is_path_component(c) {
            return Err("invalid reference format".into());
        }
    }
    let (domain, mut path) = (domain_of.unwrap_or(DOCKER_HUB).to_string(), components.join("/"));
    if domain == DOCKER_HUB && !path.contains('/') {
        path = format!("library/{path}");
    }
    Ok(Reference { domain, path, tag: tag.map(String::from), digest: digest.map(String::from) })
}

/// The imagePullPolicy Kubernetes gives a container that names none
/// (`SetDefaults_Container`): `Always` when the image's tag is `latest` or when it
/// names neither tag nor digest (`nginx`, `nginx:latest`, `nginx:latest@sha256:…`),
/// else `IfNotPresent` (`nginx:1.27`, `nginx@sha256:…`). The webhooks default
/// templates by it and the kubelet simulator pulls by it; one rule for both.
///
/// Like Go's, it reads the text only (the tag follows the last `:` after the last
/// `/`), so a reference [`parse`] refuses still gets a policy; refusing it is the
/// validation's concern.
pub fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let always = match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => !digest,
    };
    if always { "Always" } else { "IfNotPresent" }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for good in [
            "nginx",
            "nginx:1.27",
            "library/nginx:latest",
            "docker.io/library/nginx",
            "registry.example.com:5000/team/app:v1.2.3",
            "localhost/app",
            "ghcr.io/org/my_app__x-y.z:tag_1",
            "busybox@sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07",
        ] {
            assert!(parse(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "repository name must have at least one component"),
            ("Nginx", "repository name must be lowercase"),
            ("nginx:", "invalid reference format"),
            ("nginx:bad tag", "invalid reference format"),
            ("-nginx", "invalid reference format"),
            ("a//b", "invalid reference format"),
            ("nginx@sha256:abc", "invalid digest format"),
            ("host:port/app", "invalid reference format"),
        ] {
            assert_eq!(parse(bad).unwrap_err(), why, "{bad}");
        }
    }

    #[test]
    fn names_and_tags_as_nodeimages_key_them() {
        let r = parse("nginx").unwrap();
        assert_eq!((r.domain.as_str(), r.path.as_str()), ("docker.io", "library/nginx"));
        assert_eq!((r.familiar_name(), r.node_image_tag()), ("nginx".to_string(), "latest".to_string()));
        let r = parse("docker.io/team/app:v2").unwrap();
        assert_eq!((r.familiar_name(), r.node_image_tag()), ("team/app".to_string(), "v2".to_string()));
        let d = "sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07";
        let r = parse(&format!("registry.example.com:5000/app:1.0@{d}")).unwrap();
        assert_eq!(r.familiar_name(), "registry.example.com:5000/app");
        assert_eq!(r.node_image_tag(), d, "a digest wins over the tag");
        assert_eq!(
            pull_reference("registry.example.com:5000/app", d),
            format!("registry.example.com:5000/app@{d}")
        );
        assert_eq!(pull_reference("nginx", "1.27"), "nginx:1.27");
    }

    #[test]
    fn latest_or_untagged_pulls_always() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("registry:5000/nginx", "Always"),
            ("nginx:latest@sha256:0123", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry:5000/nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:0123", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), policy, "{image}");
        }
    }
}
