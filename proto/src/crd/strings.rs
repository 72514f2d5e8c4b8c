//! String fields with a set of named values.
//!
//! OpenKruise's Go types declare these fields as strings: its CRDs take any string
//! there (only a few list an `enum`), its webhooks check some values and not
//! others, and Go reads an empty string as the field being unset. `open_enum!`
//! gives each such field a Rust enum with the named values plus `Other` for any
//! other string, which is kept as written: decoding never fails on a value, the
//! webhooks refuse what OpenKruise refuses, and an unknown value elsewhere is the
//! controllers' concern. [`empty_as_none`] reads `""` as unset, as Go does.

use serde::{Deserialize, Deserializer};

/// Declares a string type with named values, `Other(String)` for any other value,
/// and a CRD schema that is `free` (any string), `closed` (an `enum` of the named
/// values) or `closed_or_empty` (the named values and `""`), as OpenKruise's CRD
/// has it. One variant is marked `#[default]`.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($schema:ident) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value OpenKruise does not name, kept as written.
            Other(String),
        }

        impl $name {
            /// The values OpenKruise names, in its order.
            pub const VALUES: &'static [&'static str] = &[$($value),+];

            /// The value as written.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $value, )+
                    Self::Other(s) => s,
                }
            }

            /// Whether it is one of [`Self::VALUES`].
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $value => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::from(s.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d).map(Self::from)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $crate::crd::strings::open_enum!(@schema $schema [$($value),+])
            }
        }
    };
    (@schema free [$($value:literal),+]) => {
        schemars::json_schema!({ "type": "string" })
    };
    (@schema closed [$($value:literal),+]) => {
        schemars::json_schema!({ "type": "string", "enum": [$($value),+] })
    };
    (@schema closed_or_empty [$($value:literal),+]) => {
        schemars::json_schema!({ "type": "string", "enum": [$($value),+, ""] })
    };
}

pub(crate) use open_enum;

/// Reads an optional string-valued field with `""` as unset, as Go reads it (its
/// defaults fill an empty string as they fill a missing one). For
/// `#[serde(default, deserialize_with = "...")]`.
///
/// # Errors
/// When the value is neither a string nor null.
pub fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).map(T::from))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    open_enum! {
        /// A test type.
        pub enum Mode(free) {
            /// Fast.
            #[default]
            Fast = "Fast",
            /// Slow.
            Slow = "slow",
        }
    }

    open_enum! {
        /// A test type with a closed schema.
        pub enum Kind(closed_or_empty) {
            /// A.
            #[default]
            A = "A",
        }
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")]
        mode: Option<Mode>,
    }

    #[test]
    fn named_and_other_values_round_trip() {
        for (text, value) in
            [("Fast", Mode::Fast), ("slow", Mode::Slow), ("Sideways", Mode::Other("Sideways".into()))]
        {
            let holder: Holder = serde_json::from_value(serde_json::json!({"mode": text})).unwrap();
            assert_eq!(holder.mode.as_ref(), Some(&value));
            assert_eq!(serde_json::to_value(&holder).unwrap()["mode"], text);
        }
        assert!(Mode::Slow.is_known() && !Mode::from("x").is_known());
        assert_eq!(Mode::VALUES, ["Fast", "slow"]);
    }

    #[test]
    fn an_empty_string_is_unset() {
        let holder: Holder = serde_json::from_value(serde_json::json!({"mode": ""})).unwrap();
        assert_eq!(holder, Holder::default());
        let holder: Holder = serde_json::from_value(serde_json::json!({"mode": null})).unwrap();
        assert_eq!(holder, Holder::default());
        assert!(serde_json::from_value::<Holder>(serde_json::json!({"mode": 3})).is_err());
    }

    #[test]
    fn schemas_are_free_or_closed() {
        let mode = serde_json::to_value(schemars::schema_for!(Mode)).unwrap();
        assert_eq!(mode["type"], "string");
        assert!(mode.get("enum").is_none());
        let kind = serde_json::to_value(schemars::schema_for!(Kind)).unwrap();
        assert_eq!(kind["enum"], serde_json::json!(["A", ""]));
        assert_eq!((Kind::VALUES, Kind::A.is_known()), (&["A"][..], true));
    }
}
