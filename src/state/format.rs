//! The state file format: versioned JSON. Reading checks the version first (refusing a newer
//! one), upgrades older versions step by step, and checks the stack name.

use std::path::Path;

use serde_json::Value;

use super::{State, StateError};

/// The format this mlops writes. 2 added `pending` (a create whose wait has not finished): an
/// mlops that reads version 1 only would take such an object for done, so it must refuse it.
pub const FORMAT_VERSION: u32 = 2;

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
    let state: State = serde_json::from_value(upgrade(value, version)).map_err(corrupt)?;
    if state.stack != expected_stack {
        return Err(StateError::OtherStack {
            path: path.to_path_buf(),
            found: state.stack,
            expected: expected_stack.to_string(),
        });
    }
    Ok(state)
}

/// A state of an older format in the shape of this one, one version at a time.
fn upgrade(mut value: Value, from: u64) -> Value {
    // 1 -> 2: no `pending` anywhere, which means what version 1 meant (every object done).
    if from < 2 {
        value["format_version"] = Value::from(2);
    }
    value
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
        let newer = text.replace("\"format_version\": 2", "\"format_version\": 99");
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

    /// A version 1 state (written before `pending` existed) reads as version 2 with every
    /// object done; a version 2 state keeps its unfinished wait through a write and a read.
    #[test]
    fn version_1_is_upgraded_and_pending_round_trips() {
        let v1 = r#"{"format_version": 1, "serial": 4, "lineage": "l", "stack": "t",
            "resources": {"vpc": {"kind": "vpc", "id": "vpc-1", "attrs": {}, "deps": []}}}"#;
        let mut state = parse(path(), v1, "t").unwrap();
        assert_eq!(state.format_version, 2);
        assert!(!state.resources[&crate::model::Address::new("vpc")].pending);
        let text = String::from_utf8(to_bytes(&state)).unwrap();
        assert!(!text.contains("pending"), "{text}");

        state
            .resources
            .get_mut(&crate::model::Address::new("vpc"))
            .unwrap()
            .pending = true;
        let text = String::from_utf8(to_bytes(&state)).unwrap();
        assert!(text.contains("\"pending\": true"), "{text}");
        assert_eq!(parse(path(), &text, "t").unwrap(), state);
    }
}
