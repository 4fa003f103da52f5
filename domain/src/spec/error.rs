//! A spec's errors and where they are: the key a message is about and its line in the text.

use toml::de::{DeTable, DeValue};

/// A spec that is not valid: what is wrong, with the key and its line when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("line {line}, column {column}: not valid TOML: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", describe_key_error(.key, *.line, .message))]
    Key {
        /// Dotted path: `train.lr_decay_epochs`, `losses.plans[1].comp`; empty for the top level.
        key: String,
        line: Option<usize>,
        message: String,
    },
}

fn describe_key_error(key: &str, line: Option<usize>, message: &str) -> String {
    let mut text = String::new();
    if let Some(line) = line {
        text.push_str(&format!("line {line}: "));
    }
    if !key.is_empty() {
        text.push_str(&format!("{key}: "));
    }
    text.push_str(message);
    text
}

pub(super) fn syntax_error(text: &str, error: &toml::de::Error) -> SpecError {
    let offset = error.span().map(|s| s.start).unwrap_or(0);
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    SpecError::Syntax {
        line: line_of(text, offset),
        column: text[line_start..offset.min(text.len())].chars().count() + 1,
        message: error.message().to_owned(),
    }
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The dotted path of the deepest key whose key or value spans `offset`.
pub(super) fn key_at(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let path = join(prefix, key.get_ref());
        if let Some(found) = key_in_value(value.get_ref(), offset, &path) {
            return Some(found);
        }
        if key.span().contains(&offset) || value.span().contains(&offset) {
            return Some(path);
        }
    }
    None
}

fn key_in_value(value: &DeValue<'_>, offset: usize, path: &str) -> Option<String> {
    match value {
        DeValue::Table(table) => key_at(table, offset, path),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let item_path = format!("{path}[{i}]");
            key_in_value(item.get_ref(), offset, &item_path)
                .or_else(|| item.span().contains(&offset).then_some(item_path))
        }),
        _ => None,
    }
}

/// Where a dotted key (`losses.plans[1].comp`) starts in the text; for a key that is absent,
/// where its nearest present parent starts.
pub(super) fn span_of(table: &DeTable<'_>, path: &str) -> Option<usize> {
    let mut table = table;
    let mut found = None;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((key, mut value)) = table.iter().find(|(k, _)| k.get_ref() == name) else {
            break;
        };
        found = Some(key.span().start);
        if let Some(item) = index.and_then(|i| value.get_ref().as_array()?.get(i)) {
            value = item;
            found = Some(item.span().start);
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found
}
