//! HTML by hand: escaping and the page frame. Every value from a spec, a worker or an error
//! goes through [`escape`].

use std::fmt::Write as _;

use axum::response::Html;

/// Escapes text for element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes a URL path segment (a sweep id may hold any character its name holds).
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A whole page: the stylesheet, the script (only for pages that show data) and `body`.
pub(crate) fn page(title: &str, body: &str, with_script: bool) -> Html<String> {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/assets/style.css">"#,
        title = escape(title)
    );
    if with_script {
        html.push_str(r#"<script src="/assets/app.js" defer></script>"#);
    }
    let _ = writeln!(html, "</head><body>{body}</body></html>");
    Html(html)
}

/// The bar at the top of every data page.
pub(crate) fn nav(here: &str) -> String {
    format!(
        r#"<nav><a class="brand" href="/">ltsweep</a><span class="here">{}</span>
<form method="post" action="/logout"><button type="submit" class="link">log out</button></form></nav>"#,
        escape(here)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("quickstart-1503142b"), "quickstart-1503142b");
        assert_eq!(path_segment("a b/ü?"), "a%20b%2F%C3%BC%3F");
    }
}
