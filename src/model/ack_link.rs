//! Signed, expiring acknowledgement links: what a page carries so the
//! person paged can acknowledge without a token.
//!
//! Contract: a token is `base64url(incident|person|expires) "."
//! base64url(HMAC-SHA256(key, that))`; [`AckKey::verify`] accepts it only
//! with a valid signature (compared in constant time) before `expires`.
//! Pure computation: the key comes from the caller (the daemon keeps it in
//! the data directory); no I/O, no clock.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::IncidentKey;

/// How long an acknowledgement link works after its page was created.
pub const ACK_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Bytes of a signing key.
pub const ACK_KEY_LEN: usize = 32;

/// The secret that signs acknowledgement links.
#[derive(Clone)]
pub struct AckKey([u8; ACK_KEY_LEN]);

impl std::fmt::Debug for AckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckKey(…)")
    }
}

/// What a link says: who may acknowledge which incident until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckClaim {
    pub incident: IncidentKey,
    pub person: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckLinkError {
    #[error("this acknowledgement link is malformed")]
    Malformed,
    #[error("this acknowledgement link's signature is not valid (was it copied in full?)")]
    BadSignature,
    #[error("this acknowledgement link expired at {0}")]
    Expired(DateTime<Utc>),
}

impl AckKey {
    pub fn from_bytes(bytes: [u8; ACK_KEY_LEN]) -> AckKey {
        AckKey(bytes)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// The token for a claim (the last part of `/ack/{token}`).
    pub fn sign(&self, claim: &AckClaim) -> String {
        let body = format!(
            "{}|{}|{}",
            claim.incident,
            claim.person,
            claim.expires_at.timestamp()
        );
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let sig = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(body.as_bytes()),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The claim of a token signed with this key and not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AckClaim, AckLinkError> {
        let (body, sig) = token.split_once('.').ok_or(AckLinkError::Malformed)?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| AckLinkError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| AckLinkError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&body);
        mac.verify_slice(&sig)
            .map_err(|_| AckLinkError::BadSignature)?;
        let body = String::from_utf8(body).map_err(|_| AckLinkError::Malformed)?;
        let mut parts = body.splitn(3, '|');
        let (Some(id), Some(person), Some(exp)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AckLinkError::Malformed);
        };
        let incident = IncidentKey::parse(id).ok_or(AckLinkError::Malformed)?;
        let expires_at = exp
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(AckLinkError::Malformed)?;
        if now >= expires_at {
            return Err(AckLinkError::Expired(expires_at));
        }
        Ok(AckClaim {
            incident,
            person: person.to_string(),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_until_it_expires_and_not_with_another_key_or_edited() {
        let key = AckKey::from_bytes([7; ACK_KEY_LEN]);
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time");
        let claim = AckClaim {
            incident: IncidentKey::new(20260301, 12),
            person: "alice".into(),
            expires_at: t(100),
        };
        let token = key.sign(&claim);
        assert_eq!(key.verify(&token, t(0)), Ok(claim.clone()));
        assert_eq!(
            key.verify(&token, t(100)),
            Err(AckLinkError::Expired(t(100)))
        );
        let other = AckKey::from_bytes([8; ACK_KEY_LEN]);
        assert_eq!(other.verify(&token, t(0)), Err(AckLinkError::BadSignature));
        // Someone else's name on the same signature.
        let forged = AckClaim {
            person: "mallory".into(),
            ..claim
        };
        let (_, sig) = token.split_once('.').expect("dot");
        let (body, _) = key
            .sign(&forged)
            .split_once('.')
            .map(|(b, s)| (b.to_string(), s.to_string()))
            .expect("dot");
        assert_eq!(
            key.verify(&format!("{body}.{sig}"), t(0)),
            Err(AckLinkError::BadSignature)
        );
        assert_eq!(key.verify("nonsense", t(0)), Err(AckLinkError::Malformed));
    }
}
