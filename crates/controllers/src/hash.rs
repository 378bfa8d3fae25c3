//! The `pod-template-hash` (§3.3).
//!
//! Scheme: FNV-1a 32-bit over a canonical dump of the pod template, followed (when the
//! Deployment has a `collisionCount`) by the count as a 32-bit little-endian integer padded to
//! 8 bytes; the resulting `u32` is printed in decimal and every digit is mapped through the
//! safe-encoding alphabet `bcdfghjklmnpqrstvwxz2456789` (index = byte % 27).
//!
//! The dump differs from Kubernetes (which uses Go's object printer): it is the compact JSON
//! serialization of the template with the `pod-template-hash` label removed. k8s-openapi
//! serializes struct fields in a fixed order and maps in key order, so the dump is stable and
//! depends only on the template content and `collisionCount`. Values are therefore not
//! byte-for-byte Kubernetes' values, but have the same format (1–10 characters from
//! `4 5 6 7 8 9 b c d f`), which is always a valid label value. Identity never depends on the
//! hash (see [`crate::template::equal_ignore_hash`]).

use crate::annotations::POD_TEMPLATE_HASH_LABEL;
use k8s_openapi::api::core::v1::PodTemplateSpec;

const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a 32-bit hash of `bytes`, continuing from `state` (start with the offset basis).
fn fnv1a32(mut state: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        state ^= u32::from(*b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// Maps every byte of `s` into the safe-encoding alphabet (rand.SafeEncodeString).
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// ComputeHash: the `pod-template-hash` value for `template` and `collision_count`.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut canonical = template.clone();
    if let Some(labels) = canonical.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    // Serializing a k8s-openapi value to a Vec cannot fail (no non-string map keys); an empty
    // dump would still give a deterministic hash.
    let dump = serde_json::to_vec(&canonical).unwrap_or_default();
    let mut state = fnv1a32(FNV_OFFSET_BASIS, &dump);
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&count.to_le_bytes());
        state = fnv1a32(state, &bytes);
    }
    safe_encode(&state.to_string())
}
