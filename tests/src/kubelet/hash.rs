//! kubelet's container hash (`io.kubernetes.container.hash`), the rule since 1.31
//! (`pkg/kubelet/container/helpers.go`, `HashContainer`): only the name and the image
//! are hashed, so a change to anything else (resources, env…) does not restart the
//! container.
//!
//! Exactly: `json.Marshal(map[string]string{"name": .., "image": ..})` (Go sorts map
//! keys and escapes `<`, `>`, `&`), written through `hashutil.DeepHashObject` — go-spew
//! `%#v` of the `[]byte`, i.e. `([]uint8)[123 34 …]` — into FNV-1a 32; the annotation
//! is the value in lowercase hex without padding (`strconv.FormatUint(h, 16)`).

use std::fmt::Write as _;

use stevedore_proto::hash::fnv32a as fnv1a32;

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escaping).
fn go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// kubelet's hash of a container with this name and image.
pub fn container_hash(name: &str, image: &str) -> u64 {
    let mut json = String::from("{\"image\":");
    go_json_string(&mut json, image);
    json.push_str(",\"name\":");
    go_json_string(&mut json, name);
    json.push('}');
    let mut spew = String::from("([]uint8)[");
    for (i, b) in json.bytes().enumerate() {
        if i > 0 {
            spew.push(' ');
        }
        let _ = write!(spew, "{b}");
    }
    spew.push(']');
    u64::from(fnv1a32(spew.as_bytes()))
}

/// The annotation value: lowercase hex.
pub fn container_hash_annotation(name: &str, image: &str) -> String {
    format!("{:x}", container_hash(name, image))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value kubelet's own `TestHashContainer` pins (name `test_container`,
    /// image `foo/image:v1`; its args and ports do not count).
    #[test]
    fn matches_kubelets_pinned_value() {
        assert_eq!(container_hash("test_container", "foo/image:v1"), 0x8e45_cbd0);
        assert_eq!(container_hash_annotation("test_container", "foo/image:v1"), "8e45cbd0");
    }

    #[test]
    fn image_and_name_change_the_hash() {
        let a = container_hash("app", "stevedore.test/app:v1");
        assert_ne!(a, container_hash("app", "stevedore.test/app:v2"));
        assert_ne!(a, container_hash("app2", "stevedore.test/app:v1"));
    }

    #[test]
    fn escapes_like_go() {
        let mut s = String::new();
        go_json_string(&mut s, "a<b>&\"\\");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\""#);
    }
}
