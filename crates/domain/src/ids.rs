//! Identifiers as validated newtypes, and the shape of the ids factors mints.

use std::fmt;

/// Longest identifier accepted, in characters (docs/CONTRACT.md: 1 to 200 characters).
pub const MAX_ID_CHARS: usize = 200;

/// Which kind of identifier a value was meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    User,
    Org,
    Instance,
    OtpSms,
    Schema,
    Session,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::User => "user id",
            Self::Org => "organization id",
            Self::Instance => "instance id",
            Self::OtpSms => "otp sms id",
            Self::Schema => "schema id",
            Self::Session => "session id",
        })
    }
}

/// Why a string is not a valid identifier. The offending value is never echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0} must not be empty")]
    Empty(IdKind),
    #[error("{0} must be at most 200 characters")]
    TooLong(IdKind),
    #[error("{0} must not contain whitespace or control characters")]
    InvalidCharacter(IdKind),
    #[error("{0} cannot be used in a URL path (. or .., a leading _, or one of / \\ ? # %)")]
    NotAddressable(IdKind),
}

impl IdError {
    /// Which identifier was rejected.
    pub fn kind(&self) -> IdKind {
        match self {
            Self::Empty(kind) | Self::TooLong(kind) | Self::InvalidCharacter(kind) | Self::NotAddressable(kind) => {
                *kind
            }
        }
    }
}

fn validate(value: &str, what: IdKind) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty(what));
    }
    if value.chars().count() > MAX_ID_CHARS {
        return Err(IdError::TooLong(what));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IdError::InvalidCharacter(what));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$meta:meta])* $name:ident, $what:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts 1 to 200 characters without whitespace or control characters.
            ///
            /// # Errors
            /// [`IdError`] naming this identifier when the value breaks those rules.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate(&value, $what)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }
    };
}

identifier!(
    /// A user's id, unique within an instance.
    UserId,
    IdKind::User
);

impl UserId {
    /// A user id a client chooses for a new user: besides what [`UserId::new`] accepts, one
    /// that names the user in a REST path (`/resources/v3alpha/users/{id}/...`) as every
    /// client writes it. Refused: `.` and `..` (URL parsers drop them as dot segments);
    /// a leading `_` (ZITADEL's verbs, `_search`, `_verify`, sit beside ids in paths); `/`
    /// and `\` (path separators, to WHATWG URL parsers both); `?`, `#` and `%` (the start
    /// of a query, of a fragment, of an escape). Ids of users that exist are read with
    /// [`UserId::new`], so this rule never hides one.
    ///
    /// # Errors
    /// [`IdError::NotAddressable`], or what [`UserId::new`] refuses.
    pub fn new_addressable(value: impl Into<String>) -> Result<Self, IdError> {
        let id = Self::new(value)?;
        let unreachable = matches!(id.as_str(), "." | "..")
            || id.as_str().starts_with('_')
            || id.as_str().contains(['/', '\\', '?', '#', '%']);
        if unreachable { Err(IdError::NotAddressable(IdKind::User)) } else { Ok(id) }
    }
}
identifier!(
    /// An organization's id: the owner of users.
    OrgId,
    IdKind::Org
);
identifier!(
    /// The id of the (one) instance a deployment serves.
    InstanceId,
    IdKind::Instance
);
identifier!(
    /// The id of an OTP SMS authenticator.
    OtpSmsId,
    IdKind::OtpSms
);
identifier!(
    /// The id of a sign-in session.
    SessionId,
    IdKind::Session
);
identifier!(
    /// The id of the user schema a user's data follows (stored as given, not validated against).
    SchemaId,
    IdKind::Schema
);

/// Bits of a minted id, after the sign bit: 39 bits of time in 10 ms units, 8 bits of
/// sequence within one such unit, 16 bits of node. The same layout as sonyflake, which
/// ZITADEL's ids follow, so ids sort by creation time and fit a signed 64-bit integer.
const TIME_BITS: u32 = 39;
const SEQUENCE_BITS: u32 = 8;
const NODE_BITS: u32 = 16;

/// Composes a time-ordered 63-bit id from its parts; parts wider than their field are
/// truncated to it (the time field wraps after 174 years).
pub fn compose_flake_id(elapsed_10ms: u64, sequence: u8, node: u16) -> u64 {
    let time = elapsed_10ms & ((1 << TIME_BITS) - 1);
    (time << (SEQUENCE_BITS + NODE_BITS)) | (u64::from(sequence) << NODE_BITS) | u64::from(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_id_of_200_characters_is_accepted_and_201_is_not() {
        assert!(UserId::new("é".repeat(200)).is_ok());
        assert_eq!(UserId::new("1".repeat(201)), Err(IdError::TooLong(IdKind::User)));
    }

    #[test]
    fn empty_and_blank_ids_are_rejected() {
        let cases = [
            ("", IdError::Empty(IdKind::OtpSms)),
            (" ", IdError::InvalidCharacter(IdKind::OtpSms)),
            ("12 34", IdError::InvalidCharacter(IdKind::OtpSms)),
            ("12\n", IdError::InvalidCharacter(IdKind::OtpSms)),
            ("\u{0}", IdError::InvalidCharacter(IdKind::OtpSms)),
        ];
        for (input, expected) in cases {
            assert_eq!(OtpSmsId::new(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn a_user_id_chosen_at_creation_must_be_reachable_in_a_rest_path() {
        for unreachable in [".", "..", "_search", "_x", "a/b", "a\\b", "a?b", "a#b", "a%2Fb", "%"] {
            assert_eq!(
                UserId::new_addressable(unreachable),
                Err(IdError::NotAddressable(IdKind::User)),
                "{unreachable:?}"
            );
            assert!(UserId::new(unreachable).is_ok(), "{unreachable:?} still names a user that exists");
        }
        for reachable in ["alice", "a.b", ".alice", "...", "a_b", "alice_", "153845945488900096", "ñandú"] {
            assert_eq!(UserId::new_addressable(reachable).map(UserId::into_string), Ok(reachable.to_owned()));
        }
        assert_eq!(UserId::new_addressable(""), Err(IdError::Empty(IdKind::User)), "the other rules hold too");
        assert_eq!(UserId::new_addressable("a b"), Err(IdError::InvalidCharacter(IdKind::User)));
    }

    #[test]
    fn a_minted_id_keeps_its_parts_apart() {
        let id = compose_flake_id(1, 2, 3);
        assert_eq!(id, (1 << 24) | (2 << 16) | 3);
        assert!(compose_flake_id(u64::MAX, u8::MAX, u16::MAX) < (1 << 63), "fits in 63 bits");
    }

    proptest! {
        #[test]
        fn any_printable_id_within_bounds_round_trips(s in "[!-~\\p{L}]{1,200}") {
            let id = UserId::new(s.clone()).expect("printable ids are valid");
            prop_assert_eq!(id.as_str(), s.as_str());
        }

        #[test]
        fn ids_longer_than_200_characters_are_rejected(s in "[0-9a-z]{201,400}") {
            prop_assert_eq!(OrgId::new(s), Err(IdError::TooLong(IdKind::Org)));
        }

        #[test]
        fn minted_ids_are_ordered_by_time(t1 in 0u64..(1 << 39), t2 in 0u64..(1 << 39), s1: u8, s2: u8, n1: u16, n2: u16) {
            prop_assume!(t1 < t2);
            prop_assert!(compose_flake_id(t1, s1, n1) < compose_flake_id(t2, s2, n2));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = InstanceId::new(s);
        }
    }
}
