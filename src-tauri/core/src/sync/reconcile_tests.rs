use super::*;

/// A manifest from a compact spec: `d/` a directory, `a=3` a file of size
/// and mtime 3, `a=3@7` size 3 mtime 7, `a=3x` executable, `l->t` a link.
pub(super) fn t(spec: &str) -> Manifest {
    let entry = |tok: &str| -> (String, EntryKind) {
        if let Some((name, target)) = tok.split_once("->") {
            let target = target.to_string();
            return (name.to_string(), EntryKind::Symlink { target });
        }
        if let Some(name) = tok.strip_suffix('/') {
            return (name.to_string(), EntryKind::Dir);
        }
        let (name, v) = tok.split_once('=').expect("name=size");
        let (v, exec) = v.strip_suffix('x').map_or((v, false), |v| (v, true));
        let (size, mtime) = v.split_once('@').unwrap_or((v, v));
        let (size, mtime) = (size.parse().expect("size"), mtime.parse().expect("mtime"));
        (name.to_string(), EntryKind::File { size, mtime, exec })
    };
    spec.split_whitespace().map(entry).collect()
}

fn x(exec: bool) -> &'static str {
    if exec {
        "x"
    } else {
        ""
    }
}

/// Conflict names with their hash replaced by `H`, so rows stay readable.
pub(super) fn hide(s: String) -> String {
    let tag = "berth-conflict-remote-";
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find(tag) {
        out.push_str(&rest[..i + tag.len()]);
        out.push('H');
        rest = &rest[i + tag.len() + 8..];
    }
    out.push_str(rest);
    out
}

pub(super) fn show_remote(ops: &[Op]) -> String {
    let show = |op: &Op| match op {
        Op::Mkdir(p) => format!("mkdir {p}"),
        Op::Put { path, size, exec } => format!("put {path} {size}{}", x(*exec)),
        Op::Symlink { path, target } => format!("ln {path} {target}"),
        Op::Remove(p) => format!("rm {p}"),
        Op::Rmdir(p) => format!("rmdir {p}"),
    };
    hide(ops.iter().map(show).collect::<Vec<_>>().join("; "))
}

pub(super) fn show_local(ops: &[LocalOp]) -> String {
    let show = |op: &LocalOp| match op {
        LocalOp::Mkdir(p) => format!("mkdir {p}"),
        LocalOp::Fetch {
            path, size, exec, ..
        } => format!("fetch {path} {size}{}", x(*exec)),
        LocalOp::Symlink { path, target } => format!("ln {path} {target}"),
        LocalOp::Remove(p) => format!("rm {p}"),
        LocalOp::Rmdir(p) => format!("rmdir {p}"),
    };
    hide(ops.iter().map(show).collect::<Vec<_>>().join("; "))
}

fn show_conflicts(cs: &[Conflict]) -> String {
    let show = |c: &Conflict| format!("{} -> {}", c.path, c.kept_as);
    hide(cs.iter().map(show).collect::<Vec<_>>().join("; "))
}

fn parent_ok(m: &Manifest, p: &str) -> bool {
    p.rsplit_once('/')
        .is_none_or(|(d, _)| m.get(d) == Some(&EntryKind::Dir))
}

/// Renames `from` (and its contents) to `to`, as `rename(2)` without
/// replacing would.
fn rename(m: &mut Manifest, from: &str, to: &str) -> bool {
    if !m.contains_key(from) || m.contains_key(to) || !parent_ok(m, to) {
        return false;
    }
    let moved: Vec<String> = below(m, from).map(|(p, _)| p.clone()).collect();
    let entry = m.remove(from).expect("checked");
    m.insert(to.to_string(), entry);
    for p in moved {
        let e = m.remove(&p).expect("listed");
        m.insert(format!("{to}{}", &p[from.len()..]), e);
    }
    true
}

/// A strict executor: an op runs only if the tree allows it (parent there,
/// nothing in the way, directory empty, source as planned).
fn apply(m: &mut Manifest, path: &str, new: Option<EntryKind>, src: Option<&EntryKind>) -> bool {
    let now = m.get(path);
    let ok = match &new {
        None if now == Some(&EntryKind::Dir) => below(m, path).next().is_none(),
        None => now.is_some(),
        Some(EntryKind::Dir) => now.is_none() && parent_ok(m, path),
        Some(EntryKind::Symlink { .. }) => now.is_none() && parent_ok(m, path),
        Some(f) => {
            src == Some(f)
                && parent_ok(m, path)
                && matches!(now, None | Some(EntryKind::File { .. }))
        }
    };
    if ok {
        match new {
            Some(e) => m.insert(path.to_string(), e),
            None => m.remove(path),
        };
    }
    ok
}

/// Runs `plan` on copies of both trees; `fail` decides which steps fail.
pub(super) fn execute(
    plan: &Reconciled,
    local: &Manifest,
    remote: &Manifest,
    fail: &mut dyn FnMut() -> bool,
) -> (Manifest, Manifest, Done) {
    let (mut loc, mut rem) = (local.clone(), remote.clone());
    let mut done = Done::default();
    for c in &plan.conflicts {
        let side = if c.loser() == Side::Local {
            &mut loc
        } else {
            &mut rem
        };
        done.kept.push(!fail() && rename(side, &c.path, &c.kept_as));
    }
    let (src_loc, src_rem) = (loc.clone(), rem.clone());
    for (op, expect) in plan.remote_ops.iter().zip(&plan.remote_expect) {
        let (path, new) = match op {
            Op::Mkdir(p) => (p, Some(EntryKind::Dir)),
            Op::Put { path, size, exec } => {
                let f = src_loc.get(path).filter(|e| {
                    matches!(e, EntryKind::File { size: s, exec: x, .. } if s == size && x == exec)
                });
                (path, f.cloned())
            }
            Op::Symlink { path, target } => (
                path,
                Some(EntryKind::Symlink {
                    target: target.clone(),
                }),
            ),
            Op::Remove(p) | Op::Rmdir(p) => (p, None),
        };
        let is_put = matches!(op, Op::Put { .. });
        // an executor leaves alone what changed since the scan
        let ok = !fail()
            && rem.get(path) == expect.as_ref()
            && (!is_put || new.is_some())
            && apply(&mut rem, path, new.clone(), new.as_ref().filter(|_| is_put));
        done.remote.push(ok);
    }
    for (op, expect) in plan.local_ops.iter().zip(&plan.local_expect) {
        let (new, src) = match op {
            LocalOp::Mkdir(_) => (Some(EntryKind::Dir), None),
            LocalOp::Fetch {
                path,
                size,
                mtime,
                exec,
            } => {
                let f = EntryKind::File {
                    size: *size,
                    mtime: *mtime,
                    exec: *exec,
                };
                (Some(f), src_rem.get(path))
            }
            LocalOp::Symlink { target, .. } => (
                Some(EntryKind::Symlink {
                    target: target.clone(),
                }),
                None,
            ),
            LocalOp::Remove(_) | LocalOp::Rmdir(_) => (None, None),
        };
        let path = op.path();
        let ok = !fail() && loc.get(path) == expect.as_ref() && apply(&mut loc, path, new, src);
        done.local.push(ok);
    }
    (loc, rem, done)
}

/// Every entry either side held that is not the agreed one is still held
/// (at its path, or under its conflict name); an agreed one goes only when
/// the other side no longer held it.
pub(super) fn assert_nothing_lost(
    name: &str,
    a: &Manifest,
    before: [&Manifest; 2],
    plan: &Reconciled,
    after: [&Manifest; 2],
) {
    for (side, m) in [(Side::Local, before[0]), (Side::Remote, before[1])] {
        let other = if side == Side::Local {
            before[1]
        } else {
            before[0]
        };
        for (p, v) in m {
            let moved = plan
                .conflicts
                .iter()
                .filter(|c| c.loser() == side)
                .find(|c| p == &c.path || p.starts_with(&format!("{}/", c.path)));
            let now = moved.map_or(p.clone(), |c| {
                format!("{}{}", c.kept_as, &p[c.path.len()..])
            });
            // (at `p` still when the rename did not happen)
            let kept = after
                .iter()
                .any(|m| m.get(&now) == Some(v) || m.get(p) == Some(v));
            if a.get(p) == Some(v) {
                assert!(
                    kept || other.get(p) != Some(v),
                    "{name}: agreed {p} deleted though both held it"
                );
            } else {
                assert!(kept, "{name}: {side} {p} = {v:?} lost");
            }
        }
    }
}

/// What every complete round must give: both trees equal to `agreed`,
/// nothing lost, and nothing left to do.
pub(super) fn assert_round(
    name: &str,
    mode: SyncMode,
    a: &Manifest,
    l: &Manifest,
    r: &Manifest,
    plan: &Reconciled,
) {
    let (loc, rem, done) = execute(plan, l, r, &mut || false);
    assert_eq!(done, Done::all(plan), "{name}: every step applies in order");
    assert_eq!(rem, plan.agreed, "{name}: replica");
    if mode == SyncMode::TwoWay {
        assert_eq!(loc, plan.agreed, "{name}: local");
        assert_nothing_lost(name, a, [l, r], plan, [&loc, &rem]);
    } else {
        assert_eq!(&loc, l, "{name}: one-way never writes locally");
    }
    let next = next_ancestor(a, plan, &done);
    assert_eq!(next, plan.agreed, "{name}: next ancestor");
    assert!(
        reconcile(&next, &loc, &rem, mode).is_empty(),
        "{name}: converged"
    );
}

pub(super) const TWO: SyncMode = SyncMode::TwoWay;
pub(super) const ONE: SyncMode = SyncMode::OneWay;

/// case, mode, ancestor, local, remote, remote ops, local ops, conflicts
type Row = (
    &'static str,
    SyncMode,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

#[test]
fn three_way_merge_table() {
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("no change", TWO, "d/ d/a=1 l->d", "d/ d/a=1 l->d", "d/ d/a=1 l->d", "", "", ""),
        ("all empty", TWO, "", "", "", "", "", ""),
        ("local creates a file", TWO, "b=9", "a=1 b=9", "b=9", "put a 1", "", ""),
        ("local creates a tree", TWO, "", "d/ d/e/ d/e/a=1x", "", "mkdir d; mkdir d/e; put d/e/a 1x", "", ""),
        ("local modifies", TWO, "a=1", "a=2", "a=1", "put a 2", "", ""),
        ("local mtime only", TWO, "a=1@1", "a=1@5", "a=1@1", "put a 1", "", ""),
        ("local exec bit", TWO, "a=1", "a=1x", "a=1", "put a 1x", "", ""),
        ("local deletes a file", TWO, "a=1 b=9", "b=9", "a=1 b=9", "rm a", "", ""),
        ("local deletes a tree, deepest first", TWO, "a/ a/b/ a/b/c/ a/b/c/f=1 z=9", "z=9", "a/ a/b/ a/b/c/ a/b/c/f=1 z=9",
            "rm a/b/c/f; rmdir a/b/c; rmdir a/b; rmdir a", "", ""),
        ("remote creates", TWO, "b=9", "b=9", "b=9 d/ d/a=3 l->b", "", "mkdir d; fetch d/a 3; ln l b", ""),
        ("remote modifies", TWO, "a=1", "a=1", "a=3", "", "fetch a 3", ""),
        ("remote deletes a file", TWO, "a=1 b=9", "a=1 b=9", "b=9", "", "rm a", ""),
        ("remote deletes a tree", TWO, "d/ d/a=1 b=9", "d/ d/a=1 b=9", "b=9", "", "rm d/a; rmdir d", ""),
        ("both create the same file: no transfer", TWO, "", "a=1", "a=1", "", "", ""),
        ("both make the same change", TWO, "a=1 d/", "a=2 e/", "a=2 e/", "", "", ""),
        ("both delete", TWO, "a=1 b=9", "b=9", "b=9", "", "", ""),
        ("both modify differently: local wins, remote kept", TWO, "a.txt=1", "a.txt=2", "a.txt=3",
            "put a.txt 2", "fetch a.berth-conflict-remote-H.txt 3", "a.txt -> a.berth-conflict-remote-H.txt"),
        ("both create differently", TWO, "", "d/ d/f.rs=2", "d/ d/f.rs=3",
            "put d/f.rs 2", "fetch d/f.berth-conflict-remote-H.rs 3", "d/f.rs -> d/f.berth-conflict-remote-H.rs"),
        ("conflict on a dotfile", TWO, ".env=1", ".env=2", ".env=3",
            "put .env 2", "fetch .env.berth-conflict-remote-H 3", ".env -> .env.berth-conflict-remote-H"),
        ("only exec differs: conflict", TWO, "a=1", "a=1x", "a=1@2", "put a 1x", "fetch a.berth-conflict-remote-H 1", "a -> a.berth-conflict-remote-H"),
        ("local modifies, remote deletes: restored remotely", TWO, "a=1 b=9", "a=2 b=9", "b=9", "put a 2", "", ""),
        ("remote modifies, local deletes: restored locally", TWO, "a=1 b=9", "b=9", "a=3 b=9", "", "fetch a 3", ""),
        ("local deletes a dir, remote adds inside", TWO, "d/ d/old=1 b=9", "b=9", "d/ d/old=1 d/new=2 b=9",
            "rm d/old", "mkdir d; fetch d/new 2", ""),
        ("remote deletes a dir, local adds inside", TWO, "d/ d/old=1 b=9", "d/ d/old=1 d/new=2 b=9", "b=9",
            "mkdir d; put d/new 2", "rm d/old", ""),
        ("local deletes a dir, remote modifies inside", TWO, "d/ d/a=1 d/b=1 z=9", "z=9", "d/ d/a=2 d/b=1 z=9",
            "rm d/b", "mkdir d; fetch d/a 2", ""),
        ("local deletes a dir, remote adds a subdir", TWO, "d/ d/a=1 z=9", "z=9", "d/ d/a=1 d/e/ z=9",
            "rm d/a", "mkdir d; mkdir d/e", ""),
        ("dir deleted, partly deleted on the other side", TWO, "d/ d/a=1 d/b=2 z=9", "z=9", "d/ d/a=1 z=9",
            "rm d/a; rmdir d", "", ""),
        ("local file becomes a dir", TWO, "a=1", "a/ a/b=2", "a=1", "rm a; mkdir a; put a/b 2", "", ""),
        ("remote dir becomes a file", TWO, "a/ a/b=2", "a/ a/b=2", "a=3", "", "rm a/b; rmdir a; fetch a 3", ""),
        ("local file becomes a link", TWO, "a=1", "a->t", "a=1", "rm a; ln a t", "", ""),
        ("remote link becomes a dir", TWO, "a->t", "a->t", "a/", "", "rm a; mkdir a", ""),
        ("remote retargets a link", TWO, "l->x", "l->x", "l->y", "", "rm l; ln l y", ""),
        ("links retargeted differently", TWO, "l->x", "l->y", "l->z",
            "ln l y", "ln l.berth-conflict-remote-H z", "l -> l.berth-conflict-remote-H"),
        ("both create the same link", TWO, "", "l->../x", "l->../x", "", "", ""),
        ("file against dir: the dir is kept aside", TWO, "", "a=1", "a/ a/b=2",
            "put a 1", "mkdir a.berth-conflict-remote-H; fetch a.berth-conflict-remote-H/b 2", "a -> a.berth-conflict-remote-H"),
        ("local dir with content against remote file", TWO, "a=1", "a/ a/b=2", "a=3",
            "mkdir a; put a/b 2", "fetch a.berth-conflict-remote-H 3", "a -> a.berth-conflict-remote-H"),
        ("local replaces a dir the remote only pruned", TWO, "d/ d/a=1 d/b=2", "d=5", "d/ d/a=1",
            "rm d/a; rmdir d; put d 5", "", ""),
        ("remote replaces a dir the local only pruned", TWO, "d/ d/a=1 d/b=2", "d/ d/a=1", "d->x",
            "", "rm d/a; rmdir d; ln d x", ""),
        ("remote file over a dir local added to", TWO, "d/ d/a=1", "d/ d/a=1 d/n=2", "d=5",
            "mkdir d; put d/a 1; put d/n 2", "fetch d.berth-conflict-remote-H 5", "d -> d.berth-conflict-remote-H"),
        ("first sync, overlapping trees: union, nothing deleted", TWO, "",
            "d/ d/a=1 d/b=2 x=1", "d/ d/a=1 d/c=3 y->t",
            "put d/b 2; put x 1", "fetch d/c 3; ln y t", ""),
        ("one-way: remote changes overwritten, creations removed", ONE, "", "a=1 b=1 d/ d/f=1", "a=5 c=2 d/ d/g=1",
            "put a 1; put b 1; put d/f 1; rm d/g; rm c", "", ""),
        ("one-way: deleted replica restored", ONE, "a=1", "a=1", "", "put a 1", "", ""),
        ("one-way: the ancestor plays no part", ONE, "a=1 z=3", "a=1", "a=9 z=3", "put a 1; rm z", "", ""),
    ];
    for (case, mode, a, l, r, want_remote, want_local, want_conflicts) in rows {
        let (a, l, r) = (t(a), t(l), t(r));
        let plan = reconcile(&a, &l, &r, *mode);
        assert_eq!(
            show_remote(&plan.remote_ops),
            *want_remote,
            "{case}: remote ops"
        );
        assert_eq!(
            show_local(&plan.local_ops),
            *want_local,
            "{case}: local ops"
        );
        assert_eq!(
            show_conflicts(&plan.conflicts),
            *want_conflicts,
            "{case}: conflicts"
        );
        if *mode == ONE {
            assert_eq!(
                plan.remote_ops,
                tree::diff(&l, &r),
                "{case}: one-way is tree::diff"
            );
        }
        assert_round(case, *mode, &a, &l, &r, &plan);
    }
}

#[test]
fn conflicts_report_both_sides_and_the_winner() {
    let plan = reconcile(&t("a=1"), &t("a=2"), &t("a->x"), TWO);
    let c = &plan.conflicts[0];
    assert_eq!(
        (c.ancestor.clone(), c.local.clone(), c.remote.clone()),
        (
            t("a=1").remove("a"),
            t("a=2").remove("a"),
            t("a->x").remove("a")
        )
    );
    assert_eq!((c.winner, c.loser()), (Side::Local, Side::Remote));
    assert_eq!(plan.agreed, t(&format!("a=2 {}->x", c.kept_as)));
}

#[test]
fn conflict_names_are_stable_distinct_and_free() {
    let name = |l: &str, r: &str| {
        reconcile(&t(""), &t(l), &t(r), TWO).conflicts[0]
            .kept_as
            .clone()
    };
    let first = name("a.txt=1", "a.txt=2");
    assert_eq!(first, name("a.txt=1", "a.txt=2"), "deterministic");
    assert_ne!(
        first,
        name("a.txt=1", "a.txt=3"),
        "another loser, another name"
    );
    assert!(
        first.starts_with("a.berth-conflict-remote-") && first.ends_with(".txt"),
        "{first}"
    );
    // taken on either side: the next free suffix
    let taken_locally = name(&format!("a.txt=1 {first}=7"), "a.txt=2");
    assert_eq!(taken_locally, first.replace(".txt", "-2.txt"));
    let both = name(
        &format!("a.txt=1 {first}=7"),
        &format!("a.txt=2 {taken_locally}=8"),
    );
    assert_eq!(both, first.replace(".txt", "-3.txt"));
    // two extensions: only the last one stays at the end; a dir has none
    assert!(name("x.tar.gz=1", "x.tar.gz=2").starts_with("x.tar.berth-conflict-remote-"));
    assert!(name("d.d=1", "d.d/").starts_with("d.d.berth-conflict-remote-"));
    // a long name (multibyte) is shortened to 255 bytes at a char boundary
    let long = "é".repeat(126) + ".txt";
    let kept = name(&format!("{long}=1"), &format!("{long}=2"));
    assert!(
        kept.len() <= 255 && kept.ends_with(".txt") && kept.contains("berth-conflict-remote-"),
        "{kept}"
    );
}

#[test]
fn expectations_name_what_each_op_replaces() {
    let plan = reconcile(
        &t("a=1 d/ d/x=1"),
        &t("a/ a/b=2 d/ d/x=1"),
        &t("a=1 d/ d/x=4"),
        TWO,
    );
    assert_eq!(show_remote(&plan.remote_ops), "rm a; mkdir a; put a/b 2");
    assert_eq!(plan.remote_expect, vec![t("a=1").remove("a"), None, None]);
    assert_eq!(show_local(&plan.local_ops), "fetch d/x 4");
    assert_eq!(plan.local_expect, vec![t("x=1").remove("x")]);
}

#[test]
fn next_ancestor_after_partial_success() {
    let (a, l, r) = (t("a=1 b=1 c=1"), t("a=2 b=3 c=1 n=4"), t("a=2 b=1 c=5"));
    let plan = reconcile(&a, &l, &r, TWO);
    assert_eq!(show_remote(&plan.remote_ops), "put b 3; put n 4");
    assert_eq!(show_local(&plan.local_ops), "fetch c 5");
    // nothing done: only what already agreed moves on (a); the rest is redone
    let none = next_ancestor(&a, &plan, &Done::default());
    assert_eq!(none, t("a=2 b=1 c=1"));
    assert_eq!(reconcile(&none, &l, &r, TWO), plan);
    // half done (the upload of b failed): exactly that is left
    let done = Done {
        kept: vec![],
        remote: vec![false, true],
        local: vec![true],
    };
    let (loc, rem) = (t("a=2 b=3 c=5 n=4"), t("a=2 b=1 c=5 n=4"));
    let next = next_ancestor(&a, &plan, &done);
    assert_eq!(next, t("a=2 b=1 c=5 n=4"));
    let rest = reconcile(&next, &loc, &rem, TWO);
    assert_eq!(
        (show_remote(&rest.remote_ops), show_local(&rest.local_ops)),
        ("put b 3".into(), "".into())
    );

    // a conflict whose loser was moved aside but whose winner never arrived
    let (a, l, r) = (t("f=1"), t("f=2"), t("f=3"));
    let plan = reconcile(&a, &l, &r, TWO);
    let kept = plan.conflicts[0].kept_as.clone();
    let mut first = true;
    let (loc, rem, done) = execute(&plan, &l, &r, &mut || !std::mem::take(&mut first));
    assert_eq!(done.kept, vec![true]);
    let next = next_ancestor(&a, &plan, &done);
    let rest = reconcile(&next, &loc, &rem, TWO);
    assert!(rest.conflicts.is_empty(), "no second conflict copy");
    assert_eq!(hide(show_remote(&rest.remote_ops)), "put f 2");
    assert_eq!(rest.agreed, t(&format!("f=2 {kept}=3")));
}

#[test]
fn excluded_paths_are_never_deleted_on_the_other_side() {
    let excluded = |p: &str, _: &EntryKind| p == ".env" || p == "node_modules";
    let a = t(".env=1 node_modules/ node_modules/x=1 src/ src/a=1");
    // the local .env is there but excluded; the replica's has changed
    let l = t(".env=1 node_modules/ node_modules/x=1 src/ src/a=2");
    let r = t(".env=7 node_modules/ node_modules/x=1 node_modules/y=1 src/ src/a=1");
    let [a, l, r] = [&a, &l, &r].map(|m| without_excluded(m, excluded));
    assert_eq!(l, t("src/ src/a=2"));
    let plan = reconcile(&a, &l, &r, TWO);
    assert_eq!(
        (show_remote(&plan.remote_ops), show_local(&plan.local_ops)),
        ("put src/a 2".into(), "".into())
    );
    // orphans are dropped too
    assert_eq!(without_excluded(&t("a/b=1 c=1"), |_, _| false), t("c=1"));
}
