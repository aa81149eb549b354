//! The key layout. Every key names its owner inside a hash tag (`{...}`), so on a Redis
//! Cluster each key, and so each script, lives in one hash slot.

use factors_domain::{PhoneNumber, UserId};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Keys {
    /// `<prefix><instance>`, for example `factors:prod-1`.
    namespace: String,
}

/// Braces would end the hash tag early; they are the only characters that need escaping.
fn tag_safe(id: &str) -> String {
    id.replace('%', "%25").replace('{', "%7B").replace('}', "%7D")
}

impl Keys {
    pub fn new(prefix: &str, instance: &str) -> Self {
        Self { namespace: format!("{}{}", prefix, tag_safe(instance)) }
    }

    /// The cached OTP SMS authenticators of `user` at the user's `sequence`.
    pub fn otp_sms(&self, user: &UserId, sequence: u64) -> String {
        format!("{{{}:u:{}}}:otp_sms:{sequence}", self.namespace, tag_safe(user.as_str()))
    }

    /// The SMS sent on behalf of `user`.
    pub fn sms_by_user(&self, user: &UserId) -> String {
        format!("{{{}:u:{}}}:sms", self.namespace, tag_safe(user.as_str()))
    }

    /// The SMS sent to `phone`. The number is hashed so that key listings and monitoring
    /// never show phone numbers.
    pub fn sms_to_phone(&self, phone: &PhoneNumber) -> String {
        let digest = Sha256::digest(phone.as_e164().as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("{{{}:p:{hex}}}:sms", self.namespace)
    }

    /// The pattern of every key this layout makes, for cleaning up after tests.
    pub fn pattern(&self) -> String {
        format!("{{{}:*", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').expect("a tag");
        let close = key[open..].find('}').expect("closed") + open;
        &key[open + 1..close]
    }

    #[test]
    fn a_users_keys_share_one_hash_tag_and_ids_cannot_break_out_of_it() {
        let keys = Keys::new("factors:", "inst");
        for id in ["alice", "a}b{c", "%7D"] {
            let user = UserId::new(id).expect("valid");
            let cache = keys.otp_sms(&user, 7);
            assert_eq!(hash_tag(&cache), hash_tag(&keys.sms_by_user(&user)), "{id}");
            assert!(cache.ends_with(":otp_sms:7"));
        }
        assert_ne!(
            hash_tag(&keys.otp_sms(&UserId::new("a}b").expect("valid"), 1)),
            hash_tag(&keys.otp_sms(&UserId::new("a").expect("valid"), 1)),
        );
    }

    #[test]
    fn phone_keys_do_not_show_the_number() {
        let phone = PhoneNumber::parse("+41791234567").expect("valid");
        let key = Keys::new("factors:", "inst").sms_to_phone(&phone);
        assert!(!key.contains("791234567"), "{key}");
    }
}
