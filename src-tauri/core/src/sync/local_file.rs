//! Opening a local file for upload, as the scan saw it. Between the scan
//! and the upload anything may have taken the file's place: a symlink to a
//! secret outside the synced root, a FIFO whose open would block forever (and
//! hold the replica's manifest lock, so every create behind it waits), a
//! device file whose open has side effects. A file is therefore only ever
//! opened when it is still a regular file: never through a symlink
//! (`O_NOFOLLOW`), never blocking (`O_NONBLOCK`), checked again after the
//! open (`fstat`: still regular, still the scanned size), and read no further
//! than the scanned size. Anything else is skipped: its change event brings
//! the next scan, which sees what it has become.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `rel` (a `/`-separated path from the scan) under `base` for
/// reading if it is still the regular file of `size` bytes that the scan
/// saw; `Ok(None)` when it changed (gone, replaced by a link, a FIFO, a
/// device or a socket, resized, or a folder on its way replaced by a link),
/// so that it is skipped. A file that exists but cannot be read is an error.
/// `base` itself may be a link (as `docker run -v` follows one); nothing
/// below it is followed.
pub fn open_scanned(base: &Path, rel: &str, size: u64) -> io::Result<Option<File>> {
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Ok(None);
    }
    let file = match open_beneath(base, rel) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) if changed_under_us(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let after = file.metadata()?;
    if !after.file_type().is_file() || after.len() != size {
        return Ok(None);
    }
    Ok(Some(file))
}

/// Errors of an open that mean "no longer the file the scan saw".
fn changed_under_us(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::NotFound {
        return true;
    }
    #[cfg(unix)]
    {
        // ELOOP: a symlink now (O_NOFOLLOW); ENXIO: a socket; ENOTDIR: a
        // folder on the way is something else now
        matches!(
            e.raw_os_error(),
            Some(libc::ELOOP) | Some(libc::ENXIO) | Some(libc::ENOTDIR)
        )
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(unix)]
fn cstr(name: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Walks `rel` below `base` one `openat` at a time, no component followed,
/// then opens the file if `fstatat` says it is a regular one (a FIFO or a
/// device is never opened), without blocking, and checks that the open
/// found the file the `fstatat` saw.
#[cfg(unix)]
fn open_beneath(base: &Path, rel: &str) -> io::Result<Option<File>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    let opened = |fd: libc::c_int| {
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: a descriptor just returned by the kernel, owned by nobody else
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        }
    };
    let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let base_c = cstr(base.to_str().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path is not valid UTF-8")
    })?)?;
    // SAFETY: a valid NUL-terminated path
    let mut dir = opened(unsafe { libc::open(base_c.as_ptr(), dir_flags) })?;
    let (parents, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, rel),
    };
    for comp in parents.into_iter().flat_map(|p| p.split('/')) {
        let c = cstr(comp)?;
        // SAFETY: a live directory descriptor and a valid NUL-terminated name
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), dir_flags | libc::O_NOFOLLOW) };
        dir = opened(fd)?;
    }
    let c = cstr(name)?;
    // SAFETY: all-zero is a valid `stat`, filled in by the call below
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a live directory descriptor, a valid name, a writable `stat`
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    let flags =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: a live directory descriptor and a valid NUL-terminated name
    let fd = opened(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) })?;
    let file = File::from(fd);
    // swapped between the fstatat and the open: what was opened is checked
    let meta = file.metadata()?;
    if meta.dev() != st.st_dev as u64 || meta.ino() != st.st_ino as u64 {
        return Ok(None);
    }
    Ok(Some(file))
}

#[cfg(not(unix))]
fn open_beneath(base: &Path, rel: &str) -> io::Result<Option<File>> {
    let path = base.join(rel);
    if !std::fs::symlink_metadata(&path)?.file_type().is_file() {
        return Ok(None);
    }
    File::open(path).map(Some)
}

// two attributes, not cfg(all(test, unix)): clippy sees only a plain
// cfg(test) as test code (allow-unwrap-in-tests)
#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::io::Read;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("berth-local-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_regular_file_of_the_scanned_size_opens() {
        let d = dir("ok");
        std::fs::write(d.join("f"), b"abc").unwrap();
        let mut s = String::new();
        open_scanned(&d, "f", 3)
            .unwrap()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "abc");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn links_fifos_resized_and_vanished_files_are_skipped() {
        let d = dir("skip");
        std::fs::write(d.join("secret"), b"top secret").unwrap();
        std::os::unix::fs::symlink(d.join("secret"), d.join("link")).unwrap();
        let fifo = std::ffi::CString::new(d.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::fs::create_dir(d.join("real")).unwrap();
        std::fs::write(d.join("real/secret"), b"top secret").unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("dirlink")).unwrap();
        let table = [
            ("link", 10),
            ("fifo", 0),
            ("secret", 3),
            ("gone", 0),
            ("dirlink/secret", 10),
            ("secret/x", 0),
            ("real/../secret", 10),
        ];
        for (rel, size) in table {
            // a FIFO that were opened would block this test forever
            assert!(open_scanned(&d, rel, size).unwrap().is_none(), "{rel}");
        }
        assert!(open_scanned(Path::new("/dev"), "null", 0)
            .unwrap()
            .is_none());
        assert!(open_scanned(&d, "real/secret", 10).unwrap().is_some());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
