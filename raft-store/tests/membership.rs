//! Membership changes and leadership transfer with the real `etcdctl` against real
//! processes: the same `member add / add --learner / promote / update / remove / list`
//! script runs on a skiff-store cluster and on a real etcd 3.4 cluster and must print the
//! same (ids and ports masked); new members join with `--initial-cluster-state existing`;
//! removed members stop by themselves; `move-leader` moves leadership.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{etcdctl, ok, require_etcd, wait_for, Cluster, Flavor};
use regex::Regex;

/// `etcdctl` output as one string (stdout + stderr, exit code), without etcdctl's own
/// JSON retry logs.
fn run(eps: &str, args: &[&str]) -> String {
    let out = etcdctl(eps, args);
    let text = format!(
        "exit={}\n{}{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a command until it does not fail with "unhealthy cluster" (etcd refuses changes
/// until every voter has been connected for 5 s; skiff until each answered recently).
fn run_settled(eps: &str, args: &[&str]) -> String {
    wait_for(Duration::from_secs(20), "a healthy cluster", || {
        let out = run(eps, args);
        (!out.contains("unhealthy cluster")).then_some(out)
    })
}

/// Masks ids and ports; sorts the comma list of `ETCD_INITIAL_CLUSTER` (its order follows
/// a Go map in etcd).
fn mask(c: &Cluster, text: &str) -> String {
    let mut t = text.to_string();
    for (i, m) in c.members.iter().enumerate() {
        t = t.replace(&format!(":{}", m.peer_port), &format!(":P{i}"));
        t = t.replace(&format!(":{}", m.client_port), &format!(":C{i}"));
    }
    // etcdctl prints "Member %16x added to cluster %16x": an id below 2^60 is padded with
    // spaces to 16 characters, so the padding goes with the id.
    let padded = Regex::new(r" +[0-9a-f]{13,16}\b").unwrap();
    t = padded.replace_all(&t, " <ID>").into_owned();
    let ids = Regex::new(r"\b[0-9a-f]{13,16}\b").unwrap();
    t = ids.replace_all(&t, "<ID>").into_owned();
    let ic = Regex::new(r#"ETCD_INITIAL_CLUSTER="([^"]*)""#).unwrap();
    t = ic
        .replace_all(&t, |caps: &regex::Captures| {
            let mut items: Vec<&str> = caps[1].split(',').collect();
            items.sort();
            format!("ETCD_INITIAL_CLUSTER=\"{}\"", items.join(","))
        })
        .into_owned();
    // `member list` rows come in id order, which differs: sort them.
    let mut lines: Vec<&str> = t.lines().collect();
    if lines.iter().skip(1).all(|l| l.starts_with("<ID>, ")) {
        lines[1..].sort();
    }
    lines.join("\n")
}

/// The member id (hex) in `etcdctl member add` output.
fn added_id(out: &str) -> String {
    let re = Regex::new(r"Member\s+([0-9a-f]+) added").unwrap();
    re.captures(out)
        .unwrap_or_else(|| panic!("no member id in {out}"))[1]
        .to_string()
}

/// `ETCD_INITIAL_CLUSTER` from `etcdctl member add` output.
fn initial_cluster(out: &str) -> String {
    let re = Regex::new(r#"ETCD_INITIAL_CLUSTER="([^"]*)""#).unwrap();
    re.captures(out).unwrap()[1].to_string()
}

/// Member name → (id hex, started, is learner) from `member list`.
fn list(eps: &str) -> BTreeMap<String, (String, bool, bool)> {
    ok(etcdctl(eps, &["member", "list"]))
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split(", ").collect();
            let key = if cols[2].is_empty() {
                cols[3].to_string()
            } else {
                cols[2].to_string()
            };
            (
                key,
                (cols[0].to_string(), cols[1] == "started", cols[5] == "true"),
            )
        })
        .collect()
}

fn wait_started(c: &Cluster, eps: &str, name: &str) {
    wait_for(Duration::from_secs(30), &format!("{name} started"), || {
        list(eps).get(name).filter(|m| m.1).map(|_| ())
    });
    let _ = c;
}

/// The membership script; returns the masked output of every step.
fn script(flavor: Flavor) -> Vec<String> {
    let mut c = Cluster::start(flavor, 3);
    let eps = c.endpoints();
    let mut out = Vec::new();
    let m3 = c.add_slot("m3");
    let m4 = c.add_slot("m4");

    let add = run_settled(
        &eps,
        &[
            "member",
            "add",
            "m3",
            &format!("--peer-urls={}", c.peer_url(m3)),
        ],
    );
    out.push(mask(&c, &add));
    let id3 = added_id(&add);
    out.push(mask(&c, &run(&eps, &["member", "list"])));
    c.start_joining(m3, &initial_cluster(&add));
    wait_started(&c, &eps, "m3");
    out.push(mask(&c, &run(&eps, &["member", "list"])));

    let add = run_settled(
        &eps,
        &[
            "member",
            "add",
            "m4",
            "--learner",
            &format!("--peer-urls={}", c.peer_url(m4)),
        ],
    );
    out.push(mask(&c, &add));
    let id4 = added_id(&add);
    // A second learner and a used peer URL are refused.
    out.push(mask(
        &c,
        &run(
            &eps,
            &[
                "member",
                "add",
                "x",
                "--learner",
                "--peer-urls=http://127.0.0.1:1",
            ],
        ),
    ));
    out.push(mask(
        &c,
        &run(
            &eps,
            &[
                "member",
                "add",
                "x",
                &format!("--peer-urls={}", c.peer_url(0)),
            ],
        ),
    ));
    // The learner has not started: it is not in sync.
    out.push(mask(&c, &run(&eps, &["member", "promote", &id4])));
    c.start_joining(m4, &initial_cluster(&add));
    wait_started(&c, &eps, "m4");
    out.push(mask(&c, &run(&eps, &["member", "list"])));
    let promoted = wait_for(Duration::from_secs(30), "the learner in sync", || {
        let o = run_settled(&eps, &["member", "promote", &id4]);
        (!o.contains("in sync with leader")).then_some(o)
    });
    out.push(mask(&c, &promoted));
    out.push(mask(&c, &run(&eps, &["member", "promote", &id4])));
    out.push(mask(&c, &run(&eps, &["member", "promote", "1234"])));
    let p3 = c.peer_url(m3);
    out.push(mask(
        &c,
        &run(
            &eps,
            &["member", "update", &id3, &format!("--peer-urls={p3}")],
        ),
    ));
    out.push(mask(
        &c,
        &run(
            &eps,
            &["member", "update", "1234", "--peer-urls=http://127.0.0.1:2"],
        ),
    ));
    out.push(mask(&c, &run_settled(&eps, &["member", "remove", &id4])));
    wait_for(
        Duration::from_secs(20),
        "the removed member to exit",
        || c.exited(m4).then_some(()),
    );
    out.push(mask(
        &c,
        &run(&c.running_endpoints(), &["member", "remove", &id4]),
    ));
    out.push(mask(&c, &run(&c.running_endpoints(), &["member", "list"])));
    // The cluster still takes writes.
    out.push(mask(
        &c,
        &run(&c.running_endpoints(), &["put", "after", "changes"]),
    ));
    out
}

// The same membership script prints the same on skiff-store and on real etcd 3.4.
#[test]
fn member_commands_match_real_etcd() {
    if !require_etcd() {
        return;
    }
    let want = script(Flavor::Etcd);
    let got = script(Flavor::Skiff);
    eprintln!("skiff transcript:\n{}", got.join("\n---\n"));
    let diffs: Vec<String> = want
        .iter()
        .zip(&got)
        .enumerate()
        .filter(|(_, (w, g))| w != g)
        .map(|(i, (w, g))| format!("step {i}\n--- etcd:\n{w}\n--- skiff:\n{g}"))
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

fn leader_id(eps: &str) -> String {
    let st = ok(etcdctl(eps, &["endpoint", "status"]));
    st.lines()
        .find(|l| l.split(", ").nth(4) == Some("true"))
        .and_then(|l| l.split(", ").nth(1))
        .map(String::from)
        .unwrap_or_default()
}

// move-leader moves leadership to the named voter; refusals carry etcd's messages; removing
// the leader works and the old leader stops with etcd's log line.
#[test]
fn move_leader_and_remove_leader() {
    if !require_etcd() {
        return;
    }
    let mut c = Cluster::start(Flavor::Skiff, 3);
    let eps = c.endpoints();
    let leader = c.wait_leader(Duration::from_secs(20));
    let ids = list(&eps);
    let target_name = format!("m{}", (leader + 1) % 3);
    let target = ids[&target_name].0.clone();
    let start = std::time::Instant::now();
    let out = run(&eps, &["move-leader", &target]);
    assert!(
        out.contains("Leadership transferred from") && out.ends_with(&target),
        "{out}"
    );
    eprintln!("move-leader took {:?}", start.elapsed());
    assert_eq!(leader_id(&eps), target);
    let bad = run(&eps, &["move-leader", "1234"]);
    assert!(
        bad.contains("Error: etcdserver: bad leader transferee"),
        "{bad}"
    );
    let follower = c.endpoint((leader + 2) % 3);
    let not_leader = run(&follower, &["move-leader", &target]);
    assert!(
        not_leader.contains("no leader endpoint given"),
        "{not_leader}"
    );

    // Remove the (new) leader.
    let new_leader = (leader + 1) % 3;
    let out = run_settled(&eps, &["member", "remove", &target]);
    // etcdctl pads the id to 16 columns (`Member %16x removed`).
    assert!(
        out.contains(&format!("Member {target:>16} removed")),
        "{out}"
    );
    wait_for(
        Duration::from_secs(20),
        "the removed leader to exit",
        || c.exited(new_leader).then_some(()),
    );
    let log = std::fs::read_to_string(&c.members[new_leader].log).unwrap();
    assert!(
        log.contains("the member has been permanently removed from the cluster"),
        "{log}"
    );
    let rest = c.running_endpoints();
    assert_eq!(list(&rest).len(), 2);
    ok(etcdctl(&rest, &["put", "k", "v"]));
    // A removed member refuses to start again.
    c.restart(new_leader);
    wait_for(
        Duration::from_secs(20),
        "the removed member to refuse to start",
        || c.exited(new_leader).then_some(()),
    );
}
