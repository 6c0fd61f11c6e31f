//! What a setting's row says: its difyctl.toml key, flag and the commands that have it,
//! `DIFYCTL_*` variable, Dify `.env` fallback, default and help; and a value as found, before
//! the row's parser. The rows themselves are in `settings.rs`.

/// Which commands carry a row's flag (a bit each).
pub type Commands = u16;
pub const UP: Commands = 1;
pub const PROXY: Commands = 1 << 1;
pub const RENEW: Commands = 1 << 2;
pub const EXPORT: Commands = 1 << 3;
pub const DOCTOR: Commands = 1 << 4;
pub const BACKUP: Commands = 1 << 5;
/// Before the command, for every command.
pub const GLOBAL: Commands = 1 << 6;

/// How a row's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value.
    One,
    /// Several: a repeated flag, a comma-separated variable, a TOML array.
    List,
    /// A flag without a value that sets the row to `sets` (`--no-hsts` sets `hsts` false).
    Switch { sets: bool },
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Its key in difyctl.toml, dotted (`proxy.max_body`; `domains` at the top).
    pub key: &'static str,
    /// Its `DIFYCTL_*` variable.
    pub var: &'static str,
    /// Its flag's long name, and the commands that have it.
    pub flag: Option<(&'static str, Commands)>,
    /// The variable of Dify's `.env` read when nothing else sets it.
    pub dotenv: Option<&'static str>,
    /// What it is when nothing sets it, as a user would write it ("" for none).
    pub default: &'static str,
    pub kind: Kind,
    /// The placeholder of its value in `--help`.
    pub value_name: &'static str,
    /// What it does (its doc comment).
    pub help: &'static str,
}

impl Setting {
    /// `--help`'s line: what it does, its default and the `.env` fallback.
    pub fn help_line(&self) -> String {
        let mut text = self.help.trim().replace("\n ", " ");
        if let Kind::Switch { sets: false } = self.kind {
            // The row says what is on; its flag turns it off.
            let (first, rest) = text.split_at(text.chars().next().map_or(0, char::len_utf8));
            text = format!("Do not {}{rest}", first.to_lowercase());
        }
        let default = match (self.default, self.dotenv) {
            ("", None) => String::new(),
            ("", Some(d)) => format!(" [default: {d} from .env]"),
            (v, None) => format!(" [default: {v}]"),
            (v, Some(d)) => format!(" [default: {v}, or {d} from .env]"),
        };
        if !matches!(self.kind, Kind::Switch { .. }) {
            text.push_str(&default);
        }
        text
    }
}

/// A value as found, before its row's parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    One(String),
    List(Vec<String>),
}

impl Value {
    /// The value as one text (a list joined by commas, which a one-value parser refuses
    /// when it cannot read it).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::One(v) => v.into(),
            Value::List(items) => items.join(",").into(),
        }
    }

    /// The value as a list (one value is a list of one; an empty one, of none).
    pub fn items(&self) -> Vec<String> {
        match self {
            Value::One(v) if v.trim().is_empty() => Vec::new(),
            Value::One(v) => v.split(',').map(|s| s.trim().to_string()).collect(),
            Value::List(items) => items.clone(),
        }
    }
}
