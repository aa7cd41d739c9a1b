//! Property tests on deterministic pseudo-random trees: whatever the three
//! trees, applying a round leaves both sides identical with nothing lost, and
//! interrupted rounds resume to the same end without losing or duplicating.

use super::tests::{assert_nothing_lost, assert_round, execute, TWO};
use super::*;

/// A small deterministic generator (no dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    fn entry(&mut self, fresh: &mut u64) -> EntryKind {
        match self.below(8) {
            0..=2 => EntryKind::Dir,
            3 => EntryKind::Symlink {
                target: ["x", "../y"][self.below(2) as usize].to_string(),
            },
            // a small shared pool, so both sides sometimes make the same change
            4 => EntryKind::File {
                size: 1 + self.below(2),
                mtime: 1,
                exec: self.below(2) == 0,
            },
            _ => {
                *fresh += 1;
                EntryKind::File {
                    size: *fresh,
                    mtime: *fresh as i64,
                    exec: false,
                }
            }
        }
    }

    /// A side derived from `base` below `dir`: each entry kept (and its
    /// contents derived again), or deleted, or replaced by a new one.
    fn derive(
        &mut self,
        base: &Manifest,
        dir: &str,
        depth: u32,
        out: &mut Manifest,
        fresh: &mut u64,
    ) {
        for name in ["a", "b.txt", "c"] {
            let path = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            let entry = match base.get(&path) {
                Some(e) if self.below(5) != 0 => e.clone(),
                _ if self.below(2) == 0 => continue,
                _ => self.entry(fresh),
            };
            let is_dir = entry == EntryKind::Dir;
            out.insert(path.clone(), entry);
            if is_dir && depth < 3 {
                let empty = Manifest::new();
                let base = if base.get(&path) == Some(&EntryKind::Dir) {
                    base
                } else {
                    &empty
                };
                self.derive(base, &path, depth + 1, out, fresh);
            }
        }
    }

    fn trees(&mut self) -> [Manifest; 3] {
        let mut fresh = 0;
        let mut a = Manifest::new();
        self.derive(&Manifest::new(), "", 0, &mut a, &mut fresh);
        // sometimes a first sync
        if self.below(6) == 0 {
            a.clear();
        }
        let (mut l, mut r) = (Manifest::new(), Manifest::new());
        self.derive(&a, "", 0, &mut l, &mut fresh);
        self.derive(&a, "", 0, &mut r, &mut fresh);
        [a, l, r]
    }
}

#[test]
fn random_trees_end_identical_and_nothing_is_lost() {
    let mut rng = Lcg(0x5eed);
    for case in 0..3000 {
        let [a, l, r] = rng.trees();
        let plan = reconcile(&a, &l, &r, TWO);
        assert_round(
            &format!("case {case}: {a:?} / {l:?} / {r:?}"),
            TWO,
            &a,
            &l,
            &r,
            &plan,
        );
    }
}

#[test]
fn random_interrupted_rounds_resume_without_loss_or_duplicates() {
    let mut rng = Lcg(42);
    for case in 0..1500 {
        let [a0, l0, r0] = rng.trees();
        let name = format!("case {case}: {a0:?} / {l0:?} / {r0:?}");
        let (mut a, mut l, mut r) = (a0.clone(), l0.clone(), r0.clone());
        let mut fail_rng = Lcg(case);
        for round in 0..8 {
            let plan = reconcile(&a, &l, &r, TWO);
            // the last round is clean; before that, a fifth of the steps fail
            let last = round == 7;
            let (loc, rem, done) = execute(&plan, &l, &r, &mut || !last && fail_rng.below(5) == 0);
            assert_nothing_lost(
                &format!("{name} round {round}"),
                &a,
                [&l, &r],
                &plan,
                [&loc, &rem],
            );
            a = next_ancestor(&a, &plan, &done);
            (l, r) = (loc, rem);
        }
        assert_eq!(l, r, "{name}: identical");
        assert_eq!(a, l, "{name}: ancestor");
        // every file either side changed is still there, once
        for (p, v) in l0.iter().chain(&r0).filter(|(p, v)| a0.get(*p) != Some(v)) {
            if let EntryKind::File { size, .. } = v {
                if *size > 2 {
                    let copies = l
                        .iter()
                        .filter(|(q, e)| *e == v && (*q == p || q.contains("berth-conflict")))
                        .count();
                    assert_eq!(copies, 1, "{name}: {p} = {v:?}");
                }
            }
        }
    }
}
