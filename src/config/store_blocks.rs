//! Cutting a configuration file's text into store blocks, so that a file of
//! thousands of `[stores.<id>]` tables can be parsed one store at a time
//! (issue 16: the `toml` parser's token and event vectors grow with the text
//! it is given, and were the 100,000-store start's peak).
//!
//! A store block is a run of tables whose headers, each at the start of a
//! line, read `[stores.<id>]` or `[stores.<id>.…]` for the same bare `<id>`;
//! it ends at the next line that starts with `[` and is not such a header for
//! that id. Everything else (keys before the first header, other tables,
//! headers this simple test does not recognise) is the rest, kept in file
//! order.
//!
//! The cut is purely textual and may be wrong: a line inside a multi-line
//! string or array can start with `[stores.`. It never makes a wrong
//! configuration: a cut inside a value that spans lines leaves the piece
//! before it with that value unterminated, a syntax error when that piece
//! is parsed on its own (the caller, `source.rs`, parses or checks every
//! piece on its own), and the caller then parses the whole text as one, as
//! it does for every file whose pieces do not parse, or whose stores or
//! `stores` key collide across pieces.

/// The pieces of a file's text, borrowed from it.
pub(crate) struct Pieces<'a> {
    /// Everything that is not a store block, in file order (each piece but
    /// the first starts with a table header).
    pub(crate) rest: Vec<&'a str>,
    /// The store blocks, in file order.
    pub(crate) stores: Vec<&'a str>,
}

/// Cut `text` at the line starts that begin a table header.
pub(crate) fn split(text: &str) -> Pieces<'_> {
    let mut pieces = Pieces {
        rest: Vec::new(),
        stores: Vec::new(),
    };
    // The current piece: where it starts and, for a store block, its id.
    let mut start = 0;
    let mut current: Option<&str> = None;
    let headers = text
        .starts_with('[')
        .then_some(0)
        .into_iter()
        .chain(text.match_indices("\n[").map(|(at, _)| at + 1));
    for at in headers {
        let id = store_id(&text[at..]);
        if id.is_some() && id == current {
            continue;
        }
        push(&mut pieces, current, &text[start..at]);
        start = at;
        current = id;
    }
    push(&mut pieces, current, &text[start..]);
    pieces
}

fn push<'a>(pieces: &mut Pieces<'a>, store: Option<&str>, piece: &'a str) {
    if piece.is_empty() {
        return;
    }
    match store {
        Some(_) => pieces.stores.push(piece),
        None => pieces.rest.push(piece),
    }
}

/// The id of a `[stores.<id>]` or `[stores.<id>.…]` header at the start of
/// `line`, when the id is a bare key written right after the dot and right
/// before the `]` or the next dot; `None` for anything else (`[[stores…`,
/// quoted ids, spaces).
fn store_id(line: &str) -> Option<&str> {
    let after = line.strip_prefix("[stores.")?;
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(after.len());
    let (id, next) = after.split_at(end);
    (!id.is_empty() && (next.starts_with(']') || next.starts_with('.'))).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_group_a_stores_tables_and_keep_the_rest_in_order() {
        let text = "a = 1\n[daemon]\nx = 1\n[stores.s1]\np = 1\n[stores.s1.settings]\nk = 2\n\
                    [stores.s2]\np = 2\n[channels.c]\nq = 3\n[stores.s1.sandbox]\n";
        let pieces = split(text);
        assert_eq!(
            pieces.rest,
            ["a = 1\n", "[daemon]\nx = 1\n", "[channels.c]\nq = 3\n"]
        );
        assert_eq!(
            pieces.stores,
            [
                "[stores.s1]\np = 1\n[stores.s1.settings]\nk = 2\n",
                "[stores.s2]\np = 2\n",
                "[stores.s1.sandbox]\n",
            ]
        );
    }

    #[test]
    fn only_plain_store_headers_start_a_block() {
        for line in [
            "[[stores.a]]",
            "[stores.\"a\"]",
            "[stores. a]",
            "[stores.a ]",
            "[stores.]",
            "[stores]",
            " [stores.a]",
            "[storesx.a]",
        ] {
            assert_eq!(store_id(line), None, "{line}");
        }
        assert_eq!(store_id("[stores.a-b_9]  # c"), Some("a-b_9"));
        assert_eq!(store_id("[stores.a.\"x y\"]"), Some("a"));
    }
}
