//! Compose files read the way compose-go reads them (go-yaml v3 and its reset processor), from
//! the YAML parser's events, because a generic deserializer loses what compose needs:
//! - the `!reset` and `!override` tags (an override file removing or replacing what an earlier
//!   file set), also when they reach a node through an alias or a `<<` merge key;
//! - several documents in one file (merged in order, like several files);
//! - keys that are not strings (`123:`), refused with their path as compose refuses them;
//! - a bound on the nodes an alias-heavy file expands to (compose's visit limit), so a small
//!   file cannot make the loader build a huge tree.
//!
//! Plain scalars are typed as go-yaml v3 types them: `null`/`~`/empty, `true`/`false` (three
//! spellings each), integers as Go's `ParseInt(s, 0, 64)` reads them (`0x`, `0o`, `0b`, a
//! leading `0` octal, `_` separators), floats; everything else, and every quoted or block
//! scalar, is a string.

use granit_parser::{Event, Parser, ScalarStyle, ScanError, Span};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// compose-go's limit on nodes visited in one document (`DefaultMaxNodeVisits`).
const MAX_NODES: usize = 100_000;

/// One YAML document of a compose file.
#[derive(Debug, Default)]
pub struct Document {
    pub value: Value,
    pub tagged: Tagged,
}

/// The paths a document tags `!reset` (its node dropped) or `!override` (its node kept): what
/// earlier files (or an extended service) set there is removed before this document is merged
/// over them, so the document's value replaces it instead of merging with it.
#[derive(Debug, Default, Clone)]
pub struct Tagged {
    pub paths: Vec<Vec<String>>,
}

impl Tagged {
    /// Removes every tagged path from `target` (a whole document).
    pub fn clear(&self, target: &mut Value) {
        for path in &self.paths {
            remove_path(target, path);
        }
    }

    /// Removes from `service` what the paths under `services.<name>` name: how `extends`
    /// honours the tags of the extending service.
    pub fn clear_service(&self, name: &str, service: &mut Value) {
        for path in &self.paths {
            if let [top, s, rest @ ..] = path.as_slice() {
                if top == "services" && s == name && !rest.is_empty() {
                    remove_path(service, rest);
                }
            }
        }
    }
}

/// Removes the mapping entry at `path`; items of lists stay (compose-go does not remove them).
fn remove_path(target: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = target;
    for key in parents {
        at = match at {
            Value::Object(map) => match map.get_mut(key) {
                Some(v) => v,
                None => return,
            },
            Value::Array(items) => match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    if let Value::Object(map) = at {
        map.shift_remove(last);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("line {line} column {column}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every document of `text`, in order (none for an empty file).
pub fn parse(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut reader = Reader {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        last: (1, 0),
    };
    let mut documents = Vec::new();
    loop {
        match reader.next()? {
            (Event::StreamStart, _) | (Event::DocumentEnd, _) => {}
            (Event::StreamEnd, _) => return Ok(documents),
            (Event::DocumentStart(..), _) => {
                reader.anchors.clear();
                reader.nodes = 0;
                let (event, span) = reader.next()?;
                let node = match event {
                    Event::DocumentEnd => None,
                    event => Some(reader.node(event, span, "")?),
                };
                let mut doc = Document::default();
                if let Some(node) = node {
                    doc.value = node
                        .into_value(&mut Vec::new(), &mut doc)
                        .unwrap_or(Value::Null);
                }
                documents.push(doc);
            }
            (_, span) => return Err(reader.error_at(span, "unexpected YAML event")),
        }
    }
}

/// The two tags compose gives a meaning to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Special {
    Reset,
    Override,
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    special: Option<Special>,
    /// Nodes in this subtree (itself included), what expanding an alias to it costs.
    size: usize,
}

#[derive(Debug, Clone)]
enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

struct Reader<'a> {
    events: Parser<'a, granit_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    /// Nodes built in this document, aliases counted at their expanded size.
    nodes: usize,
    /// Where the last event was, for an error at the end of the input.
    last: (usize, usize),
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        loop {
            match self.events.next_event() {
                None => {
                    return Err(YamlError {
                        line: self.last.0,
                        column: self.last.1,
                        message: "unexpected end of the YAML input".into(),
                    })
                }
                Some(Err(e)) => return Err(scan_error(&e)),
                // Comments are presentation only.
                Some(Ok((Event::Comment(..), _))) => {}
                Some(Ok((event, span))) => {
                    self.last = (span.start.line(), span.start.col() + 1);
                    return Ok((event, span));
                }
            }
        }
    }

    fn error_at(&self, span: Span, message: impl Into<String>) -> YamlError {
        YamlError {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: message.into(),
        }
    }

    /// Counts `n` more nodes against the document's limit.
    fn visit(&mut self, n: usize, span: Span) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self.error_at(
                span,
                format!("the document exceeds maximum node visit limit ({MAX_NODES}), through aliases or sheer size"),
            ));
        }
        Ok(())
    }

    /// The node that starts with `event`; `path` names it in errors (`services.api`).
    fn node(&mut self, event: Event<'a>, span: Span, path: &str) -> Result<Node, YamlError> {
        let (node, anchor) = match event {
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(self.error_at(span, "alias to an unknown anchor"));
                };
                let size = target.size;
                self.visit(size, span)?;
                // Looked up again: `visit` needed `self` whole.
                return Ok(self.anchors[&id].clone());
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.visit(1, span)?;
                let special = special(tag.as_deref());
                let value = scalar(&text, style, tag.as_deref());
                let node = Node {
                    kind: Kind::Scalar(value),
                    special,
                    size: 1,
                };
                (node, anchor)
            }
            Event::SequenceStart(_, anchor, tag) => {
                self.visit(1, span)?;
                let special = special(tag.as_deref());
                (self.sequence(path, special)?, anchor)
            }
            Event::MappingStart(_, anchor, tag) => {
                self.visit(1, span)?;
                let special = special(tag.as_deref());
                (self.mapping(path, special)?, anchor)
            }
            _ => return Err(self.error_at(span, "expected a YAML value")),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn sequence(&mut self, path: &str, special: Option<Special>) -> Result<Node, YamlError> {
        let mut items = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                break;
            }
            let child = format!("{path}[{}]", items.len());
            items.push(self.node(event, span, &child)?);
        }
        let size = 1 + items.iter().map(|n| n.size).sum::<usize>();
        Ok(Node {
            kind: Kind::Seq(items),
            special,
            size,
        })
    }

    fn mapping(&mut self, path: &str, special: Option<Special>) -> Result<Node, YamlError> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        let mut lines: HashMap<String, usize> = HashMap::new();
        let mut merged: Vec<Node> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                break;
            }
            let key = self.key(event, span, path)?;
            let (event, vspan) = self.next()?;
            if key == "<<" {
                let value = self.node(event, vspan, path)?;
                merged.extend(self.merge_sources(value, vspan)?);
                continue;
            }
            if let Some(line) = lines.insert(key.clone(), span.start.line()) {
                return Err(self.error_at(
                    span,
                    format!(
                        "mapping key `{key}` in {} already defined at line {line}",
                        name(path)
                    ),
                ));
            }
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            entries.push((key, self.node(event, vspan, &child)?));
        }
        // `<<`: keys the mapping does not set itself, earlier sources winning.
        for source in merged {
            if let Kind::Map(source_entries) = source.kind {
                for (k, v) in source_entries {
                    if !entries.iter().any(|(e, _)| *e == k) {
                        entries.push((k, v));
                    }
                }
            }
        }
        let size = 1 + entries.iter().map(|(_, n)| n.size).sum::<usize>();
        Ok(Node {
            kind: Kind::Map(entries),
            special,
            size,
        })
    }

    /// A mapping key: a scalar that is a string (compose refuses `123:` and `true:`).
    fn key(&mut self, event: Event<'a>, span: Span, path: &str) -> Result<String, YamlError> {
        // Keys are not counted against the node limit (compose-go counts values).
        let kind = match event {
            Event::Scalar(text, style, _, tag) => {
                Kind::Scalar(scalar(&text, style, tag.as_deref()))
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(target) => target.kind.clone(),
                None => return Err(self.error_at(span, "alias to an unknown anchor")),
            },
            _ => {
                return Err(self.error_at(
                    span,
                    format!("a mapping or list used as a key in {}", name(path)),
                ))
            }
        };
        match kind {
            Kind::Scalar(Value::String(s)) => Ok(s),
            Kind::Scalar(other) => Err(self.error_at(
                span,
                format!("non-string key in {}: {}", name(path), scalar_text(&other)),
            )),
            _ => Err(self.error_at(
                span,
                format!("a mapping or list used as a key in {}", name(path)),
            )),
        }
    }

    /// What a `<<` key merges: one mapping, or a list of them.
    fn merge_sources(&self, value: Node, span: Span) -> Result<Vec<Node>, YamlError> {
        match value.kind {
            Kind::Map(_) => Ok(vec![value]),
            Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => Ok(items),
            _ => Err(self.error_at(span, "`<<` merges a mapping or a list of mappings")),
        }
    }
}

impl Node {
    /// The JSON value, `None` for a `!reset` node (recorded in `doc` with its path).
    fn into_value(self, path: &mut Vec<String>, doc: &mut Document) -> Option<Value> {
        match self.special {
            Some(Special::Reset) => {
                doc.tagged.paths.push(path.clone());
                return None;
            }
            Some(Special::Override) => doc.tagged.paths.push(path.clone()),
            None => {}
        }
        Some(match self.kind {
            Kind::Scalar(v) => v,
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    path.push(i.to_string());
                    if let Some(v) = item.into_value(path, doc) {
                        out.push(v);
                    }
                    path.pop();
                }
                Value::Array(out)
            }
            Kind::Map(entries) => {
                let mut out = Map::with_capacity(entries.len());
                for (k, node) in entries {
                    path.push(k.clone());
                    if let Some(v) = node.into_value(path, doc) {
                        out.insert(k, v);
                    }
                    path.pop();
                }
                Value::Object(out)
            }
        })
    }
}

fn name(path: &str) -> &str {
    if path.is_empty() {
        "the top level"
    } else {
        path
    }
}

fn scan_error(e: &ScanError) -> YamlError {
    YamlError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info(),
    }
}

fn special(tag: Option<&granit_parser::Tag>) -> Option<Special> {
    let tag = tag?;
    if tag.handle() != "!" {
        return None;
    }
    match tag.suffix() {
        "reset" => Some(Special::Reset),
        "override" => Some(Special::Override),
        _ => None,
    }
}

/// A scalar typed as go-yaml v3 types it (see the module doc); `!!str` and friends honoured.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&granit_parser::Tag>) -> Value {
    let core = tag
        .filter(|t| t.handle() == "tag:yaml.org,2002:")
        .map(|t| t.suffix());
    match core {
        Some("str") => return Value::String(text.to_string()),
        Some("null") => return Value::Null,
        Some("bool" | "int" | "float") => return plain(text),
        _ => {}
    }
    if style != ScalarStyle::Plain || tag.is_some_and(|t| t.handle() == "!") {
        return Value::String(text.to_string());
    }
    plain(text)
}

fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(i) = go_int(text) {
        return Value::Number(i.into());
    }
    if is_float(text) {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, a base prefix (`0x`, `0o`, `0b`, or a
/// leading `0` for octal), `_` allowed between digits when a base prefix is given.
fn go_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body, prefixed) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b, true)
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b, true)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    if body.contains('_') && !prefixed {
        return None;
    }
    let body: String = body.chars().filter(|c| *c != '_').collect();
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// go-yaml's float pattern: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Document {
        let mut docs = parse(text).unwrap();
        assert_eq!(docs.len(), 1, "{text}");
        docs.remove(0)
    }

    #[test]
    fn scalars_are_typed_like_go_yaml() {
        let doc = one("a: 1\nb: '1'\nc: 0x1F\nd: 0440\ne: 1.5\nf: yes\ng: ~\nh: True\ni: !!str 12\nj: 1_000\nk: .5\nl: 1e3\n");
        let v = doc.value;
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "1");
        assert_eq!(v["c"], 31);
        assert_eq!(v["d"], 288);
        assert_eq!(v["e"], 1.5);
        assert_eq!(v["f"], "yes");
        assert!(v["g"].is_null());
        assert_eq!(v["h"], true);
        assert_eq!(v["i"], "12");
        assert_eq!(v["j"], "1_000");
        assert_eq!(v["k"], 0.5);
        assert_eq!(v["l"], 1000.0);
    }

    #[test]
    fn merge_keys_tags_and_aliases() {
        let doc = one("x: &x\n  ports: !reset []\n  image: a\ns:\n  <<: *x\n  image: b\nn: &n !override {}\nm: *n\n");
        assert_eq!(doc.value["s"]["image"], "b");
        assert!(doc.value["s"].get("ports").is_none());
        let tagged: Vec<String> = doc.tagged.paths.iter().map(|p| p.join(".")).collect();
        assert_eq!(tagged, ["x.ports", "s.ports", "n", "m"]);
        let mut earlier =
            serde_json::json!({"s": {"ports": ["80:80"], "image": "a"}, "n": {"external": true}});
        doc.tagged.clear(&mut earlier);
        assert_eq!(earlier, serde_json::json!({"s": {"image": "a"}}));
    }

    #[test]
    fn non_string_keys_duplicates_and_limits_are_refused() {
        let err = parse("services:\n  123:\n    image: x\n").unwrap_err();
        assert_eq!(err.message, "non-string key in services: 123");
        assert_eq!(err.line, 2);
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(err.message.contains("already defined at line 1"), "{err}");
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
        let err = parse(bomb).unwrap_err();
        assert!(err.message.contains("maximum node visit limit"), "{err}");
    }

    #[test]
    fn documents_and_empty_input() {
        assert!(parse("").unwrap().is_empty());
        let docs = parse("a: 1\n---\na: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["a"], 2);
        let err = parse("a: [1\n").unwrap_err();
        assert!(err.line >= 1, "{err}");
    }
}
