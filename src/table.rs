//! Plain aligned text tables for the terminal.

/// The widest cell shown; longer ones end in an ellipsis. A sweep name of 100 KB would
/// otherwise make every row of `ltsweep sweeps` that wide (and pass `format!`'s width limit).
const MAX_CELL_CHARS: usize = 80;

/// Columns padded to their widest cell, two spaces apart, with a rule under the header.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| fit(h)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| fit(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| {
                let pad = width.saturating_sub(cell.chars().count());
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(&header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out.push_str(&line(&rule));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// The cell cut to [`MAX_CELL_CHARS`] characters, the last one an ellipsis.
fn fit(cell: &str) -> String {
    if cell.chars().count() <= MAX_CELL_CHARS {
        cell.to_owned()
    } else {
        let mut cut: String = cell.chars().take(MAX_CELL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let table = render(
            &["id".into(), "state".into()],
            &[vec!["a".into(), "running".into()]],
        );
        assert_eq!(table, "id  state\n--  -------\na   running\n");
    }

    #[test]
    fn a_cell_of_100_kb_is_cut_with_an_ellipsis() {
        let long = "n".repeat(100_000);
        let table = render(&["name".into()], &[vec![long]]);
        let row = table.lines().nth(2).unwrap();
        assert_eq!(row.chars().count(), MAX_CELL_CHARS);
        assert!(row.ends_with("n…"), "{row}");
    }
}
