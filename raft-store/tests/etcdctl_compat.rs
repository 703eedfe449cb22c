//! The real `etcdctl` (Debian's etcd-client 3.4) against a 3-member skiff-store cluster and,
//! in the same run, against a 3-member real etcd 3.4 cluster: the same command script must
//! print the same output on both (after masking ids, terms, timings and versions, which
//! legitimately differ).

mod common;

use common::{etcdctl, etcdctl_stdin, ok, require_etcd, Cluster, Flavor};
use regex::Regex;

/// One step of the script: etcdctl arguments, optional stdin, and whether to mask JSON
/// numbers that differ between implementations (ids, terms).
struct Step {
    args: Vec<String>,
    stdin: Option<&'static str>,
}

fn step(args: &str) -> Step {
    Step {
        args: shell_words(args),
        stdin: None,
    }
}

fn shell_words(s: &str) -> Vec<String> {
    s.split_whitespace().map(|w| w.replace('~', " ")).collect()
}

const TXN_INPUT: &str = "value(\"foo\") = \"bar\"\n\nput foo baz\nget foo\n\nput foo qux\n\n";
const TXN_INPUT_FAIL: &str =
    "mod(\"foo1\") > \"100\"\nversion(\"nokey\") = \"0\"\n\nput never x\n\nget foo1\ndel foo2\n\n";

fn script(lease: &str) -> Vec<Step> {
    let mut s = vec![
        step("put foo bar"),
        step("put foo1 bar1"),
        step("put foo2 bar2"),
        step("put foo3 bar3"),
        step("put zoo zebra"),
        step("put foo bar-again"),
        step("get foo"),
        step("get foo --prefix"),
        step("get foo foo3"),
        step("get foo --prefix --rev=3"),
        step("get foo --prefix --limit=2"),
        step("get foo --prefix --sort-by=MODIFY --order=DESCEND"),
        step("get foo --prefix --sort-by=VALUE --order=ASCEND"),
        step("get foo --prefix --keys-only"),
        step("get foo --prefix --count-only -w json"),
        step("get foo --prefix -w json"),
        step("get foo --from-key"),
        step("get zoo -w fields"),
        step("get foo3 foo1"),
        step("del foo1 --prev-kv"),
        step("del nokey"),
        step("get foo --prefix --rev=7"),
        step("get foo --rev=1000"),
    ];
    s.push(Step {
        args: shell_words("txn"),
        stdin: Some(TXN_INPUT),
    });
    s.push(Step {
        args: shell_words("txn -w json"),
        stdin: Some(TXN_INPUT_FAIL),
    });
    s.extend([
        step(&format!("put leased v1 --lease={lease}")),
        step(&format!("put leased2 v2 --lease={lease}")),
        step(&format!("lease timetolive {lease} --keys")),
        step("lease list"),
        step(&format!("lease keep-alive --once {lease}")),
        step("put bad v --lease=1234abcd"),
        step("lease revoke 1234abcd"),
        step("lease timetolive 1234abcd"),
        step(&format!("lease revoke {lease}")),
        step("get leased --prefix"),
        step("lease list"),
        step("del foo --prefix --prev-kv -w json"),
        step("compaction 5"),
        step("get foo --rev=3"),
        step("get zoo --rev=5"),
        step("compaction 3"),
        step("compaction 100000"),
        step("get foo --prefix"),
        step("put  "),
    ]);
    s
}

/// Masks what legitimately differs between two clusters.
fn normalize(text: &str, lease: &str) -> String {
    // etcdctl's own client-side retry logs carry timestamps and random client ids.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("{\"level\":\"warn\""))
        .collect();
    let mut t = kept.join("\n").replace(lease, "<LEASE>");
    for (re, with) in [
        (r#""cluster_id":\d+"#, r#""cluster_id":<N>"#),
        (r#""member_id":\d+"#, r#""member_id":<N>"#),
        (r#""raft_term":\d+"#, r#""raft_term":<N>"#),
        (r"remaining\(\d+s\)", "remaining(<N>s)"),
        (r#""ID":\d+"#, r#""ID":<N>"#),
        (r#""(ClusterID|MemberID|RaftTerm)" : \d+"#, r#""$1" : <N>"#),
    ] {
        t = Regex::new(re).unwrap().replace_all(&t, with).into_owned();
    }
    // etcd 3.4 lists a lease's keys in map order (random); compare them sorted.
    Regex::new(r"attached keys\(\[([^\]]*)\]\)")
        .unwrap()
        .replace_all(&t, |c: &regex::Captures| {
            let mut keys: Vec<&str> = c[1].split(' ').collect();
            keys.sort_unstable();
            format!("attached keys([{}])", keys.join(" "))
        })
        .into_owned()
}

fn grant_lease(endpoints: &str) -> String {
    let out = ok(etcdctl(endpoints, &["lease", "grant", "100"]));
    // "lease 694d8a3c3b1f2c0a granted with TTL(100s)"
    out.split_whitespace()
        .nth(1)
        .expect("lease id in etcdctl output")
        .to_string()
}

fn run_script(c: &Cluster) -> Vec<String> {
    let eps = c.endpoints();
    let lease = grant_lease(&eps);
    let mut outputs = Vec::new();
    for st in script(&lease) {
        let args: Vec<&str> = st.args.iter().map(String::as_str).collect();
        let out = etcdctl_stdin(&eps, &args, st.stdin);
        let text = format!(
            "$ etcdctl {}\nexit={}\n{}{}",
            st.args.join(" "),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(normalize(&text, &lease));
    }
    outputs
}

// Every data command of the script prints exactly what real etcd prints.
#[test]
fn etcdctl_script_matches_real_etcd() {
    if !require_etcd() {
        return;
    }
    let want = run_script(&Cluster::start(Flavor::Etcd, 3));
    let got = run_script(&Cluster::start(Flavor::Skiff, 3));
    let mut mismatches = Vec::new();
    for (w, g) in want.iter().zip(&got) {
        if w != g {
            mismatches.push(format!("--- etcd:\n{w}--- skiff:\n{g}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} steps differ:\n{}",
        mismatches.len(),
        want.len(),
        mismatches.join("\n")
    );
}

// member list, endpoint status and endpoint health answer on every member with etcd's
// shapes: same columns, same members, exactly one leader.
#[test]
fn cluster_commands_on_every_endpoint() {
    if !require_etcd() {
        return;
    }
    let c = Cluster::start(Flavor::Skiff, 3);
    for i in 0..3 {
        let ep = c.endpoint(i);
        let list = ok(etcdctl(&ep, &["member", "list"]));
        let rows: Vec<&str> = list.lines().collect();
        assert_eq!(rows.len(), 3, "{list}");
        for (j, row) in rows.iter().enumerate() {
            let cols: Vec<&str> = row.split(", ").collect();
            // id, status, name, peer URLs, client URLs, is learner
            assert_eq!(cols.len(), 6, "{row}");
            assert_eq!(cols[1], "started");
            assert!(
                list.contains(&format!(
                    "m{j}, http://127.0.0.1:{}",
                    c.members[j].peer_port
                )),
                "{list}"
            );
            assert_eq!(cols[5], "false");
        }
        // etcdctl 3.4 prints the health verdict on stderr.
        let out = etcdctl(&ep, &["endpoint", "health"]);
        assert!(out.status.success());
        let health = String::from_utf8_lossy(&out.stderr);
        assert!(
            health.contains("is healthy: successfully committed proposal"),
            "{health}"
        );
    }
    let status = ok(etcdctl(&c.endpoints(), &["endpoint", "status"]));
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines.len(), 3, "{status}");
    let leaders = lines
        .iter()
        .filter(|l| l.split(", ").nth(4) == Some("true"))
        .count();
    assert_eq!(leaders, 1, "exactly one leader: {status}");
    for l in &lines {
        assert_eq!(
            l.split(", ").count(),
            10,
            "etcd 3.4 prints 9 columns plus a trailing errors column: {l}"
        );
        assert!(l.contains("3.5."), "version column: {l}");
    }
    let json = ok(etcdctl(
        &c.endpoints(),
        &["endpoint", "status", "-w", "json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for e in v.as_array().unwrap() {
        assert!(e["Status"]["raftIndex"].as_u64().unwrap() > 0, "{e}");
    }
}
