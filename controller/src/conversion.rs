//! CRD conversion between v1alpha1 and v1beta1 (the hub is v1beta1, as in
//! OpenKruise), one [`Convert`] per kind, registered in [`register`].
//!
//! Kinds whose two versions have the same fields (BroadcastJob, ImagePullJob,
//! ImageListPullJob) convert through their typed forms: the object is read as the
//! version it is in and written as the desired one, so a field either version lacks
//! is an error, never silently dropped.

use std::marker::PhantomData;

use kube::Resource;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use stevedore_proto::crd::{APPS_GROUP, broadcast_job, image_list_pull_job, image_pull_job};

use crate::webhook::{Convert, Registry};

/// Registers every kind's converter.
pub fn register(registry: &mut Registry) {
    registry.conversion(
        APPS_GROUP,
        "BroadcastJob",
        std::sync::Arc::new(SameFields::<
            broadcast_job::v1alpha1::BroadcastJob,
            broadcast_job::v1beta1::BroadcastJob,
        >::new()),
    );
    registry.conversion(
        APPS_GROUP,
        "ImagePullJob",
        std::sync::Arc::new(SameFields::<
            image_pull_job::v1alpha1::ImagePullJob,
            image_pull_job::v1beta1::ImagePullJob,
        >::new()),
    );
    registry.conversion(
        APPS_GROUP,
        "ImageListPullJob",
        std::sync::Arc::new(SameFields::<
            image_list_pull_job::v1alpha1::ImageListPullJob,
            image_list_pull_job::v1beta1::ImageListPullJob,
        >::new()),
    );
}

/// Converts a kind whose versions `A` and `B` have the same fields.
#[derive(Debug)]
pub struct SameFields<A, B>(PhantomData<fn() -> (A, B)>);

impl<A, B> SameFields<A, B> {
    /// The converter.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<A, B> Default for SameFields<A, B> {
    fn default() -> Self {
        Self::new()
    }
}

type Typed = dyn Fn(Value) -> Result<Value, String>;

/// Reads `object` as `S` and writes it as `T`.
fn via<S, T>(object: Value) -> Result<Value, String>
where
    S: DeserializeOwned + Serialize + Resource<DynamicType = ()>,
    T: DeserializeOwned + Serialize + Resource<DynamicType = ()>,
{
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let source: S = serde_json::from_value(object)
        .map_err(|e| format!("{} {name:?} is not a valid {}: {e}", S::kind(&()), S::api_version(&())))?;
    let mut value = serde_json::to_value(&source).map_err(|e| e.to_string())?;
    value["apiVersion"] = Value::from(T::api_version(&()).into_owned());
    let target: T = serde_json::from_value(value).map_err(|e| {
        format!("{} {name:?} cannot be expressed in {}: {e}", T::kind(&()), T::api_version(&()))
    })?;
    serde_json::to_value(&target).map_err(|e| e.to_string())
}

impl<A, B> Convert for SameFields<A, B>
where
    A: DeserializeOwned + Serialize + Resource<DynamicType = ()> + 'static,
    B: DeserializeOwned + Serialize + Resource<DynamicType = ()> + 'static,
{
    fn convert(&self, object: Value, desired: &str) -> Result<Value, String> {
        let from = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        let (a, b) = (A::api_version(&()), B::api_version(&()));
        let step: &Typed = match (from.as_str(), desired) {
            (f, d) if f == d => return Ok(object),
            (f, d) if f == a && d == b => &via::<A, B>,
            (f, d) if f == b && d == a => &via::<B, A>,
            _ => return Err(format!("{} cannot be converted from {from:?} to {desired:?}", A::kind(&()))),
        };
        step(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(file: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(file);
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn round_trip(kind: &str, file: &str) {
        let mut registry = Registry::default();
        register(&mut registry);
        let conv = registry.converter(APPS_GROUP, kind).unwrap();
        let a1 = example(file);
        let b1 = conv.convert(a1.clone(), "apps.kruise.io/v1beta1").unwrap();
        assert_eq!(b1["apiVersion"], "apps.kruise.io/v1beta1");
        let back = conv.convert(b1.clone(), "apps.kruise.io/v1alpha1").unwrap();
        assert_eq!(back, a1, "{kind}: a1 -> b1 -> a1 lost something");
        let again = conv.convert(back, "apps.kruise.io/v1beta1").unwrap();
        assert_eq!(again, b1, "{kind}: b1 -> a1 -> b1 lost something");
    }

    #[test]
    fn same_field_kinds_round_trip_both_ways() {
        round_trip("BroadcastJob", "broadcastjob.yaml");
        round_trip("ImagePullJob", "imagepulljob.yaml");
        round_trip("ImageListPullJob", "imagelistpulljob.yaml");
    }

    #[test]
    fn unknown_versions_and_invalid_objects_are_refused_with_the_reason() {
        let conv =
            SameFields::<broadcast_job::v1alpha1::BroadcastJob, broadcast_job::v1beta1::BroadcastJob>::new();
        let mut obj = example("broadcastjob.yaml");
        let err = conv.convert(obj.clone(), "apps.kruise.io/v2").unwrap_err();
        assert!(err.contains("cannot be converted"), "{err}");
        obj["spec"]["parallelism"] = Value::from(vec![1, 2]);
        let err = conv.convert(obj, "apps.kruise.io/v1beta1").unwrap_err();
        assert!(err.contains("is not a valid apps.kruise.io/v1alpha1"), "{err}");
    }
}
