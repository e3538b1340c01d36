//! Small validators shared by every domain; errors name the field.

use crate::{AppError, AppResult};

/// A non-blank, trimmed string of at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(AppError::invalid(field, format!("longer than {max} characters")));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(AppError::invalid(field, "contains control characters"));
    }
    Ok(v.to_string())
}

/// Optional text: empty means absent.
pub fn opt_text(field: &str, value: &str, max: usize) -> AppResult<Option<String>> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        text(field, value, max).map(Some)
    }
}

/// A FINESS-like identifier: 9 characters, digits, the second may be A or B (Corse 2A/2B).
pub fn finess(field: &str, value: &str) -> AppResult<String> {
    let v = value.trim();
    let ok = v.len() == 9 && v.char_indices().all(|(i, c)| c.is_ascii_digit() || (i == 1 && (c == 'A' || c == 'B')));
    if !ok {
        return Err(AppError::invalid(
            field,
            "must be a 9-character FINESS number (digits; 2nd may be A/B for Corsica)",
        ));
    }
    Ok(v.to_string())
}

/// An identifier token: letters, digits, `-`, `_`, `.`, `@`, `:`; 1 to `max` characters.
pub fn token(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if v.len() > max || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c)) {
        return Err(AppError::invalid(field, format!("must be 1-{max} characters of [A-Za-z0-9-_.@:]")));
    }
    Ok(v.to_string())
}

/// Converts a proto enum i32, refusing UNSPECIFIED (0) and unknown values.
pub fn enum_value<E: TryFrom<i32>>(field: &str, value: i32) -> AppResult<E> {
    if value == 0 {
        return Err(AppError::invalid(field, "must be specified (UNSPECIFIED is refused)"));
    }
    E::try_from(value).map_err(|_| AppError::invalid(field, format!("unknown enum value {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finess_accepts_corsica_and_refuses_junk() {
        assert!(finess("id", "2A0000014").is_ok());
        assert!(finess("id", "540000213").is_ok());
        assert!(finess("id", "54000021").is_err());
        assert!(finess("id", "5400002134").is_err());
        assert!(finess("id", "54X000213").is_err());
        assert!(finess("id", "").is_err());
    }

    #[test]
    fn text_refuses_blank_and_long() {
        assert!(text("name", "  ", 10).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
        assert_eq!(text("name", " CH ", 10).unwrap(), "CH");
    }
}
