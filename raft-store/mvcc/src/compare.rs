//! Txn compares: etcd 3.4's `applyCompare` as pure logic over a [`StateView`].
//!
//! - A compare with `range_end` holds only if every key in the range satisfies it.
//! - With no key in the range, the compare is evaluated against an all-zero `KeyValue`
//!   (version, create, mod and lease 0), except that a VALUE compare always fails: proto3
//!   cannot tell an empty value from a missing key (etcd 3.4.23 answered
//!   `value("zz") = ""` and `value("zz") != "x"` with failure, `version("zz") = "0"` with
//!   success).
//! - A `target_union` that does not match `target` compares against 0 / the empty value; an
//!   unknown `result` holds; an unknown `target` compares as equal. These mirror etcd's code
//!   paths for malformed requests.

use std::cmp::Ordering;
use std::ops::ControlFlow;

use etcd_client::proto::{PbCompare, PbCompareTarget, PbKeyValue, PbTargetUnion};

use crate::error::StorageError;
use crate::view::{KeyRange, StateView};

/// `Compare.CompareResult.EQUAL`.
pub const COMPARE_EQUAL: i32 = 0;
/// `Compare.CompareResult.GREATER`.
pub const COMPARE_GREATER: i32 = 1;
/// `Compare.CompareResult.LESS`.
pub const COMPARE_LESS: i32 = 2;
/// `Compare.CompareResult.NOT_EQUAL`.
pub const COMPARE_NOT_EQUAL: i32 = 3;

/// Whether all `compares` hold in `view`'s current state (an empty list holds).
pub fn all_hold(view: &dyn StateView, compares: &[PbCompare]) -> Result<bool, StorageError> {
    for c in compares {
        if !holds(view, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether one compare holds in `view`'s current state.
pub fn holds(view: &dyn StateView, c: &PbCompare) -> Result<bool, StorageError> {
    if c.range_end.is_empty() && c.target != PbCompareTarget::Value as i32 {
        // One key, no value needed: the key's meta answers (from the key index, if any).
        return Ok(match view.key_meta(&c.key)? {
            Some(meta) => compare_kv(c, &meta.to_kv(&c.key)),
            None => compare_kv(c, &PbKeyValue::default()),
        });
    }
    let range = KeyRange::from_request(&c.key, &c.range_end);
    let mut seen_any = false;
    let mut all_pass = true;
    if !range.is_empty() {
        view.scan(view.revision(), &range, &mut |entry| {
            seen_any = true;
            if compare_kv(c, &entry.load()?) {
                Ok(ControlFlow::Continue(()))
            } else {
                all_pass = false;
                Ok(ControlFlow::Break(()))
            }
        })?;
    }
    if seen_any {
        return Ok(all_pass);
    }
    if c.target == PbCompareTarget::Value as i32 {
        return Ok(false);
    }
    Ok(compare_kv(c, &PbKeyValue::default()))
}

/// etcd's `compareKV`: compares one version against the compare's operand.
fn compare_kv(c: &PbCompare, kv: &PbKeyValue) -> bool {
    let ord = match c.target {
        t if t == PbCompareTarget::Value as i32 => {
            let operand: &[u8] = match &c.target_union {
                Some(PbTargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(operand)
        }
        t if t == PbCompareTarget::Create as i32 => kv.create_revision.cmp(&int_operand(c)),
        t if t == PbCompareTarget::Mod as i32 => kv.mod_revision.cmp(&int_operand(c)),
        t if t == PbCompareTarget::Version as i32 => kv.version.cmp(&int_operand(c)),
        t if t == PbCompareTarget::Lease as i32 => kv.lease.cmp(&int_operand(c)),
        _ => Ordering::Equal,
    };
    match c.result {
        COMPARE_EQUAL => ord == Ordering::Equal,
        COMPARE_NOT_EQUAL => ord != Ordering::Equal,
        COMPARE_GREATER => ord == Ordering::Greater,
        COMPARE_LESS => ord == Ordering::Less,
        _ => true,
    }
}

/// The integer operand of a compare, 0 when the union does not match the target.
fn int_operand(c: &PbCompare) -> i64 {
    use PbCompareTarget as T;
    match (&c.target_union, c.target) {
        (Some(PbTargetUnion::Version(v)), t) if t == T::Version as i32 => *v,
        (Some(PbTargetUnion::CreateRevision(v)), t) if t == T::Create as i32 => *v,
        (Some(PbTargetUnion::ModRevision(v)), t) if t == T::Mod as i32 => *v,
        (Some(PbTargetUnion::Lease(v)), t) if t == T::Lease as i32 => *v,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memview::MemView;

    fn cmp(
        key: &str,
        end: &str,
        target: PbCompareTarget,
        result: i32,
        u: PbTargetUnion,
    ) -> PbCompare {
        PbCompare {
            result,
            target: target as i32,
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
            target_union: Some(u),
        }
    }

    fn view() -> MemView {
        let mut v = MemView::new();
        v.insert("a", "1", 2, 5, 2, 0);
        v.insert("b", "2", 3, 3, 1, 7);
        v.revision = 5;
        v
    }

    // Every target against every result on an existing key.
    #[test]
    fn targets_and_results() {
        use PbCompareTarget as T;
        use PbTargetUnion as U;
        let v = view();
        let cases = [
            (T::Version, U::Version(2), COMPARE_EQUAL, true),
            (T::Version, U::Version(1), COMPARE_GREATER, true),
            (T::Version, U::Version(3), COMPARE_LESS, true),
            (T::Version, U::Version(2), COMPARE_NOT_EQUAL, false),
            (T::Create, U::CreateRevision(2), COMPARE_EQUAL, true),
            (T::Create, U::CreateRevision(2), COMPARE_GREATER, false),
            (T::Mod, U::ModRevision(5), COMPARE_EQUAL, true),
            (T::Mod, U::ModRevision(6), COMPARE_LESS, true),
            (T::Value, U::Value(b"1".to_vec()), COMPARE_EQUAL, true),
            (T::Value, U::Value(b"0".to_vec()), COMPARE_GREATER, true),
            (T::Value, U::Value(b"1".to_vec()), COMPARE_NOT_EQUAL, false),
            (T::Lease, U::Lease(0), COMPARE_EQUAL, true),
            (T::Lease, U::Lease(7), COMPARE_LESS, true),
        ];
        for (target, union, result, want) in cases {
            let c = cmp("a", "", target, result, union.clone());
            assert_eq!(
                holds(&v, &c).unwrap(),
                want,
                "{target:?} {union:?} {result}"
            );
        }
    }

    // A missing key compares as all zero, except that VALUE compares always fail (checked
    // against etcd 3.4.23).
    #[test]
    fn missing_key() {
        use PbCompareTarget as T;
        use PbTargetUnion as U;
        let v = view();
        assert!(holds(&v, &cmp("zz", "", T::Version, COMPARE_EQUAL, U::Version(0))).unwrap());
        assert!(holds(&v, &cmp("zz", "", T::Mod, COMPARE_EQUAL, U::ModRevision(0))).unwrap());
        assert!(holds(
            &v,
            &cmp("zz", "", T::Create, COMPARE_LESS, U::CreateRevision(1))
        )
        .unwrap());
        assert!(holds(&v, &cmp("zz", "", T::Lease, COMPARE_EQUAL, U::Lease(0))).unwrap());
        let empty = U::Value(Vec::new());
        assert!(!holds(&v, &cmp("zz", "", T::Value, COMPARE_EQUAL, empty)).unwrap());
        let x = U::Value(b"x".to_vec());
        assert!(!holds(&v, &cmp("zz", "", T::Value, COMPARE_NOT_EQUAL, x)).unwrap());
    }

    // A range compare holds only if every key in the range satisfies it.
    #[test]
    fn range_compare_needs_every_key() {
        use PbCompareTarget as T;
        use PbTargetUnion as U;
        let v = view();
        assert!(holds(
            &v,
            &cmp("a", "c", T::Create, COMPARE_GREATER, U::CreateRevision(1))
        )
        .unwrap());
        assert!(!holds(&v, &cmp("a", "c", T::Version, COMPARE_EQUAL, U::Version(2))).unwrap());
        assert!(holds(&v, &cmp("a", "\0", T::Mod, COMPARE_LESS, U::ModRevision(6))).unwrap());
        // An empty interval behaves like a missing key.
        assert!(holds(&v, &cmp("c", "a", T::Version, COMPARE_EQUAL, U::Version(0))).unwrap());
        let all = [
            cmp("a", "", T::Version, COMPARE_EQUAL, U::Version(2)),
            cmp("b", "", T::Version, COMPARE_EQUAL, U::Version(9)),
        ];
        assert!(!all_hold(&v, &all).unwrap());
        assert!(all_hold(&v, &all[..1]).unwrap());
    }

    // A target_union of the wrong kind compares against zero, as in etcd.
    #[test]
    fn mismatched_union_compares_with_zero() {
        let v = view();
        let c = cmp(
            "a",
            "",
            PbCompareTarget::Version,
            COMPARE_GREATER,
            PbTargetUnion::Lease(99),
        );
        assert!(holds(&v, &c).unwrap());
    }
}
