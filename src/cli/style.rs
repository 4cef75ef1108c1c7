//! Terminal niceties: colour only on a terminal (and never with `NO_COLOR`),
//! progress on stderr only when stderr is a terminal, aligned tables.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// Whether to colour what goes to stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty
    /// (<https://no-color.org>).
    pub(crate) fn for_stdout() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn green(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub(crate) fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub(crate) fn red(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// A one-line progress indicator on stderr, shown only when stderr is a
/// terminal (never in pipes, logs or tests), erased when done.
pub(crate) struct Progress {
    enabled: bool,
    shown: Mutex<bool>,
}

impl Progress {
    pub(crate) fn on_stderr() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            shown: Mutex::new(false),
        }
    }

    /// Replace the progress line with `message`.
    pub(crate) fn show(&self, message: &str) {
        if !self.enabled {
            return;
        }
        let mut shown = self
            .shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{message}");
        let _ = err.flush();
        *shown = true;
    }

    /// Erase the progress line.
    pub(crate) fn clear(&self) {
        if !self.enabled {
            return;
        }
        let mut shown = self
            .shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            *shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A plain-text table with aligned columns.
pub(crate) struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[(&str, Align)]) -> Self {
        Self {
            headers: headers.iter().map(|(h, _)| (*h).to_owned()).collect(),
            align: headers.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, each line prefixed with `indent`.
    pub(crate) fn render(&self, indent: &str) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let empty = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::from(indent);
            for (i, width) in widths.iter().enumerate() {
                let cell = line.get(i).unwrap_or(&empty);
                let pad = width.saturating_sub(cell.chars().count());
                let last = i + 1 == columns;
                match self.align[i] {
                    Align::Left if last => text.push_str(cell),
                    Align::Left => {
                        text.push_str(cell);
                        text.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        text.push_str(&" ".repeat(pad));
                        text.push_str(cell);
                    }
                }
                if !last {
                    text.push_str("  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&[("kind", Align::Left), ("sent", Align::Right)]);
        t.row(vec!["order-paid".into(), "12".into()]);
        t.row(vec!["total".into(), "1234".into()]);
        assert_eq!(
            t.render("  "),
            "  kind        sent\n  order-paid    12\n  total       1234\n"
        );
    }
}
