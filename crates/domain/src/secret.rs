//! How `Debug` output shows a secret a value may carry.

/// Whether a secret (a code, a session token) is there, never what it is: what a `Debug`
/// impl shows in its place.
pub fn redacted<T>(secret: Option<&T>) -> &'static str {
    if secret.is_some() { "Some(<redacted>)" } else { "None" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_shows_only_whether_it_is_there() {
        assert_eq!(redacted(Some(&"424242")), "Some(<redacted>)");
        assert_eq!(redacted::<&str>(None), "None");
    }
}
