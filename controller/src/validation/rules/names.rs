//! Names: DNS-1123 labels and subdomains, label keys and values, object names.

use kube::core::ObjectMeta;

use super::super::{
    FieldError,
    field::{invalid, required},
};

/// Why `s` is not a DNS-1123 label (`web-0`), if it is not.
pub fn dns1123_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !s.is_empty()
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && alnum(s.as_bytes()[0])
        && alnum(s.as_bytes()[s.len() - 1]);
    (!ok).then(|| {
        "must consist of lower case alphanumeric characters or '-', and start and end with one".into()
    })
}

/// Why `s` is not a DNS-1123 subdomain (`web.shop`), if it is not.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !s.is_empty() && s.split('.').all(|l| dns1123_label(l).is_none());
    (!ok).then(|| {
        "must consist of lower case alphanumeric characters, '-' or '.', and start and end with an \
         alphanumeric character"
            .into()
    })
}

/// Letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
fn label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why `key` is not a label key (`[prefix/]name`), if it is not.
pub fn qualified_name(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(reason) = prefix.and_then(|p| dns1123_subdomain(p).map(|r| format!("prefix {r}"))) {
        return Some(reason);
    }
    if name.len() > 63 || !label_chars(name) {
        return Some(
            "name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and \
             ending with an alphanumeric character"
                .into(),
        );
    }
    None
}

/// Why `value` is not a label value, if it is not (empty is allowed).
pub fn label_value(value: &str) -> Option<String> {
    let ok = value.is_empty() || (value.len() <= 63 && label_chars(value));
    (!ok).then(|| {
        "must be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending \
         with an alphanumeric character"
            .into()
    })
}

/// The object-name rule of `ValidateObjectMeta` with `name_rule` (a DNS-1123
/// subdomain for most workloads, a DNS-1123 label for StatefulSets): `metadata.name`
/// follows it, or is left to `generateName`.
pub fn object_name_by(
    meta: &ObjectMeta,
    name_rule: fn(&str) -> Option<String>,
    errors: &mut Vec<FieldError>,
) {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => {
            if let Some(reason) = name_rule(name) {
                errors.push(invalid("metadata.name", name, reason));
            }
        }
        _ if meta.generate_name.as_deref().is_some_and(|g| !g.is_empty()) => {}
        _ => errors.push(required("metadata.name", "name or generateName is required")),
    }
}

/// The workloads' object-name rule: `metadata.name` is a DNS-1123 subdomain (or
/// left to `generateName`).
pub fn object_name(meta: &ObjectMeta, errors: &mut Vec<FieldError>) {
    object_name_by(meta, dns1123_subdomain, errors);
}

/// The object-name rule of SidecarSet, BroadcastJob and AdvancedCronJob: letters,
/// digits and `-`, at most 63 characters.
pub fn short_object_name(name: Option<&str>, errors: &mut Vec<FieldError>) {
    let name = name.unwrap_or_default();
    if name.is_empty() {
        // generateName objects are named by the API server after admission
        return;
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        errors.push(invalid("metadata.name", name, "must consist of alphanumeric characters or '-'"));
    }
    if name.len() > 63 {
        errors.push(invalid("metadata.name", name, "must be no more than 63 characters"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::rules::tests::fields;

    #[test]
    fn names_are_dns_labels_and_subdomains() {
        for good in ["a", "web-0", "0a"] {
            assert_eq!(dns1123_label(good), None, "{good}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_some(), "{bad}");
        }
        assert_eq!(dns1123_subdomain("web.shop-1"), None);
        for bad in ["", "a..b", ".a", "A.b", &"a".repeat(254)] {
            assert!(dns1123_subdomain(bad).is_some(), "{bad}");
        }
        let mut errors = Vec::new();
        object_name(&ObjectMeta { name: Some("web".into()), ..Default::default() }, &mut errors);
        object_name(&ObjectMeta { generate_name: Some("web-".into()), ..Default::default() }, &mut errors);
        assert!(errors.is_empty());
        object_name(&ObjectMeta { name: Some("Web_1".into()), ..Default::default() }, &mut errors);
        object_name(&ObjectMeta::default(), &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "metadata.name: Invalid value: \"Web_1\": must consist of lower case alphanumeric characters, '-' or '.', and start and end with an alphanumeric character",
                "metadata.name: Required value: name or generateName is required"
            ]
        );
    }

    #[test]
    fn short_object_names() {
        let mut errors = Vec::new();
        short_object_name(Some("Good-Name-1"), &mut errors);
        assert!(errors.is_empty());
        short_object_name(Some("no_underscores"), &mut errors);
        short_object_name(Some(&"a".repeat(64)), &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "metadata.name: Invalid value: \"no_underscores\": must consist of alphanumeric characters or '-'",
                "metadata.name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": must be no more than 63 characters"
            ]
        );
    }

    #[test]
    fn label_keys_and_values() {
        for good in ["app", "apps.kruise.io/name", "apps.kruise.io/pod-uid", "A_b.c-D"] {
            assert_eq!(qualified_name(good), None, "{good}");
        }
        for bad in ["", "/a", "a/", "a/b/c", "Bad_/x", "UPPER./x", "-a", "-x", &"a".repeat(64)] {
            assert!(qualified_name(bad).is_some(), "{bad}");
        }
        assert_eq!(label_value(""), None);
        assert_eq!(label_value("v1.2_x"), None);
        assert!(label_value("v!").is_some());
        assert!(label_value("bad value").is_some());
    }
}
