//! Rules about image references that more than one process applies.

/// The imagePullPolicy Kubernetes gives a container that names none
/// (`SetDefaults_Container`): `Always` when the image's tag is `latest` or when it
/// names neither tag nor digest (`nginx`, `nginx:latest`, `nginx:latest@sha256:…`),
/// else `IfNotPresent` (`nginx:1.27`, `nginx@sha256:…`). The webhooks default
/// templates by it and the kubelet pulls by it; one rule for both.
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

#[cfg(test)]
mod tests {
    use super::*;

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
