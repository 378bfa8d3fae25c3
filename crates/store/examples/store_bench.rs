//! Micro benchmark of the store against plain SQLite with the same durability settings.
//!
//! Run: `cargo run --release -p slipway-store --example store_bench`
//!
//! Every figure is the median of several runs. The baseline is measured in the same run: a
//! plain rusqlite loop (WAL, `synchronous=FULL`, same table) doing one INSERT + COMMIT per
//! object for writes, one primary-key SELECT per get, and one SELECT + JSON decode of every
//! row for a list.

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use slipway_store::{Key, Store};
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const SEQUENTIAL_WRITES: usize = 1_000;
const THREADS: usize = 8;
const WRITES_PER_THREAD: usize = 250;
const LIST_SIZE: usize = 10_000;
const GETS: usize = 1_000_000;
const BASELINE_GETS: usize = 100_000;
const PREFIX: &str = "apps/deployments";

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let template = deployment("template");
    println!(
        "object size: {} bytes of JSON; {RUNS} runs each, medians shown",
        serde_json::to_string(&template)?.len()
    );

    // Runs are interleaved (baseline, 1 thread, 8 threads) so that each ratio compares runs
    // taken under the same disk and CPU load: the machine is shared.
    let mut baseline_runs = Vec::new();
    let mut sequential_runs = Vec::new();
    let mut threaded_runs = Vec::new();
    for _ in 0..RUNS {
        baseline_runs.push(baseline_inserts(SEQUENTIAL_WRITES)?);
        sequential_runs.push(store_sequential_creates(SEQUENTIAL_WRITES)?);
        threaded_runs.push(store_threaded_creates()?);
    }
    let ratios = |runs: &[f64]| -> BenchResult<f64> {
        median(runs.iter().zip(&baseline_runs).map(|(s, b)| Ok(s / b)))
    };
    let baseline_writes = median(baseline_runs.iter().map(|v| Ok(*v)))?;
    println!();
    println!("durable writes/s (fsync per commit); ratio = median of paired runs:");
    println!("  baseline plain SQLite INSERT+COMMIT, 1 thread : {baseline_writes:>10.0}");
    report(
        "store create, 1 thread",
        median(sequential_runs.iter().map(|v| Ok(*v)))?,
        ratios(&sequential_runs)?,
    );
    report(
        &format!("store create, {THREADS} threads"),
        median(threaded_runs.iter().map(|v| Ok(*v)))?,
        ratios(&threaded_runs)?,
    );

    // Reads on a store of LIST_SIZE objects, against the same rows in plain SQLite.
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("reads.db"))?;
    fill_store(&store, LIST_SIZE)?;
    let baseline_dir = tempfile::tempdir()?;
    let conn = baseline_connection(&baseline_dir.path().join("reads.db"))?;
    fill_baseline(&conn, LIST_SIZE)?;

    let gets = median((0..RUNS).map(|_| store_gets(&store)))?;
    let baseline_gets = median((0..RUNS).map(|_| baseline_selects(&conn)))?;
    println!();
    println!("gets/s on {LIST_SIZE} objects:");
    println!("  baseline SQLite SELECT by primary key         : {baseline_gets:>10.0}");
    report("store get", gets, gets / baseline_gets);

    let list_ms = median((0..RUNS * 4).map(|_| store_list(&store)))?;
    let baseline_list_ms = median((0..RUNS).map(|_| baseline_list(&conn)))?;
    println!();
    println!("list of {LIST_SIZE} objects, ms (lower is better):");
    println!("  baseline SQLite SELECT + JSON decode          : {baseline_list_ms:>10.2}");
    println!(
        "  {:<46}: {list_ms:>10.2}  ({:.1}x faster)",
        "store list",
        baseline_list_ms / list_ms
    );
    Ok(())
}

fn report(label: &str, value: f64, ratio: f64) {
    println!("  {label:<46}: {value:>10.0}  ({ratio:.2}x baseline)");
}

fn median(samples: impl Iterator<Item = BenchResult<f64>>) -> BenchResult<f64> {
    let mut values = samples.collect::<BenchResult<Vec<f64>>>()?;
    values.sort_by(f64::total_cmp);
    values
        .get(values.len() / 2)
        .copied()
        .ok_or_else(|| "no samples".into())
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "6f1c2a52-0e8e-4a4f-9f0b-1d2d6c1f0a11",
            "generation": 1,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"deployment.kubernetes.io/revision": "1"}
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "registry.example/web:1.2.3",
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "production"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30
                }
            }
        },
        "status": {}
    })
}

fn key(name: &str) -> Key {
    Key {
        prefix: PREFIX.to_string(),
        namespace: "default".to_string(),
        name: name.to_string(),
    }
}

fn store_sequential_creates(count: usize) -> BenchResult<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("seq.db"))?;
    let objects: Vec<(Key, Value)> = (0..count)
        .map(|i| {
            let name = format!("web-{i}");
            (key(&name), deployment(&name))
        })
        .collect();
    let started = Instant::now();
    for (k, obj) in objects {
        store.create(&k, obj)?;
    }
    Ok(per_second(count, started.elapsed()))
}

fn store_threaded_creates() -> BenchResult<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("par.db"))?;
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let objects: Vec<(Key, Value)> = (0..WRITES_PER_THREAD)
                .map(|i| {
                    let name = format!("web-{t}-{i}");
                    (key(&name), deployment(&name))
                })
                .collect();
            std::thread::spawn(move || -> Result<(), slipway_store::StoreError> {
                for (k, obj) in objects {
                    store.create(&k, obj)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "writer thread panicked")??;
    }
    Ok(per_second(THREADS * WRITES_PER_THREAD, started.elapsed()))
}

fn fill_store(store: &Store, count: usize) -> BenchResult<()> {
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || -> Result<(), slipway_store::StoreError> {
                for i in (t..count).step_by(THREADS) {
                    let name = format!("web-{i}");
                    store.create(&key(&name), deployment(&name))?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "fill thread panicked")??;
    }
    Ok(())
}

/// A deterministic spread of indexes in `0..n` (no RNG dependency needed).
fn scattered(i: usize, n: usize) -> usize {
    i.wrapping_mul(2_654_435_761) % n
}

fn store_gets(store: &Store) -> BenchResult<f64> {
    let keys: Vec<Key> = (0..LIST_SIZE).map(|i| key(&format!("web-{i}"))).collect();
    let started = Instant::now();
    let mut found = 0usize;
    for i in 0..GETS {
        if store.get(&keys[scattered(i, keys.len())]).is_some() {
            found += 1;
        }
    }
    let elapsed = started.elapsed();
    if found != GETS {
        return Err(format!("only {found} of {GETS} gets found their object").into());
    }
    Ok(per_second(GETS, elapsed))
}

fn store_list(store: &Store) -> BenchResult<f64> {
    let started = Instant::now();
    let (items, _) = store.list(PREFIX, None);
    let elapsed = started.elapsed();
    if items.len() != LIST_SIZE {
        return Err(format!("list returned {} objects", items.len()).into());
    }
    Ok(elapsed.as_secs_f64() * 1e3)
}

fn baseline_connection(path: &std::path::Path) -> BenchResult<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE objects (
            prefix TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
            revision INTEGER NOT NULL, object TEXT NOT NULL,
            PRIMARY KEY (prefix, namespace, name)
        ) WITHOUT ROWID;",
    )?;
    Ok(conn)
}

fn baseline_inserts(count: usize) -> BenchResult<f64> {
    let dir = tempfile::tempdir()?;
    let conn = baseline_connection(&dir.path().join("baseline.db"))?;
    let rows: Vec<(String, String)> = (0..count)
        .map(|i| {
            let name = format!("web-{i}");
            let text = serde_json::to_string(&deployment(&name))?;
            Ok((name, text))
        })
        .collect::<BenchResult<_>>()?;
    let started = Instant::now();
    for (revision, (name, text)) in rows.iter().enumerate() {
        let tx = conn.unchecked_transaction()?;
        tx.prepare_cached("INSERT INTO objects VALUES (?1, 'default', ?2, ?3, ?4)")?
            .execute(params![PREFIX, name, revision as i64, text])?;
        tx.commit()?;
    }
    Ok(per_second(count, started.elapsed()))
}

fn fill_baseline(conn: &Connection, count: usize) -> BenchResult<()> {
    let tx = conn.unchecked_transaction()?;
    for i in 0..count {
        let name = format!("web-{i}");
        let text = serde_json::to_string(&deployment(&name))?;
        tx.prepare_cached("INSERT INTO objects VALUES (?1, 'default', ?2, ?3, ?4)")?
            .execute(params![PREFIX, name, i as i64, text])?;
    }
    tx.commit()?;
    Ok(())
}

fn baseline_selects(conn: &Connection) -> BenchResult<f64> {
    let names: Vec<String> = (0..LIST_SIZE).map(|i| format!("web-{i}")).collect();
    let mut stmt = conn.prepare_cached(
        "SELECT object FROM objects WHERE prefix = ?1 AND namespace = 'default' AND name = ?2",
    )?;
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 0..BASELINE_GETS {
        let text: String = stmt
            .query_row(params![PREFIX, names[scattered(i, names.len())]], |r| {
                r.get(0)
            })?;
        bytes += text.len();
    }
    let elapsed = started.elapsed();
    if bytes == 0 {
        return Err("baseline read nothing".into());
    }
    Ok(per_second(BASELINE_GETS, elapsed))
}

fn baseline_list(conn: &Connection) -> BenchResult<f64> {
    let mut stmt = conn
        .prepare_cached("SELECT object FROM objects WHERE prefix = ?1 ORDER BY namespace, name")?;
    let started = Instant::now();
    let mut rows = stmt.query(params![PREFIX])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        items.push(std::sync::Arc::new(serde_json::from_str::<Value>(&text)?));
    }
    let elapsed = started.elapsed();
    if items.len() != LIST_SIZE {
        return Err(format!("baseline list returned {} rows", items.len()).into());
    }
    Ok(elapsed.as_secs_f64() * 1e3)
}
