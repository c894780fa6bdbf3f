//! `POST /v1/telephony/retell` before the signature (hardening beyond R2.1): the body limit and the
//! optional source allow-list refuse a delivery before anything is verified, parsed or
//! stored; a delivery from an allowed network is processed as usual.

use crate::common;

use common::*;
use harness::events::ApiRequest;
use harness::logs::LogCapture;
use secrecy::SecretString;
use serde_json::json;
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::config::Cidr;
use shared::retell::signature::sign;

/// The source address RetellAI documents for its webhooks.
const PROVIDER_IP: &str = "100.20.5.228";
const STRANGER_IP: &str = "203.0.113.99";

struct Webhook {
    world: World,
    app: telephony::App,
}

impl Webhook {
    /// The webhook function as the template configures it, with `cidrs` as
    /// `WEBHOOK_SOURCE_CIDRS`.
    async fn spawn(cidrs: &[&str]) -> Self {
        let world = World::start().await;
        let app = world.webhook_with(|config| {
            assert!(
                config.webhook_source_cidrs.is_empty(),
                "the template restricts nothing by default"
            );
            config.webhook_source_cidrs = cidrs.iter().map(|c| Cidr::parse(c).unwrap()).collect();
        });
        Self { world, app }
    }

    /// Delivers `body` with a valid signature from `source_ip`.
    async fn deliver_from(&self, body: &[u8], source_ip: &str) -> u16 {
        let sig = sign(
            body,
            &SecretString::from(API_KEY.to_owned()),
            self.world.now_ms(),
        );
        let req = ApiRequest::post_json("/v1/telephony/retell", body)
            .without_header("user-agent")
            .header("x-retell-signature", &sig)
            .source_ip(source_ip);
        telephony::handle(&self.app, req.build())
            .await
            .status()
            .as_u16()
    }

    async fn stored(&self, call_id: &str) -> bool {
        self.world
            .signup
            .item(call_pk(call_id), CALL_SK)
            .await
            .is_some()
    }

    /// Every item stored in the stack's tables.
    async fn item_count(&self) -> usize {
        self.world.signup.scan().await.len()
    }
}

/// A `call_started` of an unlinked call, padded with an unknown member to `size` bytes.
fn event_of_size(call_id: &str, size: usize) -> Vec<u8> {
    let framed = |padding: &str| {
        serde_json::to_vec(&json!({
            "event": "call_started",
            "call": {"call_id": call_id, "call_type": "phone_call", "call_status": "ongoing",
                     "agent_id": "agent_x", "padding": padding}
        }))
        .unwrap()
    };
    let frame = framed("").len();
    let body = framed(&"x".repeat(size.saturating_sub(frame)));
    assert_eq!(body.len(), size.max(frame));
    body
}

/// A validly signed body over the limit is refused with 413 before it is
/// verified or parsed, and nothing is stored; a body at the limit is processed.
#[tokio::test]
async fn an_oversized_body_is_refused_with_413_and_nothing_stored() {
    let w = Webhook::spawn(&[]).await;
    let before = w.item_count().await;

    let huge = event_of_size("call_oversized", telephony::MAX_BODY_BYTES + 1);
    assert_eq!(w.deliver_from(&huge, PROVIDER_IP).await, 413);
    assert!(!w.stored("call_oversized").await);
    assert_eq!(w.item_count().await, before, "nothing stored");

    let at_limit = event_of_size("call_at_limit", telephony::MAX_BODY_BYTES);
    assert_eq!(w.deliver_from(&at_limit, PROVIDER_IP).await, 204);
    assert!(w.stored("call_at_limit").await, "the limit is what refused");
}

/// With an allow-list set, a validly signed delivery from another network gets 403
/// and nothing is stored, whatever a forwarding header claims; the log names no address.
#[tokio::test]
async fn a_source_outside_the_allow_list_gets_403_and_nothing_is_stored() {
    let (logs, _guard) = LogCapture::start();
    let w = Webhook::spawn(&["100.20.5.228/32", "2001:db8::/32"]).await;
    let before = w.item_count().await;
    let body = event_of_size("call_from_stranger", 300);

    assert_eq!(w.deliver_from(&body, STRANGER_IP).await, 403);
    assert_eq!(w.deliver_from(&body, "2001:db9::1").await, 403);
    // Only API Gateway's view of the source counts, not a client header.
    let sig = sign(
        &body,
        &SecretString::from(API_KEY.to_owned()),
        w.world.now_ms(),
    );
    let spoofed = ApiRequest::post_json("/v1/telephony/retell", &body)
        .header("x-retell-signature", &sig)
        .header("x-forwarded-for", PROVIDER_IP)
        .source_ip(STRANGER_IP);
    assert_eq!(
        telephony::handle(&w.app, spoofed.build()).await.status(),
        403
    );

    assert!(!w.stored("call_from_stranger").await);
    assert_eq!(w.item_count().await, before, "nothing stored");
    assert!(logs.text().contains("source outside the allow-list"));
    logs.assert_free_of(&[STRANGER_IP, "2001:db9::1"]);
}

/// R2.1: with an allow-list set, a delivery from an allowed network (IPv4 or IPv6) is
/// processed, and an unsigned one from the same network still gets 401.
#[tokio::test]
async fn a_source_inside_the_allow_list_is_processed() {
    let w = Webhook::spawn(&["100.20.5.228/32", "2001:db8::/32"]).await;

    let body = event_of_size("call_from_provider", 300);
    assert_eq!(w.deliver_from(&body, PROVIDER_IP).await, 204);
    assert!(w.stored("call_from_provider").await);
    let body = event_of_size("call_from_provider_v6", 300);
    assert_eq!(w.deliver_from(&body, "2001:db8:0:1::7").await, 204);
    assert!(w.stored("call_from_provider_v6").await);
    // Inside the network, the signature is still checked.
    let unsigned = ApiRequest::post_json("/v1/telephony/retell", &body).source_ip(PROVIDER_IP);
    assert_eq!(
        telephony::handle(&w.app, unsigned.build()).await.status(),
        401
    );
}
