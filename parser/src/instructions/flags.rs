//! BuildKit's `BFlags`: an instruction declares its `--flags` and their kinds, then [`Flags::parse`]
//! checks the node's flags against them with BuildKit's messages.

use std::collections::BTreeMap;

use crate::suggest::with_suggestion;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum FlagType {
    Bool,
    Str,
    Strings,
}

/// BuildKit's `BFlags`: declared flags, then `parse` checks the node's flags against them.
pub(super) struct Flags<'a> {
    args: &'a [String],
    decl: Vec<(&'static str, FlagType)>,
    values: BTreeMap<&'static str, Vec<String>>,
}

impl<'a> Flags<'a> {
    pub(super) fn new(args: &'a [String]) -> Self {
        Flags {
            args,
            decl: Vec::new(),
            values: BTreeMap::new(),
        }
    }

    pub(super) fn add(&mut self, name: &'static str, t: FlagType) {
        self.decl.push((name, t));
    }

    pub(super) fn parse(&mut self) -> Result<(), String> {
        for arg in self.args {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if body.is_empty() {
                return Ok(());
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, t)) = self.decl.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = self.decl.iter().map(|(n, _)| *n).collect();
                return Err(with_suggestion(
                    format!("unknown flag: --{name}"),
                    name,
                    &names,
                    true,
                ));
            };
            if t != FlagType::Strings && self.values.contains_key(key) {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            let v = match t {
                FlagType::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: --{name}")),
                    None => "true".to_string(),
                    Some(v) => match v.to_lowercase().as_str() {
                        "true" => "true".to_string(),
                        "false" => "false".to_string(),
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag --{name}, not: {v}"
                            ));
                        }
                    },
                },
                FlagType::Str | FlagType::Strings => match value {
                    None => return Err(format!("missing a value on flag: --{name}")),
                    Some(v) => v.to_string(),
                },
            };
            self.values.entry(key).or_default().push(v);
        }
        Ok(())
    }

    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub(super) fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}
