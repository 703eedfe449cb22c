//! The `etcd-client` crate (a real Rust etcd client) against a 3-member cluster: the
//! common operations work, and bad input gets etcd's errors without changing stored state
//! or hurting a member.

mod common;

use std::time::Duration;

use common::{rt, Cluster, Flavor};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp,
};

async fn client(c: &Cluster) -> Client {
    Client::connect(c.urls(), None).await.expect("connect")
}

// Put/get/range/delete/txn/lease/compaction through the crate behave as etcd does.
#[test]
fn crate_operations() {
    let c = Cluster::start(Flavor::Skiff, 3);
    rt().block_on(async {
        let mut cl = client(&c).await;
        let r = cl.put("a", "1", None).await.unwrap();
        let first_rev = r.header().unwrap().revision();
        cl.put("b", "2", None).await.unwrap();
        let r = cl
            .put("a", "3", Some(PutOptions::new().with_prev_key()))
            .await
            .unwrap();
        assert_eq!(r.prev_key().unwrap().value(), b"1");
        let g = cl.get("a", None).await.unwrap();
        let kv = &g.kvs()[0];
        assert_eq!(
            (
                kv.value(),
                kv.version(),
                kv.create_revision(),
                kv.mod_revision()
            ),
            (&b"3"[..], 2, first_rev, first_rev + 2)
        );
        let old = cl
            .get("a", Some(GetOptions::new().with_revision(first_rev)))
            .await
            .unwrap();
        assert_eq!(old.kvs()[0].value(), b"1");
        let all = cl
            .get(
                "",
                Some(
                    GetOptions::new()
                        .with_all_keys()
                        .with_sort(SortTarget::Key, SortOrder::Descend)
                        .with_limit(1),
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            (all.kvs()[0].key(), all.count(), all.more()),
            (&b"b"[..], 2, true)
        );

        let txn = Txn::new()
            .when([Compare::value("a", CompareOp::Equal, "3")])
            .and_then([TxnOp::put("c", "from-txn", None), TxnOp::get("a", None)])
            .or_else([TxnOp::put("c", "wrong", None)]);
        let t = cl.txn(txn).await.unwrap();
        assert!(t.succeeded());
        assert_eq!(
            cl.get("c", None).await.unwrap().kvs()[0].value(),
            b"from-txn"
        );

        let lease = cl.lease_grant(30, None).await.unwrap();
        cl.put(
            "leased",
            "x",
            Some(PutOptions::new().with_lease(lease.id())),
        )
        .await
        .unwrap();
        let ttl = cl
            .lease_time_to_live(
                lease.id(),
                Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
            )
            .await
            .unwrap();
        assert_eq!(ttl.keys(), &[b"leased".to_vec()]);
        assert!(ttl.ttl() > 25 && ttl.ttl() <= 30, "{}", ttl.ttl());
        let (mut keeper, mut stream) = cl.lease_keep_alive(lease.id()).await.unwrap();
        keeper.keep_alive().await.unwrap();
        assert_eq!(stream.message().await.unwrap().unwrap().ttl(), 30);
        cl.lease_revoke(lease.id()).await.unwrap();
        assert!(cl.get("leased", None).await.unwrap().kvs().is_empty());

        let d = cl
            .delete("", Some(DeleteOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(d.deleted(), 3);
        let rev = d.header().unwrap().revision();
        cl.compact(rev - 1, None).await.unwrap();
        let e = cl
            .get("a", Some(GetOptions::new().with_revision(first_rev)))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("required revision has been compacted"),
            "{e}"
        );
    });
}

// A member answers a write only once it has applied it itself, as etcd does: a write sent
// to a follower (which forwards it to the leader) is seen at once by a serializable read and
// by a new watch's header on that follower.
#[test]
fn a_follower_answers_a_write_after_applying_it() {
    let c = Cluster::start(Flavor::Skiff, 3);
    let leader = c.leader().expect("a leader");
    let follower = (leader + 1) % 3;
    rt().block_on(async {
        let url = format!("http://{}", c.endpoint(follower));
        let mut cl = Client::connect([url], None).await.expect("connect");
        for i in 0..200 {
            let value = format!("v{i}");
            let rev = cl
                .put("ryw", value.as_str(), None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
            let got = cl
                .get("ryw", Some(GetOptions::new().with_serializable()))
                .await
                .unwrap();
            assert_eq!(got.header().unwrap().revision(), rev, "write {i}");
            assert_eq!(got.kvs()[0].value(), value.as_bytes(), "write {i}");
            if i % 20 == 0 {
                // The stream is dropped (and the watch with it) at the end of the block.
                let mut stream = cl.watch("ryw", None).await.unwrap();
                let created = stream.message().await.unwrap().expect("created");
                assert!(created.created());
                assert_eq!(created.header().unwrap().revision(), rev, "write {i}");
            }
        }
    });
}

// A lease that is not kept alive expires and its keys disappear; the leader proposes the revoke.
#[test]
fn unrenewed_lease_expires() {
    let c = Cluster::start(Flavor::Skiff, 3);
    rt().block_on(async {
        let mut cl = client(&c).await;
        let lease = cl.lease_grant(2, None).await.unwrap();
        cl.put("short", "x", Some(PutOptions::new().with_lease(lease.id())))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            cl.get("short", None).await.unwrap().kvs().is_empty(),
            "key of an expired lease is gone"
        );
        assert_eq!(
            cl.lease_time_to_live(lease.id(), None).await.unwrap().ttl(),
            -1
        );
    });
}

// Bad requests get etcd's errors, change nothing, and every member stays healthy.
#[test]
fn bad_input_changes_nothing() {
    let c = Cluster::start(Flavor::Skiff, 3);
    rt().block_on(async {
        let mut cl = client(&c).await;
        cl.put("k", "v", None).await.unwrap();
        let rev = cl
            .get("k", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();

        let big = vec![b'x'; 1_700_000];
        let e = cl.put("big", big, None).await.unwrap_err().to_string();
        assert!(e.contains("etcdserver: request is too large"), "{e}");
        let huge = vec![b'x'; 3 * 1024 * 1024];
        let e = cl.put("huge", huge, None).await.unwrap_err().to_string();
        assert!(
            e.contains("limit is: 2097152 bytes"),
            "the gRPC limit is named: {e}"
        );

        let ops: Vec<TxnOp> = (0..129)
            .map(|i| TxnOp::put(format!("t{i}"), "v", None))
            .collect();
        let e = cl
            .txn(Txn::new().and_then(ops))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("too many operations in txn request"), "{e}");

        let e = cl
            .put("k", "v", Some(PutOptions::new().with_lease(0x1234)))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("etcdserver: requested lease not found"), "{e}");

        let e = cl
            .get("k", Some(GetOptions::new().with_revision(rev + 100)))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("required revision is a future revision"), "{e}");

        // range_end before key: etcd returns nothing (no error).
        let r = cl
            .get("z", Some(GetOptions::new().with_range("a")))
            .await
            .unwrap();
        assert!(r.kvs().is_empty());

        cl.compact(rev, None).await.unwrap();
        let e = cl.compact(rev, None).await.unwrap_err().to_string();
        assert!(e.contains("required revision has been compacted"), "{e}");

        let after = cl
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(
            after.header().unwrap().revision(),
            rev,
            "no rejected request changed the store"
        );
        assert_eq!(after.kvs().len(), 1);
    });
    c.wait_healthy(Duration::from_secs(5));
}
