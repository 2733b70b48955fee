//! The site's other tabs, over a `BroadcastChannel` per project (same origin only, as the browser guarantees).
//!
//! Two messages: a tab signed out (every tab signs out: on a shared computer a tab left signed in would keep the
//! last visitor's chat open), and a tab signed a visitor in (every other tab signs in too, each asking its own
//! token source, and only if that source names the same visitor).

use js_sys::Reflect;
use serde::ser::{Serialize, SerializeMap, Serializer};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BroadcastChannel, MessageEvent};

/// What one tab tells the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// The visitor signed out in that tab.
    SignedOut,
    /// The widget of that tab reported `user` online after a `signIn()` there.
    SignedIn { user: Option<String> },
}

/// A message on the channel: `{kind: "signed_out" | "signed_in", user: string | null}`, written by serde as a map
/// (see `state`'s doc for why not a derive).
struct Wire<'a> {
    kind: &'static str,
    user: Option<&'a str>,
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("kind", self.kind)?;
        map.serialize_entry("user", &self.user)?;
        map.end()
    }
}

impl Message {
    /// Reads a message another tab wrote; anything else on the channel (another version, another library) is
    /// not ours. Two keys looked up: a deserializer for this would cost the module 3 KB.
    fn read(data: &JsValue) -> Option<Self> {
        let field = |key: &str| Reflect::get(data, &key.into()).ok();
        match field("kind")?.as_string()?.as_str() {
            "signed_out" => Some(Self::SignedOut),
            "signed_in" => Some(Self::SignedIn {
                user: field("user").and_then(|u| u.as_string()),
            }),
            _ => None,
        }
    }
}

/// The open channel; dropping it closes it.
pub(crate) struct Tabs {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Tabs {
    /// Opens the project's channel; `None` where the browser has no `BroadcastChannel`.
    pub(crate) fn open(project_id: &str, mut handler: impl FnMut(Message) + 'static) -> Option<Self> {
        let channel = BroadcastChannel::new(&["tiledesk-auth:", project_id].concat()).ok()?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(message) = Message::read(&event.data()) {
                handler(message);
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(Self {
            channel,
            _on_message: on_message,
        })
    }

    /// Tells every other tab of the site (not this one: a channel does not hear itself).
    pub(crate) fn say(&self, message: &Message) {
        let wire = match message {
            Message::SignedOut => Wire {
                kind: "signed_out",
                user: None,
            },
            Message::SignedIn { user } => Wire {
                kind: "signed_in",
                user: user.as_deref(),
            },
        };
        if let Ok(value) = wire.serialize(&serde_wasm_bindgen::Serializer::json_compatible()) {
            let _ = self.channel.post_message(&value);
        }
    }
}

impl Drop for Tabs {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
