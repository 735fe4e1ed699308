//! A YAML document as written: every scalar keeps its text and whether it was plain, so that a
//! kubeconfig's other entries come out as they went in (`token: 0x1F` stays the string it is to
//! kubectl, `namespace: 0777` stays `0777`). Read with the YAML parser serde-saphyr uses; written
//! in block style, kubectl's. Comments are not kept (kubectl drops them too).

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};

/// A node of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A scalar's text after escapes, and whether it was plain (a plain scalar's meaning,
    /// string or number, is up to the reader: it is written back plain, as it was).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A string, written plain when a reader would take it for the same string.
    pub fn string(text: &str) -> Node {
        Node::Scalar {
            text: text.to_string(),
            plain: plain_is_string(text),
        }
    }

    /// A boolean or number, written plain.
    pub fn plain(text: &str) -> Node {
        Node::Scalar {
            text: text.to_string(),
            plain: true,
        }
    }

    /// `null`, `~` or nothing, written plain.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { text, plain: true } if ["", "~", "null", "Null", "NULL"].contains(&text.as_str()))
    }

    /// The text of a scalar.
    pub fn text(&self) -> Option<&str> {
        match self {
            Node::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m
                .iter()
                .find(|(k, _)| k.text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` of a mapping (appended when new).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Node::Map(m) = self {
            match m.iter_mut().find(|(k, _)| k.text() == Some(key)) {
                Some((_, v)) => *v = value,
                None => m.push((Node::string(key), value)),
            }
        }
    }

    /// The sequence under `key` of a mapping, made (and a `null` one made empty) if need be.
    /// None when the key holds something else.
    pub fn seq_mut(&mut self, key: &str) -> Option<&mut Vec<Node>> {
        if self.get(key).is_none_or(Node::is_null) {
            self.set(key, Node::Seq(Vec::new()));
        }
        match self {
            Node::Map(m) => m
                .iter_mut()
                .find(|(k, _)| k.text() == Some(key))
                .and_then(|(_, v)| match v {
                    Node::Seq(s) => Some(s),
                    _ => None,
                }),
            _ => None,
        }
    }
}

/// Why a text is not one YAML document we can keep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("it holds {0} YAML documents, not one")]
    Documents(usize),
}

/// Parses one document (None for an empty text).
///
/// # Errors
/// When the text is not YAML, or holds several documents.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut b = Builder::default();
    for ev in Parser::new_from_str(text) {
        let (ev, _) = ev.map_err(|e| YamlError::Syntax {
            line: e.marker().line(),
            message: e.info(),
        })?;
        match ev {
            // A tagged scalar (`!!str 0x1F`) is a string whatever it looks like: written
            // quoted, so that it stays one without its tag.
            Event::Scalar(text, style, anchor, tag) => b.done(
                Node::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain && tag.is_none(),
                },
                anchor,
            ),
            Event::SequenceStart(_, anchor, _) => b.open.push((Vec::new(), false, anchor)),
            Event::MappingStart(_, anchor, _) => b.open.push((Vec::new(), true, anchor)),
            Event::SequenceEnd | Event::MappingEnd => {
                let (items, map, anchor) = b.open.pop().unwrap_or_default();
                let node = if map {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Node::Map(pairs)
                } else {
                    Node::Seq(items)
                };
                b.done(node, anchor);
            }
            Event::Alias(id) => {
                let node = b.anchors.get(&id).cloned().unwrap_or(Node::plain("null"));
                b.done(node, 0);
            }
            _ => {}
        }
    }
    match b.docs.len() {
        0 => Ok(None),
        1 => Ok(b.docs.pop()),
        n => Err(YamlError::Documents(n)),
    }
}

/// The collections being read (their items so far, whether a mapping, their anchor), the
/// documents read, and the anchored nodes (an alias is a copy).
#[derive(Default)]
struct Builder {
    open: Vec<(Vec<Node>, bool, usize)>,
    docs: Vec<Node>,
    anchors: HashMap<usize, Node>,
}

impl Builder {
    fn done(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.open.last_mut() {
            Some((items, _, _)) => items.push(node),
            None => self.docs.push(node),
        }
    }
}

/// Writes `node` in block style.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(m) if !m.is_empty() => map(m, 0, &mut out),
        Node::Seq(s) if !s.is_empty() => seq(s, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn map(entries: &[(Node, Node)], indent: usize, out: &mut String) {
    for (k, v) in entries {
        out.push_str(&" ".repeat(indent));
        entry(k, v, indent, out);
    }
}

/// `key: value` from the current position (the indentation is written).
fn entry(k: &Node, v: &Node, indent: usize, out: &mut String) {
    out.push_str(&inline(k));
    out.push(':');
    match v {
        Node::Map(m) if !m.is_empty() => {
            out.push('\n');
            map(m, indent + 2, out);
        }
        // kubectl's style: a sequence at its key's indentation.
        Node::Seq(s) if !s.is_empty() => {
            out.push('\n');
            seq(s, indent, out);
        }
        other => {
            let text = inline(other);
            if !text.is_empty() {
                out.push(' ');
                out.push_str(&text);
            }
            out.push('\n');
        }
    }
}

fn seq(items: &[Node], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        match item {
            Node::Map(m) if !m.is_empty() => {
                out.push_str("- ");
                let (first, rest) = m.split_first().expect("not empty");
                entry(&first.0, &first.1, indent + 2, out);
                map(rest, indent + 2, out);
            }
            Node::Seq(s) if !s.is_empty() => {
                out.push_str("-\n");
                seq(s, indent + 2, out);
            }
            other => {
                out.push_str("- ");
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection on one line.
fn inline(node: &Node) -> String {
    match node {
        Node::Scalar { text, plain: true } if text.chars().all(printable) => text.clone(),
        Node::Scalar { text, .. } => double_quoted(text),
        Node::Map(_) => "{}".into(),
        Node::Seq(_) => "[]".into(),
    }
}

/// What YAML lets stand as itself in a scalar, and no reader takes for a line break.
fn printable(c: char) -> bool {
    !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{85}')
}

/// A YAML double-quoted scalar: every character that is not printable as an escape.
fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if !printable(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `s`, written plain, reads back as the string `s` (not a number, boolean or null,
/// nor anything YAML gives a meaning).
fn plain_is_string(s: &str) -> bool {
    let first = s.chars().next();
    !s.is_empty()
        && s.trim() == s
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && s.chars().all(printable)
        && first.is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true"
                | "false"
                | "yes"
                | "no"
                | "on"
                | "off"
                | "y"
                | "n"
                | "null"
                | "nan"
                | ".nan"
                | "inf"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_text_and_strings_stay_strings() {
        let text = "a: 0x1F\nb: 0777\nc: '0777'\nd: \"x: y\"\ne:\n- 1.0\n- ~\nf: {}\n";
        let node = parse(text).unwrap().unwrap();
        let out = render(&node);
        assert_eq!(
            out,
            "a: 0x1F\nb: 0777\nc: \"0777\"\nd: \"x: y\"\ne:\n- 1.0\n- ~\nf: {}\n"
        );
        assert_eq!(parse(&out).unwrap().unwrap(), {
            let mut n = node.clone();
            n.set("c", Node::string("0777"));
            n.set("d", Node::string("x: y"));
            n
        });
    }

    #[test]
    fn new_strings_are_quoted_only_when_a_reader_would_take_them_for_something_else() {
        for (s, plain) in [
            ("demo", true),
            ("https://1.2.3.4:6443", true),
            ("0777", false),
            ("true", false),
            ("", false),
            ("a: b", false),
            ("-x", false),
        ] {
            assert_eq!(plain_is_string(s), plain, "{s}");
        }
    }

    #[test]
    fn what_is_not_printable_is_escaped_and_tagged_strings_stay_strings() {
        let node = Node::Map(vec![(
            Node::string("k"),
            Node::string("a\u{7f}b\u{2028}c\"d\\e\nf"),
        )]);
        let out = render(&node);
        assert_eq!(out, "k: \"a\\u007fb\\u2028c\\\"d\\\\e\\nf\"\n");
        assert_eq!(
            parse(&out).unwrap().unwrap().get("k").unwrap().text(),
            node.get("k").unwrap().text()
        );
        let tagged = parse("token: !!str 0x1F\n").unwrap().unwrap();
        assert_eq!(render(&tagged), "token: \"0x1F\"\n");
    }

    #[test]
    fn several_documents_and_bad_syntax_are_errors() {
        assert!(matches!(
            parse("a: 1\n---\nb: 2\n"),
            Err(YamlError::Documents(2))
        ));
        assert!(matches!(
            parse("a: [unclosed"),
            Err(YamlError::Syntax { .. })
        ));
        assert_eq!(parse("").unwrap(), None);
    }
}
