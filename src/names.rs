//! Checks on names that one person chooses and another reads: client, user and token names
//! appear on consent pages, token pages and in `sesame client list` on an operator's terminal.

/// Returns whether `c` is forbidden in a name. A control character could rewrite a terminal, and an
/// invisible formatting character could make a name read as another one on a consent page: a
/// right-to-left override turns "Goo\u{202e}elgo" into "Google" on screen.
pub(crate) fn is_forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

#[cfg(test)]
mod tests {
    use super::is_forbidden_in_name;

    #[test]
    fn hidden_and_control_characters_are_refused() {
        for c in [
            '\0', '\n', '\u{7f}', '\u{200b}', '\u{200e}', '\u{202e}', '\u{2066}', '\u{feff}',
        ] {
            assert!(is_forbidden_in_name(c), "{:?}", c);
        }
        for c in ['a', ' ', 'é', 'Ж', '中', '-', '\u{ff41}'] {
            assert!(!is_forbidden_in_name(c), "{:?}", c);
        }
    }
}
