//! Users: the owners of authenticators.

use chrono::{DateTime, Utc};

use crate::{OrgId, PhoneNumber, SchemaId, UserId};

/// Lifecycle state of a user, numbered as ZITADEL's `State` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    Active,
    Inactive,
    Deleted,
    Locked,
}

/// A user as factors keeps it. `changed` and `sequence` move with every write that
/// touches the user or one of its authenticators.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub org: OrgId,
    pub state: UserState,
    pub schema_id: SchemaId,
    pub data: UserData,
    pub contact: Contact,
    pub created: DateTime<Utc>,
    pub changed: DateTime<Utc>,
    pub sequence: u64,
}

/// Free-form user data (a protobuf `Struct`): always a JSON object, without the NUL
/// character in any key or string (PostgreSQL's `jsonb` cannot hold it, and data must move
/// between the stores unchanged). Schema validation is out of scope; the data is stored and
/// returned as given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserData(serde_json::Map<String, serde_json::Value>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    #[error("user data must be a JSON object")]
    NotAnObject,
    #[error("user data must not contain the NUL character (\\u0000)")]
    NulCharacter,
}

impl UserData {
    /// # Errors
    /// [`UserDataError::NotAnObject`] for anything but an object (or null, which is empty);
    /// [`UserDataError::NulCharacter`] for a NUL in a key or string, at any depth.
    pub fn new(value: serde_json::Value) -> Result<Self, UserDataError> {
        if holds_nul(&value) {
            return Err(UserDataError::NulCharacter);
        }
        match value {
            serde_json::Value::Object(map) => Ok(Self(map)),
            serde_json::Value::Null => Ok(Self::default()),
            _ => Err(UserDataError::NotAnObject),
        }
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.clone())
    }
}

/// Whether a NUL character is in any key or string of `value`. Depth is bounded by the
/// JSON parser (serde_json refuses nesting deeper than 128) and by protobuf's decoder.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => false,
    }
}

/// Contact data of a user, with whether each item was proven.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    pub email: Option<ContactEmail>,
    pub phone: Option<ContactPhone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEmail {
    pub address: EmailAddress,
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPhone {
    pub number: PhoneNumber,
    pub verified: bool,
}

/// An e-mail address, checked for shape only (one `@`, a non-empty local part and
/// domain, no whitespace): deliverability is proven by the verification code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("e-mail address is not of the form local@domain")]
    Malformed,
    #[error("e-mail address is longer than 254 characters")]
    TooLong,
}

impl EmailAddress {
    /// # Errors
    /// [`EmailError`] when the address is too long or not of the form `local@domain`.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let input = input.trim();
        if input.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let well_formed = matches!(input.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
            && !input.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(EmailError::Malformed);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_must_be_an_object() {
        assert!(UserData::new(serde_json::json!({"name": "Ada"})).is_ok());
        assert_eq!(UserData::new(serde_json::Value::Null), Ok(UserData::default()));
        for value in [serde_json::json!([1]), serde_json::json!("x"), serde_json::json!(3)] {
            assert_eq!(UserData::new(value.clone()), Err(UserDataError::NotAnObject), "{value}");
        }
    }

    #[test]
    fn user_data_holds_no_nul_character_anywhere() {
        let cases = [
            (serde_json::json!({"a\u{0}b": 1}), "a key"),
            (serde_json::json!({"name": "Ada\u{0}"}), "a string value"),
            (serde_json::json!({"n": {"deep": ["x", "\u{0}"]}}), "nested in a list in an object"),
            (serde_json::json!({"n": [{"k\u{0}": null}]}), "a key nested in a list"),
        ];
        for (value, case) in cases {
            assert_eq!(UserData::new(value), Err(UserDataError::NulCharacter), "{case}");
        }
        assert!(UserData::new(serde_json::json!({"name": "Ada \u{1} Lovelace", "n": [0, "\u{7f}"]})).is_ok());
    }

    #[test]
    fn email_addresses_are_checked_for_shape() {
        assert_eq!(EmailAddress::parse(" ada@example.com ").map(|e| e.0), Ok("ada@example.com".to_owned()));
        for bad in ["", "ada", "@example.com", "ada@", "a@b@c", "ada @example.com"] {
            assert_eq!(EmailAddress::parse(bad), Err(EmailError::Malformed), "{bad:?}");
        }
        assert_eq!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(250))), Err(EmailError::TooLong));
    }
}
