//! The Rust `kube` crate (kube-client and kube-runtime 5, a real client nobody here wrote)
//! against 3 skiff-store members and 2 apiserver replicas: a `watcher` + reflector that
//! stays in sync while another replica creates, updates and deletes objects, and typed
//! server-side apply through `Patch::Apply` with its conflicts.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, Config};
use serde_json::json;

fn client(url: &str) -> Client {
    Client::try_from(Config::new(url.parse().expect("URL"))).expect("kube client")
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "kube-test"}},
        "data": {"value": value},
    }))
    .unwrap()
}

/// name -> (resourceVersion, data.value) of every labelled ConfigMap, as the server lists it.
async fn server_view(api: &Api<ConfigMap>) -> BTreeMap<String, (String, String)> {
    let list = api
        .list(&ListParams::default().labels("app=kube-test"))
        .await
        .unwrap();
    list.items.iter().map(view_of).collect()
}

fn view_of(cm: &ConfigMap) -> (String, (String, String)) {
    let meta = &cm.metadata;
    let value = cm
        .data
        .as_ref()
        .and_then(|d| d.get("value").cloned())
        .unwrap_or_default();
    (
        meta.name.clone().unwrap(),
        (meta.resource_version.clone().unwrap(), value),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_reflector_stays_in_sync_across_replicas() {
    let (_procs, urls) = tokio::task::spawn_blocking(common::start).await.unwrap();
    let watched: Api<ConfigMap> = Api::namespaced(client(&urls[0]), "default");
    let writer: Api<ConfigMap> = Api::namespaced(client(&urls[1]), "default");

    // Some objects exist before the reflector starts (its initial list), the rest after.
    for i in 0..5 {
        writer
            .create(
                &PostParams::default(),
                &config_map(&format!("pre-{i}"), "0"),
            )
            .await
            .unwrap();
    }
    let (reader, store) = reflector::store::<ConfigMap>();
    let cfg = watcher::Config::default().labels("app=kube-test");
    let events = reflector(store, watcher(watched.clone(), cfg))
        .applied_objects()
        .boxed();
    let pump = tokio::spawn(events.for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(30), reader.wait_until_ready())
        .await
        .expect("reflector ready within 30 s")
        .unwrap();

    for round in 0..4 {
        for i in 0..10 {
            let name = format!("cm-{i}");
            match round {
                0 => {
                    writer
                        .create(&PostParams::default(), &config_map(&name, "0"))
                        .await
                        .unwrap();
                }
                1 | 2 => {
                    let patch = json!({"data": {"value": round.to_string()}});
                    writer
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap();
                }
                _ if i % 2 == 0 => {
                    writer
                        .delete(&name, &DeleteParams::default())
                        .await
                        .unwrap();
                }
                _ => {
                    let mut cm = writer.get(&name).await.unwrap();
                    cm.data
                        .get_or_insert_with(Default::default)
                        .insert("value".into(), "replaced".into());
                    writer
                        .replace(&name, &PostParams::default(), &cm)
                        .await
                        .unwrap();
                }
            }
        }
    }
    writer
        .delete("pre-0", &DeleteParams::default())
        .await
        .unwrap();

    let want = server_view(&writer).await;
    assert_eq!(want.len(), 4 + 5, "{want:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let have: BTreeMap<_, _> = reader.state().iter().map(|cm| view_of(cm)).collect();
        if have == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reflector did not converge on the server's state:\nreflector {have:?}\nserver    {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pump.abort();
}

fn deployment(replicas: i32, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ssa", "labels": {"app": "ssa"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "ssa"}},
            "template": {
                "metadata": {"labels": {"app": "ssa"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_server_side_apply_owns_fields_and_reports_conflicts() {
    let (_procs, urls) = tokio::task::spawn_blocking(common::start).await.unwrap();
    let a: Api<Deployment> = Api::namespaced(client(&urls[0]), "default");
    let b: Api<Deployment> = Api::namespaced(client(&urls[1]), "default");
    let pp = PatchParams::apply("kube-test");

    // Apply creates the object, and the manager owns what it applied.
    let d = a
        .patch("ssa", &pp, &Patch::Apply(deployment(2, "nginx:1")))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    let managed = d.metadata.managed_fields.clone().unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("kube-test"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&managed[0].fields_v1).unwrap();
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}), "{fields}");

    // Another manager changes replicas through the other replica (a merge patch).
    let scale = PatchParams {
        field_manager: Some("scaler".into()),
        ..PatchParams::default()
    };
    b.patch(
        "ssa",
        &scale,
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();

    // Re-applying replicas: 2 conflicts with the scaler...
    let err = a
        .patch("ssa", &pp, &Patch::Apply(deployment(2, "nginx:2")))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409, "{s:?}");
            assert!(
                s.message.contains("conflict with \"scaler\"")
                    && s.message.contains(".spec.replicas"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 409 conflict, got {other:?}"),
    }
    let unchanged = b.get("ssa").await.unwrap();
    assert_eq!(
        unchanged.spec.as_ref().unwrap().replicas,
        Some(5),
        "a refused apply changes nothing"
    );

    // ...and force takes the field over.
    let forced = a
        .patch(
            "ssa",
            &pp.clone().force(),
            &Patch::Apply(deployment(2, "nginx:2")),
        )
        .await
        .unwrap();
    let spec = forced.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:2")
    );
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["kube-test"], "the scaler lost its only field");
}
