//! `${...}` in manifests: which outputs of the stack a manifest may name, and how a string that
//! names them becomes a value: the text itself when every output is known from the spec, else a
//! placeholder or a join of text and placeholders. `$${` writes a literal `${`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::model::join;

/// The key of a placeholder object: `{"$output": "irsa.kserve-s3.role_arn"}`.
pub const OUTPUT_KEY: &str = "$output";

/// What a `${name}` stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Known from the spec: written into the manifest at load time.
    Literal(String),
    /// The ARN of the IRSA role of this `[irsa.<key>]`.
    RoleArn(String),
    /// The URI of the ECR repository of this `[repositories.<key>]`.
    RepositoryUri(String),
    /// The AWS account the stack lives in.
    AccountId,
}

/// Every name `${...}` may use in the stack's manifests.
#[derive(Debug, Clone, Default)]
pub struct Outputs(BTreeMap<String, Output>);

impl Outputs {
    pub fn get(&self, name: &str) -> Option<&Output> {
        self.0.get(name)
    }
}

impl FromIterator<(String, Output)> for Outputs {
    fn from_iter<I: IntoIterator<Item = (String, Output)>>(outputs: I) -> Self {
        Outputs(outputs.into_iter().collect())
    }
}

/// A piece of a string with `${...}` in it.
enum Piece<'a> {
    Text(String),
    Output(&'a str),
}

/// Splits `text` at each `${name}`; `Err` is an unclosed `${`.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, ()> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        literal.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(escaped) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open.find('}').ok_or(())?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Output(open[..end].trim()));
            rest = &open[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// `value` with every `${name}` in its strings resolved; `report(name, message, hint)` is told
/// of each one that cannot be.
pub fn resolve(
    value: &Value,
    outputs: &Outputs,
    report: &mut dyn FnMut(&str, String, Option<String>),
) -> Value {
    match value {
        Value::String(text) if text.contains('$') => string(text, outputs, report),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve(v, outputs, report)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve(v, outputs, report)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn string(
    text: &str,
    outputs: &Outputs,
    report: &mut dyn FnMut(&str, String, Option<String>),
) -> Value {
    let Ok(pieces) = pieces(text) else {
        report(
            "${",
            format!("`{text}` opens a `${{` that it does not close"),
            Some("write `$${` for a literal `${`".into()),
        );
        return Value::String(text.to_string());
    };
    let mut parts: Vec<Value> = Vec::new();
    for piece in pieces {
        let part = match piece {
            Piece::Text(text) => Value::String(text),
            Piece::Output(name) => match outputs.get(name) {
                Some(Output::Literal(value)) => Value::String(value.clone()),
                Some(_) => json!({ OUTPUT_KEY: name }),
                None => {
                    let hint =
                        crate::ui::diagnostic::closest(name, outputs.0.keys().map(String::as_str))
                            .map(|c| {
                                format!(
                                    "did you mean `${{{c}}}`? docs/workloads.md lists every output"
                                )
                            })
                            .unwrap_or_else(|| {
                                "docs/workloads.md lists every output a manifest can use".into()
                            });
                    report(
                        &format!("${{{name}}}"),
                        format!("`${{{name}}}` names no output of the stack"),
                        Some(hint),
                    );
                    continue;
                }
            },
        };
        // Neighbouring texts merge: only placeholders split a string.
        match (parts.last_mut(), &part) {
            (Some(Value::String(previous)), Value::String(next)) => previous.push_str(next),
            _ => parts.push(part),
        }
    }
    match parts.len() {
        0 => Value::String(String::new()),
        1 => parts.remove(0),
        _ => join(parts),
    }
}

/// The byte offset of `needle` in `text` at or after the start of `line`, skipping comment
/// lines; the start of `line` when it is not found.
pub fn find(text: &str, line: usize, needle: &str) -> usize {
    let mut offset = 0;
    let mut line_start = None;
    for (number, content) in text.split_inclusive('\n').enumerate() {
        if number + 1 >= line {
            line_start.get_or_insert(offset);
            if !content.trim_start().starts_with('#') {
                if let Some(at) = content.find(needle) {
                    return offset + at;
                }
            }
        }
        offset += content.len();
    }
    line_start.unwrap_or(0)
}
