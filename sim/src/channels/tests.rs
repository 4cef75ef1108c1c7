//! The fakes answer like the providers, record everything, and obey scripts.

use std::time::Duration;

use serde_json::json;

use super::blocking::{self, BlockingError, BlockingResponse};
use super::*;

const TIMEOUT: Duration = Duration::from_secs(5);

fn post_json(
    fake: &FakeProvider,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> BlockingResponse {
    let mut all: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    all.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let url = format!("{}{path}", fake.url());
    match blocking::send(
        "POST",
        &url,
        &all,
        Some(body.to_string().as_bytes()),
        TIMEOUT,
    ) {
        Ok(response) => response,
        Err(e) => panic!("POST {url} failed: {e}"),
    }
}

fn get(fake: &FakeProvider, path: &str, headers: &[(&str, &str)]) -> BlockingResponse {
    let all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let url = format!("{}{path}", fake.url());
    match blocking::send("GET", &url, &all, None, TIMEOUT) {
        Ok(response) => response,
        Err(e) => panic!("GET {url} failed: {e}"),
    }
}

fn json_of(response: &BlockingResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null)
}

fn start(provider: Provider) -> FakeProvider {
    match FakeProvider::start_in_background(provider) {
        Ok(fake) => fake,
        Err(e) => panic!("cannot start fake {provider}: {e}"),
    }
}

#[test]
fn whatsapp_cloud_success_echoes_the_recipient_and_scripts_run_in_order() {
    let fake = start(Provider::WhatsAppCloud);
    fake.require_auth("tok");
    fake.enqueue_times(Endpoint::Send, 2, whatsapp_cloud::error(130429));
    let body = json!({"messaging_product": "whatsapp", "to": "+5511987654321", "type": "text",
                      "text": {"body": "Seu pedido foi enviado"}});
    let auth = [("authorization", "Bearer tok")];
    for _ in 0..2 {
        let r = post_json(&fake, "/v21.0/123/messages", &auth, &body);
        assert_eq!(r.status, 400);
        assert_eq!(json_of(&r)["error"]["code"], 130429);
        assert_eq!(
            json_of(&r)["error"]["error_data"]["details"],
            "Cloud API message throughput has been reached."
        );
    }
    let ok = json_of(&post_json(&fake, "/v21.0/123/messages", &auth, &body));
    assert_eq!(ok["contacts"][0]["wa_id"], "5511987654321");
    assert_eq!(ok["contacts"][0]["input"], "+5511987654321");
    let wamid = ok["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(wamid.starts_with("wamid."), "{wamid}");

    let wrong = post_json(
        &fake,
        "/v21.0/123/messages",
        &[("authorization", "Bearer nope")],
        &body,
    );
    assert_eq!(
        (wrong.status, json_of(&wrong)["error"]["code"].clone()),
        (401, json!(190))
    );

    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, "+5511987654321");
    assert_eq!(received[0].text, "Seu pedido foi enviado");
    assert_eq!(received[0].provider_message_id, wamid);
    assert_eq!(fake.requests_to(Endpoint::Send).len(), 4);

    let check = get(&fake, "/v21.0/123", &auth);
    assert_eq!(json_of(&check)["id"], "123");
    let unknown = get(&fake, "/v21.0/123/nothing/here", &auth);
    assert_eq!(json_of(&unknown)["error"]["code"], 2500);
    assert_eq!(fake.last_request().and_then(|r| r.endpoint), None);
}

#[test]
fn whatsapp_cloud_renders_templates_for_the_demo_and_rejects_missing_fields() {
    let fake = start(Provider::WhatsAppCloud);
    let body = json!({"messaging_product": "whatsapp", "to": "+5511987654321", "type": "template",
        "template": {"name": "pedido_enviado", "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Maria"},
                                                       {"type": "text", "text": "#1234"}]}]}});
    post_json(&fake, "/v21.0/1/messages", &[], &body);
    assert_eq!(
        fake.received()[0].text,
        "[template pedido_enviado pt_BR] Maria | #1234"
    );
    let missing = post_json(
        &fake,
        "/v21.0/1/messages",
        &[],
        &json!({"messaging_product": "whatsapp"}),
    );
    assert_eq!(
        (missing.status, json_of(&missing)["error"]["code"].clone()),
        (400, json!(100))
    );
}

#[test]
fn evolution_answers_201_and_not_on_whatsapp_names_the_number() {
    let fake = start(Provider::EvolutionApi);
    fake.require_auth("key");
    fake.enqueue(Endpoint::Send, evolution::not_on_whatsapp());
    let body = json!({"number": "5511987654321", "text": "oi"});
    let r = post_json(&fake, "/message/sendText/loja", &[("apikey", "key")], &body);
    assert_eq!(r.status, 400);
    assert_eq!(
        json_of(&r)["response"]["message"][0],
        json!({"jid": "5511987654321@s.whatsapp.net", "exists": false, "number": "5511987654321"})
    );
    let ok = post_json(&fake, "/message/sendText/loja", &[("apikey", "key")], &body);
    assert_eq!(ok.status, 201);
    assert_eq!(
        json_of(&ok)["key"]["remoteJid"],
        "5511987654321@s.whatsapp.net"
    );
    assert_eq!(json_of(&ok)["status"], "PENDING");
    assert_eq!(
        post_json(&fake, "/message/sendText/loja", &[("apikey", "x")], &body).status,
        401
    );
    let state = get(
        &fake,
        "/instance/connectionState/loja",
        &[("apikey", "key")],
    );
    assert_eq!(
        json_of(&state)["instance"],
        json!({"instanceName": "loja", "state": "open"})
    );
    let schema = post_json(
        &fake,
        "/message/sendText/loja",
        &[("apikey", "key")],
        &json!({"number": "1"}),
    );
    assert_eq!(
        json_of(&schema)["response"]["message"][0],
        "instance requires property \"text\""
    );
}

#[test]
fn zapi_reproduces_the_documented_405_and_415() {
    let fake = start(Provider::ZApi);
    fake.require_auth("ct");
    let path = "/instances/I1/token/T1/send-text";
    let ok = post_json(
        &fake,
        path,
        &[("client-token", "ct")],
        &json!({"phone": "5511987654321", "message": "oi"}),
    );
    assert_eq!(ok.status, 200);
    let ok = json_of(&ok);
    assert_eq!(ok["messageId"], ok["id"]);
    assert!(ok["zaapId"].is_string());
    let url = format!("{}{path}", fake.url());
    let headers = [("client-token".to_owned(), "ct".to_owned())];
    let not_json = blocking::send("POST", &url, &headers, Some(b"phone=1"), TIMEOUT);
    assert_eq!(not_json.map(|r| r.status), Ok(415));
    let wrong_method = blocking::send("GET", &url, &headers, None, TIMEOUT);
    assert_eq!(wrong_method.map(|r| r.status), Ok(405));
    let no_token = post_json(&fake, path, &[], &json!({"phone": "1", "message": "m"}));
    assert_eq!(
        json_of(&no_token)["error"],
        "your client-token is not configured"
    );
    assert_eq!(
        json_of(&get(
            &fake,
            "/instances/I1/token/T1/status",
            &[("client-token", "ct")]
        ))["connected"],
        true
    );
}

#[test]
fn twilio_creates_a_message_resource_and_uses_basic_auth() {
    use base64::Engine as _;
    let fake = start(Provider::Twilio);
    fake.require_auth("AC1:secret");
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC1:secret")
    );
    let url = format!("{}/2010-04-01/Accounts/AC1/Messages.json", fake.url());
    let headers = [
        ("authorization".to_owned(), auth.clone()),
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    let body = b"To=%2B5511987654321&From=%2B15005550006&Body=Ol%C3%A1";
    let r = blocking::send("POST", &url, &headers, Some(body), TIMEOUT).map_err(|e| e.to_string());
    let r = r.unwrap();
    assert_eq!(r.status, 201);
    let message = json_of(&r);
    assert_eq!(
        (message["to"].as_str(), message["status"].as_str()),
        (Some("+5511987654321"), Some("queued"))
    );
    assert!(
        message["sid"]
            .as_str()
            .is_some_and(|s| s.starts_with("SM") && s.len() == 34),
        "{message}"
    );
    assert_eq!(fake.received()[0].text, "Olá");
    assert_eq!(
        fake.requests()[0].form_value("To").as_deref(),
        Some("+5511987654321")
    );

    fake.enqueue(Endpoint::Send, twilio::error(21211));
    let err = json_of(&blocking::send("POST", &url, &headers, Some(body), TIMEOUT).unwrap());
    assert_eq!(err["code"], 21211);
    assert_eq!(err["more_info"], "https://www.twilio.com/docs/errors/21211");

    let account = get(
        &fake,
        "/2010-04-01/Accounts/AC1.json",
        &[("authorization", &auth)],
    );
    assert_eq!(json_of(&account)["status"], "active");
    let denied = get(
        &fake,
        "/2010-04-01/Accounts/AC1.json",
        &[("authorization", "Basic eA==")],
    );
    assert_eq!(
        (denied.status, json_of(&denied)["code"].clone()),
        (401, json!(20003))
    );
}

#[test]
fn telegram_envelopes_carry_retry_after_and_migration() {
    let fake = start(Provider::Telegram);
    fake.require_auth("123:ABC");
    fake.enqueue(Endpoint::Send, telegram::retry_after(7));
    fake.enqueue(Endpoint::Send, telegram::migrated(-1001234));
    let body = json!({"chat_id": 42, "text": "Pedido enviado"});
    let r = post_json(&fake, "/bot123:ABC/sendMessage", &[], &body);
    assert_eq!(
        (r.status, json_of(&r)["parameters"]["retry_after"].clone()),
        (429, json!(7))
    );
    let r = post_json(&fake, "/bot123:ABC/sendMessage", &[], &body);
    assert_eq!(json_of(&r)["parameters"]["migrate_to_chat_id"], -1001234);
    let ok = json_of(&post_json(&fake, "/bot123:ABC/sendMessage", &[], &body));
    assert_eq!(
        (ok["ok"].clone(), ok["result"]["chat"]["id"].clone()),
        (json!(true), json!(42))
    );
    let bad = post_json(&fake, "/botWRONG/sendMessage", &[], &body);
    assert_eq!(
        (bad.status, json_of(&bad)["description"].clone()),
        (401, json!("Unauthorized"))
    );
    assert_eq!(
        json_of(&get(&fake, "/bot123:ABC/getMe", &[]))["result"]["username"],
        "loja_fake_bot"
    );
    assert_eq!(fake.received()[0].to, "42");
}

#[test]
fn webhook_receiver_records_everything_and_treats_ping_as_check() {
    let fake = start(Provider::Webhook);
    fake.enqueue(Endpoint::Send, webhook::too_many_requests(30));
    let r = post_json(
        &fake,
        "/hooks/arauto",
        &[("webhook-id", "job-1")],
        &json!({"type": "order.shipped"}),
    );
    assert_eq!(r.status, 429);
    assert!(
        r.headers
            .contains(&("retry-after".to_owned(), "30".to_owned()))
    );
    assert_eq!(
        post_json(
            &fake,
            "/hooks/arauto",
            &[("webhook-id", "job-1")],
            &json!({"type": "order.shipped"})
        )
        .status,
        204
    );
    assert_eq!(
        post_json(&fake, "/hooks/arauto", &[], &json!({"type": "ping"})).status,
        204
    );
    assert_eq!(fake.requests_to(Endpoint::Check).len(), 1);
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (
            received[0].to.as_str(),
            received[0].provider_message_id.as_str()
        ),
        ("/hooks/arauto", "job-1")
    );
}

#[test]
fn delays_time_out_the_client_and_dropped_connections_are_network_errors() {
    let fake = start(Provider::Webhook);
    fake.enqueue(
        Endpoint::Send,
        Reply::delayed(Duration::from_secs(5), Reply::success()),
    );
    fake.enqueue(Endpoint::Send, Reply::drop_connection());
    let url = format!("{}/x", fake.url());
    let timed_out = blocking::send("POST", &url, &[], Some(b"{}"), Duration::from_millis(200));
    assert_eq!(timed_out, Err(BlockingError::Timeout));
    let dropped = blocking::send("POST", &url, &[], Some(b"{}"), TIMEOUT);
    assert!(
        matches!(dropped, Err(BlockingError::Connect(_))),
        "{dropped:?}"
    );
    assert_eq!(
        blocking::send("POST", &url, &[], Some(b"{}"), TIMEOUT).map(|r| r.status),
        Ok(204)
    );
}

#[test]
fn redirects_are_returned_not_followed() {
    let fake = start(Provider::Webhook);
    fake.set_default(
        Endpoint::Send,
        webhook::redirect("http://127.0.0.1:9/elsewhere"),
    );
    let r = blocking::send(
        "POST",
        &format!("{}/x", fake.url()),
        &[],
        Some(b"{}"),
        TIMEOUT,
    );
    assert_eq!(r.map(|r| r.status), Ok(307));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn async_start_publishes_received_messages_to_subscribers() {
    let fake = match FakeProvider::start(Provider::Telegram).await {
        Ok(fake) => fake,
        Err(e) => panic!("{e}"),
    };
    let mut feed = fake.subscribe();
    let url = format!("{}/bot1:x/sendMessage", fake.url());
    let sender = tokio::task::spawn_blocking(move || {
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        blocking::send(
            "POST",
            &url,
            &headers,
            Some(br#"{"chat_id":"@loja","text":"oi"}"#),
            TIMEOUT,
        )
    });
    let message = tokio::time::timeout(TIMEOUT, feed.recv()).await;
    let message = message
        .map_err(|e| e.to_string())
        .and_then(|m| m.map_err(|e| e.to_string()));
    assert_eq!(
        message.map(|m| (m.to, m.text)),
        Ok(("@loja".to_owned(), "oi".to_owned()))
    );
    let all = tokio::time::timeout(TIMEOUT, fake.wait_for_received(1))
        .await
        .unwrap_or_default();
    assert_eq!(all.len(), 1);
    assert!(matches!(sender.await, Ok(Ok(r)) if r.status == 200));
}

#[test]
fn unreachable_recipients_get_the_providers_not_on_whatsapp_answer_and_others_succeed() {
    let cloud = start(Provider::WhatsAppCloud);
    cloud.unreachable_recipients(&["+55 11 98888-0001"]);
    let send = |to: &str| {
        post_json(
            &cloud,
            "/v21.0/1234/messages",
            &[],
            &json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "oi"}}),
        )
    };
    let refused = send("5511988880001");
    assert_eq!(refused.status, 400);
    assert_eq!(json_of(&refused)["error"]["code"], 131026);
    assert_eq!(send("5511977770002").status, 200);
    assert_eq!(cloud.received().len(), 1);

    let evolution = start(Provider::EvolutionApi);
    evolution.unreachable_recipients(&["5511988880001"]);
    let refused = post_json(
        &evolution,
        "/message/sendText/loja",
        &[],
        &json!({"number": "5511988880001", "text": "oi"}),
    );
    assert_eq!(refused.status, 400);
    assert_eq!(
        json_of(&refused)["response"]["message"][0]["exists"],
        json!(false)
    );
    assert!(evolution.received().is_empty());
}
