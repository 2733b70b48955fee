//! Checks a token against what the Tiledesk server does with it, and says every way it deviates.

use std::collections::HashSet;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::claims::reserved_claim;
use crate::{MAX_TOKEN_TTL, ProjectId, ProjectSecret, TILEDESK_AUDIENCE_PREFIX, VISITOR_SUBJECT};

/// How bad a finding is. Ordered: `Advice < Dangerous < Rejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Accepted and safe, but not what this project would mint.
    Advice,
    /// Accepted by Tiledesk, and a security problem.
    Dangerous,
    /// The Tiledesk server refuses the token, or every call after sign-in fails.
    Rejected,
}

impl Severity {
    /// A lower-case label: `advice`, `dangerous`, `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Advice => "advice",
            Self::Dangerous => "dangerous",
            Self::Rejected => "rejected",
        }
    }
}

/// What a finding is about; [`as_str`](Self::as_str) is a stable snake_case code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingCode {
    /// The value has no `JWT ` in front: the widget sends it verbatim and the server answers 401.
    MissingPrefix,
    /// Another scheme (`Bearer`...) or not exactly one space between scheme and token.
    Scheme,
    /// Not three base64url JSON parts.
    Malformed,
    /// Not HS256, HS384 or HS512.
    Algorithm,
    /// The signature does not verify with this project's secret.
    BadSignature,
    /// No `aud`: the server answers 400.
    MissingAudience,
    /// `aud` is not `https://tiledesk.com/projects/<id>`.
    AudienceNotProjectUrl,
    /// `aud` names another project.
    OtherProject,
    /// No usable `_id`: the server answers 401.
    MissingUserId,
    /// `_id` lacks the `<project id>_` prefix: two sites' user ids may collide in Tiledesk's global chat ids.
    UnprefixedUserId,
    /// `sub` is not `userexternal`: every call after sign-in fails.
    NotVisitorSubject,
    /// No `exp`: the token never expires.
    MissingExpiry,
    /// `exp` has passed.
    Expired,
    /// `exp`, `nbf` or `iat` is not a number.
    InvalidTimeClaim,
    /// The token lives longer than the 24 hour cap.
    LifetimeOverCap,
    /// `nbf` is in the future.
    NotYetValid,
    /// A `role` claim: `owner`, `admin` or `agent` signs the bearer in as an agent of the project.
    RoleClaim,
    /// Claims at the top level that Tiledesk hands to the widget as user fields; nest them under `attributes`.
    TopLevelCustomClaims,
}

impl FindingCode {
    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingPrefix => "missing_prefix",
            Self::Scheme => "scheme",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::BadSignature => "bad_signature",
            Self::MissingAudience => "missing_audience",
            Self::AudienceNotProjectUrl => "audience_not_project_url",
            Self::OtherProject => "other_project",
            Self::MissingUserId => "missing_user_id",
            Self::UnprefixedUserId => "unprefixed_user_id",
            Self::NotVisitorSubject => "not_visitor_subject",
            Self::MissingExpiry => "missing_expiry",
            Self::Expired => "expired",
            Self::InvalidTimeClaim => "invalid_time_claim",
            Self::LifetimeOverCap => "lifetime_over_cap",
            Self::NotYetValid => "not_yet_valid",
            Self::RoleClaim => "role_claim",
            Self::TopLevelCustomClaims => "top_level_custom_claims",
        }
    }
}

/// One way the token deviates from the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What it is about.
    pub code: FindingCode,
    /// A sentence for a person.
    pub message: String,
}

/// Everything [`check`] found, with the decoded claims when the token could be decoded.
#[derive(Clone, Debug, Default)]
pub struct Report {
    findings: Vec<Finding>,
    claims: Option<Map<String, Value>>,
}

impl Report {
    /// Every finding, in the order the server would meet them.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
    /// The decoded payload, if the token was well-formed (even when its signature is wrong).
    pub fn claims(&self) -> Option<&Map<String, Value>> {
        self.claims.as_ref()
    }
    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
    /// Whether the Tiledesk server would accept the token (no `Rejected` finding).
    pub fn is_accepted(&self) -> bool {
        self.worst() < Some(Severity::Rejected)
    }
    /// Whether the token is accepted and has nothing dangerous about it.
    pub fn is_safe(&self) -> bool {
        self.worst() < Some(Severity::Dangerous)
    }
    /// Whether a finding with this code is present.
    pub fn has(&self, code: FindingCode) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    fn push(&mut self, severity: Severity, code: FindingCode, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            code,
            message: message.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if !self.is_accepted() {
            "REJECTED: the Tiledesk server would refuse this token"
        } else if !self.is_safe() {
            "DANGEROUS: the Tiledesk server would accept this token, but it is unsafe"
        } else {
            "OK: the Tiledesk server would accept this token"
        };
        writeln!(f, "{verdict}")?;
        for finding in &self.findings {
            writeln!(
                f,
                "  {:<9} {:<24} {}",
                finding.severity.as_str(),
                finding.code.as_str(),
                finding.message
            )?;
        }
        if let Some(claims) = &self.claims {
            let pretty = serde_json::to_string_pretty(claims).map_err(|_| fmt::Error)?;
            writeln!(f, "claims:\n{pretty}")?;
        }
        Ok(())
    }
}

/// Claims a visitor token may carry at the top level without advice.
const KNOWN_CLAIMS: &[&str] = &[
    "_id",
    "sub",
    "aud",
    "iat",
    "exp",
    "nbf",
    "jti",
    "iss",
    "firstname",
    "lastname",
    "email",
    "attributes",
];

/// Checks `token` (as it would be passed to the widget, `JWT ` included) for `project`, at the current time.
pub fn check(token: &str, project: &ProjectId, secret: &ProjectSecret) -> Report {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    check_at(token, project, secret, now)
}

/// Like [`check`], with the current time given in Unix seconds.
pub fn check_at(token: &str, project: &ProjectId, secret: &ProjectSecret, now: u64) -> Report {
    use FindingCode as C;
    use Severity::{Advice, Dangerous, Rejected};
    let mut report = Report::default();

    // The server splits the Authorization header on one space and matches the scheme case-insensitively.
    let jwt = match token.split_once(' ') {
        None => {
            report.push(
                Rejected,
                C::MissingPrefix,
                "no `JWT ` in front: the widget sends the token verbatim and the server answers 401",
            );
            token
        }
        Some((scheme, rest)) => {
            if rest.contains(' ') {
                report.push(Rejected, C::Scheme, "more than one space: the server answers 403");
            } else if !crate::is_token_scheme(scheme) {
                report.push(
                    Rejected,
                    C::Scheme,
                    format!("scheme `{scheme}`: the server only takes `JWT`"),
                );
            }
            rest
        }
    };

    let parts: Vec<&str> = jwt.split('.').collect();
    let decoded = match parts.as_slice() {
        [h, p, _] => decode_part(h).zip(decode_part(p)),
        _ => None,
    };
    let Some((header, claims)) = decoded else {
        report.push(
            Rejected,
            C::Malformed,
            "not a JWT: three base64url parts, header and payload JSON objects",
        );
        return report;
    };

    match header.get("alg").and_then(Value::as_str) {
        Some(alg @ ("HS256" | "HS384" | "HS512")) => {
            if !signature_verifies(jwt, alg, secret) {
                report.push(
                    Rejected,
                    C::BadSignature,
                    "the signature does not verify with this project's secret",
                );
            }
        }
        other => report.push(
            Rejected,
            C::Algorithm,
            format!(
                "algorithm {}: the server verifies HS256, HS384 or HS512 only",
                other.unwrap_or("(none)")
            ),
        ),
    }

    match claims.get("aud") {
        None => report.push(Rejected, C::MissingAudience, "no `aud`: the server answers 400"),
        Some(Value::String(aud)) => match aud.strip_prefix(TILEDESK_AUDIENCE_PREFIX) {
            Some(id) if id == project.as_str() => {}
            Some(id) => report.push(
                Rejected,
                C::OtherProject,
                format!(
                    "`aud` is for project `{id}`, not `{project}`: that project's secret would verify it"
                ),
            ),
            None => report.push(
                Rejected,
                C::AudienceNotProjectUrl,
                format!("`aud` must be `{TILEDESK_AUDIENCE_PREFIX}<project id>`"),
            ),
        },
        Some(_) => report.push(Rejected, C::AudienceNotProjectUrl, "`aud` is not a string"),
    }

    match claims.get("_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => {
            if !id.starts_with(&format!("{project}_")) {
                report.push(
                    Advice,
                    C::UnprefixedUserId,
                    format!(
                        "`_id` does not start with `{project}_`: chat ids are global across Tiledesk projects, \
                         so another site's user with the same id would share this chat identity"
                    ),
                );
            }
        }
        _ => report.push(
            Rejected,
            C::MissingUserId,
            "no `_id` string: the server answers 401",
        ),
    }

    if claims.get("sub").and_then(Value::as_str) != Some(VISITOR_SUBJECT) {
        report.push(
            Rejected,
            C::NotVisitorSubject,
            "`sub` is not `userexternal`: sign-in succeeds but every later call (chat, events) fails",
        );
    }

    let time = |name: &str| claims.get(name).map(|v| v.as_f64().ok_or(()));
    let (exp, nbf, iat) = (time("exp"), time("nbf"), time("iat"));
    for (name, value) in [("exp", &exp), ("nbf", &nbf), ("iat", &iat)] {
        if matches!(value, Some(Err(()))) {
            report.push(Rejected, C::InvalidTimeClaim, format!("`{name}` is not a number"));
        }
    }
    let now_f = now as f64;
    match exp {
        None => report.push(Dangerous, C::MissingExpiry, "no `exp`: the token never expires"),
        Some(Ok(exp)) => {
            if now_f >= exp {
                report.push(
                    Rejected,
                    C::Expired,
                    format!("expired {} s ago", (now_f - exp) as u64),
                );
            }
            let start = match iat {
                Some(Ok(iat)) => iat,
                _ => now_f,
            };
            if exp - start > MAX_TOKEN_TTL.as_secs_f64() {
                report.push(
                    Dangerous,
                    C::LifetimeOverCap,
                    format!("lives {} h, over the 24 h cap", ((exp - start) / 3600.0) as u64),
                );
            }
        }
        Some(Err(())) => {}
    }
    if let Some(Ok(nbf)) = nbf
        && nbf > now_f
    {
        report.push(
            Rejected,
            C::NotYetValid,
            format!("`nbf` is {} s in the future", (nbf - now_f) as u64),
        );
    }

    if let Some(role) = claims.get("role") {
        let message = match role.as_str() {
            Some(r @ ("owner" | "admin" | "agent")) => format!(
                "`role: {r}` makes the sign-in create or log in a dashboard agent of the project by `email`"
            ),
            _ => {
                "a `role` claim: `owner`, `admin` or `agent` would sign the bearer in as an agent".to_owned()
            }
        };
        report.push(Dangerous, C::RoleClaim, message);
    }

    let custom: Vec<&str> = claims
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN_CLAIMS.contains(k) && reserved_claim(k) != Some("role"))
        .collect();
    if !custom.is_empty() {
        report.push(
            Advice,
            C::TopLevelCustomClaims,
            format!(
                "custom claims at the top level ({}): nest them under `attributes`",
                custom.join(", ")
            ),
        );
    }

    report.claims = Some(claims);
    report
}

fn decode_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn signature_verifies(jwt: &str, alg: &str, secret: &ProjectSecret) -> bool {
    let algorithm = match alg {
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => Algorithm::HS256,
    };
    // Only the signature: every claim is judged above, against Tiledesk's rules rather than the library's.
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_secret(secret.as_bytes()), &validation).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TokenIssuer, VisitorClaims};
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn project() -> ProjectId {
        ProjectId::new("proj1").unwrap()
    }
    fn secret() -> ProjectSecret {
        ProjectSecret::new("top-secret-3f1c9a52-5d2e-4f7b-9c1a").unwrap()
    }
    fn sign(alg: Algorithm, payload: &Value, key: &str) -> String {
        format!(
            "JWT {}",
            encode(
                &Header::new(alg),
                payload,
                &EncodingKey::from_secret(key.as_bytes())
            )
            .unwrap()
        )
    }
    fn good_payload() -> Value {
        json!({"_id": "proj1_42", "sub": "userexternal", "aud": "https://tiledesk.com/projects/proj1",
               "iat": NOW, "exp": NOW + 3600})
    }
    fn codes(report: &Report) -> Vec<&'static str> {
        report.findings().iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn a_minted_token_is_clean() {
        let issuer = TokenIssuer::new(project(), secret());
        let claims = VisitorClaims::builder("42")
            .email("a@b.co")
            .attribute("plan", "pro")
            .build()
            .unwrap();
        let token = issuer.mint_at(&claims, NOW).unwrap();
        let report = check_at(token.as_str(), &project(), &secret(), NOW + 10);
        assert!(report.findings().is_empty(), "{report}");
        assert!(report.is_accepted() && report.is_safe());
        assert_eq!(report.claims().unwrap()["_id"], "proj1_42");
    }

    #[test]
    fn every_hmac_algorithm_is_accepted() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let report = check_at(
                &sign(alg, &good_payload(), "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
                &project(),
                &secret(),
                NOW,
            );
            assert!(report.findings().is_empty(), "{alg:?}: {report}");
        }
    }

    #[test]
    fn prefix_and_scheme() {
        let token = sign(
            Algorithm::HS256,
            &good_payload(),
            "top-secret-3f1c9a52-5d2e-4f7b-9c1a",
        );
        let bare = token.strip_prefix("JWT ").unwrap();
        assert_eq!(
            codes(&check_at(bare, &project(), &secret(), NOW)),
            ["missing_prefix"]
        );
        let bearer = format!("Bearer {bare}");
        assert_eq!(codes(&check_at(&bearer, &project(), &secret(), NOW)), ["scheme"]);
        let lower = format!("jwt {bare}");
        assert!(check_at(&lower, &project(), &secret(), NOW).findings().is_empty());
        let two_spaces = format!("JWT  {bare}");
        assert!(codes(&check_at(&two_spaces, &project(), &secret(), NOW)).contains(&"scheme"));
    }

    #[test]
    fn malformed_tokens_stop_the_check() {
        for bad in [
            "JWT",
            "JWT a.b",
            "JWT a.b.c",
            "JWT !!.??.xx",
            "JWT W10.W10.sig",
            "",
        ] {
            let report = check_at(bad, &project(), &secret(), NOW);
            assert!(report.has(FindingCode::Malformed), "{bad:?}: {report}");
            assert!(!report.is_accepted());
        }
    }

    #[test]
    fn bad_signature_and_wrong_algorithm() {
        let wrong_key = sign(Algorithm::HS256, &good_payload(), "other-secret");
        let r = check_at(&wrong_key, &project(), &secret(), NOW);
        assert_eq!(codes(&r), ["bad_signature"]);
        assert_eq!(
            r.claims().unwrap()["_id"],
            "proj1_42",
            "claims are shown even when the signature fails"
        );

        let mut tampered = sign(
            Algorithm::HS256,
            &good_payload(),
            "top-secret-3f1c9a52-5d2e-4f7b-9c1a",
        );
        let forged = URL_SAFE_NO_PAD.encode(
            json!({"_id": "proj1_1", "sub": "userexternal",
            "aud": "https://tiledesk.com/projects/proj1", "exp": NOW + 60})
            .to_string(),
        );
        let parts: Vec<String> = tampered.split('.').map(str::to_owned).collect();
        tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert!(check_at(&tampered, &project(), &secret(), NOW).has(FindingCode::BadSignature));

        let none_alg = format!(
            "JWT {}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(good_payload().to_string())
        );
        assert_eq!(
            codes(&check_at(&none_alg, &project(), &secret(), NOW)),
            ["algorithm"]
        );
    }

    #[test]
    fn audience_rules() {
        let mut p = good_payload();
        p["aud"] = json!("https://tiledesk.com/projects/other");
        let r = check_at(
            &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
            &project(),
            &secret(),
            NOW,
        );
        assert_eq!(codes(&r), ["other_project"]);
        p["aud"] = json!("proj1");
        assert_eq!(
            codes(&check_at(
                &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
                &project(),
                &secret(),
                NOW
            )),
            ["audience_not_project_url"]
        );
        p["aud"] = json!(["https://tiledesk.com/projects/proj1"]);
        assert_eq!(
            codes(&check_at(
                &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
                &project(),
                &secret(),
                NOW
            )),
            ["audience_not_project_url"]
        );
        p.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            codes(&check_at(
                &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
                &project(),
                &secret(),
                NOW
            )),
            ["missing_audience"]
        );
    }

    #[test]
    fn id_and_subject_rules() {
        let mut p = good_payload();
        p.as_object_mut().unwrap().remove("_id");
        p["sub"] = json!("user");
        let r = check_at(
            &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
            &project(),
            &secret(),
            NOW,
        );
        assert_eq!(codes(&r), ["missing_user_id", "not_visitor_subject"]);
        let mut p = good_payload();
        p["_id"] = json!("42");
        let r = check_at(
            &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
            &project(),
            &secret(),
            NOW,
        );
        assert_eq!(codes(&r), ["unprefixed_user_id"]);
        assert!(r.is_accepted() && r.is_safe());
    }

    #[test]
    fn time_rules() {
        let tok = |p: &Value| sign(Algorithm::HS256, p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a");
        let mut p = good_payload();
        p.as_object_mut().unwrap().remove("exp");
        let r = check_at(&tok(&p), &project(), &secret(), NOW);
        assert_eq!(codes(&r), ["missing_expiry"]);
        assert!(r.is_accepted() && !r.is_safe());

        let p = good_payload();
        assert_eq!(
            codes(&check_at(&tok(&p), &project(), &secret(), NOW + 3600)),
            ["expired"]
        );
        assert!(
            check_at(&tok(&p), &project(), &secret(), NOW + 3599)
                .findings()
                .is_empty()
        );

        let mut p = good_payload();
        p["exp"] = json!(NOW + 48 * 3600);
        assert_eq!(
            codes(&check_at(&tok(&p), &project(), &secret(), NOW)),
            ["lifetime_over_cap"]
        );

        let mut p = good_payload();
        p["nbf"] = json!(NOW + 5);
        assert_eq!(
            codes(&check_at(&tok(&p), &project(), &secret(), NOW)),
            ["not_yet_valid"]
        );
        assert!(
            check_at(&tok(&p), &project(), &secret(), NOW + 5)
                .findings()
                .is_empty()
        );

        let mut p = good_payload();
        p["exp"] = json!("tomorrow");
        assert_eq!(
            codes(&check_at(&tok(&p), &project(), &secret(), NOW)),
            ["invalid_time_claim"]
        );
    }

    #[test]
    fn role_and_custom_claims() {
        let mut p = good_payload();
        p["role"] = json!("agent");
        p["plan"] = json!("pro");
        let r = check_at(
            &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
            &project(),
            &secret(),
            NOW,
        );
        assert_eq!(codes(&r), ["role_claim", "top_level_custom_claims"]);
        assert!(r.is_accepted() && !r.is_safe());
        assert!(r.findings()[0].message.contains("agent"));
        assert!(r.findings()[1].message.contains("plan"));
    }

    #[test]
    fn report_display_names_the_verdict() {
        let r = check_at("nope", &project(), &secret(), NOW);
        assert!(r.to_string().starts_with("REJECTED"));
        let mut p = good_payload();
        p["role"] = json!("owner");
        let r = check_at(
            &sign(Algorithm::HS256, &p, "top-secret-3f1c9a52-5d2e-4f7b-9c1a"),
            &project(),
            &secret(),
            NOW,
        );
        assert!(r.to_string().starts_with("DANGEROUS"), "{r}");
    }
}
