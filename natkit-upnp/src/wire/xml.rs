//! A bounded walk over untrusted XML (device descriptions, SOAP answers).
//!
//! Built on quick-xml's streaming reader. Only the five predefined entities
//! and character references are resolved; a document type declaration is
//! refused outright, so no entity is ever expanded (no "billion laughs").
//! Depth, element count and text length are limited.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// The deepest element nesting accepted.
pub const MAX_XML_DEPTH: usize = 24;
/// The most elements accepted in one document.
pub const MAX_XML_ELEMENTS: usize = 4096;
/// The longest text accepted inside one element, in bytes.
pub const MAX_XML_TEXT: usize = 2048;

/// Why an XML document was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The bytes are not UTF-8.
    #[error("XML is not UTF-8")]
    NotUtf8,
    /// Not well-formed XML (quick-xml's reader failed at this byte offset).
    #[error("XML is malformed near byte {position}")]
    Malformed {
        /// Byte offset where reading failed.
        position: u64,
    },
    /// The document ended with elements still open.
    #[error("XML ends inside an element")]
    Truncated,
    /// Nesting deeper than [`MAX_XML_DEPTH`].
    #[error("XML nests deeper than {MAX_XML_DEPTH} elements")]
    TooDeep,
    /// More than [`MAX_XML_ELEMENTS`] elements.
    #[error("XML has more than {MAX_XML_ELEMENTS} elements")]
    TooManyElements,
    /// An element's text is longer than [`MAX_XML_TEXT`].
    #[error("XML element text is longer than {MAX_XML_TEXT} bytes")]
    TextTooLong,
    /// A document type declaration (which could declare entities).
    #[error("XML has a document type declaration, which is not allowed")]
    DoctypeNotAllowed,
    /// An entity reference other than the five predefined ones.
    #[error("XML refers to an undeclared entity")]
    UnknownEntity,
}

/// One step of the walk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Node<'a> {
    /// An element opens (local name, without namespace prefix).
    Open(&'a str),
    /// An element closes, with the text directly inside it (trimmed).
    Close(&'a str, &'a str),
}

/// Walks `doc`, calling `visit` with the local names of the enclosing
/// elements (outermost first) and each [`Node`].
pub(crate) fn walk(doc: &[u8], mut visit: impl FnMut(&[String], Node<'_>)) -> Result<(), XmlError> {
    let doc = std::str::from_utf8(doc).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(doc);
    let mut stack: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(|_| XmlError::Malformed {
            position: reader.error_position(),
        })?;
        match event {
            Event::Start(start) => {
                count_element(&mut elements, stack.len())?;
                let name = local_name(&start);
                visit(&stack, Node::Open(&name));
                stack.push(name);
                texts.push(String::new());
            }
            Event::Empty(start) => {
                count_element(&mut elements, stack.len())?;
                let name = local_name(&start);
                visit(&stack, Node::Open(&name));
                visit(&stack, Node::Close(&name, ""));
            }
            Event::End(_) => {
                // quick-xml checks that end names match their start.
                let name = stack.pop().ok_or(XmlError::Malformed {
                    position: reader.buffer_position(),
                })?;
                let text = texts.pop().unwrap_or_default();
                visit(&stack, Node::Close(&name, text.trim()));
            }
            Event::Text(t) => push_text(&mut texts, &t.xml10_content())?,
            Event::CData(c) => push_text(&mut texts, &c.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => resolve_predefined_entity(&r)
                        .ok_or(XmlError::UnknownEntity)?
                        .to_owned(),
                    Err(_) => return Err(XmlError::UnknownEntity),
                };
                push_text(&mut texts, &resolved)?;
            }
            Event::DocType(_) => return Err(XmlError::DoctypeNotAllowed),
            Event::Eof => {
                return if stack.is_empty() {
                    Ok(())
                } else {
                    Err(XmlError::Truncated)
                };
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
}

fn count_element(elements: &mut usize, depth: usize) -> Result<(), XmlError> {
    if *elements >= MAX_XML_ELEMENTS {
        return Err(XmlError::TooManyElements);
    }
    if depth >= MAX_XML_DEPTH {
        return Err(XmlError::TooDeep);
    }
    *elements += 1;
    Ok(())
}

fn local_name(start: &quick_xml::events::BytesStart<'_>) -> String {
    let name = start.local_name();
    let name: &str = name.as_ref();
    name.to_owned()
}

fn push_text(texts: &mut [String], s: &str) -> Result<(), XmlError> {
    // Text outside the root element (whitespace) has nowhere to go.
    if let Some(current) = texts.last_mut() {
        if current.len() + s.len() > MAX_XML_TEXT {
            return Err(XmlError::TextTooLong);
        }
        current.push_str(s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(doc: &str) -> Result<Vec<String>, XmlError> {
        let mut out = Vec::new();
        walk(doc.as_bytes(), |parents, node| match node {
            Node::Open(n) => out.push(format!("{}>{n}", parents.len())),
            Node::Close(n, t) => out.push(format!("</{n}>{t}")),
        })?;
        Ok(out)
    }

    #[test]
    fn walks_with_namespaces_and_entities() {
        let out = collect(
            "<?xml version=\"1.0\"?><s:a xmlns:s=\"x\"><s:b>x &amp; &#65;&#x42;</s:b><c/></s:a>",
        )
        .unwrap();
        assert_eq!(out, ["0>a", "1>b", "</b>x & AB", "1>c", "</c>", "</a>"]);
    }

    #[test]
    fn refuses_doctype_and_unknown_entities() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><a>&lol2;</a>";
        assert_eq!(collect(bomb), Err(XmlError::DoctypeNotAllowed));
        assert_eq!(collect("<a>&lol;</a>"), Err(XmlError::UnknownEntity));
        assert_eq!(collect("<a>&#0;</a>"), Err(XmlError::UnknownEntity));
    }

    #[test]
    fn enforces_limits() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH + 1),
            "</a>".repeat(MAX_XML_DEPTH + 1)
        );
        assert_eq!(collect(&deep), Err(XmlError::TooDeep));
        let many = format!("<r>{}</r>", "<e/>".repeat(MAX_XML_ELEMENTS));
        assert_eq!(collect(&many), Err(XmlError::TooManyElements));
        let long = format!("<r>{}</r>", "x".repeat(MAX_XML_TEXT + 1));
        assert_eq!(collect(&long), Err(XmlError::TextTooLong));
        assert_eq!(collect("<a><b></b>"), Err(XmlError::Truncated));
        assert!(matches!(
            collect("<a></b>"),
            Err(XmlError::Malformed { .. })
        ));
        assert_eq!(walk(&[0xff], |_, _| {}), Err(XmlError::NotUtf8));
    }
}
