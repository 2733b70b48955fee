//! The chat side of the double: what Tiledesk's chat21 server does for the widget.
//!
//! chat21-server's `observer.js` (`process_outgoing`, `deliverMessage`, `sendMessageToGroupMembers`) takes what a
//! client publishes on `apps/{app}/outgoing/users/{sender}/messages/{recipient}/outgoing`, stamps it
//! (`message_id`, `sender`, `recipient`, `app_id`, `timestamp`, `status` 100 SENT or 150 DELIVERED), and publishes
//! it on `apps/{app}/users/{inbox}/messages/{convers_with}/clientadded` for the sender and every recipient: for a
//! group (a recipient id containing `group-`) every member and the group itself. It persists each timeline and
//! conversation, which the chat HTTP API (chat21-http-server) then serves as `{success, result}`.
//!
//! [`ChatStore`] is that logic without a broker: [`ChatStore::deliver`] returns the publications to make, and
//! [`crate::relay`] makes them over MQTT.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::MockState;

/// The chat21 application id Tiledesk uses.
pub const APP_ID: &str = "tilechat";
/// chat21's status codes (`models/messageConstants.js`).
const SENT: u16 = 100;
const DELIVERED: u16 = 150;

/// One MQTT publication the relay makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The MQTT topic (`/`-separated, as RabbitMQ's MQTT plugin maps chat21's routing keys).
    pub topic: String,
    /// The JSON payload.
    pub payload: Value,
}

/// Timelines, conversations and group members, as chat21's database holds them.
#[derive(Debug, Default)]
pub struct ChatStore {
    /// `(inbox, convers_with)` → messages, oldest first.
    timelines: HashMap<(String, String), Vec<Value>>,
    /// inbox → convers_with → conversation (the last message, decorated).
    conversations: HashMap<String, HashMap<String, Value>>,
    /// group id → members (the group itself is not listed).
    groups: HashMap<String, BTreeSet<String>>,
    /// Chat tokens handed out by `createCustomToken`: token → user id.
    chat_tokens: HashMap<String, String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `apps/{app}/outgoing/users/{sender}/messages/{recipient}/outgoing` → `(sender, recipient)`.
pub fn parse_outgoing(topic: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = topic.split('/').collect();
    match parts.as_slice() {
        [
            "apps",
            app,
            "outgoing",
            "users",
            sender,
            "messages",
            recipient,
            "outgoing",
        ] if *app == APP_ID && !sender.is_empty() && !recipient.is_empty() => Some((sender, recipient)),
        _ => None,
    }
}

impl ChatStore {
    /// Remembers a chat token handed to `user`.
    pub fn issue_token(&mut self, token: String, user: String) {
        self.chat_tokens.insert(token, user);
    }

    /// The user a chat token was handed to.
    pub fn token_user(&self, token: &str) -> Option<&str> {
        self.chat_tokens.get(token).map(String::as_str)
    }

    /// What chat21-server does with a message `sender` published to `recipient`: stamp it, store it in every
    /// timeline it belongs to, and return the `clientadded` publications for each inbox.
    pub fn deliver(
        &mut self,
        sender: &str,
        recipient: &str,
        mut message: Map<String, Value>,
    ) -> Vec<Publication> {
        message.insert(
            "message_id".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        message.insert("sender".into(), Value::String(sender.to_owned()));
        message.insert("recipient".into(), Value::String(recipient.to_owned()));
        message.insert("app_id".into(), Value::String(APP_ID.to_owned()));
        message
            .entry("timestamp")
            .or_insert_with(|| Value::from(now_ms()));
        let is_group = recipient.contains("group-")
            || message.get("channel_type").and_then(Value::as_str) == Some("group");
        // (inbox, convers_with, status)
        let deliveries: Vec<(String, String, u16)> = if is_group {
            let members = self.groups.entry(recipient.to_owned()).or_default();
            members.insert(sender.to_owned());
            std::iter::once((recipient.to_owned(), recipient.to_owned(), SENT))
                .chain(
                    members
                        .iter()
                        .map(|m| (m.clone(), recipient.to_owned(), DELIVERED)),
                )
                .collect()
        } else {
            vec![
                (sender.to_owned(), recipient.to_owned(), SENT),
                (recipient.to_owned(), sender.to_owned(), DELIVERED),
            ]
        };
        let mut publications = Vec::new();
        for (inbox, convers_with, status) in deliveries {
            let mut copy = message.clone();
            copy.insert("status".into(), Value::from(status));
            let copy = Value::Object(copy);
            self.timelines
                .entry((inbox.clone(), convers_with.clone()))
                .or_default()
                .push(copy.clone());
            let conversation = conversation_of(&copy, &convers_with);
            let known = self
                .conversations
                .entry(inbox.clone())
                .or_default()
                .insert(convers_with.clone(), conversation.clone())
                .is_some();
            publications.push(Publication {
                topic: format!("apps/{APP_ID}/users/{inbox}/messages/{convers_with}/clientadded"),
                payload: copy,
            });
            let event = if known { "clientupdated" } else { "clientadded" };
            publications.push(Publication {
                topic: format!("apps/{APP_ID}/users/{inbox}/conversations/{convers_with}/{event}"),
                payload: conversation,
            });
        }
        publications
    }

    /// `inbox`'s conversations, the most recent first.
    pub fn conversations(&self, inbox: &str) -> Vec<Value> {
        let mut list: Vec<Value> = self
            .conversations
            .get(inbox)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by_key(|c| std::cmp::Reverse(c["timestamp"].as_u64().unwrap_or(0)));
        list
    }

    /// The messages of `inbox`'s conversation with `convers_with`, oldest first.
    pub fn messages(&self, inbox: &str, convers_with: &str) -> Vec<Value> {
        self.timelines
            .get(&(inbox.to_owned(), convers_with.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// What process_persist stores as a conversation: the last message, with the conversation's keys.
fn conversation_of(message: &Value, convers_with: &str) -> Value {
    let mut conversation = message.clone();
    if let Some(map) = conversation.as_object_mut() {
        map.insert("conversWith".into(), Value::String(convers_with.to_owned()));
        map.insert("key".into(), Value::String(convers_with.to_owned()));
        map.insert("is_new".into(), Value::Bool(true));
        map.insert("archived".into(), Value::Bool(false));
        let text = map.get("text").cloned().unwrap_or(Value::Null);
        map.insert("last_message_text".into(), text);
    }
    conversation
}

/// The store shared by the HTTP routes and the relay.
pub type SharedStore = Arc<Mutex<ChatStore>>;

pub(crate) fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, ChatStore> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The chat HTTP API (chat21-http-server) under `/chatapi/api`.
pub(crate) fn router() -> Router<MockState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/chatapi/api/{app}/{user}/conversations", get(conversations))
        .route("/chatapi/api/{app}/{user}/archived_conversations", get(archived))
        .route("/chatapi/api/{app}/{user}/conversations/archived", get(archived))
        .route(
            "/chatapi/api/{app}/{user}/conversations/{with}",
            get(conversation),
        )
        .route(
            "/chatapi/api/{app}/{user}/conversations/{with}/messages",
            get(messages),
        )
        .route("/test/agent-reply", post(agent_reply))
        .route("/test/chat/{user}", get(test_conversations))
}

/// The timeline a chat API request is for: chat21-http-server answers only its owner, identified by the chat
/// token in `Authorization`; anyone else gets a 401.
struct Timeline {
    user: String,
    /// The conversation, for the routes about one.
    with: Option<String>,
}

impl FromRequestParts<MockState> for Timeline {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &MockState) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let user = params.get("user").cloned().unwrap_or_default();
        let owner = params.get("app").map(String::as_str) == Some(APP_ID)
            && lock(&state.chat).token_user(token) == Some(user.as_str());
        if !owner {
            let body = Json(json!({"success": false, "err": "Unauthorized"}));
            return Err((StatusCode::UNAUTHORIZED, body).into_response());
        }
        Ok(Self {
            user,
            with: params.get("with").cloned(),
        })
    }
}

fn result(list: &[Value]) -> Response {
    Json(json!({ "success": true, "result": list })).into_response()
}

async fn conversations(State(state): State<MockState>, timeline: Timeline) -> Response {
    result(&lock(&state.chat).conversations(&timeline.user))
}

async fn archived(_: Timeline) -> Response {
    result(&[])
}

async fn conversation(State(state): State<MockState>, timeline: Timeline) -> Response {
    let with = timeline.with.unwrap_or_default();
    let found: Vec<Value> = lock(&state.chat)
        .conversations(&timeline.user)
        .into_iter()
        .filter(|c| c["conversWith"] == with.as_str())
        .collect();
    result(&found)
}

async fn messages(State(state): State<MockState>, timeline: Timeline) -> Response {
    let with = timeline.with.unwrap_or_default();
    result(&lock(&state.chat).messages(&timeline.user, &with))
}

/// `POST /test/agent-reply`: an agent answers in a visitor's conversation (a test's stand-in for the dashboard).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentReply {
    /// The visitor whose most recent conversation gets the reply.
    user: String,
    text: String,
    /// The agent's chat id (default `agent-1`).
    agent: Option<String>,
}

async fn agent_reply(State(state): State<MockState>, Json(reply): Json<AgentReply>) -> Response {
    let Some(relay) = state.relay.clone() else {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "the mock runs without a broker (--mqtt)"})),
        )
            .into_response();
    };
    let Some(conversation) = lock(&state.chat)
        .conversations(&reply.user)
        .first()
        .and_then(|c| c["conversWith"].as_str().map(str::to_owned))
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "that visitor has no conversation"})),
        )
            .into_response();
    };
    let agent = reply.agent.unwrap_or_else(|| "agent-1".to_owned());
    let mut message = Map::new();
    message.insert("text".into(), Value::String(reply.text));
    message.insert("type".into(), Value::String("text".into()));
    message.insert("sender_fullname".into(), Value::String("Support agent".into()));
    message.insert("channel_type".into(), Value::String("group".into()));
    message.insert("attributes".into(), json!({}));
    let publications = lock(&state.chat).deliver(&agent, &conversation, message);
    match relay.publish_all(publications).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "conversation": conversation }))).into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, Json(json!({ "error": err.to_string() }))).into_response(),
    }
}

/// `GET /test/chat/{user}`: what the store holds for a visitor, for tests to wait on.
async fn test_conversations(State(state): State<MockState>, Path(user): Path<String>) -> Json<Value> {
    let store = lock(&state.chat);
    let conversations = store.conversations(&user);
    let messages: Vec<Value> = conversations
        .iter()
        .filter_map(|c| c["conversWith"].as_str())
        .flat_map(|with| store.messages(&user, with))
        .collect();
    Json(json!({ "conversations": conversations, "messages": messages }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Map<String, Value> {
        json!({ "text": t, "type": "text" })
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn outgoing_topics_name_sender_and_recipient() {
        assert_eq!(
            parse_outgoing("apps/tilechat/outgoing/users/u1/messages/support-group-p-1/outgoing"),
            Some(("u1", "support-group-p-1"))
        );
        assert_eq!(
            parse_outgoing("apps/other/outgoing/users/u1/messages/x/outgoing"),
            None
        );
        assert_eq!(
            parse_outgoing("apps/tilechat/users/u1/messages/x/clientadded"),
            None
        );
    }

    #[test]
    fn a_direct_message_goes_to_both_inboxes_with_chat21_status_codes() {
        let mut store = ChatStore::default();
        let published = store.deliver("alice", "bob", text("hi"));
        let added: Vec<(&str, u64)> = published
            .iter()
            .filter(|p| p.topic.contains("/messages/"))
            .map(|p| (p.topic.as_str(), p.payload["status"].as_u64().unwrap_or(0)))
            .collect();
        assert_eq!(
            added,
            [
                ("apps/tilechat/users/alice/messages/bob/clientadded", 100),
                ("apps/tilechat/users/bob/messages/alice/clientadded", 150)
            ]
        );
        let message = &published[0].payload;
        assert_eq!(message["sender"], "alice");
        assert_eq!(message["recipient"], "bob");
        assert_eq!(message["app_id"], "tilechat");
        assert!(message["message_id"].as_str().is_some_and(|id| id.len() == 36));
        assert_eq!(store.messages("bob", "alice").len(), 1);
        assert_eq!(store.conversations("alice")[0]["last_message_text"], "hi");
    }

    #[test]
    fn a_group_message_reaches_every_member_and_the_group_timeline() {
        let mut store = ChatStore::default();
        let group = "support-group-p-1";
        store.deliver("visitor", group, text("hello"));
        let published = store.deliver("agent-1", group, text("how can I help?"));
        let inboxes: BTreeSet<&str> = published
            .iter()
            .filter(|p| p.topic.contains("/messages/"))
            .filter_map(|p| p.topic.split('/').nth(3))
            .collect();
        assert_eq!(inboxes, BTreeSet::from([group, "agent-1", "visitor"]));
        let history: Vec<String> = store
            .messages("visitor", group)
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(history, ["hello", "how can I help?"]);
        let updated = published.iter().any(|p| {
            p.topic
                .ends_with("visitor/conversations/support-group-p-1/clientupdated")
        });
        assert!(updated, "a known conversation is updated, not added");
    }
}
