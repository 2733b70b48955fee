//! A visitor the site already knows is not asked who they are: with Tiledesk's pre-chat form on, the signed-in
//! visitor starts a conversation at once, and the agent sees the verified name and email. On Tiledesk's real widget.
//!
//! Needs what `cargo xtask test` builds first: the binaries, the package and the widget.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a failure should panic

use serde_json::{Value, json};
use tiledesk_e2e::{Browser, Stack};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "analytical engine";

/// What the chat server holds of `chat_id`'s conversations: their messages.
fn messages(stack: &Stack, chat_id: &str) -> Vec<Value> {
    let answer = tiledesk_e2e::http_get(&format!("{}/test/chat/{chat_id}", stack.mock_url));
    serde_json::from_value(answer["messages"].clone()).unwrap()
}

#[tokio::test]
async fn with_the_pre_chat_form_on_a_signed_in_visitor_is_not_asked_and_the_agent_sees_the_verified_name() {
    let stack = Stack::start(&[]);
    let chat_id = Stack::chat_id(&stack.add_named_user(EMAIL, ["Ada", "Lovelace"], PASSWORD));
    let browser = Browser::open().await;
    let options = stack.options(EMAIL, PASSWORD, &json!({"settings": {"preChatForm": true}}));
    browser.harness(&stack, &options).await;
    let outcome = browser.js("return window.harness.signIn();").await;
    assert_eq!(outcome["state"]["status"], json!("authenticated"), "{outcome}");
    // The composer comes up after "New conversation": no form asks for a name and an email first.
    write_to_support(&stack, &browser, &chat_id, "Where is my order?").await;
    assert_eq!(
        browser
            .js("return !!document.getElementById('tiledeskiframe').contentDocument.querySelector('.prechat-form.active');")
            .await,
        json!(false),
        "no pre-chat form"
    );
    let message = first_message(&stack, &chat_id).await;
    assert_eq!(message["text"], json!("Where is my order?"), "{message}");
    assert_eq!(message["sender_fullname"], json!("Ada Lovelace"), "{message}");
    assert_eq!(
        message["attributes"]["userFullname"],
        json!("Ada Lovelace"),
        "{message}"
    );
    assert_eq!(message["attributes"]["userEmail"], json!(EMAIL), "{message}");
    browser.close().await;
}

/// The signed-in visitor `chat_id` opens the widget and sends `text` in a new conversation, once the widget has
/// its conversations (it settles its view then: a click before that can be undone).
async fn write_to_support(stack: &Stack, browser: &Browser, chat_id: &str, text: &str) {
    stack
        .wait_for_request(&format!("{chat_id}/conversations/archived"))
        .await;
    browser.open_widget().await;
    browser.send_message(text).await;
}

/// The conversation the real widget holds as its current one (`recipientId`): in its memory and in its storage.
async fn current_conversation(browser: &Browser) -> Value {
    browser
        .js(&format!(
            "return [window.tiledesk.angularcomponent.component.g.recipientId || null, \
                     localStorage.getItem('widget_sv5_{}_recipientId')];",
            tiledesk_e2e::PROJECT
        ))
        .await
}

/// Waits until the chat server holds a message from `chat_id`; returns the first.
async fn first_message(stack: &Stack, chat_id: &str) -> Value {
    let deadline = std::time::Instant::now() + tiledesk_e2e::WAIT;
    loop {
        if let Some(message) = messages(stack, chat_id).into_iter().next() {
            return message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message of {chat_id} reached the chat server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling the chat server, not a pause
    }
}

#[tokio::test]
async fn a_previous_visitors_name_and_email_never_reach_the_next_visitors_conversation() {
    let stack = Stack::start(&[]);
    let grace = Stack::chat_id(&stack.add_named_user("grace@example.com", ["Grace", "Hopper"], "compiler"));
    let browser = Browser::open().await;
    browser
        .harness(
            &stack,
            &stack.options("grace@example.com", "compiler", &json!({})),
        )
        .await;
    let outcome = browser.js("return window.harness.signIn();").await;
    assert_eq!(outcome["state"]["status"], json!("authenticated"), "{outcome}");
    write_to_support(&stack, &browser, &grace, "Grace asks").await;
    let graces = first_message(&stack, &grace).await;
    assert_eq!(graces["attributes"]["userEmail"], json!("grace@example.com"));
    assert_eq!(
        current_conversation(&browser).await,
        json!([graces["recipient"], graces["recipient"]]),
        "the widget keeps Grace's conversation as its current one"
    );
    // Grace leaves without signing out. The next visitor of this browser is one the site knows without an email.
    let next = json!({
        "projectId": tiledesk_e2e::PROJECT,
        "authUrl": format!("{}/test-site/auth?user=bob", stack.mock_url),
        "widgetUrl": format!("{}/widget/launch.js", stack.mock_url),
        "timeoutMs": 8000,
    });
    browser.harness(&stack, &next).await;
    let outcome = browser.js("return window.harness.signIn();").await;
    assert_eq!(outcome["state"]["status"], json!("authenticated"), "{outcome}");
    let bob = outcome["state"]["userId"].as_str().unwrap().to_owned();
    // The widget held Grace's conversation (its id) as Bob's current one: he is signed in with none.
    assert_eq!(current_conversation(&browser).await, json!([null, null]));
    write_to_support(&stack, &browser, &bob, "Bob asks").await;
    let message = first_message(&stack, &bob).await;
    assert_eq!(message["sender_fullname"], json!("Test bob"), "{message}");
    let attributes = &message["attributes"];
    assert_eq!(attributes["userFullname"], json!("Test bob"), "{message}");
    assert!(
        !attributes.to_string().contains("grace") && !attributes.to_string().contains("Grace"),
        "nothing of Grace's in Bob's conversation: {attributes}"
    );
    browser.close().await;
}
