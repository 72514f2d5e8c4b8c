//! Transcripts of CRI scenarios: the answers of one run, step by step, and their
//! normal form for comparing two runs (directly and through the proxy, or through
//! clients of different gRPC stacks).

use std::collections::HashMap;

use serde_json::{Value, json};

/// The answers of one run, step by step.
pub type Transcript = Vec<(String, Value)>;

/// The normal form of `t`: lists sorted (containerd lists in map order), container
/// and sandbox ids (64 hex digits, wherever they appear) numbered in order of first
/// appearance, timestamps and pod IPs masked.
pub fn normalize(t: &Transcript) -> Transcript {
    let mut n = Normalizer { ids: HashMap::new() };
    t.iter()
        .map(|(step, v)| {
            let mut v = v.clone();
            sort_lists(&mut v);
            n.value(None, &mut v);
            (step.clone(), v)
        })
        .collect()
}

/// Asserts that two normalized transcripts agree step by step, naming the first
/// step that differs.
///
/// # Panics
/// When they differ.
pub fn assert_same(want: &Transcript, got: &Transcript, what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: the transcripts have different lengths");
    for ((step, w), (got_step, g)) in want.iter().zip(got) {
        assert_eq!(step, got_step, "{what}: steps out of order");
        assert_eq!(w, g, "{what}: step {step:?} differs:\n want: {w}\n got:  {g}");
    }
}

struct Normalizer {
    ids: HashMap<String, usize>,
}

impl Normalizer {
    fn value(&mut self, key: Option<&str>, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    self.value(Some(k), v);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.value(key, i)),
            Value::Number(_) if matches!(key, Some("created_at" | "started_at" | "finished_at")) => {
                *v = json!("<time>")
            }
            Value::String(s) if matches!(key, Some("ip")) && !s.is_empty() => *v = json!("<pod-ip>"),
            Value::String(s) => *s = self.ids_in(s),
            _ => {}
        }
    }

    fn ids_in(&mut self, s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < bytes.len() {
            let run =
                bytes[i..].iter().take_while(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()).count();
            if run == 64 && !s[..i].ends_with("sha256:") {
                let next = self.ids.len();
                let n = *self.ids.entry(s[i..i + 64].to_owned()).or_insert(next);
                out.push_str(&format!("<id{n}>"));
                i += 64;
            } else {
                let step = run.max(1);
                out.push_str(&s[i..i + step]);
                i += step;
            }
        }
        out
    }
}

/// containerd lists images, containers and sandboxes in map order, which differs
/// from call to call: order every list by its elements with ids masked.
fn sort_lists(v: &mut Value) {
    match v {
        Value::Array(items) if items.iter().all(Value::is_object) => {
            items.iter_mut().for_each(sort_lists);
            items.sort_by_cached_key(|i| {
                let mut masked = i.clone();
                Normalizer { ids: HashMap::new() }.value(None, &mut masked);
                masked.to_string()
            });
        }
        Value::Object(map) => map.values_mut().for_each(sort_lists),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_times_and_ips_are_masked_and_lists_sorted() {
        let id = "a".repeat(64);
        let t = vec![(
            "step".to_owned(),
            json!({ "ok": { "items": [{ "id": "b" }, { "id": id, "created_at": 5, "ip": "10.0.0.2" }] } }),
        )];
        let n = normalize(&t);
        assert_eq!(
            n[0].1,
            json!({ "ok": { "items": [{ "created_at": "<time>", "id": "<id0>", "ip": "<pod-ip>" }, { "id": "b" }] } })
        );
    }
}
