use super::*;
use crate::sync::reconcile::tests::{t, ONE, TWO};

fn files(n: usize, skip: usize) -> String {
    (skip..n).map(|i| format!("f{i}=1 ")).collect()
}

#[test]
fn safety_refusals_and_non_refusals() {
    let both = Roots {
        local: true,
        remote: true,
    };
    let check = |a: &str, l: &str, r: &str, roots: Roots, mode: SyncMode| {
        reconcile_checked(&t(a), &t(l), &t(r), mode, roots)
            .map(|_| ())
            .map_err(|e| e.side)
    };
    let tree5 = "d/ d/a=1 d/b=2 c=3 e->d";
    assert_eq!(
        check(tree5, tree5, "", both, TWO),
        Err(Side::Remote),
        "a wiped replica must not wipe the folder"
    );
    assert_eq!(
        check(tree5, "", tree5, both, TWO),
        Err(Side::Local),
        "an emptied folder must not wipe the replica"
    );
    let gone = Roots {
        local: true,
        remote: false,
    };
    assert_eq!(
        check(tree5, tree5, "", gone, TWO),
        Err(Side::Remote),
        "the replica's root vanished"
    );
    let no_local = Roots {
        local: false,
        remote: true,
    };
    assert_eq!(
        check(tree5, tree5, tree5, no_local, TWO),
        Err(Side::Local),
        "the local root vanished"
    );
    assert_eq!(
        check("", "a=1", "", gone, TWO),
        Ok(()),
        "first sync into a new replica"
    );
    assert_eq!(
        check(tree5, "", "", both, TWO),
        Ok(()),
        "both emptied: nothing to delete"
    );
    assert_eq!(
        check("a=1", "", "b=2", both, TWO),
        Ok(()),
        "empty side, but nothing left to delete"
    );
    assert_eq!(
        check(tree5, "c=3", tree5, both, TWO),
        Ok(()),
        "most of a small tree"
    );

    let big = files(200, 0);
    assert_eq!(
        check(&big, &files(200, 190), &big, both, TWO),
        Err(Side::Local),
        "95% deleted locally"
    );
    assert_eq!(
        check(&big, &big, &files(200, 190), both, TWO),
        Err(Side::Remote),
        "95% deleted remotely"
    );
    assert_eq!(
        check(&big, &files(200, 50), &big, both, TWO),
        Ok(()),
        "75% is an edit"
    );
    assert_eq!(
        check(&files(100, 0), &files(100, 99), &files(100, 0), both, TWO),
        Ok(()),
        "not over the minimum"
    );

    // one-way keeps tree::safety_check
    assert_eq!(check("", "", tree5, both, ONE), Err(Side::Local));
    assert_eq!(
        check("", &files(200, 195), &big, both, ONE),
        Err(Side::Local)
    );
    assert_eq!(check("", "a=1", tree5, both, ONE), Ok(()));

    let err = reconcile_checked(&t(tree5), &t(tree5), &t(""), TWO, both).expect_err("refused");
    assert!(
        err.reason.contains("the replica is empty") && err.reason.contains("nothing was changed"),
        "{}",
        err.reason
    );
    let err = tree::with_local(err.into(), std::path::Path::new("/src"));
    assert!(
        err.to_string()
            .starts_with("refusing to sync /src: the replica is empty"),
        "{err}"
    );
}
