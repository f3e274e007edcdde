//! What commands print: aligned tables and `Key: value` blocks for people, JSON for scripts
//! (`--format json`), and, for `consume` only, a per-record template. Every command builds a
//! [`Report`] (plain data that serializes to the JSON form) and [`emit`] prints it in the chosen
//! format, so the table and the JSON always show the same facts.

use std::fmt::Display;
use std::io::Write;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{CtlError, Result};

/// `--format`: how results are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables (and, for `consume`, one value per line).
    Table,
    /// One JSON document (for `consume`, one JSON object per record and line).
    Json,
    /// `consume` only: a line per record with `{key}`, `{value}`, `{partition}`, `{offset}`,
    /// `{timestamp}`, `{headers}`, `{topic}` replaced.
    Template(String),
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "table" | "text" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            t if t.contains('{') && t.contains('}') => Ok(Format::Template(t.to_string())),
            other => Err(format!(
                "unknown format {other:?}: expected table, json, or (consume only) a template such as '{{key}}={{value}}'"
            )),
        }
    }
}

/// Something a command prints: its JSON form is the derived serialization, its text form `text()`.
pub trait Report: Serialize {
    /// The human-readable form, ending in a newline.
    fn text(&self) -> String;
}

/// Prints `report` to stdout in `format`.
pub fn emit(report: &impl Report, format: &Format) -> Result<()> {
    match format {
        Format::Table => write_stdout(&report.text()),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).map_err(|e| CtlError::Io {
                context: "encoding JSON",
                source: std::io::Error::other(e),
            })?;
            s.push('\n');
            write_stdout(&s)
        }
        Format::Template(_) => Err(CtlError::InvalidArgument(
            "a --format template only applies to consume; use table or json".into(),
        )),
    }
}

/// Writes to stdout and flushes; a closed pipe comes back as an error the binary stays quiet about.
pub fn write_stdout(s: &str) -> Result<()> {
    write_stdout_bytes(s.as_bytes())
}

/// [`write_stdout`] for bytes that need not be UTF-8 (record keys and values).
pub fn write_stdout_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| CtlError::Io {
            context: "writing to stdout",
            source,
        })
}

/// An aligned table: a header row in capitals, columns two spaces apart, left-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                line.push_str(cell);
                if i + 1 < columns {
                    line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `Key:  value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(k);
        out.push(':');
        out.extend(std::iter::repeat_n(' ', width - k.chars().count() + 2));
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// A value or `-` when there is none.
pub fn dash<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Broker ids as `0,1,2` (`-` for none).
pub fn ids(v: &[i32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// A byte count for people: `812 B`, `1.5 KiB`, `3.0 GiB`.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let mut t = Table::new(&["NAME", "PARTITIONS", "X"]);
        t.row(vec!["orders".into(), "3".into(), "".into()]);
        t.row(vec!["a".into(), "12".into(), "yes".into()]);
        assert_eq!(
            t.render(),
            "NAME    PARTITIONS  X\norders  3\na       12          yes\n"
        );
    }

    #[test]
    fn fields_align_values() {
        assert_eq!(
            fields(&[("Name", "a".into()), ("Partitions", "3".into())]),
            "Name:        a\nPartitions:  3\n"
        );
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("table".parse::<Format>(), Ok(Format::Table));
        assert_eq!(
            "{key}={value}".parse::<Format>(),
            Ok(Format::Template("{key}={value}".into()))
        );
        assert!("yaml".parse::<Format>().is_err());
    }
}
