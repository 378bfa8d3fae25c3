//! Durability: kill -9 of `slipway serve` in the middle of a burst of writes loses no
//! acknowledged write and leaves a consistent store.

mod common;

use common::{Server, http_request};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn kill_9_during_a_burst_loses_no_acknowledged_write() {
    let mut s = Server::start();
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (addr, ca, token) = (s.addr.clone(), s.ca_pem.clone(), s.token.clone());
        let acked = acknowledged.clone();
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            for i in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("w{w}-{i}");
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}});
                let result = std::panic::catch_unwind(|| {
                    http_request(&addr, &ca, Some(&token), "POST", "/api/v1/namespaces/default/configmaps", Some("application/json"), body.to_string().as_bytes())
                });
                match result {
                    Ok((201, resp)) => {
                        let v: Value = serde_json::from_str(&resp).expect("created object");
                        let rv = v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
                        acked.lock().unwrap().push((name, rv));
                    }
                    _ => break,
                }
            }
        }));
    }
    common::eventually(Duration::from_secs(60), "200 acknowledged writes", || {
        (acknowledged.lock().unwrap().len() >= 200).then_some(())
    });
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let acked = acknowledged.lock().unwrap().clone();
    let highest = acked.iter().map(|(_, rv)| *rv).max().unwrap();

    s.spawn(&[]);
    let (code, body) = s.http(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
        b"",
        true,
    );
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let present: std::collections::HashMap<String, Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                o.clone(),
            )
        })
        .collect();
    for (name, rv) in &acked {
        let obj = present
            .get(name)
            .unwrap_or_else(|| panic!("acknowledged write {name} (rv {rv}) was lost"));
        assert_eq!(
            obj["metadata"]["resourceVersion"].as_str().unwrap(),
            rv.to_string(),
            "{name}"
        );
        assert!(obj["data"]["i"].is_string(), "objects are whole: {obj}");
    }
    let list_rv: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        list_rv >= highest,
        "the revision counter survived: {list_rv} < {highest}"
    );
    // The store keeps working and revisions keep increasing.
    s.ok(&["create", "configmap", "after-crash", "--from-literal=a=b"]);
    let after = s.get_json(&["cm", "after-crash"]);
    let rv: u64 = after["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > list_rv);
}
