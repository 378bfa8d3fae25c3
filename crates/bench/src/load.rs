//! Creating many objects as fast as the API accepts them.

use crate::client::{Endpoint, JSON};
use crate::server::connect_all;
use anyhow::{Result, bail};
use bytes::Bytes;
use http::Method;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// POSTs `make(0..n)` to `collection` over `conns` concurrent keep-alive connections, each
/// sending its next object as soon as the previous one is answered; fails on any non-2xx
/// answer or when it takes longer than `timeout`. Returns how many were created and how long
/// that took.
pub async fn create_many(
    ep: &Endpoint,
    collection: &str,
    n: usize,
    conns: usize,
    timeout: Duration,
    make: impl Fn(usize) -> Bytes + Send + Sync + 'static,
) -> Result<(usize, Duration)> {
    let conns = connect_all(ep, conns).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (next, make, collection) = (next.clone(), make.clone(), collection.to_string());
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(done);
                }
                if start.elapsed() > timeout {
                    bail!("creating {n} objects in {collection} took longer than {timeout:?}");
                }
                conn.expect_ok(Method::POST, &collection, JSON, make(i))
                    .await?;
                done += 1;
            }
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += t.await??;
    }
    Ok((created, start.elapsed()))
}
