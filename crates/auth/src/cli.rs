//! `tandem token`: a dev token for the instance whose keys are in a data directory.

use std::path::Path;
use std::time::Duration;

use crate::error::IssuerError;
use crate::issuer::{Issuer, TokenSpec, default_scopes};
use crate::roles;

/// The client id `tandem token` tokens carry.
pub const CLI_CLIENT_ID: &str = "tandem-cli";
/// Long enough for a working session or a benchmark run.
pub const CLI_TOKEN_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// `ROLE_`-prefixed, upper-case role names (`read_non_associations` →
/// `ROLE_READ_NON_ASSOCIATIONS`); blanks dropped; every estate role when none are given.
pub fn normalise_roles(roles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in roles.iter().flat_map(|r| r.split(',')) {
        let r = r.trim().to_ascii_uppercase();
        if r.is_empty() {
            continue;
        }
        let r = if r.starts_with("ROLE_") {
            r
        } else {
            format!("ROLE_{r}")
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        out = roles::ALL_ROLES.iter().map(|r| r.to_string()).collect();
    }
    out
}

/// Loads (or creates) the issuer in `data_dir` and mints a token it accepts: client
/// `tandem-cli`, `roles` (all roles when empty), `user` as `user_name`, `scopes`
/// (read+write when empty), valid for 12 hours.
pub fn cli_token(
    data_dir: &Path,
    roles: &[String],
    user: Option<&str>,
    scopes: &[String],
) -> Result<String, IssuerError> {
    let issuer = Issuer::load_or_create(data_dir)?;
    let scopes: Vec<String> = scopes
        .iter()
        .flat_map(|s| s.split([',', ' ']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut spec = TokenSpec::client(CLI_CLIENT_ID, normalise_roles(roles))
        .with_scopes(if scopes.is_empty() {
            default_scopes()
        } else {
            scopes
        })
        .with_ttl(CLI_TOKEN_TTL);
    if let Some(u) = user.map(str::trim).filter(|u| !u.is_empty()) {
        spec = spec.with_user(u);
    }
    issuer.mint(&spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_get_their_prefix() {
        let r = normalise_roles(&["read_non_associations".into(), " ROLE_X ".into(), "".into()]);
        assert_eq!(r, vec!["ROLE_READ_NON_ASSOCIATIONS", "ROLE_X"]);
        assert_eq!(normalise_roles(&[]).len(), roles::ALL_ROLES.len());
    }
}
