//! The three-way merge itself, directory by directory from the root (as
//! Mutagen's `reconcile.go` recurses over its entry tree), and the names of
//! conflict copies. The rules are those of the parent module's documentation.

use std::collections::BTreeSet;
use std::ops::Bound;

use super::{Conflict, Side, CONFLICT_WINNER, NAME_MAX};
use crate::sync::tree::{EntryKind, Manifest};

/// Merges the three trees: the agreed tree (conflict copies included) and
/// the conflicts, in path order.
pub(super) fn merge(anc: &Manifest, loc: &Manifest, rem: &Manifest) -> (Manifest, Vec<Conflict>) {
    let mut merge = Merge {
        anc,
        loc,
        rem,
        agreed: Vec::new(),
        conflicts: Vec::new(),
        kept: BTreeSet::new(),
    };
    merge.dir("", true, true, true);
    // built in one go: faster than growing it, and a compact map
    (merge.agreed.into_iter().collect(), merge.conflicts)
}

/// The three-way merge, directory by directory from the root (as Mutagen
/// recurses over its entry tree), building the agreed tree.
struct Merge<'a> {
    anc: &'a Manifest,
    loc: &'a Manifest,
    rem: &'a Manifest,
    /// The tree both sides will hold, conflict copies included, each path
    /// once, in visiting order.
    agreed: Vec<(String, EntryKind)>,
    conflicts: Vec<Conflict>,
    /// Conflict names chosen so far.
    kept: BTreeSet<String>,
}

impl<'a> Merge<'a> {
    /// Merges the children of directory `dir` ("" is the root), looking
    /// into each tree only where `dir` is a directory in it.
    fn dir(&mut self, dir: &str, in_anc: bool, in_loc: bool, in_rem: bool) {
        let list = |m: &'a Manifest, present: bool| {
            if present {
                children(m, dir)
            } else {
                Vec::new()
            }
        };
        let lists = [
            list(self.anc, in_anc),
            list(self.loc, in_loc),
            list(self.rem, in_rem),
        ];
        // a merge join of three sorted lists: no lookups
        let mut at = [0usize; 3];
        loop {
            let heads = [0, 1, 2].map(|i| lists[i].get(at[i]).copied());
            let Some(path) = heads.iter().flatten().map(|(p, _)| *p).min() else {
                return;
            };
            let [a, l, r] = heads.map(|h| h.filter(|(p, _)| *p == path).map(|(_, e)| e));
            for (i, h) in [a, l, r].iter().enumerate() {
                at[i] += usize::from(h.is_some());
            }
            self.node(path, a, l, r);
        }
    }

    /// Merges one path: `a`, `l`, `r` are the ancestor's, local and remote
    /// entries there.
    fn node(
        &mut self,
        path: &'a str,
        a: Option<&'a EntryKind>,
        l: Option<&'a EntryKind>,
        r: Option<&'a EntryKind>,
    ) {
        let dir = Some(&EntryKind::Dir);
        match (l, r) {
            // gone on both sides (or never there): nothing to agree on
            (None, None) => {}
            (Some(x), Some(y)) if x == y => {
                self.agreed.push((path.to_string(), x.clone()));
                if *x == EntryKind::Dir {
                    self.dir(path, a == dir, true, true);
                }
            }
            // a directory on one side only: merge its contents against an
            // empty side, so only what that side left unchanged is deleted
            (Some(EntryKind::Dir), None) | (None, Some(EntryKind::Dir)) => {
                let before = self.agreed.len();
                self.dir(path, a == dir, l.is_some(), r.is_some());
                // new (or replacing a file) it stays; if it was agreed, it
                // goes with its contents unless something beneath it stays
                if a != dir || self.agreed.len() > before {
                    self.agreed.push((path.to_string(), EntryKind::Dir));
                }
            }
            // a file or link on one side only: deleted on the other side if
            // it is the agreed one, otherwise new or modified, and it wins
            (Some(x), None) | (None, Some(x)) => {
                if a != Some(x) {
                    self.agreed.push((path.to_string(), x.clone()));
                }
            }
            (Some(x), Some(y)) => self.disagree(path, a, x, y),
        }
    }

    /// Both sides hold different entries at `path` (not both directories).
    fn disagree(
        &mut self,
        path: &'a str,
        a: Option<&'a EntryKind>,
        x: &'a EntryKind,
        y: &'a EntryKind,
    ) {
        let (anc, loc, rem) = (self.anc, self.loc, self.rem);
        let winner = if same_subtree(anc, a, rem, y, path) {
            Some(Side::Local)
        } else if same_subtree(anc, a, loc, x, path) {
            Some(Side::Remote)
        } else {
            // both changed it; a side that only deleted (part of a
            // directory) loses nothing when the other's new content wins
            match (adds(anc, a, loc, x, path), adds(anc, a, rem, y, path)) {
                (true, false) => Some(Side::Local),
                (false, true) => Some(Side::Remote),
                _ => None,
            }
        };
        match winner {
            Some(side) => self.take(side, path),
            None => self.conflict(path, a, x, y),
        }
    }

    /// Agrees on `side`'s entry at `path` and everything beneath it.
    fn take(&mut self, side: Side, path: &str) {
        let m = self.tree(side);
        if let Some(entry) = m.get(path) {
            self.agreed.push((path.to_string(), entry.clone()));
            if *entry == EntryKind::Dir {
                self.agreed
                    .extend(below(m, path).map(|(p, e)| (p.clone(), e.clone())));
            }
        }
    }

    /// The winner stays at `path`; the loser's entry (and contents) moves
    /// to a conflict name beside it, on both sides.
    fn conflict(
        &mut self,
        path: &'a str,
        a: Option<&'a EntryKind>,
        x: &'a EntryKind,
        y: &'a EntryKind,
    ) {
        let winner = CONFLICT_WINNER;
        let loser = winner.other();
        self.take(winner, path);
        let m = self.tree(loser);
        let lost = match loser {
            Side::Local => x,
            Side::Remote => y,
        };
        let kept_as = self.kept_name(path, loser, lost);
        self.agreed.push((kept_as.clone(), lost.clone()));
        if *lost == EntryKind::Dir {
            for (p, e) in below(m, path) {
                self.agreed
                    .push((format!("{kept_as}{}", &p[path.len()..]), e.clone()));
            }
        }
        self.kept.insert(kept_as.clone());
        self.conflicts.push(Conflict {
            path: path.to_string(),
            ancestor: a.cloned(),
            local: Some(x.clone()),
            remote: Some(y.clone()),
            winner,
            kept_as,
        });
    }

    /// A free sibling name for the loser's version of `path`.
    fn kept_name(&self, path: &str, loser: Side, lost: &EntryKind) -> String {
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (Some(parent), name),
            None => (None, path),
        };
        let (stem, ext) = match name.rfind('.') {
            // `.env` has no extension, nor does a directory
            Some(i) if i > 0 && i + 1 < name.len() && *lost != EntryKind::Dir => name.split_at(i),
            _ => (name, ""),
        };
        let mut hash = Fnv::new();
        hash.entry(lost);
        for (p, e) in below(self.tree(loser), path) {
            hash.bytes(&p.as_bytes()[path.len()..]);
            hash.entry(e);
        }
        let tag = format!("berth-conflict-{loser}-{:08x}", hash.short());
        let mut n = 1u64;
        loop {
            let suffix = if n == 1 {
                tag.clone()
            } else {
                format!("{tag}-{n}")
            };
            let ext = if 1 + suffix.len() + ext.len() < NAME_MAX {
                ext
            } else {
                ""
            };
            let room = NAME_MAX.saturating_sub(1 + suffix.len() + ext.len());
            let name = format!("{}.{suffix}{ext}", truncate(stem, room));
            let candidate = match parent {
                Some(parent) => format!("{parent}/{name}"),
                None => name,
            };
            // every agreed path is one of local or remote, or beneath a
            // conflict name already chosen (so never a sibling of `path`)
            let taken = [self.anc, self.loc, self.rem]
                .iter()
                .any(|m| m.contains_key(&candidate))
                || self.kept.contains(&candidate);
            if !taken {
                return candidate;
            }
            n += 1;
        }
    }

    fn tree(&self, side: Side) -> &'a Manifest {
        match side {
            Side::Local => self.loc,
            Side::Remote => self.rem,
        }
    }
}

/// Whether `side`'s entry `x` at `path`, with everything beneath it, equals
/// the ancestor's (`a`).
fn same_subtree(
    anc: &Manifest,
    a: Option<&EntryKind>,
    side: &Manifest,
    x: &EntryKind,
    path: &str,
) -> bool {
    a == Some(x) && (*x != EntryKind::Dir || below(anc, path).eq(below(side, path)))
}

/// Whether `side`'s entry `x` at `path`, or anything beneath it, is new or
/// changed since the ancestor (`a`): more than deletions.
fn adds(anc: &Manifest, a: Option<&EntryKind>, side: &Manifest, x: &EntryKind, path: &str) -> bool {
    a != Some(x) || (*x == EntryKind::Dir && below(side, path).any(|(p, e)| anc.get(p) != Some(e)))
}

/// The entries strictly beneath `path`, in order.
pub(super) fn below<'m>(
    m: &'m Manifest,
    path: &str,
) -> impl Iterator<Item = (&'m String, &'m EntryKind)> + 'm {
    let prefix = format!("{path}/");
    let range = m.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded));
    range.take_while(move |(p, _)| p.starts_with(prefix.as_str()))
}

/// The direct children of `dir` ("" is the root).
fn children<'m>(m: &'m Manifest, dir: &str) -> Vec<(&'m str, &'m EntryKind)> {
    if dir.is_empty() {
        return m
            .iter()
            .filter(|(p, _)| !p.contains('/'))
            .map(|(p, e)| (p.as_str(), e))
            .collect();
    }
    let skip = dir.len() + 1;
    below(m, dir)
        .filter(|(p, _)| !p[skip..].contains('/'))
        .map(|(p, e)| (p.as_str(), e))
        .collect()
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// FNV-1a (64 bits): a stable hash (std's is not stable across releases),
/// so a conflict name is the same in every build.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn entry(&mut self, entry: &EntryKind) {
        match entry {
            EntryKind::Dir => self.bytes(b"d"),
            EntryKind::File { size, mtime, exec } => {
                self.bytes(b"f");
                self.bytes(&size.to_le_bytes());
                self.bytes(&mtime.to_le_bytes());
                self.bytes(&[u8::from(*exec)]);
            }
            EntryKind::Symlink { target } => {
                self.bytes(b"l");
                self.bytes(target.as_bytes());
                self.bytes(b"\0");
            }
        }
    }

    /// 32 bits of it, both halves folded in.
    fn short(&self) -> u32 {
        // truncation intended: the low half after folding
        (self.0 ^ (self.0 >> 32)) as u32
    }
}
