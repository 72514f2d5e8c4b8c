//! A webhook's `matchConditions`: CEL expressions over the request that decide
//! whether it is called, as kube-apiserver evaluates them (after its rules and
//! selectors matched). Any condition `false`: the webhook is skipped. All `true`:
//! it is called. Otherwise (an expression failed, or is not a bool): an error,
//! which the webhook's `failurePolicy` decides about like a failed call.
//!
//! The variables are `request` (the `AdmissionRequest` the webhook would get,
//! without its objects), `object` and `oldObject` (`null` where the operation has
//! none). The `authorizer` variable is not available (an expression using it fails).

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
};

use k8s_openapi::api::admissionregistration::v1::MatchCondition;
use serde_json::Value;

/// What the conditions say.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every condition holds (or there are none): call the webhook.
    Call,
    /// A condition is false: skip it.
    Skip,
    /// No condition is false and at least one could not be evaluated.
    Error(String),
}

/// Evaluates `conditions` on `request` (the review's request, objects left out),
/// `object` and `old_object`.
pub(super) fn evaluate(
    conditions: &[MatchCondition],
    request: &Value,
    object: &Value,
    old_object: &Value,
) -> Verdict {
    if conditions.is_empty() {
        return Verdict::Call;
    }
    let mut context = cel::Context::default();
    // Only the variables an expression names are bound: binding converts the whole
    // object (a pod, at every write of one) and most conditions read only `request`.
    let named = |name: &str| conditions.iter().any(|c| c.expression.contains(name));
    let bound = [("request", request), ("object", object), ("oldObject", old_object)]
        .into_iter()
        .filter(|(name, _)| named(name))
        .try_for_each(|(name, value)| context.add_variable(name, value));
    if let Err(err) = bound {
        return Verdict::Error(format!("cannot bind the request for CEL: {err}"));
    }
    let mut errors = Vec::new();
    for condition in conditions {
        match check(&context, &condition.expression) {
            Ok(true) => {}
            Ok(false) => return Verdict::Skip,
            Err(err) => errors.push(format!("expression '{}' resulted in error: {err}", condition.name)),
        }
    }
    if errors.is_empty() { Verdict::Call } else { Verdict::Error(errors.join("; ")) }
}

/// `expression` compiled, once (as kube-apiserver compiles a configuration's
/// conditions when it loads it, not at every request).
fn compiled(expression: &str) -> Result<Arc<cel::Program>, String> {
    type Programs = HashMap<String, Result<Arc<cel::Program>, String>>;
    static PROGRAMS: LazyLock<Mutex<Programs>> = LazyLock::new(Default::default);
    let mut programs = PROGRAMS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let compile =
        || cel::Program::compile(expression).map(Arc::new).map_err(|e| format!("compilation failed: {e}"));
    programs.entry(expression.to_owned()).or_insert_with(compile).clone()
}

fn check(context: &cel::Context<'_, '_>, expression: &str) -> Result<bool, String> {
    let program = compiled(expression)?;
    match program.execute(context).map_err(|e| e.to_string())? {
        cel::Value::Bool(b) => Ok(b),
        other => Err(format!("must evaluate to bool, got {:?}", other.type_of())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn condition(name: &str, expression: &str) -> MatchCondition {
        MatchCondition { name: name.into(), expression: expression.into() }
    }

    fn request(username: &str) -> Value {
        json!({"operation": "UPDATE", "subResource": "status",
               "resource": {"group": "", "version": "v1", "resource": "pods"},
               "userInfo": {"username": username, "groups": ["system:authenticated"],
                            "extra": {"authentication.kubernetes.io/node-name": ["n1"]}}})
    }

    #[test]
    fn all_true_calls_any_false_skips_errors_otherwise() {
        let agent = condition(
            "agent",
            "request.userInfo.username == 'system:serviceaccount:ns:agent' || \
             request.userInfo.username.startsWith('agent:')",
        );
        let pod = json!({"spec": {"nodeName": "n1"}});
        let eval = |conds: &[MatchCondition], user: &str| evaluate(conds, &request(user), &pod, &Value::Null);
        assert_eq!(eval(std::slice::from_ref(&agent), "system:serviceaccount:ns:agent"), Verdict::Call);
        assert_eq!(eval(std::slice::from_ref(&agent), "agent:n7"), Verdict::Call);
        assert_eq!(eval(std::slice::from_ref(&agent), "system:admin"), Verdict::Skip);
        assert_eq!(eval(&[], "system:admin"), Verdict::Call, "no conditions: called");
        let node = condition(
            "node",
            "object.spec.nodeName == request.userInfo.extra['authentication.kubernetes.io/node-name'][0]",
        );
        assert_eq!(eval(&[agent.clone(), node], "agent:n1"), Verdict::Call);
        let status = condition("status", "request.subResource == 'status' && oldObject == null");
        assert_eq!(eval(&[status], "x"), Verdict::Call);
        // an error with no false condition is an error; a false one wins over it
        let broken = condition("broken", "request.nosuch.field == 1");
        assert!(
            matches!(eval(std::slice::from_ref(&broken), "agent:n1"), Verdict::Error(e) if e.contains("'broken'"))
        );
        assert_eq!(eval(&[broken.clone(), agent.clone()], "system:admin"), Verdict::Skip);
        let not_bool = condition("size", "size(request.userInfo.groups)");
        assert!(matches!(eval(&[not_bool], "x"), Verdict::Error(e) if e.contains("bool")));
        let bad = condition("syntax", "request.userInfo.username ==");
        assert!(matches!(eval(&[bad], "x"), Verdict::Error(_)));
        let authorizer = condition("authz", "authorizer.group('').resource('pods').check('get').allowed()");
        assert!(matches!(eval(&[authorizer], "x"), Verdict::Error(_)), "authorizer is not available");
    }
}
