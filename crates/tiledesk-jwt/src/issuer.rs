//! Minting: turns [`VisitorClaims`] into a signed `JWT <token>` with `sub`, `aud`, `iat`, `exp` and `jti` set.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, ProjectId, ProjectSecret, TOKEN_SCHEME_PREFIX, VISITOR_SUBJECT, VisitorClaims};

/// Lifetime of a token when none is configured.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// The longest token minted, `JWT ` included, in bytes. The widget sends the token in an `Authorization` header on
/// calls to Tiledesk, and servers and proxies limit a header's size (nginx: 8 KiB a line by default); what makes a
/// token long is the caller's `attributes`. Beyond this, minting fails with [`Error::TokenTooLarge`].
pub const MAX_TOKEN_LEN: usize = 4096;

/// The longest lifetime this crate mints. The token is the widget's chat session, and Tiledesk sets no
/// maximum itself: a longer-lived token is a credential a thief keeps for longer.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Signs visitor tokens for one project with its shared secret (HS256).
#[derive(Clone)]
pub struct TokenIssuer {
    project: ProjectId,
    audience: String,
    secret: ProjectSecret,
    key: EncodingKey,
    /// `base64url(header)` followed by `.`: the same for every token, so encoded once.
    header_segment: String,
    ttl: Duration,
}

impl TokenIssuer {
    /// An issuer for `project` signing with `secret`, minting tokens that live [`DEFAULT_TOKEN_TTL`].
    pub fn new(project: ProjectId, secret: ProjectSecret) -> Self {
        Self {
            audience: project.audience(),
            key: EncodingKey::from_secret(secret.as_bytes()),
            header_segment: header_segment(),
            project,
            secret,
            ttl: DEFAULT_TOKEN_TTL,
        }
    }

    /// Sets the token lifetime: at least one second, at most [`MAX_TOKEN_TTL`]. Fractions of a second are dropped.
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self, Error> {
        let secs = ttl.as_secs();
        if secs == 0 || ttl > MAX_TOKEN_TTL {
            return Err(Error::TtlOutOfRange {
                secs,
                max_secs: MAX_TOKEN_TTL.as_secs(),
            });
        }
        self.ttl = Duration::from_secs(secs);
        Ok(self)
    }

    /// The project tokens are minted for.
    pub fn project(&self) -> &ProjectId {
        &self.project
    }

    /// The signing secret (its `Debug` and `Display` are redacted).
    pub fn secret(&self) -> &ProjectSecret {
        &self.secret
    }

    /// The lifetime of every token minted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Mints a token issued now by the system clock.
    ///
    /// On `wasm32-unknown-unknown` the standard clock is not available: use [`mint_at`](Self::mint_at).
    pub fn mint(&self, claims: &VisitorClaims) -> Result<VisitorToken, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::Clock)?;
        self.mint_at(claims, now.as_secs())
    }

    /// Mints a token issued at `issued_at` (Unix seconds), expiring one lifetime later.
    pub fn mint_at(&self, claims: &VisitorClaims, issued_at: u64) -> Result<VisitorToken, Error> {
        self.mint_until(claims, issued_at, u64::MAX)
    }

    /// Mints a token issued at `issued_at` that expires after the issuer's lifetime or at `not_after` (Unix
    /// seconds), whichever comes first: a token minted from a shorter-lived proof (an ID token) lives no longer than
    /// the proof. A `not_after` at or before `issued_at` is [`Error::TtlOutOfRange`].
    pub fn mint_until(
        &self,
        claims: &VisitorClaims,
        issued_at: u64,
        not_after: u64,
    ) -> Result<VisitorToken, Error> {
        let expires_at = issued_at
            .checked_add(self.ttl.as_secs())
            .ok_or(Error::Clock)?
            .min(not_after);
        if expires_at <= issued_at {
            return Err(Error::TtlOutOfRange {
                secs: 0,
                max_secs: MAX_TOKEN_TTL.as_secs(),
            });
        }
        let chat_user_id = claims.chat_user_id(&self.project);
        let jti = random_token_id()?;
        let payload = Payload {
            id: &chat_user_id,
            sub: VISITOR_SUBJECT,
            aud: &self.audience,
            iat: issued_at,
            exp: expires_at,
            jti: std::str::from_utf8(&jti).map_err(|_| Error::Random)?,
            firstname: claims.firstname.as_deref(),
            lastname: claims.lastname.as_deref(),
            email: claims.email.as_deref(),
            attributes: &claims.attributes,
        };
        // `JWT ` + header + `.` + payload, signed (by jsonwebtoken) over everything after the scheme.
        let mut json = Vec::with_capacity(384);
        serde_json::to_writer(&mut json, &payload).map_err(jsonwebtoken::errors::Error::from)?;
        let mut value = String::with_capacity(
            TOKEN_SCHEME_PREFIX.len() + self.header_segment.len() + json.len() * 2 + 48,
        );
        value.push_str(TOKEN_SCHEME_PREFIX);
        value.push_str(&self.header_segment);
        URL_SAFE_NO_PAD.encode_string(&json, &mut value);
        let signature = jsonwebtoken::crypto::sign(
            &value.as_bytes()[TOKEN_SCHEME_PREFIX.len()..],
            &self.key,
            Algorithm::HS256,
        )?;
        value.push('.');
        value.push_str(&signature);
        if value.len() > MAX_TOKEN_LEN {
            return Err(Error::TokenTooLarge {
                len: value.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        Ok(VisitorToken {
            value,
            issued_at,
            expires_at,
            chat_user_id,
            jti,
        })
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("project", &self.project)
            .field("secret", &self.secret)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The token payload, in the order Tiledesk's samples use.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    sub: &'static str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    firstname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lastname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    attributes: &'a Map<String, Value>,
}

/// `base64url({"typ":"JWT","alg":"HS256"})` and the dot, as jsonwebtoken encodes the header.
fn header_segment() -> String {
    let header =
        serde_json::to_vec(&Header::new(Algorithm::HS256)).expect("a jsonwebtoken Header always serializes");
    let mut segment = URL_SAFE_NO_PAD.encode(header);
    segment.push('.');
    segment
}

/// 128 random bits as 32 hex digits, from a CSPRNG seeded (and reseeded) from the operating system.
fn random_token_id() -> Result<[u8; 32], Error> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    rand::thread_rng()
        .try_fill_bytes(&mut bytes)
        .map_err(|_| Error::Random)?;
    let mut hex = [0u8; 32];
    for (i, byte) in bytes.iter().enumerate() {
        hex[2 * i] = HEX[usize::from(byte >> 4)];
        hex[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    Ok(hex)
}

/// A signed visitor token, ready for `window.Tiledesk('signInWithCustomToken', ...)`.
///
/// `Display` renders the full `JWT <jwt>` value (it is a credential: do not log it); `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct VisitorToken {
    value: String,
    issued_at: u64,
    expires_at: u64,
    chat_user_id: String,
    /// The `jti` claim, lower-case hex.
    jti: [u8; 32],
}

impl VisitorToken {
    /// The `jti` claim: this token's own random id (32 lower-case hex digits), for an audit trail.
    pub fn jti(&self) -> &str {
        std::str::from_utf8(&self.jti).unwrap_or_default()
    }
    /// `JWT <jwt>`, exactly what the widget must be given.
    pub fn as_str(&self) -> &str {
        &self.value
    }
    /// The bare JWT, without the scheme.
    pub fn jwt(&self) -> &str {
        &self.value[TOKEN_SCHEME_PREFIX.len()..]
    }
    /// `exp`, in Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
    /// `iat`, in Unix seconds.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// The `_id` claim: the visitor's id in Tiledesk's chat.
    pub fn chat_user_id(&self) -> &str {
        &self.chat_user_id
    }
}

impl fmt::Display for VisitorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Debug for VisitorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VisitorToken")
            .field("value", &"[redacted]")
            .field("chat_user_id", &self.chat_user_id)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            ProjectId::new("proj1").unwrap(),
            ProjectSecret::new("top-secret-3f1c9a52-5d2e-4f7b-9c1a").unwrap(),
        )
    }

    fn payload_of(token: &VisitorToken) -> Value {
        let part = token.jwt().split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_token_is_at_most_max_token_len_and_longer_attributes_are_refused_with_the_length() {
        let with_note = |bytes: usize| {
            VisitorClaims::builder("u".repeat(crate::MAX_USER_ID_LEN))
                .firstname("f".repeat(crate::MAX_NAME_LEN))
                .lastname("l".repeat(crate::MAX_NAME_LEN))
                .attribute("note", "n".repeat(bytes))
                .build()
                .unwrap()
        };
        let longest = TokenIssuer::new(
            ProjectId::new("p".repeat(tiledesk_rules::MAX_PROJECT_ID_LEN)).unwrap(),
            ProjectSecret::new("top-secret-3f1c9a52-5d2e-4f7b-9c1a").unwrap(),
        );
        // The longest names and project id leave room for a note of 1.5 KiB.
        let fits = longest.mint_at(&with_note(1536), u64::MAX / 2).unwrap();
        assert!(fits.as_str().len() <= MAX_TOKEN_LEN, "{}", fits.as_str().len());
        // Each note byte is 4/3 of a token byte: find the first that does not fit, and check the refusal there.
        let over = (1536..4096)
            .find(|&bytes| longest.mint_at(&with_note(bytes), 0).is_err())
            .unwrap();
        let last = longest.mint_at(&with_note(over - 1), 0).unwrap();
        assert!(last.as_str().len() <= MAX_TOKEN_LEN);
        match longest.mint_at(&with_note(over), 0) {
            Err(Error::TokenTooLarge { len, max }) => {
                assert_eq!(max, MAX_TOKEN_LEN);
                assert!(len > MAX_TOKEN_LEN && len <= MAX_TOKEN_LEN + 4, "{len}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn minted_payload_has_exactly_the_contract_claims() {
        let claims = VisitorClaims::builder("42")
            .firstname("Andrew")
            .email("andrew@scientists.com")
            .attribute("plan", "pro")
            .build()
            .unwrap();
        let token = issuer().mint_at(&claims, 1_000_000).unwrap();
        let p = payload_of(&token);
        assert_eq!(p["_id"], "proj1_42");
        assert_eq!(p["sub"], "userexternal");
        assert_eq!(p["aud"], "https://tiledesk.com/projects/proj1");
        assert_eq!(p["iat"], 1_000_000);
        assert_eq!(p["exp"], 1_000_000 + 3600);
        assert_eq!(p["firstname"], "Andrew");
        assert_eq!(p["email"], "andrew@scientists.com");
        assert_eq!(p["attributes"], json!({"plan": "pro"}));
        assert_eq!(p["jti"].as_str().unwrap().len(), 32);
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            !keys.contains(&"lastname") && !keys.contains(&"plan") && !keys.contains(&"role"),
            "{keys:?}"
        );
        assert_eq!(token.expires_at(), 1_003_600);
        assert_eq!(token.chat_user_id(), "proj1_42");
    }

    #[test]
    fn header_is_hs256() {
        let token = issuer()
            .mint(&VisitorClaims::builder("1").build().unwrap())
            .unwrap();
        let header = token.jwt().split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn renders_with_the_scheme_once_and_debug_redacts() {
        let token = issuer()
            .mint(&VisitorClaims::builder("1").build().unwrap())
            .unwrap();
        assert!(token.to_string().starts_with("JWT ey"));
        assert!(!token.jwt().starts_with("JWT"));
        assert_eq!(token.as_str(), format!("JWT {}", token.jwt()));
        let debug = format!("{token:?}");
        assert!(
            !debug.contains(token.jwt()) && debug.contains("[redacted]"),
            "{debug}"
        );
        assert!(!format!("{:?}", issuer()).contains("top-secret-3f1c9a52-5d2e-4f7b-9c1a"));
    }

    #[test]
    fn every_token_gets_a_fresh_jti() {
        let issuer = issuer();
        let claims = VisitorClaims::builder("1").build().unwrap();
        let a = payload_of(&issuer.mint_at(&claims, 5).unwrap());
        let b = payload_of(&issuer.mint_at(&claims, 5).unwrap());
        assert_ne!(a["jti"], b["jti"]);
    }

    #[test]
    fn ttl_is_bounded() {
        assert!(issuer().with_ttl(Duration::ZERO).is_err());
        assert!(issuer().with_ttl(Duration::from_millis(999)).is_err());
        assert!(issuer().with_ttl(MAX_TOKEN_TTL + Duration::from_secs(1)).is_err());
        let i = issuer().with_ttl(MAX_TOKEN_TTL).unwrap();
        let t = i
            .mint_at(&VisitorClaims::builder("1").build().unwrap(), 10)
            .unwrap();
        assert_eq!(t.expires_at() - t.issued_at(), 86_400);
        let i = issuer().with_ttl(Duration::from_millis(30_500)).unwrap();
        assert_eq!(i.ttl(), Duration::from_secs(30));
    }

    #[test]
    fn unprefixed_id_is_verbatim() {
        let claims = VisitorClaims::builder("site-7")
            .without_project_prefix()
            .build()
            .unwrap();
        assert_eq!(
            payload_of(&issuer().mint_at(&claims, 1).unwrap())["_id"],
            "site-7"
        );
    }
}
