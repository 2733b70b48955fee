//! What a site may say about its visitor: id, names, email and free attributes.
//! Everything the token's meaning depends on (`_id`, `sub`, `aud`, times, `role`) is out of reach.

use serde_json::{Map, Value};

use crate::Error;

/// Claims no caller may set, at the top level or as an attribute key (compared case-insensitively).
///
/// `_id`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and `iss` are the token's own; `role` turns a visitor
/// into an agent of the project; `id` and `fullName` are what the Tiledesk server derives for the widget.
pub const RESERVED_CLAIMS: &[&str] = &[
    "_id", "sub", "aud", "exp", "iat", "nbf", "jti", "iss", "role", "id", "fullName",
];

/// Longest site user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// Longest first or last name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest email accepted, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest attribute key accepted, in bytes.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 128;

/// Who the visitor is, as the site knows them. Built with [`VisitorClaims::builder`], which checks every field.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitorClaims {
    pub(crate) user_id: String,
    pub(crate) prefix_project: bool,
    pub(crate) firstname: Option<String>,
    pub(crate) lastname: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) attributes: Map<String, Value>,
}

impl VisitorClaims {
    /// Starts claims for the site's user `user_id` (the id in the site's own user system).
    ///
    /// By default the token's `_id` is `<project id>_<user id>`, so two sites' user `123` never share a
    /// chat identity (chat ids are global across Tiledesk projects).
    pub fn builder(user_id: impl Into<String>) -> VisitorClaimsBuilder {
        VisitorClaimsBuilder {
            claims: Self {
                user_id: user_id.into(),
                prefix_project: true,
                firstname: None,
                lastname: None,
                email: None,
                attributes: Map::new(),
            },
            attributes_not_object: false,
        }
    }

    /// The site's user id, as given.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
    /// The first name, if any.
    pub fn firstname(&self) -> Option<&str> {
        self.firstname.as_deref()
    }
    /// The last name, if any.
    pub fn lastname(&self) -> Option<&str> {
        self.lastname.as_deref()
    }
    /// The email, if any.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    /// The free attributes, nested under `attributes` in the token.
    pub fn attributes(&self) -> &Map<String, Value> {
        &self.attributes
    }
    /// The same claims for the user id `prefix` followed by this one, checked again: a way in's own namespace
    /// (`oidc:`), so that an id chosen in one system can never be another's. An empty prefix changes nothing.
    pub fn with_id_prefix(mut self, prefix: &str) -> Result<Self, Error> {
        if prefix.is_empty() {
            return Ok(self);
        }
        self.user_id.insert_str(0, prefix);
        check_text("user id", &self.user_id, MAX_USER_ID_LEN)?;
        Ok(self)
    }

    /// The `_id` claim for a project: prefixed with `<project id>_` unless the prefix was turned off.
    pub fn chat_user_id(&self, project: &crate::ProjectId) -> String {
        if self.prefix_project {
            format!("{project}_{}", self.user_id)
        } else {
            self.user_id.clone()
        }
    }
}

/// Builder for [`VisitorClaims`]; [`build`](Self::build) checks every field and refuses reserved claims.
#[derive(Clone, Debug)]
#[must_use]
pub struct VisitorClaimsBuilder {
    claims: VisitorClaims,
    attributes_not_object: bool,
}

impl VisitorClaimsBuilder {
    /// Sets the first name. An empty or blank name counts as no name.
    pub fn firstname(mut self, name: impl Into<String>) -> Self {
        self.claims.firstname = non_blank(name.into());
        self
    }
    /// Sets the last name. An empty or blank name counts as no name.
    pub fn lastname(mut self, name: impl Into<String>) -> Self {
        self.claims.lastname = non_blank(name.into());
        self
    }
    /// Sets the email; its shape is checked by [`build`](Self::build).
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.claims.email = Some(email.into());
        self
    }
    /// Adds one attribute. A reserved key makes [`build`](Self::build) fail.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.attributes.insert(key.into(), value.into());
        self
    }
    /// Adds every entry of a JSON value, which must be an object (anything else makes `build` fail).
    pub fn attributes(mut self, attributes: Value) -> Self {
        match attributes {
            Value::Object(map) => self.claims.attributes.extend(map),
            Value::Null => {}
            _ => self.attributes_not_object = true,
        }
        self
    }
    /// Applies `set` when `value` is there: a field the caller may or may not have, in one line.
    ///
    /// ```
    /// # use tiledesk_jwt::{VisitorClaims, VisitorClaimsBuilder};
    /// let firstname: Option<&str> = Some("Ada");
    /// let email: Option<&str> = None;
    /// let claims = VisitorClaims::builder("42")
    ///     .with(firstname, VisitorClaimsBuilder::firstname)
    ///     .with(email, VisitorClaimsBuilder::email)
    ///     .build()?;
    /// assert_eq!((claims.firstname(), claims.email()), (Some("Ada"), None));
    /// # Ok::<(), tiledesk_jwt::Error>(())
    /// ```
    pub fn with<T>(self, value: Option<T>, set: impl FnOnce(Self, T) -> Self) -> Self {
        match value {
            Some(value) => set(self, value),
            None => self,
        }
    }

    /// Uses the site's user id as `_id` verbatim, without the `<project id>_` prefix.
    ///
    /// Only for a site that already puts globally unique ids in its tokens: otherwise two Tiledesk projects'
    /// user `123` would be the same chat user.
    pub fn without_project_prefix(mut self) -> Self {
        self.claims.prefix_project = false;
        self
    }

    /// Checks every field and returns the claims.
    pub fn build(self) -> Result<VisitorClaims, Error> {
        if self.attributes_not_object {
            return Err(Error::InvalidAttributeKey {
                reason: "attributes must be an object",
            });
        }
        let c = self.claims;
        if c.user_id.is_empty() {
            return Err(Error::EmptyUserId);
        }
        check_text("user id", &c.user_id, MAX_USER_ID_LEN)?;
        if let Some(name) = &c.firstname {
            check_text("firstname", name, MAX_NAME_LEN)?;
        }
        if let Some(name) = &c.lastname {
            check_text("lastname", name, MAX_NAME_LEN)?;
        }
        if let Some(email) = &c.email {
            check_text("email", email, MAX_EMAIL_LEN)?;
            if !is_valid_email(email) {
                return Err(Error::InvalidEmail);
            }
        }
        for key in c.attributes.keys() {
            check_attribute_key(key)?;
        }
        Ok(c)
    }
}

fn non_blank(s: String) -> Option<String> {
    if s.trim().is_empty() { None } else { Some(s) }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.len() > max {
        return Err(Error::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(Error::ControlCharacter { field });
    }
    Ok(())
}

fn check_attribute_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::InvalidAttributeKey {
            reason: "a key is empty",
        });
    }
    if key.len() > MAX_ATTRIBUTE_KEY_LEN {
        return Err(Error::InvalidAttributeKey {
            reason: "a key is longer than 128 bytes",
        });
    }
    if key.chars().any(char::is_control) {
        return Err(Error::InvalidAttributeKey {
            reason: "a key contains a control character",
        });
    }
    if let Some(name) = reserved_claim(key) {
        return Err(Error::ReservedClaim {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The reserved claim `key` names, ignoring ASCII case, if any: `reserved_claim("ROLE") == Some("role")`.
pub fn reserved_claim(key: &str) -> Option<&'static str> {
    RESERVED_CLAIMS
        .iter()
        .copied()
        .find(|r| r.eq_ignore_ascii_case(key))
}

/// Whether `email` has the shape `local@domain.tld`, in ASCII.
///
/// Deliberately strict: non-ASCII (internationalised) addresses are refused, which also keeps
/// look-alike characters out of a field an agent reads to recognise a customer.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_LEN || !email.is_ascii() {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.bytes().all(|b| b.is_ascii_digit()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_with_every_optional_field() {
        let c = VisitorClaims::builder("42")
            .firstname("Andrew")
            .lastname("Wiles")
            .email("andrew@scientists.com")
            .attribute("plan", "pro")
            .attributes(json!({"seats": 3}))
            .build()
            .unwrap();
        assert_eq!(c.user_id(), "42");
        assert_eq!(c.firstname(), Some("Andrew"));
        assert_eq!(c.attributes()["plan"], "pro");
        assert_eq!(c.attributes()["seats"], 3);
    }

    #[test]
    fn user_id_must_be_present_short_and_printable() {
        assert!(matches!(
            VisitorClaims::builder("").build(),
            Err(Error::EmptyUserId)
        ));
        let long = "x".repeat(MAX_USER_ID_LEN + 1);
        assert!(matches!(
            VisitorClaims::builder(long).build(),
            Err(Error::TooLong { field: "user id", .. })
        ));
        assert!(
            VisitorClaims::builder("x".repeat(MAX_USER_ID_LEN))
                .build()
                .is_ok()
        );
        assert!(matches!(
            VisitorClaims::builder("a\nb").build(),
            Err(Error::ControlCharacter { field: "user id" })
        ));
    }

    #[test]
    fn every_reserved_claim_is_refused_as_an_attribute_in_any_case() {
        for name in RESERVED_CLAIMS {
            for key in [name.to_string(), name.to_uppercase()] {
                let err = VisitorClaims::builder("1")
                    .attribute(key.clone(), "x")
                    .build()
                    .unwrap_err();
                assert!(
                    matches!(&err, Error::ReservedClaim { name: n } if n == name),
                    "{key}: {err}"
                );
                let err = VisitorClaims::builder("1")
                    .attributes(json!({ key.clone(): 1 }))
                    .build()
                    .unwrap_err();
                assert!(matches!(err, Error::ReservedClaim { .. }), "{key}");
            }
        }
    }

    #[test]
    fn attributes_must_be_an_object_with_sane_keys() {
        assert!(
            VisitorClaims::builder("1")
                .attributes(json!([1, 2]))
                .build()
                .is_err()
        );
        assert!(
            VisitorClaims::builder("1")
                .attributes(json!("role"))
                .build()
                .is_err()
        );
        assert!(
            VisitorClaims::builder("1")
                .attributes(Value::Null)
                .build()
                .is_ok()
        );
        assert!(VisitorClaims::builder("1").attribute("", 1).build().is_err());
        assert!(
            VisitorClaims::builder("1")
                .attribute("k".repeat(129), 1)
                .build()
                .is_err()
        );
        assert!(
            VisitorClaims::builder("1")
                .attribute("a\u{0}b", 1)
                .build()
                .is_err()
        );
    }

    #[test]
    fn names_are_bounded_and_blank_means_absent() {
        let c = VisitorClaims::builder("1")
            .firstname("  ")
            .lastname("")
            .build()
            .unwrap();
        assert_eq!((c.firstname(), c.lastname()), (None, None));
        assert!(
            VisitorClaims::builder("1")
                .firstname("n".repeat(257))
                .build()
                .is_err()
        );
        assert!(VisitorClaims::builder("1").lastname("x\r\ny").build().is_err());
    }

    #[test]
    fn email_shape() {
        for ok in [
            "a@b.co",
            "andrew.wiles+chat@scientists.com",
            "x_y@sub.example.org",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@b.co",
            "a@b",
            "a@@b.co",
            "a b@c.co",
            "a@b..co",
            "a@-b.co",
            "a@b.c",
            ".a@b.co",
            "a..b@c.co",
            "a@b.123",
            "аndrew@scientists.com",
            /* Cyrillic а */ "a@bü.com",
            "a\n@b.co",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
        assert!(matches!(
            VisitorClaims::builder("1").email("nope").build(),
            Err(Error::InvalidEmail)
        ));
    }

    #[test]
    fn chat_user_id_is_prefixed_unless_turned_off() {
        let project = crate::ProjectId::new("p1").unwrap();
        let c = VisitorClaims::builder("42").build().unwrap();
        assert_eq!(c.chat_user_id(&project), "p1_42");
        let c = VisitorClaims::builder("42")
            .without_project_prefix()
            .build()
            .unwrap();
        assert_eq!(c.chat_user_id(&project), "42");
    }
}
