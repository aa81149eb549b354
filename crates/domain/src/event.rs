//! Audit events: every write appends one, in the same statement as the write.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::{OrgId, Origin, OtpSmsId, SchemaId, UserId};

/// What happened. Payloads carry masked phone numbers only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    UserAdded {
        org: OrgId,
        schema_id: SchemaId,
    },
    UserRemoved,
    /// Locked: it cannot sign in until it is unlocked.
    UserLocked,
    UserUnlocked,
    /// Deactivated: it cannot sign in until it is activated; its data stay.
    UserDeactivated,
    UserReactivated,
    OtpSmsAdded {
        authenticator: OtpSmsId,
        masked_phone: String,
        verified: bool,
    },
    OtpSmsVerified {
        authenticator: OtpSmsId,
    },
    /// `last_factor`: the user held no other verified second factor (an administrator's
    /// lockout recovery, or a removal no policy forbade).
    OtpSmsRemoved {
        authenticator: OtpSmsId,
        masked_phone: String,
        last_factor: bool,
    },
}

/// An event on the user aggregate: `actor` did `kind` to `user` at `at`, from `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub user: UserId,
    pub actor: UserId,
    pub origin: Origin,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
}

impl Event {
    /// The aggregate all events of factors belong to.
    pub const AGGREGATE_TYPE: &'static str = "user";

    /// The type of the event that ends a life of a user id: the audit trail of the id's
    /// current life starts after the last one.
    pub const REMOVED_TYPE: &'static str = "user.removed";

    /// ZITADEL's name of the event type.
    pub fn event_type(&self) -> &'static str {
        match self.kind {
            EventKind::UserAdded { .. } => "user.human.added",
            EventKind::UserRemoved => Self::REMOVED_TYPE,
            EventKind::UserLocked => "user.locked",
            EventKind::UserUnlocked => "user.unlocked",
            EventKind::UserDeactivated => "user.deactivated",
            EventKind::UserReactivated => "user.reactivated",
            EventKind::OtpSmsAdded { .. } => "user.human.mfa.otp.sms.added",
            EventKind::OtpSmsVerified { .. } => "user.human.mfa.otp.sms.verified",
            EventKind::OtpSmsRemoved { .. } => "user.human.mfa.otp.sms.removed",
        }
    }

    /// The payload, self-contained: who, to whom, what and when, even read alone.
    pub fn payload(&self) -> serde_json::Value {
        // Strings and booleans under string keys: serializing them into a map cannot fail.
        serde_json::to_value(self.stored_payload()).expect("an event payload is a JSON object")
    }

    /// The same object as [`Event::payload`], to serialize straight into a column without
    /// building a map first (the store writes one per change).
    pub fn stored_payload(&self) -> StoredPayload<'_> {
        let details = match &self.kind {
            EventKind::UserAdded { org, schema_id } => {
                Details::UserAdded { org_id: org.as_str(), schema_id: schema_id.as_str() }
            }
            EventKind::UserRemoved
            | EventKind::UserLocked
            | EventKind::UserUnlocked
            | EventKind::UserDeactivated
            | EventKind::UserReactivated => Details::None {},
            EventKind::OtpSmsAdded { authenticator, masked_phone, verified } => {
                Details::OtpSmsAdded { otp_sms_id: authenticator.as_str(), phone: masked_phone, is_verified: *verified }
            }
            EventKind::OtpSmsVerified { authenticator } => {
                Details::OtpSmsVerified { otp_sms_id: authenticator.as_str() }
            }
            EventKind::OtpSmsRemoved { authenticator, masked_phone, last_factor } => Details::OtpSmsRemoved {
                otp_sms_id: authenticator.as_str(),
                phone: masked_phone,
                last_factor: *last_factor,
            },
        };
        StoredPayload {
            actor: self.actor.as_str(),
            user_id: self.user.as_str(),
            at: self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            origin: &self.origin,
            details,
        }
    }
}

/// An event's payload, borrowed from the event ([`Event::stored_payload`]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPayload<'a> {
    actor: &'a str,
    user_id: &'a str,
    at: String,
    #[serde(skip_serializing_if = "Origin::is_empty")]
    origin: &'a Origin,
    #[serde(flatten)]
    details: Details<'a>,
}

/// What each kind of event adds to the payload.
#[derive(Debug, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum Details<'a> {
    UserAdded { org_id: &'a str, schema_id: &'a str },
    None {},
    OtpSmsAdded { otp_sms_id: &'a str, phone: &'a str, is_verified: bool },
    OtpSmsVerified { otp_sms_id: &'a str },
    OtpSmsRemoved { otp_sms_id: &'a str, phone: &'a str, last_factor: bool },
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn a_removal_event_names_actor_origin_user_authenticator_masked_phone_and_time() {
        let event = Event {
            user: UserId::new("u1").expect("id"),
            actor: UserId::new("admin").expect("id"),
            origin: Origin {
                client_address: Some("203.0.113.7".parse().expect("address")),
                user_agent: Some("console/1.0".into()),
                request_id: Some("r-1".into()),
                trace_id: None,
                amr: vec!["pwd".into(), "otp".into()],
            },
            at: Utc.with_ymd_and_hms(2024, 11, 22, 9, 31, 2).single().expect("time"),
            kind: EventKind::OtpSmsRemoved {
                authenticator: OtpSmsId::new("a1").expect("id"),
                masked_phone: "+41******567".to_owned(),
                last_factor: true,
            },
        };
        assert_eq!(event.event_type(), "user.human.mfa.otp.sms.removed");
        assert_eq!(
            event.payload(),
            json!({"actor": "admin", "userId": "u1", "otpSmsId": "a1", "phone": "+41******567", "lastFactor": true,
                   "at": "2024-11-22T09:31:02Z",
                   "origin": {"clientAddress": "203.0.113.7", "userAgent": "console/1.0", "requestId": "r-1",
                              "amr": ["pwd", "otp"]}})
        );
        let stored = serde_json::to_string(&event.stored_payload()).expect("serializes");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&stored).expect("JSON"), event.payload());
    }

    #[test]
    fn every_kind_of_event_has_its_payload_and_the_stored_form_is_the_same_object() {
        let event = |kind| Event {
            user: UserId::new("u1").expect("id"),
            actor: UserId::new("admin").expect("id"),
            origin: Origin::default(),
            at: Utc.with_ymd_and_hms(2024, 11, 22, 9, 31, 2).single().expect("time")
                + chrono::Duration::milliseconds(5),
            kind,
        };
        let common = json!({"actor": "admin", "userId": "u1", "at": "2024-11-22T09:31:02.005Z"});
        let with = |details: serde_json::Value| {
            let mut payload = common.clone();
            if let (Some(payload), Some(details)) = (payload.as_object_mut(), details.as_object()) {
                payload.extend(details.clone());
            }
            payload
        };
        let a1 = || OtpSmsId::new("a1").expect("id");
        let cases = [
            (
                event(EventKind::UserAdded {
                    org: OrgId::new("org-a").expect("id"),
                    schema_id: SchemaId::new("human").expect("id"),
                }),
                with(json!({"orgId": "org-a", "schemaId": "human"})),
            ),
            (event(EventKind::UserRemoved), common.clone()),
            (
                event(EventKind::OtpSmsAdded {
                    authenticator: a1(),
                    masked_phone: "+41******567".to_owned(),
                    verified: false,
                }),
                with(json!({"otpSmsId": "a1", "phone": "+41******567", "isVerified": false})),
            ),
            (event(EventKind::OtpSmsVerified { authenticator: a1() }), with(json!({"otpSmsId": "a1"}))),
            (
                event(EventKind::OtpSmsRemoved {
                    authenticator: a1(),
                    masked_phone: "+41******567".to_owned(),
                    last_factor: false,
                }),
                with(json!({"otpSmsId": "a1", "phone": "+41******567", "lastFactor": false})),
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(event.payload(), expected, "{:?}", event.kind);
            let stored = serde_json::to_string(&event.stored_payload()).expect("serializes");
            let stored: serde_json::Value = serde_json::from_str(&stored).expect("JSON");
            assert_eq!(stored, expected, "the stored form of {:?}", event.kind);
        }
    }
}
