//! Mapping kappa topic names (`[A-Za-z0-9._-]{1,200}`) to Fluvio topic names
//! (`[a-z0-9-]{1,63}`, not starting or ending with `-`) and back.
//!
//! Lowercase letters, digits and single `-` are kept, so a topic created with the
//! `fluvio` CLI (`clicks`, `page-views`) has the same name in kappa. The characters
//! Fluvio forbids are escaped with a double dash: `.` → `--0`, `_` → `--1`, an
//! uppercase letter `X` → `--x`. kappa's changelog topic `shop.page_views` is therefore
//! `shop--0page--1views` in Fluvio. A kappa name containing `--`, starting with `-`, `.`, `_`
//! or an uppercase letter, ending with `-`, or too long once escaped cannot be stored in Fluvio and is rejected with
//! [`LogError::InvalidTopicName`].

use kappa_log::{LogError, Result};

/// Fluvio's longest resource name.
pub const MAX_FLUVIO_NAME: usize = 63;

/// The Fluvio name of a kappa topic.
pub fn to_fluvio(topic: &str) -> Result<String> {
    let invalid = || LogError::InvalidTopicName(topic.to_string());
    if topic.is_empty() || topic.contains("--") {
        return Err(invalid());
    }
    let mut out = String::with_capacity(topic.len() + 8);
    for c in topic.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' => out.push(c),
            '.' => out.push_str("--0"),
            '_' => out.push_str("--1"),
            'A'..='Z' => {
                out.push_str("--");
                out.push(c.to_ascii_lowercase());
            }
            _ => return Err(invalid()),
        }
    }
    if out.len() > MAX_FLUVIO_NAME || out.starts_with('-') || out.ends_with('-') {
        return Err(invalid());
    }
    Ok(out)
}

/// The kappa name of a Fluvio topic: escapes decoded. A name with an escape kappa never
/// writes (`--` before anything but `0`, `1` or a lowercase letter) is returned as is.
pub fn from_fluvio(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'-') {
            match bytes.get(i + 2) {
                Some(b'0') => out.push('.'),
                Some(b'1') => out.push('_'),
                Some(c @ b'a'..=b'z') => out.push(c.to_ascii_uppercase() as char),
                _ => return name.to_string(),
            }
            i += 3;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fluvio_names_are_kept() {
        for name in ["clicks", "page-views", "a1-b2-c3"] {
            assert_eq!(to_fluvio(name).unwrap(), name);
            assert_eq!(from_fluvio(name), name);
        }
    }

    #[test]
    fn kappa_names_round_trip() {
        for name in [
            "shop.page_views",
            "shop.dead_letter",
            "orders.V2_x-1",
            "a.b.c",
            "xY",
        ] {
            let f = to_fluvio(name).unwrap();
            assert!(
                f.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{f}"
            );
            assert_eq!(from_fluvio(&f), name);
        }
        assert_eq!(to_fluvio("shop.page_views").unwrap(), "shop--0page--1views");
    }

    #[test]
    fn unstorable_names_are_rejected() {
        let long = "a".repeat(64);
        for name in [
            "",
            "a--b",
            "-a",
            "a-",
            ".a",
            "_a",
            "X",
            "a b",
            long.as_str(),
        ] {
            assert!(
                matches!(to_fluvio(name), Err(LogError::InvalidTopicName(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn foreign_escapes_are_left_alone() {
        assert_eq!(from_fluvio("a--9b"), "a--9b");
        assert_eq!(from_fluvio("a--"), "a--");
    }
}
