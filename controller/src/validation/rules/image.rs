//! Image references: the one parser lives in `stevedore_proto::image`.

/// Parses an image reference as containerd and Docker read it (`nginx`,
/// `registry:5000/team/app:1.2`, `app@sha256:…`), or says why it is not one.
pub fn image_reference(image: &str) -> Result<(), String> {
    stevedore_proto::image::parse(image).map(|_| ())
}
