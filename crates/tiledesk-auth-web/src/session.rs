//! What the widget keeps of a visitor in the browser's storage (`widget_sv5_<projectid>_<key>`, in localStorage, or
//! sessionStorage when the widget's persistence is `SESSION`): its session (`tiledeskToken`, `currentUser`), the
//! conversation attributes it sends with every conversation (`attributes`: `userFullname`, `userEmail`...) and the
//! conversation it has open (`recipientId`).
//!
//! The widget re-uses a stored token, and when Tiledesk answers 401 (it expired) the widget hides and disposes
//! itself; a stored token of another visitor would sign the widget in as them. It starts a visitor's attributes
//! from the stored ones: a visitor whose token carries no email got the previous visitor's. And it takes the stored
//! conversation as its current one: the next visitor's widget held the previous visitor's (all measured on the real
//! widget; for the same visitor it changes nothing seen: the launcher opens the widget's home either way). The
//! module signs in with a fresh token of its own every time, so it removes all four before the loader boots, and on
//! sign-out.

use web_sys::Storage;

const KEYS: [&str; 4] = ["tiledeskToken", "currentUser", "attributes", "recipientId"];

/// Removes what this project's widget stored of its visitor.
pub(crate) fn clear(project_id: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let stores: [Option<Storage>; 2] = [
        window.local_storage().ok().flatten(),
        window.session_storage().ok().flatten(),
    ];
    for storage in stores.iter().flatten() {
        for key in KEYS {
            let _ = storage.remove_item(&["widget_sv5_", project_id, "_", key].concat());
        }
    }
}
