//! The widget's stored session (`widget_sv5_<projectid>_tiledeskToken` and `_currentUser` in localStorage).
//!
//! The widget re-uses a stored token, and when Tiledesk answers 401 (it expired) the widget hides and disposes
//! itself; a stored token of another visitor would sign the widget in as them. The module signs in with a fresh
//! token of its own every time, so it removes the stored session before the loader boots, and on sign-out.

use web_sys::Storage;

fn keys(project_id: &str) -> [String; 2] {
    [
        format!("widget_sv5_{project_id}_tiledeskToken"),
        format!("widget_sv5_{project_id}_currentUser"),
    ]
}

fn storage() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Removes this project's stored session.
pub(crate) fn clear(project_id: &str) {
    if let Some(storage) = storage() {
        for key in keys(project_id) {
            let _ = storage.remove_item(&key);
        }
    }
}
