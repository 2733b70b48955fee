//! The OpenID Connect bridge (`serve --oidc-issuer URL --oidc-audience CLIENT_ID`): a `POST /auth` with
//! `Authorization: Bearer <ID token>` signs the visitor in as the token's subject, when the site's identity provider
//! (Auth0, Keycloak, Google, Entra...) signed it for this site.
//!
//! The provider's keys come from its discovery document (`/.well-known/openid-configuration`, whose `issuer` must be
//! the configured one) and its JWKS, cached for as long as the JWKS answer's `Cache-Control: max-age` says, within
//! [`KEYS_MIN_AGE`]..[`KEYS_MAX_AGE`] ([`KEYS_DEFAULT_AGE`] without one); past that the set is fetched again in the
//! background and replaced, so a key the provider withdrew (a leaked one) stops being accepted. A token signed with
//! a key id not in the cache makes the service fetch the JWKS again, at most once per [`REFETCH_INTERVAL`], so a
//! flood of made-up key ids is not a flood of fetches. One fetch runs at a time, and none holds the cache: logins
//! whose key is cached never wait for a fetch.
//! Only asymmetric signatures are taken (RS256, ES256, EdDSA), each with a key of its own kind from the JWKS: `none`
//! and HMAC are refused before any key is looked at, so a token "signed" with the provider's public key as an HMAC
//! secret goes nowhere, and a key in the token's own header is never used. `iss`, `aud`, `exp` and `nbf` are checked
//! with [`LEEWAY`]. The user id is `sub`; names come from `given_name` and `family_name`, and the email only when
//! `email_verified` is true.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tiledesk_jwt::{MAX_EMAIL_LEN, MAX_NAME_LEN, VisitorClaims, VisitorClaimsBuilder};
use tokio::sync::Mutex;

use super::Visitor;

/// The signature algorithms taken: asymmetric only.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Clock difference allowed on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Least time between two fetches of the provider's keys (after a failed one too).
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// The default time the provider has to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest time a fetched key set is used before it is fetched again, whatever the provider's `max-age`.
pub const KEYS_MIN_AGE: Duration = Duration::from_secs(5 * 60);

/// The longest time a fetched key set is used before it is fetched again: a withdrawn key is refused after that.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a key set is used when the provider's answer gives no `max-age`.
pub const KEYS_DEFAULT_AGE: Duration = Duration::from_secs(60 * 60);

/// Largest discovery document or JWKS read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Checks ID tokens from one issuer, for one audience.
#[derive(Debug)]
pub struct OidcBridge {
    audience: String,
    keys: Keys,
    /// Put before the token's `sub` (`--oidc-id-prefix`).
    id_prefix: String,
}

/// The provider's keys: the cache, and what fetches them (cloned into a background refresh).
#[derive(Clone, Debug)]
struct Keys {
    issuer: String,
    client: reqwest::Client,
    refetch_interval: Duration,
    /// Bounds on the provider's `max-age`.
    ages: (Duration, Duration),
    cache: Arc<std::sync::Mutex<Cache>>,
    /// Held by the one fetch under way.
    fetching: Arc<Mutex<()>>,
}

#[derive(Debug, Default)]
struct Cache {
    set: Option<Arc<JwkSet>>,
    /// When the keys were last asked for, whether or not that worked.
    fetched_at: Option<Instant>,
    /// Until when the set is used without being fetched again.
    fresh_until: Option<Instant>,
}

/// Why an ID token does not sign the visitor in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The token is not one this service takes: its words say why, for the log.
    #[error("the ID token is refused: {0}")]
    Invalid(String),
    /// The provider's keys cannot be had (it is down, or answers nonsense) and none cached fits the token.
    #[error("the identity provider's keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// Why `--oidc-issuer` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OidcConfigError {
    /// Not an `https` URL (plain `http` is taken for loopback hosts only, for tests and local providers).
    #[error("--oidc-issuer {0}: {1}")]
    Refused(String, &'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for --oidc-issuer: {0}")]
    Client(#[source] reqwest::Error),
}

/// The claims read from an ID token. What only describes the visitor is read leniently: a claim of an unexpected
/// shape is left out, not a reason to refuse the login.
#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    exp: u64,
    /// One audience or several (then `azp` must name ours).
    aud: serde_json::Value,
    azp: Option<String>,
    #[serde(default)]
    email: Option<serde_json::Value>,
    /// `true`, or `"true"`: Apple sends it as a string.
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    given_name: Option<serde_json::Value>,
    #[serde(default)]
    family_name: Option<serde_json::Value>,
}

/// The token types an access token carries (RFC 9068): such a token is for an API, not proof of who signed in.
const ACCESS_TOKEN_TYPES: [&str; 2] = ["at+jwt", "application/at+jwt"];

/// The part of the discovery document used.
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl OidcBridge {
    /// A bridge for tokens `issuer` signs for `audience` (the site's client id at the provider).
    pub fn new(issuer: &str, audience: &str, timeout: Duration) -> Result<Self, OidcConfigError> {
        let url = reqwest::Url::parse(issuer)
            .map_err(|_| OidcConfigError::Refused(issuer.to_owned(), "not a URL"))?;
        let loopback = matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || url.host_str() == Some("localhost");
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(OidcConfigError::Refused(
                    issuer.to_owned(),
                    "an issuer is an https URL (plain http only on this machine)",
                ));
            }
        }
        if audience.trim().is_empty() {
            return Err(OidcConfigError::Refused(
                issuer.to_owned(),
                "--oidc-audience is empty",
            ));
        }
        let client = super::outbound_client(timeout)
            .build()
            .map_err(OidcConfigError::Client)?;
        Ok(Self {
            audience: audience.to_owned(),
            id_prefix: String::new(),
            keys: Keys {
                issuer: issuer.to_owned(),
                client,
                refetch_interval: REFETCH_INTERVAL,
                ages: (KEYS_MIN_AGE, KEYS_MAX_AGE),
                cache: Arc::default(),
                fetching: Arc::default(),
            },
        })
    }

    /// The same bridge, putting `prefix` before each token's `sub` (`--oidc-id-prefix`): the provider's subject
    /// `42` is then another visitor than the site's user `42` from another way in. See [`super::id_prefix_problem`].
    pub fn with_id_prefix(mut self, prefix: &str) -> Result<Self, OidcConfigError> {
        if let Some(reason) = super::id_prefix_problem(prefix) {
            return Err(OidcConfigError::Refused(
                format!("--oidc-id-prefix {prefix:?}"),
                reason,
            ));
        }
        self.id_prefix = prefix.to_owned();
        Ok(self)
    }

    /// The same bridge with another least time between two key fetches (tests use a short one).
    #[must_use]
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.keys.refetch_interval = interval;
        self
    }

    /// The same bridge with other bounds on how long a key set is used (tests use short ones).
    #[must_use]
    pub fn with_key_ages(mut self, min: Duration, max: Duration) -> Self {
        self.keys.ages = (min, max);
        self
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.keys.issuer
    }

    /// The audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Fetches the provider's keys now (`serve --check`): how many it publishes.
    pub async fn check(&self) -> Result<usize, OidcError> {
        let _flight = self.keys.fetching.lock().await;
        Ok(self.keys.fetch().await?.keys.len())
    }

    /// Whether the provider's keys are known (readiness): how many the cached set holds (a set past its `max-age`
    /// still signs visitors in while its refresh fails), else how many a fetch made now finds; no fetch is made
    /// within [`REFETCH_INTERVAL`] of the last one, failed or not.
    pub async fn keys_known(&self) -> Result<usize, OidcError> {
        let cached = || lock(&self.keys.cache).set.as_ref().map(|set| set.keys.len());
        if let Some(count) = cached() {
            return Ok(count);
        }
        let _flight = self.keys.fetching.lock().await;
        if let Some(count) = cached() {
            return Ok(count);
        }
        if !self.keys.due(&lock(&self.keys.cache)) {
            return Err(OidcError::Unavailable(
                "the last fetch failed; waiting before the next".to_owned(),
            ));
        }
        Ok(self.keys.fetch().await?.keys.len())
    }

    /// Checks `token` and returns the visitor it proves.
    pub async fn visitor(&self, token: &str) -> Result<Visitor, OidcError> {
        let invalid = |why: &dyn std::fmt::Display| OidcError::Invalid(why.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|err| invalid(&err))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid(&format_args!("algorithm {:?} is not taken", header.alg)));
        }
        if let Some(typ) = header.typ.as_deref()
            && ACCESS_TOKEN_TYPES.iter().any(|t| typ.eq_ignore_ascii_case(t))
        {
            return Err(invalid(&format_args!(
                "typ {typ}: an access token is not an ID token"
            )));
        }
        let jwk = self.keys.key_for(header.kid.as_deref(), header.alg).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|err| invalid(&err))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.keys.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
            .map_err(|err| invalid(&err))?
            .claims;
        // OpenID Connect Core 3.1.2.7: a token for several audiences names the party it was issued to in `azp`,
        // and an `azp` must be this service's client.
        let several = claims.aud.as_array().is_some_and(|aud| aud.len() > 1);
        match claims.azp.as_deref() {
            Some(azp) if azp != self.audience => {
                return Err(invalid(&format_args!("azp {azp:?} is another client")));
            }
            None if several => return Err(invalid(&"several audiences and no azp")),
            _ => {}
        }
        user(claims)
            .and_then(|visitor| visitor.with_id_prefix(&self.id_prefix))
            .map_err(|err| invalid(&err))
    }
}

impl Keys {
    /// The provider's key for `kid` that fits `alg`: from the cache (fetched again in the background once its age
    /// is past), or, when it is not there, from a fresh fetch.
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, OidcError> {
        let (cached, stale) = {
            let cache = lock(&self.cache);
            let stale = cache.fresh_until.is_none_or(|until| Instant::now() >= until);
            (cache.set.clone(), stale)
        };
        if let Some(jwk) = cached.as_deref().and_then(|set| pick(set, kid, alg)) {
            if stale {
                self.refresh_in_background();
            }
            return Ok(jwk.clone());
        }
        // Not in the cache: one fetch at a time. The cache is not held meanwhile, so logins whose key is cached go on.
        let _flight = self.fetching.lock().await;
        {
            let cache = lock(&self.cache);
            // A fetch that ended while this login waited for it may have brought the key.
            if let Some(jwk) = cache.set.as_deref().and_then(|set| pick(set, kid, alg)) {
                return Ok(jwk.clone());
            }
            if !self.due(&cache) {
                return Err(match cache.set {
                    Some(_) => {
                        OidcError::Invalid(format!("no key {kid:?} for {alg:?} in the provider's keys"))
                    }
                    None => {
                        OidcError::Unavailable("the last fetch failed; waiting before the next".to_owned())
                    }
                });
            }
        }
        let set = self.fetch().await?;
        pick(&set, kid, alg)
            .cloned()
            .ok_or_else(|| OidcError::Invalid(format!("no key {kid:?} for {alg:?} in the provider's keys")))
    }

    /// Whether a fetch may start: none for [`REFETCH_INTERVAL`] after the last one, failed or not.
    fn due(&self, cache: &Cache) -> bool {
        cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.refetch_interval)
    }

    /// Fetches the set again without making anyone wait: unless a fetch is under way or one was made too recently.
    /// While it runs (and if it fails) the current set stays in use.
    fn refresh_in_background(&self) {
        let keys = self.clone();
        tokio::spawn(async move {
            let Ok(_flight) = keys.fetching.try_lock() else {
                return;
            };
            if !keys.due(&lock(&keys.cache)) {
                return;
            }
            if let Err(err) = keys.fetch().await {
                tracing::warn!(issuer = %keys.issuer, error = %err, "identity provider keys NOT refreshed: the current ones stay in use");
            }
        });
    }

    /// Fetches the set now and puts it in the cache, for as long as the provider's `max-age` says (within bounds).
    /// The caller holds `fetching`.
    async fn fetch(&self) -> Result<Arc<JwkSet>, OidcError> {
        lock(&self.cache).fetched_at = Some(Instant::now());
        let started = Instant::now();
        let fetched = self.fetch_keys().await;
        crate::metrics::metrics().upstream(
            crate::metrics::Upstream::oidc_keys,
            started.elapsed(),
            fetched.is_err(),
        );
        let (set, max_age) = fetched?;
        let age = max_age
            .unwrap_or(KEYS_DEFAULT_AGE)
            .clamp(self.ages.0, self.ages.1);
        let set = Arc::new(set);
        {
            let mut cache = lock(&self.cache);
            cache.set = Some(Arc::clone(&set));
            cache.fresh_until = Some(Instant::now() + age);
        }
        tracing::info!(issuer = %self.issuer, keys = set.keys.len(), max_age_secs = age.as_secs(), "identity provider keys fetched");
        Ok(set)
    }

    /// The discovery document, then the JWKS it names, with the JWKS answer's `max-age`.
    async fn fetch_keys(&self) -> Result<(JwkSet, Option<Duration>), OidcError> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let (discovery, _): (Discovery, _) = self.get_json(&discovery_url).await?;
        if discovery.issuer != self.issuer {
            return Err(OidcError::Unavailable(format!(
                "the discovery document names the issuer {:?}, not {:?}",
                discovery.issuer, self.issuer
            )));
        }
        self.get_json(&discovery.jwks_uri).await
    }

    /// The JSON document at `url`, with its `Cache-Control: max-age` (none for `no-store` or `no-cache`: the
    /// shortest age then applies).
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<(T, Option<Duration>), OidcError> {
        let unavailable = |why: &dyn std::fmt::Display| OidcError::Unavailable(format!("{url}: {why}"));
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|err| unavailable(&err))?;
        if !response.status().is_success() {
            return Err(unavailable(&response.status()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| unavailable(&err))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(unavailable(&"larger than 256 KiB"));
            }
            body.extend_from_slice(&chunk);
        }
        let document = serde_json::from_slice(&body).map_err(|err| unavailable(&err))?;
        Ok((document, max_age))
    }
}

/// The `max-age` of a `Cache-Control` value; zero for `no-store` and `no-cache` (the shortest age applies then).
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').map(str::trim).find_map(|directive| {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        let (name, value) = directive.split_once('=')?;
        name.trim().eq_ignore_ascii_case("max-age").then(|| {
            value
                .trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        })?
    })
}

/// The cache, even if a thread panicked while holding it (it holds no invariant a panic could break).
fn lock(cache: &std::sync::Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The key named `kid` (or, without one, the only key) whose kind fits `alg`, and whose own `alg`, when it says
/// one, is `alg`.
fn pick<'a>(set: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let fits = |jwk: &&Jwk| {
        let kind = matches!(
            (&jwk.algorithm, alg),
            (AlgorithmParameters::RSA(_), Algorithm::RS256)
                | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
                | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
        );
        let declared = jwk
            .common
            .key_algorithm
            .is_none_or(|declared| Algorithm::try_from(declared).is_ok_and(|declared| declared == alg));
        kind && declared
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(|jwk| jwk.common.key_id.as_deref() == Some(kid))
            .find(fits),
        None => {
            let mut fitting = set.keys.iter().filter(fits);
            let only = fitting.next();
            only.filter(|_| fitting.next().is_none())
        }
    }
}

fn user(claims: IdClaims) -> Result<Visitor, tiledesk_jwt::Error> {
    // An unverified email could be anyone's: it is left out, not trusted.
    let verified = matches!(claims.email_verified, Some(serde_json::Value::Bool(true)))
        || matches!(&claims.email_verified, Some(serde_json::Value::String(s)) if s == "true");
    let email = text(claims.email)
        .filter(|_| verified)
        .filter(|email| tiledesk_jwt::is_valid_email(email) && email.len() <= MAX_EMAIL_LEN);
    // A name the token rules refuse (too long, a control character) is dropped: the visitor still signs in.
    let name = |value: Option<serde_json::Value>| {
        text(value).filter(|name| name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control))
    };
    let firstname = name(claims.given_name);
    let lastname = name(claims.family_name);
    let built = VisitorClaims::builder(claims.sub.as_str())
        .with(email.as_deref(), VisitorClaimsBuilder::email)
        .with(firstname.as_deref(), VisitorClaimsBuilder::firstname)
        .with(lastname.as_deref(), VisitorClaimsBuilder::lastname)
        .build()?;
    Ok(Visitor {
        claims: built,
        id: claims.sub,
        email,
        firstname,
        lastname,
        // What is minted from the ID token lives no longer than the ID token (and the leeway it was taken with).
        not_after: Some(claims.exp.saturating_add(LEEWAY.as_secs())),
    })
}

/// A claim's text, when it is a string.
fn text(value: Option<serde_json::Value>) -> Option<String> {
    match value {
        Some(serde_json::Value::String(text)) => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=3600"), Some(Duration::from_secs(3600)));
        assert_eq!(
            max_age("Max-Age = 60 ,must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn issuers_are_https_but_on_this_machine() {
        assert!(OidcBridge::new("https://id.example.com", "site", DEFAULT_TIMEOUT).is_ok());
        assert!(OidcBridge::new("http://127.0.0.1:4000", "site", DEFAULT_TIMEOUT).is_ok());
        for issuer in ["http://id.example.com", "id.example.com", "ftp://id.example.com"] {
            assert!(
                OidcBridge::new(issuer, "site", DEFAULT_TIMEOUT).is_err(),
                "{issuer}"
            );
        }
        assert!(OidcBridge::new("https://id.example.com", " ", DEFAULT_TIMEOUT).is_err());
    }

    #[test]
    fn an_unverified_email_is_left_out_and_a_string_true_is_verified() {
        let claims = |verified: Option<serde_json::Value>| IdClaims {
            sub: "s-1".to_owned(),
            exp: 1_000,
            aud: "site".into(),
            azp: None,
            email: Some("ada@example.com".into()),
            email_verified: verified,
            given_name: Some("Ada".into()),
            family_name: None,
        };
        let email = |verified| user(claims(verified)).unwrap().email;
        assert_eq!(email(Some(true.into())).as_deref(), Some("ada@example.com"));
        assert_eq!(
            email(Some("true".into())).as_deref(),
            Some("ada@example.com"),
            "Apple's string form"
        );
        for unverified in [Some(false.into()), Some("false".into()), Some(1.into()), None] {
            assert_eq!(email(unverified.clone()), None, "{unverified:?}");
        }
        assert_eq!(user(claims(None)).unwrap().claims.email(), None);
    }

    #[test]
    fn a_name_the_token_rules_refuse_is_dropped_and_the_visitor_signs_in() {
        let with_names = |given: serde_json::Value, family: serde_json::Value| IdClaims {
            sub: "s-1".to_owned(),
            exp: 1_000,
            aud: "site".into(),
            azp: None,
            email: None,
            email_verified: None,
            given_name: Some(given),
            family_name: Some(family),
        };
        let visitor = user(with_names(
            "a".repeat(MAX_NAME_LEN + 1).into(),
            "Love\u{0}lace".into(),
        ))
        .unwrap();
        assert_eq!((visitor.firstname, visitor.lastname), (None, None));
        assert_eq!(visitor.claims.firstname(), None);
        let visitor = user(with_names(42.into(), "Lovelace".into())).unwrap();
        assert_eq!(
            (visitor.firstname, visitor.lastname.as_deref()),
            (None, Some("Lovelace"))
        );
        assert_eq!(visitor.not_after, Some(1_000 + LEEWAY.as_secs()));
    }
}
