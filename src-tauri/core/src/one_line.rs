//! Errors shown in one line: the window, the tray menu and the Docker-style
//! `{"message": …}` never show a message spread over lines, whatever a
//! platform library or a remote shell put into it.

/// `e`'s text on one line: every run of whitespace, newlines included,
/// becomes one space; an empty message becomes "unknown error".
pub fn one_line(e: impl std::fmt::Display) -> String {
    let line = e
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if line.is_empty() {
        "unknown error".into()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn messages_become_one_line() {
        for (input, want) in [
            ("plain", "plain"),
            ("two\nlines", "two lines"),
            ("  padded \r\n\n  and\tspaced  ", "padded and spaced"),
            ("", "unknown error"),
            (" \n ", "unknown error"),
        ] {
            assert_eq!(one_line(input), want, "{input:?}");
        }
    }

    #[test]
    fn takes_errors_and_references() {
        let e = std::io::Error::other("disk\nfull");
        assert_eq!(one_line(&e), "disk full");
        let d: &dyn std::fmt::Display = &e;
        assert_eq!(one_line(d), "disk full");
    }
}
