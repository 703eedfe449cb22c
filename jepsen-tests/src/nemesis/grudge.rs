//! Partition shapes as pure functions: which members drop traffic from which.
//!
//! A [`Grudge`] maps each member to the set of members whose packets it drops (Jepsen's term).
//! The network backend turns it into `iptables -A INPUT -s <peer> -j DROP` rules inside each
//! member's namespace. Every shape leaves the harness (client traffic) untouched.
//!
//! | shape | who sees whom |
//! |---|---|
//! | isolate one | one member alone, the rest together |
//! | halves | a random minority half and a majority half |
//! | majorities ring | every member sees a majority, no two see the same one |
//! | bridge | two halves plus one member that sees both |

use std::collections::BTreeSet;

/// For each member (by index), the members whose traffic it drops.
pub type Grudge = Vec<BTreeSet<usize>>;

/// The grudge that cuts every link between different `components`; members not listed in any
/// component are isolated from everyone.
pub fn from_components(n: usize, components: &[Vec<usize>]) -> Grudge {
    let mut visible: Vec<BTreeSet<usize>> = (0..n).map(|i| BTreeSet::from([i])).collect();
    for component in components {
        for &a in component {
            visible[a].extend(component.iter().copied());
        }
    }
    from_visibility(&visible)
}

/// The grudge in which member `i` sees exactly `visible[i]` (plus itself).
pub fn from_visibility(visible: &[BTreeSet<usize>]) -> Grudge {
    let n = visible.len();
    (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| j != i && !visible[i].contains(&j))
                .collect()
        })
        .collect()
}

/// Member `alone` on its own; everyone else together.
pub fn isolate(n: usize, alone: usize) -> Grudge {
    let rest: Vec<usize> = (0..n).filter(|&i| i != alone).collect();
    from_components(n, &[vec![alone], rest])
}

/// Splits the permutation `order` into a first half of `n / 2` members (a minority) and the
/// rest (a majority).
pub fn halves(order: &[usize]) -> Grudge {
    let (minority, majority) = order.split_at(order.len() / 2);
    from_components(order.len(), &[minority.to_vec(), majority.to_vec()])
}

/// Majorities ring over the permutation `order`: member `order[k]` sees a majority made of its
/// neighbours on the ring. With an odd majority size the window is symmetric (exact for 5
/// members, as in Jepsen); otherwise (3 members) each sees itself and the previous ones, so
/// the drops are one-directional, which still cuts the TCP connections both ways.
pub fn majorities_ring(order: &[usize]) -> Grudge {
    let n = order.len();
    let majority = n / 2 + 1;
    let window: Vec<isize> = if majority % 2 == 1 {
        let half = (majority / 2) as isize;
        (-half..=half).collect()
    } else {
        (0..majority as isize).map(|d| -d).collect()
    };
    let mut visible = vec![BTreeSet::new(); n];
    for k in 0..n {
        for d in &window {
            let neighbour = (k as isize + d).rem_euclid(n as isize) as usize;
            visible[order[k]].insert(order[neighbour]);
        }
    }
    from_visibility(&visible)
}

/// Bridge over the permutation `order`: the first `n / 2` members and the last ones are cut
/// apart, and the member in the middle (`order[n / 2]`) sees both sides.
pub fn bridge(order: &[usize]) -> Grudge {
    let n = order.len();
    let middle = order[n / 2];
    let left: Vec<usize> = order[..n / 2].iter().copied().chain([middle]).collect();
    let right: Vec<usize> = order[n / 2..].to_vec();
    let mut visible: Vec<BTreeSet<usize>> = (0..n).map(|i| BTreeSet::from([i])).collect();
    for side in [&left, &right] {
        for &a in side.iter() {
            visible[a].extend(side.iter().copied());
        }
    }
    from_visibility(&visible)
}

/// Whether member `i` can reach a majority (itself included) under `grudge`, counting only
/// links that are open in both directions.
pub fn sees_majority(grudge: &Grudge, i: usize) -> bool {
    let n = grudge.len();
    let reachable = (0..n)
        .filter(|&j| j == i || (!grudge[i].contains(&j) && !grudge[j].contains(&i)))
        .count();
    reachable > n / 2
}

/// `a -x b` pairs, for logs: e.g. `m0 drops [m1, m2]; m1 drops [m0]`.
pub fn describe(grudge: &Grudge) -> String {
    let parts: Vec<String> = grudge
        .iter()
        .enumerate()
        .filter(|(_, drops)| !drops.is_empty())
        .map(|(i, drops)| {
            let names: Vec<String> = drops.iter().map(|j| format!("m{j}")).collect();
            format!("m{i} drops [{}]", names.join(", "))
        })
        .collect();
    if parts.is_empty() {
        "no drops".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[usize]) -> BTreeSet<usize> {
        items.iter().copied().collect()
    }

    /// Isolating a member cuts it from everyone in both directions and keeps the rest whole.
    #[test]
    fn isolate_cuts_one_member_both_ways() {
        let g = isolate(3, 1);
        assert_eq!(g, vec![set(&[1]), set(&[0, 2]), set(&[1])]);
        assert!(!sees_majority(&g, 1));
        assert!(sees_majority(&g, 0) && sees_majority(&g, 2));
    }

    /// Halves put the first n/2 members of the order in the minority.
    #[test]
    fn halves_split_minority_and_majority() {
        let g = halves(&[4, 2, 0, 1, 3]);
        assert_eq!(g[4], set(&[0, 1, 3]));
        assert_eq!(g[0], set(&[2, 4]));
        let majority: Vec<usize> = (0..5).filter(|&i| sees_majority(&g, i)).collect();
        assert_eq!(majority, vec![0, 1, 3]);
    }

    /// In a 5-member ring everyone sees exactly a majority and the visible sets all differ.
    #[test]
    fn majorities_ring_of_five_is_exact() {
        let g = majorities_ring(&[0, 1, 2, 3, 4]);
        let seen: BTreeSet<BTreeSet<usize>> = g
            .iter()
            .enumerate()
            .map(|(i, drops)| (0..5).filter(|j| *j == i || !drops.contains(j)).collect())
            .collect();
        assert_eq!(seen.len(), 5, "no two members see the same majority");
        assert!(g.iter().all(|drops| drops.len() == 2));
        assert!((0..5).all(|i| sees_majority(&g, i)));
        assert_eq!(g[0], set(&[2, 3]));
    }

    /// A 3-member ring drops one direction per member and differs per member.
    #[test]
    fn majorities_ring_of_three_is_one_directional() {
        let g = majorities_ring(&[2, 0, 1]);
        assert!(g.iter().all(|drops| drops.len() == 1));
        let dropped: BTreeSet<usize> = g.iter().flatten().copied().collect();
        assert_eq!(dropped.len(), 3);
    }

    /// The bridge member sees everyone; the two sides do not see each other.
    #[test]
    fn bridge_member_sees_both_sides() {
        let g = bridge(&[3, 1, 4, 0, 2]);
        assert!(g[4].is_empty(), "member 4 is the bridge");
        assert_eq!(g[3], set(&[0, 2]));
        assert_eq!(g[0], set(&[1, 3]));
        assert!(sees_majority(&g, 4));
    }

    /// Descriptions name the dropping member and whom it drops.
    #[test]
    fn describe_lists_drops() {
        assert_eq!(describe(&isolate(2, 0)), "m0 drops [m1]; m1 drops [m0]");
        assert_eq!(describe(&vec![BTreeSet::new(); 3]), "no drops");
    }
}
