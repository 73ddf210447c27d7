//! The committed CRD manifests are exactly what the types generate, and the schemas carry the
//! validation the API server should enforce.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;

use serde_json::Value;

fn chart_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("../charts/chatboard/crds")
}

#[test]
fn committed_manifests_match_the_types() {
    let files = crds::manifests().unwrap();
    assert_eq!(files.len(), 2);
    for (name, expected) in files {
        let committed = std::fs::read_to_string(chart_dir().join(&name)).unwrap_or_default();
        assert!(
            committed == expected,
            "charts/chatboard/crds/{name} is out of date: run `cargo run -p crds --bin crdgen`"
        );
    }
}

fn crd(name: &str) -> Value {
    let (_, body) = crds::manifests()
        .unwrap()
        .into_iter()
        .find(|(file, _)| file == name)
        .unwrap();
    let json = body.split_once('\n').unwrap().1;
    serde_json::from_str(json).unwrap()
}

#[test]
fn schemas_validate_what_they_can() {
    let org = crd("organizations.chatboard.io.yaml");
    assert_eq!(
        org["spec"]["names"]["shortNames"],
        serde_json::json!(["org", "orgs"])
    );
    assert_eq!(org["spec"]["scope"], "Namespaced");
    let version = &org["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Org ID", "Ready", "Members", "Suspended", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["displayName"]["maxLength"], 120);
    assert_eq!(spec["properties"]["displayName"]["minLength"], 1);
    assert_eq!(spec["properties"]["admins"]["items"]["format"], "email");
    assert_eq!(
        spec["properties"]["deletionPolicy"]["enum"],
        serde_json::json!(["Retain", "Delete"])
    );
    assert_eq!(spec["required"], serde_json::json!(["displayName"]));

    let hook = crd("webhooks.chatboard.io.yaml");
    let version = &hook["spec"]["versions"][0];
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Org", "URL", "Active", "Ready", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["url"]["maxLength"], 2000);
    assert_eq!(spec["properties"]["url"]["pattern"], "^https?://");
    let events = spec["properties"]["events"]["items"]["enum"]
        .as_array()
        .unwrap();
    assert!(events.contains(&Value::from("*")) && events.contains(&Value::from("message.created")));
    assert_eq!(spec["properties"]["events"]["minItems"], 1);
    assert_eq!(
        spec["properties"]["maxAttempts"]["maximum"].as_f64(),
        Some(20.0)
    );
}

#[test]
fn the_spec_examples_parse() {
    let org: crds::Organization = serde_json::from_value(serde_json::json!({
        "apiVersion": "chatboard.io/v1alpha1", "kind": "Organization",
        "metadata": {"name": "acme", "namespace": "tenants"},
        "spec": {"displayName": "Acme Corp", "admins": ["ops@acme.example"],
                 "quotas": {"maxMembers": 500, "maxRooms": 200, "uploadMaxBytes": 104857600,
                            "messageRetentionDays": 365, "rateLimitPerMinute": 100},
                 "suspended": false, "deletionPolicy": "Retain"}
    }))
    .unwrap();
    assert_eq!(org.spec.quotas.unwrap().max_members, Some(500));
    let hook: crds::Webhook = serde_json::from_value(serde_json::json!({
        "apiVersion": "chatboard.io/v1alpha1", "kind": "Webhook",
        "metadata": {"name": "acme-audit", "namespace": "tenants"},
        "spec": {"organizationRef": {"name": "acme"}, "url": "https://audit.acme.example/chatboard",
                 "events": ["message.created", "member.joined"],
                 "secretRef": {"name": "acme-audit-hmac", "key": "secret"}, "active": true, "maxAttempts": 8}
    }))
    .unwrap();
    assert_eq!(
        hook.spec.events,
        [
            crds::WebhookEvent::MessageCreated,
            crds::WebhookEvent::MemberJoined
        ]
    );
    // Defaults: active, the `secret` key.
    let minimal: crds::WebhookSpec = serde_json::from_value(serde_json::json!({
        "organizationRef": {"name": "acme"}, "url": "https://x.example/", "events": ["*"],
        "secretRef": {"name": "s"}
    }))
    .unwrap();
    assert!(minimal.active);
    assert_eq!(minimal.secret_ref.unwrap().key, "secret");
}
