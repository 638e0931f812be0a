//! The cluster against one node: after a run on several nodes (`--nodes`), the same load
//! against one node on a fresh database of the same PostgreSQL server, in the same run,
//! and the cluster's figures beside the one node's — contacts accepted and completed per
//! second, contact → offer p50/p99 over every channel, server CPU per 1,000 contacts —
//! with their ratios.

use std::sync::Arc;

use crate::report::{self, Totals};
use crate::run::{generate, Run};
use crate::server::Server;
use crate::tally::{At, Shared, Wait};
use crate::Args;

/// A fresh, empty database beside `url`'s on the same server: `url` with its database
/// name suffixed `_{suffix}`, dropped first if a run before left it.
pub(crate) async fn fresh_beside(url: &str, suffix: &str) -> String {
    use sqlx::Connection;
    let (base, name) = url
        .rsplit_once('/')
        .expect("a PostgreSQL URL names a database");
    let (name, params) = name.split_once('?').map_or((name, ""), |(n, p)| (n, p));
    let one = format!("{name}_{suffix}");
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("the cluster's database is reachable");
    for sql in [
        format!("DROP DATABASE IF EXISTS {one}"),
        format!("CREATE DATABASE {one}"),
    ] {
        sqlx::query(&sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    if params.is_empty() {
        format!("{base}/{one}")
    } else {
        format!("{base}/{one}?{params}")
    }
}

/// Runs the same load against one node and prints it beside the cluster's run. Answers
/// whether the one node kept up.
pub async fn compare(
    args: &Args,
    client: &reqwest::Client,
    cluster: &Shared,
    cluster_run: &Run,
    cluster_totals: &Totals,
) -> bool {
    let url = args
        .database_url
        .as_deref()
        .expect("a cluster runs on --database-url");
    let one_args = Args {
        nodes: 1,
        database_url: Some(fresh_beside(url, "one").await),
        ..args.clone()
    };
    let server = Arc::new(Server::start(&one_args));
    let one: Shared = Arc::default();
    let wait = if args.agents > 0 {
        Wait::Completions
    } else {
        Wait::Answers
    };
    let run = generate(&server, client, &one, &one_args, args.agents, wait, |_| {}).await;
    drop(server);
    println!("\n## One node on PostgreSQL, same load, same run\n");
    let totals = report::channels(&one, run.elapsed, args.agents > 0);
    let kept_up = report::verdict(
        &totals,
        &run,
        args.agents > 0,
        false,
        wait == Wait::Completions,
    );
    println!(
        "\n## {} nodes against one node (ratio: the cluster's figure over the one node's)\n",
        args.nodes
    );
    println!("| | {} nodes | one node | ratio |", args.nodes);
    println!("|---|---:|---:|---:|");
    let (c, o) = (cluster.lock().unwrap(), one.lock().unwrap());
    let per_sec = |n: f64, r: &Run| n / r.elapsed;
    let row = |what: &str, a: f64, b: f64, unit: &str| {
        println!(
            "| {what} | {a:.1}{unit} | {b:.1}{unit} | {:.2}× |",
            a / b.max(1e-9)
        );
    };
    row(
        "accepted/s",
        per_sec(cluster_totals.accepted as f64, cluster_run),
        per_sec(totals.accepted as f64, &run),
        "",
    );
    row(
        "completed/s",
        per_sec(c.completed_count() as f64, cluster_run),
        per_sec(o.completed_count() as f64, &run),
        "",
    );
    for (name, p) in [("contact → offer p50", 0.50), ("contact → offer p99", 0.99)] {
        match (c.to_offer_all().at(p), o.to_offer_all().at(p)) {
            (At::Micros(a), At::Micros(b)) => {
                row(name, a as f64 / 1000.0, b as f64 / 1000.0, " ms");
            }
            (a, b) => println!("| {name} | {a:?} | {b:?} | - |"),
        }
    }
    if let (Some(a), Some(b)) = (cluster_run.server, run.server) {
        let per = |cpu: f64, n: u64| cpu * 1000.0 / n.max(1) as f64;
        row(
            "server CPU s per 1,000 accepted",
            per(a.cpu_secs, cluster_totals.accepted),
            per(b.cpu_secs, totals.accepted),
            "",
        );
        row(
            "server memory, MiB",
            a.rss_kib as f64 / 1024.0,
            b.rss_kib as f64 / 1024.0,
            "",
        );
    }
    kept_up
}
