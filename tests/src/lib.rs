//! Stevedore test beds.
