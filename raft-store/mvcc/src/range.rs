//! Range: etcd 3.4's `executeRange` over any [`StateView`], as pure logic.
//!
//! etcd's rules, kept exactly (several were checked against a real etcd 3.4.23):
//! - `count` is the number of keys in the range at the revision, before `limit` and before the
//!   min/max revision filters; `count_only` returns no kvs and `more == false`.
//! - The limit is pushed into the key-ordered scan (first `limit + 1` keys) only when the
//!   request's `sort_order` is NONE and no filter is set; otherwise every matching key is
//!   considered, then sorted and cut. A `sort_target` other than KEY with order NONE sorts
//!   ascending *after* the pushed-down cut (etcd 3.4.23: `get s/ --prefix --sort-by=VERSION
//!   --limit=2` sorts only the first 3 keys).
//! - Sorting is stable with respect to key order, so ties keep ascending keys also for
//!   DESCEND (etcd's `sort.Reverse` over an insertion sort does the same for small results).
//! - `more` is whether more keys passed the filters than `limit`.
//! - The header revision is the view's current revision, not the requested one.
//!
//! Memory: without a limit the response holds every matching key (as in etcd); with a limit,
//! at most about `2 * (limit + 1)` records are held while scanning.

use std::cmp::Ordering;
use std::ops::ControlFlow;

use etcd_client::proto::{PbKeyValue, PbRangeRequest, PbRangeResponse, PbResponseHeader};

use crate::error::{EtcdError, ReadError};
use crate::view::{Entry, KeyRange, StateView, Step};

/// `RangeRequest.SortOrder.NONE`: no sorting (results come in ascending key order).
pub const SORT_ORDER_NONE: i32 = 0;
/// `RangeRequest.SortOrder.ASCEND`.
pub const SORT_ORDER_ASCEND: i32 = 1;
/// `RangeRequest.SortOrder.DESCEND`.
pub const SORT_ORDER_DESCEND: i32 = 2;
/// `RangeRequest.SortTarget.KEY`.
pub const SORT_TARGET_KEY: i32 = 0;
/// `RangeRequest.SortTarget.VERSION`.
pub const SORT_TARGET_VERSION: i32 = 1;
/// `RangeRequest.SortTarget.CREATE`.
pub const SORT_TARGET_CREATE: i32 = 2;
/// `RangeRequest.SortTarget.MOD`.
pub const SORT_TARGET_MOD: i32 = 3;
/// `RangeRequest.SortTarget.VALUE`.
pub const SORT_TARGET_VALUE: i32 = 4;

/// The revision a read at `requested` observes, as etcd's `rangeKeys` decides: a future
/// revision is refused, `<= 0` means current, and anything below the compact revision is
/// gone (the compact revision itself is still readable).
pub fn resolve_revision(requested: i64, current: i64, compact: i64) -> Result<i64, EtcdError> {
    if requested > current {
        return Err(EtcdError::FutureRev);
    }
    let rev = if requested <= 0 { current } else { requested };
    if rev < compact {
        return Err(EtcdError::Compacted);
    }
    Ok(rev)
}

/// Executes a Range against `view`.
pub fn execute(view: &dyn StateView, req: &PbRangeRequest) -> Result<PbRangeResponse, ReadError> {
    let rev = resolve_revision(req.revision, view.revision(), view.compact_revision())?;
    let plan = Plan::new(req)?;
    let range = KeyRange::from_request(&req.key, &req.range_end);
    let mut collector = Collector::new(&plan);
    if !range.is_empty() {
        view.scan(rev, &range, &mut |entry| collector.visit(entry))?;
    }
    let (kvs, more, count) = collector.finish();
    Ok(PbRangeResponse {
        header: Some(PbResponseHeader {
            revision: view.revision(),
            ..Default::default()
        }),
        kvs,
        more,
        count,
    })
}

/// The effective sort: what to compare and in which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sort {
    target: i32,
    descending: bool,
}

impl Sort {
    /// A total order: the target (reversed for DESCEND), then ascending key.
    fn cmp(&self, a: &PbKeyValue, b: &PbKeyValue) -> Ordering {
        let by_target = match self.target {
            SORT_TARGET_VERSION => a.version.cmp(&b.version),
            SORT_TARGET_CREATE => a.create_revision.cmp(&b.create_revision),
            SORT_TARGET_MOD => a.mod_revision.cmp(&b.mod_revision),
            SORT_TARGET_VALUE => a.value.cmp(&b.value),
            _ => a.key.cmp(&b.key),
        };
        let by_target = if self.descending {
            by_target.reverse()
        } else {
            by_target
        };
        by_target.then_with(|| a.key.cmp(&b.key))
    }

    fn apply(&self, kvs: &mut [PbKeyValue]) {
        kvs.sort_by(|a, b| self.cmp(a, b));
    }
}

/// The min/max revision filters; 0 means unset.
#[derive(Debug, Clone, Copy, Default)]
struct Filters {
    min_mod: i64,
    max_mod: i64,
    min_create: i64,
    max_create: i64,
}

impl Filters {
    fn any(&self) -> bool {
        self.min_mod != 0 || self.max_mod != 0 || self.min_create != 0 || self.max_create != 0
    }

    fn pass(&self, kv: &PbKeyValue) -> bool {
        let above = |v: i64, max: i64| max != 0 && v > max;
        let below = |v: i64, min: i64| min != 0 && v < min;
        !(above(kv.mod_revision, self.max_mod)
            || below(kv.mod_revision, self.min_mod)
            || above(kv.create_revision, self.max_create)
            || below(kv.create_revision, self.min_create))
    }
}

/// How one Range request is evaluated.
#[derive(Debug, Clone)]
struct Plan {
    limit: Option<usize>,
    /// The limit is applied to the key-ordered scan (see the module docs).
    pushdown: bool,
    sort: Option<Sort>,
    filters: Filters,
    keys_only: bool,
    count_only: bool,
}

impl Plan {
    fn new(req: &PbRangeRequest) -> Result<Plan, EtcdError> {
        let valid_order = (SORT_ORDER_NONE..=SORT_ORDER_DESCEND).contains(&req.sort_order);
        let valid_target = (SORT_TARGET_KEY..=SORT_TARGET_VALUE).contains(&req.sort_target);
        if !valid_order || !valid_target {
            return Err(EtcdError::InvalidSortOption);
        }
        let filters = Filters {
            min_mod: req.min_mod_revision,
            max_mod: req.max_mod_revision,
            min_create: req.min_create_revision,
            max_create: req.max_create_revision,
        };
        let by_key = req.sort_target == SORT_TARGET_KEY;
        let sort = match req.sort_order {
            SORT_ORDER_NONE if by_key => None,
            SORT_ORDER_ASCEND if by_key => None,
            SORT_ORDER_DESCEND => Some(Sort {
                target: req.sort_target,
                descending: true,
            }),
            _ => Some(Sort {
                target: req.sort_target,
                descending: false,
            }),
        };
        Ok(Plan {
            limit: usize::try_from(req.limit).ok().filter(|&l| l > 0),
            pushdown: req.sort_order == SORT_ORDER_NONE && !filters.any(),
            sort,
            filters,
            keys_only: req.keys_only,
            count_only: req.count_only,
        })
    }
}

/// Accumulates the scan of one Range.
struct Collector<'p> {
    plan: &'p Plan,
    count: i64,
    /// Keys that passed the filters (in pushdown mode: keys kept).
    matched: usize,
    kept: Vec<PbKeyValue>,
}

impl<'p> Collector<'p> {
    fn new(plan: &'p Plan) -> Collector<'p> {
        Collector {
            plan,
            count: 0,
            matched: 0,
            kept: Vec::new(),
        }
    }

    fn visit(&mut self, entry: &dyn Entry) -> Step {
        self.count += 1;
        if self.plan.count_only {
            return Ok(ControlFlow::Continue(()));
        }
        let cap = self.plan.limit.map(|l| l.saturating_add(1));
        if self.plan.pushdown {
            if cap.is_none_or(|cap| self.kept.len() < cap) {
                self.kept.push(entry.load()?);
                self.matched += 1;
            }
            return Ok(ControlFlow::Continue(()));
        }
        let kv = entry.load()?;
        if !self.plan.filters.pass(&kv) {
            return Ok(ControlFlow::Continue(()));
        }
        self.matched += 1;
        match (cap, self.plan.sort) {
            // Key order: the first `cap` matches are the answer; later ones only count.
            (Some(cap), None) if self.kept.len() >= cap => {}
            (Some(cap), Some(sort)) => {
                self.kept.push(kv);
                // Keep memory bounded: cutting to the best `cap` under a total order gives the
                // same answer as sorting everything.
                if self.kept.len() >= cap.saturating_mul(2) {
                    sort.apply(&mut self.kept);
                    self.kept.truncate(cap);
                }
            }
            _ => self.kept.push(kv),
        }
        Ok(ControlFlow::Continue(()))
    }

    /// (kvs, more, count).
    fn finish(mut self) -> (Vec<PbKeyValue>, bool, i64) {
        if let Some(sort) = self.plan.sort {
            sort.apply(&mut self.kept);
        }
        let mut more = false;
        if let Some(limit) = self.plan.limit {
            more = self.matched > limit;
            self.kept.truncate(limit);
        }
        if self.plan.keys_only {
            for kv in &mut self.kept {
                kv.value.clear();
            }
        }
        (self.kept, more, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memview::MemView;

    fn view() -> MemView {
        // Versions: s/a 3, s/b 2, s/c 2, s/d 1 -- the data used against real etcd.
        let mut v = MemView::new();
        for (key, version, create, modr, value) in [
            ("s/a", 3, 6, 8, "x3"),
            ("s/b", 2, 9, 11, "y2"),
            ("s/c", 2, 10, 12, "z2"),
            ("s/d", 1, 13, 13, "w"),
        ] {
            v.insert(key, value, create, modr, version, 0);
        }
        v.revision = 13;
        v
    }

    fn req(f: impl FnOnce(&mut PbRangeRequest)) -> PbRangeRequest {
        let mut r = PbRangeRequest {
            key: b"s/".to_vec(),
            range_end: b"s0".to_vec(),
            ..Default::default()
        };
        f(&mut r);
        r
    }

    fn keys(resp: &PbRangeResponse) -> Vec<String> {
        resp.kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
            .collect()
    }

    // Sort target VERSION with order NONE sorts only the pushed-down first limit+1 keys
    // (etcd 3.4.23 answered [s/b, s/c], more, count 4); with ASCEND it sorts everything
    // ([s/d, s/b]).
    #[test]
    fn sort_target_without_order_sorts_after_pushdown() {
        let v = view();
        let none = execute(
            &v,
            &req(|r| {
                r.sort_target = SORT_TARGET_VERSION;
                r.limit = 2;
            }),
        )
        .unwrap();
        assert_eq!(keys(&none), ["s/b", "s/c"]);
        assert!(none.more);
        assert_eq!(none.count, 4);
        let asc = execute(
            &v,
            &req(|r| {
                r.sort_target = SORT_TARGET_VERSION;
                r.sort_order = SORT_ORDER_ASCEND;
                r.limit = 2;
            }),
        )
        .unwrap();
        assert_eq!(keys(&asc), ["s/d", "s/b"]);
        assert!(asc.more);
    }

    // DESCEND keeps ties in ascending key order (etcd 3.4.23: [s/a, s/b, s/c] by version;
    // [s/d, s/c, s/b] by key).
    #[test]
    fn descend_ties_keep_key_order() {
        let v = view();
        let by_version = execute(
            &v,
            &req(|r| {
                r.sort_target = SORT_TARGET_VERSION;
                r.sort_order = SORT_ORDER_DESCEND;
                r.limit = 3;
            }),
        )
        .unwrap();
        assert_eq!(keys(&by_version), ["s/a", "s/b", "s/c"]);
        let by_key = execute(
            &v,
            &req(|r| {
                r.sort_order = SORT_ORDER_DESCEND;
                r.limit = 3;
            }),
        )
        .unwrap();
        assert_eq!(keys(&by_key), ["s/d", "s/c", "s/b"]);
        assert!(by_key.more && by_key.count == 4);
    }

    // Filters prune kvs but not count; `more` reflects the filtered set.
    #[test]
    fn filters_prune_kvs_not_count() {
        let v = view();
        let r = execute(
            &v,
            &req(|r| {
                r.min_mod_revision = 11;
                r.max_create_revision = 12;
                r.limit = 1;
            }),
        )
        .unwrap();
        assert_eq!(keys(&r), ["s/b"]);
        assert!(r.more, "s/c also passes");
        assert_eq!(r.count, 4);
        let r = execute(&v, &req(|r| r.max_mod_revision = 8)).unwrap();
        assert_eq!(keys(&r), ["s/a"]);
        assert!(!r.more);
    }

    // Sorting with a limit over many keys uses the bounded top-k path and still matches a
    // full sort.
    #[test]
    fn bounded_sort_matches_full_sort() {
        let mut v = MemView::new();
        for i in 0..100i64 {
            let key = format!("s/{i:03}");
            v.insert(
                &key,
                &format!("{}", (i * 37) % 101),
                2 + i,
                2 + i,
                1 + (i * 7) % 5,
                0,
            );
        }
        v.revision = 200;
        for target in [SORT_TARGET_VERSION, SORT_TARGET_VALUE, SORT_TARGET_MOD] {
            let full = execute(
                &v,
                &req(|r| {
                    r.sort_target = target;
                    r.sort_order = SORT_ORDER_DESCEND;
                }),
            )
            .unwrap();
            let top = execute(
                &v,
                &req(|r| {
                    r.sort_target = target;
                    r.sort_order = SORT_ORDER_DESCEND;
                    r.limit = 7;
                }),
            )
            .unwrap();
            assert_eq!(top.kvs, full.kvs[..7].to_vec());
            assert!(top.more);
        }
    }

    // keys_only clears values; count_only returns only the count.
    #[test]
    fn keys_only_and_count_only() {
        let v = view();
        let r = execute(&v, &req(|r| r.keys_only = true)).unwrap();
        assert!(r.kvs.iter().all(|kv| kv.value.is_empty() && kv.version > 0));
        let r = execute(
            &v,
            &req(|r| {
                r.count_only = true;
                r.limit = 1;
            }),
        )
        .unwrap();
        assert!(r.kvs.is_empty() && !r.more && r.count == 4);
    }

    // A limit near i64::MAX behaves as "no limit" without overflowing the bounded sort.
    #[test]
    fn huge_limit() {
        let r = execute(
            &view(),
            &req(|r| {
                r.limit = i64::MAX;
                r.sort_order = SORT_ORDER_DESCEND;
            }),
        )
        .unwrap();
        assert_eq!(keys(&r), ["s/d", "s/c", "s/b", "s/a"]);
        assert!(!r.more);
    }

    // Revision resolution follows etcd's rangeKeys.
    #[test]
    fn resolve_revision_rules() {
        assert_eq!(resolve_revision(0, 10, 4), Ok(10));
        assert_eq!(resolve_revision(-3, 10, 4), Ok(10));
        assert_eq!(resolve_revision(4, 10, 4), Ok(4));
        assert_eq!(resolve_revision(3, 10, 4), Err(EtcdError::Compacted));
        assert_eq!(resolve_revision(11, 10, 4), Err(EtcdError::FutureRev));
    }

    // Unknown enum values are refused rather than guessed.
    #[test]
    fn invalid_sort_option() {
        let err = execute(&view(), &req(|r| r.sort_order = 7)).unwrap_err();
        assert!(matches!(err, ReadError::Etcd(EtcdError::InvalidSortOption)));
    }
}
