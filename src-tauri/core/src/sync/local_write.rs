//! Writing into a synced local folder, for changes that come back from the
//! remote (two-way sync, issue 15). What the remote sends is untrusted: a
//! container can make a folder of its replica a symlink to `/home/me/.ssh`,
//! and a naive writer would then put the next file under that folder into
//! the user's `.ssh`. So every write here happens beneath the synced root
//! one `openat` at a time, never following a link on the way
//! (`O_NOFOLLOW | O_DIRECTORY` per component), files are created under an
//! unguessable temporary name (`O_EXCL`) in their final folder and renamed
//! into place (a link at the name is replaced, never followed), and nothing
//! is replaced or removed unless it is still what the caller expects (the
//! entry the reconcile saw), so an edit the user made since the scan is
//! never overwritten. A conflict copy is moved aside without replacing
//! anything (`RENAME_NOREPLACE`).

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::tree::EntryKind;
use super::untrusted::{safe_relative, temp_name};

/// A synced local folder, held open: paths are resolved beneath it.
pub struct LocalTree {
    root: OwnedFd,
    /// The folder's path, for messages only (writes go through `root`).
    path: std::path::PathBuf,
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    check(fd)?;
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Why a write was refused: the path no longer holds what the round saw.
#[derive(Debug)]
struct Unexpected(String);

impl std::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} changed since the scan; left as it is for the next round",
            self.0
        )
    }
}

impl std::error::Error for Unexpected {}

fn not_what_was_expected(rel: &str) -> io::Error {
    io::Error::other(Unexpected(rel.to_string()))
}

/// Whether `err` says the path changed since the scan (the op is left for
/// the next round, nothing was touched) rather than that writing failed.
pub fn is_unexpected(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<Unexpected>())
}

impl LocalTree {
    /// Opens the synced root (a link at the root itself is followed, as
    /// `docker run -v` follows one; nothing below it is).
    pub fn open(root: &Path) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let path = CString::new(root.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: a valid C string; the result is checked
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        Ok(Self {
            root: owned(fd)?,
            path: root.to_path_buf(),
        })
    }

    /// The folder this tree writes beneath.
    pub fn root_path(&self) -> &Path {
        &self.path
    }

    /// The folder holding `rel` (opened without following any link) and
    /// `rel`'s last component.
    fn parent(&self, rel: &str) -> io::Result<(OwnedFd, CString)> {
        if !safe_relative(rel) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel:?} is not a plain relative path"),
            ));
        }
        let (dirs, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, rel),
        };
        // SAFETY: duplicating a descriptor we own
        let mut dir =
            owned(unsafe { libc::fcntl(self.root.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
        for part in dirs.into_iter().flat_map(|d| d.split('/')) {
            let c = cstr(part)?;
            // SAFETY: valid descriptor and C string; the result is checked
            let next = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            dir = owned(next)?;
        }
        Ok((dir, cstr(name)?))
    }

    /// What is at `rel` now, links not followed; `None` when nothing is.
    /// Sockets, FIFOs and devices read as an error (a sync never touches them).
    pub fn lstat(&self, rel: &str) -> io::Result<Option<EntryKind>> {
        let (dir, name) = match self.parent(rel) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        lstat_at(&dir, &name)
    }

    /// Makes the folder `rel` (its parent exists); an existing folder is fine.
    pub fn mkdir(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        // SAFETY: valid descriptor and C string; the result is checked
        match check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) }) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match lstat_at(&dir, &name)? {
                Some(EntryKind::Dir) => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Writes `size` bytes from `data` to `rel` with the given mtime and
    /// exec bit, replacing what is there only if it is `expect` (`None`:
    /// only if nothing is there). A short source is an error; nothing is
    /// left behind on failure.
    pub fn put(
        &self,
        rel: &str,
        data: &mut dyn Read,
        size: u64,
        mtime_ns: i64,
        exec: bool,
        expect: Option<&EntryKind>,
    ) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let tmp = cstr(&temp_name(base))?;
        let mode = if exec { 0o755 } else { 0o644 };
        // SAFETY: valid descriptor and C string; the result is checked
        let fd = owned(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })?;
        let written = (|| {
            let mut file = std::fs::File::from(fd);
            let copied = io::copy(&mut data.take(size), &mut file)?;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{rel}: got {copied} of {size} bytes"),
                ));
            }
            file.flush()?;
            let times = [
                libc::timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_OMIT,
                },
                libc::timespec {
                    tv_sec: mtime_ns.div_euclid(1_000_000_000) as libc::time_t,
                    tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
                },
            ];
            // SAFETY: a descriptor we own and a two-element array
            check(unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) })?;
            // the umask must not decide the exec bit the remote had
            // SAFETY: a descriptor we own
            check(unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) })?;
            if lstat_at(&dir, &name)?.as_ref() != expect {
                return Err(not_what_was_expected(rel));
            }
            // SAFETY: valid descriptors and C strings; the result is checked
            check(unsafe {
                libc::renameat(
                    dir.as_raw_fd(),
                    tmp.as_ptr(),
                    dir.as_raw_fd(),
                    name.as_ptr(),
                )
            })
            .map(drop)
        })();
        if written.is_err() {
            // SAFETY: valid descriptor and C string; failure leaves nothing worse
            unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
        }
        written
    }

    /// Makes `rel` a symlink with `target` verbatim; nothing may be there.
    pub fn symlink(&self, rel: &str, target: &str) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let t = cstr(target)?;
        // SAFETY: valid descriptor and C strings; the result is checked
        check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
    }

    /// Removes the file or link `rel` if it is still `expect`.
    pub fn remove(&self, rel: &str, expect: &EntryKind) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        if lstat_at(&dir, &name)?.as_ref() != Some(expect) {
            return Err(not_what_was_expected(rel));
        }
        // SAFETY: valid descriptor and C string; the result is checked
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
    }

    /// Removes the empty folder `rel` (a folder holding anything stays: an
    /// error, nothing deleted).
    pub fn rmdir(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        // SAFETY: valid descriptor and C string; the result is checked
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
    }

    /// Moves `rel` to `to` (a conflict copy) without replacing anything at `to`.
    pub fn move_aside(&self, rel: &str, to: &str) -> io::Result<()> {
        let (from_dir, from) = self.parent(rel)?;
        let (to_dir, to_name) = self.parent(to)?;
        // SAFETY: valid descriptors and C strings; the result is checked
        check(unsafe {
            libc::renameat2(
                from_dir.as_raw_fd(),
                from.as_ptr(),
                to_dir.as_raw_fd(),
                to_name.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        })
        .map(drop)
    }
}

fn lstat_at(dir: &OwnedFd, name: &CString) -> io::Result<Option<EntryKind>> {
    // SAFETY: an all-zero stat is a valid value to be overwritten
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out pointer; the result is checked
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if let Err(e) = check(ret) {
        return if e.kind() == io::ErrorKind::NotFound {
            Ok(None)
        } else {
            Err(e)
        };
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Ok(Some(EntryKind::Dir)),
        libc::S_IFREG => Ok(Some(EntryKind::File {
            size: st.st_size as u64,
            mtime: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
            exec: st.st_mode & 0o111 != 0,
        })),
        libc::S_IFLNK => {
            let mut buf = vec![0u8; 4096];
            // SAFETY: valid descriptor, C string and buffer of that length
            let n = unsafe {
                libc::readlinkat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
            buf.truncate(n);
            let target = String::from_utf8(buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Ok(Some(EntryKind::Symlink { target }))
        }
        _ => Err(io::Error::other("not a file, folder or symlink")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("berth-lw-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_land_beneath_the_root_and_never_through_a_link() {
        let r = root("links");
        let outside = root("outside");
        std::os::unix::fs::symlink(&outside, r.join("sub")).unwrap();
        let t = LocalTree::open(&r).unwrap();
        let put = |rel: &str| t.put(rel, &mut &b"x"[..], 1, 0, false, None);
        assert!(put("sub/evil").is_err(), "written through a folder link");
        assert!(t.mkdir("sub/d").is_err());
        assert!(t.symlink("sub/l", "/etc/passwd").is_err());
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        assert!(put("../escape").is_err());
        assert!(put("/abs").is_err());
        // a link at the file's own name is replaced, not followed
        std::fs::write(outside.join("target"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.join("target"), r.join("f")).unwrap();
        let link = t.lstat("f").unwrap();
        assert!(matches!(link, Some(EntryKind::Symlink { .. })));
        t.put("f", &mut &b"new"[..], 3, 5_000_000_123, true, link.as_ref())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("target")).unwrap(),
            "keep"
        );
        assert_eq!(
            t.lstat("f").unwrap(),
            Some(EntryKind::File {
                size: 3,
                mtime: 5_000_000_123,
                exec: true
            })
        );
        let _ = std::fs::remove_dir_all(&r);
        let _ = std::fs::remove_dir_all(&outside);
    }

    #[test]
    fn nothing_is_replaced_or_removed_unless_it_is_what_was_expected() {
        let r = root("expect");
        let t = LocalTree::open(&r).unwrap();
        t.mkdir("d").unwrap();
        t.mkdir("d").unwrap();
        t.put("d/a", &mut &b"one"[..], 3, 1, false, None).unwrap();
        let seen = t.lstat("d/a").unwrap().unwrap();
        // the user edits it after the scan
        std::fs::write(r.join("d/a"), "user's edit").unwrap();
        assert!(t
            .put("d/a", &mut &b"two"[..], 3, 2, false, Some(&seen))
            .is_err());
        assert!(t.remove("d/a", &seen).is_err());
        assert!(t.put("d/a", &mut &b"two"[..], 3, 2, false, None).is_err());
        assert_eq!(
            std::fs::read_to_string(r.join("d/a")).unwrap(),
            "user's edit"
        );
        // a short source leaves nothing behind
        assert!(t.put("d/b", &mut &b"ab"[..], 5, 1, false, None).is_err());
        let names: Vec<_> = std::fs::read_dir(r.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a")]);
        // a conflict copy never replaces
        std::fs::write(r.join("d/c"), "c").unwrap();
        assert!(t.move_aside("d/a", "d/c").is_err());
        t.move_aside("d/a", "d/a.conflict").unwrap();
        assert!(
            t.rmdir("d").is_err(),
            "a folder holding files is never removed"
        );
        let now = t.lstat("d/c").unwrap().unwrap();
        t.remove("d/c", &now).unwrap();
        assert_eq!(t.lstat("d/c").unwrap(), None);
        let _ = std::fs::remove_dir_all(&r);
    }
}
