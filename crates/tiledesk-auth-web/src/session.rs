//! The widget's stored session (`widget_sv5_<projectid>_tiledeskToken` and `_currentUser` in localStorage).
//!
//! The widget re-uses a stored token at boot, and when Tiledesk answers 401 (it expired) the widget hides and
//! disposes itself. So a stale stored token must go before the loader boots.

use web_sys::Storage;

/// Seconds of margin: a token this close to expiry is as good as expired by the time the widget uses it.
const EXPIRY_MARGIN_SECS: f64 = 30.0;

fn keys(project_id: &str) -> [String; 2] {
    [
        format!("widget_sv5_{project_id}_tiledeskToken"),
        format!("widget_sv5_{project_id}_currentUser"),
    ]
}

fn storage() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Whether a stored token should be removed: unreadable, or expiring within the margin. No `exp`: it never expires.
pub(crate) fn is_stale(token: &str, now_secs: f64) -> bool {
    if crate::token::normalize(token).is_err() {
        return true;
    }
    match crate::token::expiry_of(token) {
        Some(exp) => exp <= now_secs + EXPIRY_MARGIN_SECS,
        None => token.split('.').nth(1).is_none(),
    }
}

/// Removes this project's stored session if its token is stale; says whether it did.
pub(crate) fn clear_if_stale(project_id: &str, now_secs: f64) -> bool {
    let Some(storage) = storage() else { return false };
    let [token_key, _] = keys(project_id);
    match storage.get_item(&token_key).ok().flatten() {
        Some(token) if is_stale(&token, now_secs) => {
            clear(project_id);
            true
        }
        _ => false,
    }
}

/// Removes this project's stored session.
pub(crate) fn clear(project_id: &str) {
    if let Some(storage) = storage() {
        for key in keys(project_id) {
            let _ = storage.remove_item(&key);
        }
    }
}
