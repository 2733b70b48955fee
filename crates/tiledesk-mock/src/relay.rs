//! The relay: an MQTT client of the broker the widget talks to, doing chat21-server's delivery
//! ([`crate::chat::ChatStore::deliver`]) for every message a client publishes on its outgoing topic.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::chat::{self, Publication, SharedStore};

/// What clients publish to: `apps/tilechat/outgoing/users/{sender}/messages/{recipient}/outgoing`.
const OUTGOING: &str = "apps/tilechat/outgoing/users/+/messages/+/outgoing";

/// A handle to publish through the relay's connection.
#[derive(Clone, Debug)]
pub struct Relay {
    client: AsyncClient,
}

impl Relay {
    /// Connects to the broker at `host:port` (plain MQTT) and relays until the process ends. The connection is
    /// re-established after a broker outage, and the subscription renewed.
    pub fn start(host: &str, port: u16, store: SharedStore) -> Self {
        let mut options = MqttOptions::new(format!("tiledesk-mock-relay-{}", std::process::id()), host, port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = AsyncClient::new(options, 1024);
        let relay = Self { client };
        let this = relay.clone();
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!("relay connected to the broker");
                        if let Err(err) = this.client.try_subscribe(OUTGOING, QoS::AtLeastOnce) {
                            tracing::error!("relay cannot subscribe: {err}");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let topic = publish.topic.clone();
                        let Some((sender, recipient)) = chat::parse_outgoing(&topic) else {
                            continue;
                        };
                        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(&publish.payload)
                        else {
                            tracing::warn!(topic, "an outgoing message that is not a JSON object: dropped");
                            continue;
                        };
                        let publications = chat::lock(&store).deliver(sender, recipient, message);
                        let this = this.clone();
                        tokio::spawn(async move {
                            if let Err(err) = this.publish_all(publications).await {
                                tracing::error!("relay cannot publish: {err}");
                            }
                        });
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!("relay: broker connection lost ({err}); retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        relay
    }

    /// Publishes each publication, in order.
    pub async fn publish_all(&self, publications: Vec<Publication>) -> Result<(), rumqttc::ClientError> {
        for publication in publications {
            let payload = publication.payload.to_string();
            self.client
                .publish(publication.topic, QoS::AtLeastOnce, false, payload)
                .await?;
        }
        Ok(())
    }
}
