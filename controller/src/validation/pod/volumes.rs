//! Volumes (`ValidateVolumes`, `validateVolumeSource`).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume};

use super::{
    super::{
        FieldError,
        field::{duplicate, forbidden, invalid, required},
        rules::dns1123_label,
    },
    containers,
};

/// `ValidateVolumes`: DNS-label names, each once, each with exactly one valid
/// source. Returns the names of the volumes mounts may refer to (those without
/// errors, as Kubernetes counts them).
pub fn volumes(field: &str, list: &[Volume], errors: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let mut own = Vec::new();
        source(&at, v, &mut own);
        if v.name.is_empty() {
            errors.push(required(&format!("{at}.name"), ""));
        } else if let Some(reason) = dns1123_label(&v.name) {
            errors.push(invalid(&format!("{at}.name"), &v.name, reason));
        }
        if names.contains(&v.name) {
            errors.push(duplicate(&format!("{at}.name"), &v.name));
        }
        if own.is_empty() {
            names.insert(v.name.clone());
        } else {
            errors.extend(own);
        }
    }
    names
}

/// `validateVolumeSource`: exactly one source, and the common sources' fields.
fn source(at: &str, v: &Volume, errors: &mut Vec<FieldError>) {
    let json = serde_json::to_value(v).unwrap_or_default();
    let kinds: Vec<&String> =
        json.as_object().into_iter().flatten().map(|(k, _)| k).filter(|k| *k != "name").collect();
    if kinds.is_empty() {
        return errors.push(required(at, "must specify a volume type"));
    }
    for kind in &kinds[1..] {
        errors.push(forbidden(&format!("{at}.{kind}"), "may not specify more than 1 volume type"));
    }
    if let Some(h) = &v.host_path {
        if h.path.is_empty() {
            errors.push(required(&format!("{at}.hostPath.path"), ""));
        }
        let kinds = [
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ];
        if let Some(t) = h.type_.as_deref().filter(|t| !kinds.contains(t)) {
            errors.push(super::super::field::not_supported(&format!("{at}.hostPath.type"), t, &kinds[1..]));
        }
    }
    if let Some(s) = &v.secret {
        if s.secret_name.as_deref().unwrap_or_default().is_empty() {
            errors.push(required(&format!("{at}.secret.secretName"), ""));
        }
        mode(&format!("{at}.secret.defaultMode"), s.default_mode, errors);
        items(&format!("{at}.secret.items"), s.items.as_deref().unwrap_or_default(), errors);
    }
    if let Some(c) = &v.config_map {
        if c.name.is_empty() {
            errors.push(required(&format!("{at}.configMap.name"), ""));
        }
        mode(&format!("{at}.configMap.defaultMode"), c.default_mode, errors);
        items(&format!("{at}.configMap.items"), c.items.as_deref().unwrap_or_default(), errors);
    }
    if let Some(p) = &v.persistent_volume_claim
        && p.claim_name.is_empty()
    {
        errors.push(required(&format!("{at}.persistentVolumeClaim.claimName"), ""));
    }
    if let Some(d) = &v.downward_api {
        mode(&format!("{at}.downwardAPI.defaultMode"), d.default_mode, errors);
        downward_items(&format!("{at}.downwardAPI.items"), d.items.as_deref().unwrap_or_default(), errors);
    }
    if let Some(p) = &v.projected {
        mode(&format!("{at}.projected.defaultMode"), p.default_mode, errors);
        for (i, s) in p.sources.iter().flatten().enumerate() {
            let sat = format!("{at}.projected.sources[{i}]");
            let json = serde_json::to_value(s).unwrap_or_default();
            let n = json.as_object().map_or(0, |o| o.len());
            if n == 0 {
                errors.push(required(&sat, "must specify at least 1 volume type"));
            } else if n > 1 {
                errors.push(forbidden(&sat, "may not specify more than 1 volume type"));
            }
            if let Some(s) = &s.secret {
                items(&format!("{sat}.secret.items"), s.items.as_deref().unwrap_or_default(), errors);
            }
            if let Some(c) = &s.config_map {
                items(&format!("{sat}.configMap.items"), c.items.as_deref().unwrap_or_default(), errors);
            }
            if let Some(d) = &s.downward_api {
                downward_items(
                    &format!("{sat}.downwardAPI.items"),
                    d.items.as_deref().unwrap_or_default(),
                    errors,
                );
            }
            if let Some(t) = &s.service_account_token {
                local_relative_path(&format!("{sat}.serviceAccountToken.path"), &t.path, errors);
                if t.expiration_seconds.is_some_and(|e| e < 600) {
                    errors.push(invalid(
                        &format!("{sat}.serviceAccountToken.expirationSeconds"),
                        t.expiration_seconds,
                        "may not specify a duration less than 10 minutes",
                    ));
                }
            }
        }
    }
    if let Some(n) = &v.nfs {
        if n.server.is_empty() {
            errors.push(required(&format!("{at}.nfs.server"), ""));
        }
        if !n.path.starts_with('/') {
            errors.push(invalid(&format!("{at}.nfs.path"), &n.path, "must be an absolute path"));
        }
    }
    if let Some(c) = &v.csi
        && c.driver.is_empty()
    {
        errors.push(required(&format!("{at}.csi.driver"), ""));
    }
    if let Some(e) = &v.ephemeral
        && e.volume_claim_template.is_none()
    {
        errors.push(required(&format!("{at}.ephemeral.volumeClaimTemplate"), ""));
    }
}

/// A file mode between 0 and 0777.
fn mode(at: &str, m: Option<i32>, errors: &mut Vec<FieldError>) {
    if let Some(m) = m.filter(|m| !(0..=0o777).contains(m)) {
        errors.push(invalid(at, m, "must be a number between 0 and 0777 (octal), both inclusive"));
    }
}

/// `validateKeyToPath`: a key, a relative path without `..`, a mode.
fn items(field: &str, list: &[KeyToPath], errors: &mut Vec<FieldError>) {
    for (i, k) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if k.key.is_empty() {
            errors.push(required(&format!("{at}.key"), ""));
        }
        if k.path.is_empty() {
            errors.push(required(&format!("{at}.path"), ""));
        }
        local_relative_path(&format!("{at}.path"), &k.path, errors);
        mode(&format!("{at}.mode"), k.mode, errors);
    }
}

/// The downward API volume's fieldRef paths (`validVolumeDownwardAPIFieldPathExpressions`).
const VOLUME_FIELD_PATHS: [&str; 5] =
    ["metadata.name", "metadata.namespace", "metadata.labels", "metadata.annotations", "metadata.uid"];

/// `validateDownwardAPIVolumeFile`: a relative path; exactly one of fieldRef and
/// resourceFieldRef (the latter naming its container); a mode.
fn downward_items(field: &str, list: &[DownwardAPIVolumeFile], errors: &mut Vec<FieldError>) {
    for (i, d) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if d.path.is_empty() {
            errors.push(required(&format!("{at}.path"), ""));
        }
        local_relative_path(&format!("{at}.path"), &d.path, errors);
        match (&d.field_ref, &d.resource_field_ref) {
            (Some(f), None) => {
                containers::field_ref(&format!("{at}.fieldRef"), f, &VOLUME_FIELD_PATHS, errors)
            }
            (None, Some(r)) => {
                if r.container_name.as_deref().unwrap_or_default().is_empty() {
                    errors.push(required(&format!("{at}.resourceFieldRef.containerName"), ""));
                }
            }
            (Some(_), Some(_)) => errors.push(invalid(
                &at,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            )),
            (None, None) => errors.push(required(&at, "one of fieldRef and resourceFieldRef is required")),
        }
        mode(&format!("{at}.mode"), d.mode, errors);
    }
}

/// `validateLocalNonReverseRelativePath`: not absolute, no `..` element.
fn local_relative_path(at: &str, path: &str, errors: &mut Vec<FieldError>) {
    if path.starts_with('/') {
        errors.push(invalid(at, path, "must be a relative path"));
    }
    if path.split('/').any(|p| p == "..") {
        errors.push(invalid(at, path, "must not contain '..'"));
    }
}

/// `validateLocalDescendingPath` (subPath): the same as [`local_relative_path`].
pub fn local_descending_path(at: &str, path: &str, errors: &mut Vec<FieldError>) {
    local_relative_path(at, path, errors);
}
