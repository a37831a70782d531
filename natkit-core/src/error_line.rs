//! One line for an error and its causes, as natkit's tools and reports quote
//! errors.

/// An error and its whole source chain on one line, `: `-separated, each cause
/// once.
///
/// A cause whose text the line already holds is left out: errors that
/// format their source into their own message (`#[error("{mechanism}: {source}")]`)
/// would otherwise name it twice.
///
/// ```
/// let e = natkit_core::Error::mechanism(
///     natkit_core::Mechanism::Pcp,
///     natkit_core::FailureKind::Timeout,
///     std::io::Error::other("no answer from 192.168.77.1:5351"),
/// );
/// assert_eq!(
///     natkit_core::error_line(&e),
///     "pcp: timed out: no answer from 192.168.77.1:5351"
/// );
/// ```
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_line;

    /// An error that does not print its source, over one that does.
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("mapping failed")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_not_in_the_message_are_appended_in_order() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_line(&e), "mapping failed: connection refused");
        let io = std::io::Error::other("plain");
        assert_eq!(error_line(&io), "plain");
    }
}
