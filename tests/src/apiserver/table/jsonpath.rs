//! The JSONPath that CRD printer columns use: `.a.b`, `['a.b']`, `[0]`, `[*]`, and
//! filters `[?(@.type=="Ready")]` (`==`, `!=`, or existence of a field).

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
    Filter { path: Vec<String>, op: Option<(bool, Value)> },
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut s = p.trim_start_matches('$');
    let mut out = Vec::new();
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                out.push(Step::Key(r[..end].to_string()));
            }
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = r.find(']')?;
            // A filter may hold `]` inside quotes; find the one closing `)]`.
            let (inner, rest) = if r.starts_with("?(") {
                let close = r.find(")]")?;
                (&r[..close + 1], &r[close + 2..])
            } else {
                (&r[..end], &r[end + 1..])
            };
            out.push(bracket(inner)?);
            s = rest;
        } else {
            return None;
        }
    }
    Some(out)
}

fn bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse() {
        return Some(Step::Index(i));
    }
    if let Some(q) = inner.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) {
        return Some(Step::Key(q.to_string()));
    }
    let f = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, op) = match (f.split_once("=="), f.split_once("!=")) {
        (Some((l, r)), _) => (l, Some((true, literal(r)))),
        (_, Some((l, r))) => (l, Some((false, literal(r)))),
        _ => (f, None),
    };
    let path = lhs.trim().strip_prefix('@')?.split('.').filter(|k| !k.is_empty()).map(String::from).collect();
    Some(Step::Filter { path, op })
}

fn literal(s: &str) -> Value {
    let s = s.trim();
    if let Some(q) = s.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        return Value::String(q.into());
    }
    if let Some(q) = s.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) {
        return Value::String(q.into());
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.into()))
}

/// Every value `path` selects in `v`.
pub fn find<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else { return Vec::new() };
    let mut cur = vec![v];
    for step in &steps {
        let mut next = Vec::new();
        for c in cur {
            match step {
                Step::Key(k) => next.extend(c.get(k.as_str())),
                Step::Index(i) => next.extend(c.get(*i)),
                Step::All => match c {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter { path, op } => {
                    for item in c.as_array().into_iter().flatten() {
                        let got = path.iter().try_fold(item, |v, k| v.get(k.as_str()));
                        let keep = match (got, op) {
                            (Some(g), Some((true, want))) => g == want,
                            (Some(g), Some((false, want))) => g != want,
                            (None, Some((false, _))) => true,
                            (Some(_), None) => true,
                            _ => false,
                        };
                        if keep {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur.into_iter().filter(|v| !v.is_null()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn printer_column_paths() {
        let o = json!({"spec": {"a.b": 1, "l": [{"t": "x", "v": 1}, {"t": "y", "v": 2}]}});
        assert_eq!(find(&o, ".spec['a.b']"), [&json!(1)]);
        assert_eq!(find(&o, ".spec.l[1].v"), [&json!(2)]);
        assert_eq!(find(&o, ".spec.l[*].t"), [&json!("x"), &json!("y")]);
        assert_eq!(find(&o, ".spec.l[?(@.t==\"y\")].v"), [&json!(2)]);
        assert_eq!(find(&o, ".spec.l[?(@.t!='y')].v"), [&json!(1)]);
        assert!(find(&o, ".spec.missing").is_empty());
        assert!(find(&o, "nonsense").is_empty());
    }
}
