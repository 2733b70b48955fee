//! A new user's fields checked as `POST /auth` and the token core will judge them, and the password hashed: what
//! `users add` and `users import` both store.

use serde_json::{Map, Value};
use tiledesk_jwt::{VisitorClaims, VisitorClaimsBuilder};

use crate::guard::passwords::{MAX_PASSWORD_LEN, hash_blocking};
use crate::identity::users::NewUser;

/// Whether `password` may be stored: not empty, at most [`MAX_PASSWORD_LEN`] bytes.
pub(super) fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!("the password is longer than {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(())
}

/// Checks a user's fields as POST /auth and the token core will, and hashes the password.
pub(super) fn checked_user(
    email: &str,
    firstname: Option<&str>,
    lastname: Option<&str>,
    attributes: Map<String, Value>,
    password: &str,
) -> Result<NewUser, String> {
    let email = email.trim();
    check_password(password)?;
    // The token core is the one judge of names, email and attributes.
    let claims = VisitorClaims::builder("check")
        .email(email)
        .attributes(Value::Object(attributes.clone()))
        .with(firstname, VisitorClaimsBuilder::firstname)
        .with(lastname, VisitorClaimsBuilder::lastname)
        .build()
        .map_err(|e| e.to_string())?;
    let password_hash = hash_blocking(password.as_bytes()).map_err(|e| e.to_string())?;
    Ok(NewUser {
        email: email.to_owned(),
        firstname: claims.firstname().map(str::to_owned),
        lastname: claims.lastname().map(str::to_owned),
        attributes,
        password_hash,
    })
}
