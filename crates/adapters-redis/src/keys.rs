//! The key layout. Every key names its owner inside a hash tag (`{...}`), so on a Redis
//! Cluster each key, and so each script, lives in one hash slot.

use factors_domain::{PhoneNumber, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct Keys {
    /// `<prefix><instance>`, for example `factors:prod-1`.
    namespace: String,
    /// Keys the hash of phone numbers in key names, so they cannot be found by trying
    /// every number.
    phone_key: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

/// Braces would end the hash tag early; they are the only characters that need escaping.
fn tag_safe(id: &str) -> String {
    id.replace('%', "%25").replace('{', "%7B").replace('}', "%7D")
}

impl Keys {
    /// `phone_key` is a secret of the deployment (factors uses its code key).
    pub fn new(prefix: &str, instance: &str, phone_key: &[u8]) -> Self {
        Self { namespace: format!("{}{}", prefix, tag_safe(instance)), phone_key: phone_key.to_vec() }
    }

    /// The cached snapshot of `user`.
    pub fn snapshot(&self, user: &UserId) -> String {
        format!("{{{}:u:{}}}:snapshot", self.namespace, tag_safe(user.as_str()))
    }

    /// The SMS sent on behalf of `user`.
    pub fn sms_by_user(&self, user: &UserId) -> String {
        format!("{{{}:u:{}}}:sms", self.namespace, tag_safe(user.as_str()))
    }

    /// The SMS sent to numbers of `region` (a CLDR code, or `001`).
    pub fn sms_to_region(&self, region: &str) -> String {
        format!("{{{}:c:{}}}:sms", self.namespace, tag_safe(region))
    }

    /// The SMS sent to numbers beginning with `digits` (leading digits of E.164, no `+`).
    /// A prefix short of a whole number names no one, and operators read it in plain.
    pub fn sms_to_prefix(&self, digits: &str) -> String {
        format!("{{{}:x:{}}}:sms", self.namespace, tag_safe(digits))
    }

    /// The SMS sent to `phone`. The number goes through a keyed hash, so key listings and
    /// monitoring never show phone numbers, nor anything that could be tried against them.
    pub fn sms_to_phone(&self, phone: &PhoneNumber) -> String {
        // An HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.phone_key).expect("HMAC takes keys of any length");
        mac.update(b"factors-redis-phone-key\0");
        mac.update(phone.as_e164().as_bytes());
        let hex: String = mac.finalize().into_bytes().iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{{{}:p:{hex}}}:sms", self.namespace)
    }

    /// The key the readiness probe writes: a write, so a Redis that answers `PING` but
    /// refuses writes (a demoted master, a full memory) is found out.
    pub fn probe(&self) -> String {
        format!("{{{}:health}}:probe", self.namespace)
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
        let keys = Keys::new("factors:", "inst", b"a-test-secret");
        for id in ["alice", "a}b{c", "%7D"] {
            let user = UserId::new(id).expect("valid");
            let cache = keys.snapshot(&user);
            assert_eq!(hash_tag(&cache), hash_tag(&keys.sms_by_user(&user)), "{id}");
            assert!(cache.ends_with(":snapshot"));
        }
        assert_ne!(
            hash_tag(&keys.snapshot(&UserId::new("a}b").expect("valid"))),
            hash_tag(&keys.snapshot(&UserId::new("a").expect("valid"))),
        );
    }

    #[test]
    fn phone_keys_do_not_show_the_number() {
        let phone = PhoneNumber::parse("+41791234567").expect("valid");
        let key = Keys::new("factors:", "inst", b"a-test-secret").sms_to_phone(&phone);
        assert!(!key.contains("791234567"), "{key}");
    }
}
