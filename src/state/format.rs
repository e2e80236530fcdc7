//! The state file format: versioned JSON. Reading checks the version first (refusing a newer
//! one), upgrades older versions step by step, and checks the stack name.

use std::path::Path;

use serde_json::Value;

use super::{State, StateError};

/// The format this mlops writes.
pub const FORMAT_VERSION: u32 = 1;

/// Parses state text read from `path`, for the stack `expected_stack`.
pub fn parse(path: &Path, text: &str, expected_stack: &str) -> Result<State, StateError> {
    let corrupt = |err: serde_json::Error| StateError::Corrupt {
        path: path.to_path_buf(),
        message: err
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_string(),
        line: err.line(),
        column: err.column(),
    };
    let value: Value = serde_json::from_str(text).map_err(corrupt)?;
    let version = value.get("format_version").and_then(Value::as_u64);
    let Some(version) = version else {
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            message: "`format_version` is missing or not a number".into(),
            line: 1,
            column: 1,
        });
    };
    if version > u64::from(FORMAT_VERSION) {
        return Err(StateError::NewerFormat {
            path: path.to_path_buf(),
            found: version,
        });
    }
    // Version 1 is the first; later versions add upgrade steps here, one per version.
    let state: State = serde_json::from_value(value).map_err(corrupt)?;
    if state.stack != expected_stack {
        return Err(StateError::OtherStack {
            path: path.to_path_buf(),
            found: state.stack,
            expected: expected_stack.to_string(),
        });
    }
    Ok(state)
}

/// The bytes written to disk: pretty JSON with a final newline, keys in a stable order.
pub fn to_bytes(state: &State) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(state).expect("state serializes");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("state/t.json")
    }

    #[test]
    fn round_trip() {
        let state = State::new("t");
        let text = String::from_utf8(to_bytes(&state)).unwrap();
        assert_eq!(parse(path(), &text, "t").unwrap(), state);
    }

    #[test]
    fn refuses_truncated_newer_and_foreign_states() {
        let text = String::from_utf8(to_bytes(&State::new("t"))).unwrap();
        let truncated = &text[..text.len() / 2];
        assert!(matches!(
            parse(path(), truncated, "t"),
            Err(StateError::Corrupt { .. })
        ));
        let newer = text.replace("\"format_version\": 1", "\"format_version\": 99");
        assert!(matches!(
            parse(path(), &newer, "t"),
            Err(StateError::NewerFormat { found: 99, .. })
        ));
        assert!(matches!(
            parse(path(), &text, "other"),
            Err(StateError::OtherStack { .. })
        ));
        assert!(matches!(
            parse(path(), "{}", "t"),
            Err(StateError::Corrupt { .. })
        ));
    }
}
