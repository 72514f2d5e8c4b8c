//! The project's binaries, as the suites start them: built next to the running test
//! or benchmark binary (`cargo build --workspace --bins`, same profile).

use std::path::PathBuf;

use anyhow::bail;

/// The path of binary `name` next to the running executable.
///
/// # Errors
/// It has not been built.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/<bin>, or target/<profile>/deps/<test> for test binaries
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} is not built next to {}: run `cargo build --workspace --bins` (same profile) first",
        exe.display()
    )
}
