//! The documentation's own promises: the README stays a short front door, every link between
//! the README and `docs/` (and into the repository) resolves, anchors included, every path and
//! symbol the docs name exists, and the command-line guide lists exactly the commands clap has.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::harness::register;
use crate::support::{binary_for, help, listed_commands, repo, trainer_binary};

/// The README is the front door; the reference lives in `docs/`.
const README_MAX_LINES: usize = 220;

/// Every Markdown file of the documentation: the README and everything under `docs/`.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    let mut found = vec![repo().join("README.md")];
    walk(&repo().join("docs"), &mut found);
    found.sort();
    found
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code.
fn links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block {
            continue;
        }
        // Inline code spans may hold `](` that is no link.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a Markdown file's headings give.
fn anchors(text: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
        } else if !in_code_block && line.starts_with('#') {
            found.insert(slug(line.trim_start_matches('#')));
        }
    }
    found
}

register!(the_readme_is_short_and_every_documentation_link_resolves);
fn the_readme_is_short_and_every_documentation_link_resolves() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < README_MAX_LINES,
        "README.md has {lines} lines: the reference belongs in docs/"
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                document.clone()
            } else {
                document.parent().unwrap().join(file)
            };
            let name = document.strip_prefix(repo()).unwrap().display().to_string();
            if !resolved.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor
                && resolved.extension().is_some_and(|e| e == "md")
            {
                let target_text = std::fs::read_to_string(&resolved).unwrap();
                if !anchors(&target_text).contains(anchor) {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 10,
        "only {checked} links found: is the parser blind?"
    );
}

register!(headings_become_githubs_anchors);
fn headings_become_githubs_anchors() {
    assert_eq!(
        slug(" Fused job arrays (`--fuse`)"),
        "fused-job-arrays---fuse"
    );
    assert_eq!(
        slug(" The trainer against PyTorch's recipe"),
        "the-trainer-against-pytorchs-recipe"
    );
    assert_eq!(
        links("see [a](docs/a.md#x) and `[b](not/a/link)` and [c](http://e.org)"),
        ["docs/a.md#x", "http://e.org"]
    );
}

/// The repository's top folders: a code span starting with one of them is a path the docs
/// promise exists (a span like `client/worker.rs`, relative to a crate the text names, is
/// prose, not a promise this test can check).
const TOP_FOLDERS: [&str; 15] = [
    "analysis/",
    "bench/",
    "coordinator/",
    "data/",
    "deploy/",
    "docs/",
    "domain/",
    "examples/",
    "fuzz/",
    "proto/",
    "scripts/",
    "src/",
    "tests/",
    "web/",
    "worker/",
];

/// The inline code spans of a Markdown text, outside code blocks.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if !in_code_block {
            spans.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    spans
}

/// What a code span promises: a repository path, and the symbols named after it with `::`
/// (`worker/src/train.rs::Trainer::resume` promises the file and `resume` in it). `None` for
/// a span that is no path of the repository (a command, a flag, a type alone).
fn promised_path(span: &str) -> Option<(String, Vec<String>)> {
    let span = span.trim();
    if !TOP_FOLDERS.iter().any(|top| span.starts_with(top))
        || span.contains(char::is_whitespace)
        || span.contains(['*', '{', '<', '$'])
    {
        return None;
    }
    let mut parts = span.split("::");
    let path = parts
        .next()?
        .trim_end_matches(['.', ',', ':', ')'])
        .to_owned();
    let symbols = parts
        .map(|s| {
            s.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .collect();
    Some((path, symbols))
}

/// Whether `name` occurs in `text` as a whole identifier.
fn has_identifier(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

register!(every_path_and_symbol_the_docs_name_exists);
fn every_path_and_symbol_the_docs_name_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let name = document.strip_prefix(repo()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&document).unwrap();
        for span in code_spans(&text) {
            let Some((path, symbols)) = promised_path(&span) else {
                continue;
            };
            checked += 1;
            let resolved = repo().join(&path);
            if !resolved.exists() {
                missing.push(format!("{name}: `{span}` (no such file)"));
                continue;
            }
            if symbols.is_empty() || resolved.is_dir() {
                continue;
            }
            let source = std::fs::read_to_string(&resolved).unwrap_or_default();
            for symbol in &symbols {
                if !has_identifier(&source, symbol) {
                    missing.push(format!("{name}: `{span}` ({symbol} is not in {path})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name what does not exist:\n{}",
        missing.join("\n")
    );
    assert!(
        checked > 50,
        "only {checked} paths found: is the parser blind?"
    );
}

register!(code_spans_that_promise_a_path_are_read_as_such);
fn code_spans_that_promise_a_path_are_read_as_such() {
    assert_eq!(
        promised_path("worker/src/train.rs::Trainer::resume"),
        Some((
            "worker/src/train.rs".to_owned(),
            vec!["Trainer".to_owned(), "resume".to_owned()]
        ))
    );
    assert_eq!(promised_path("ltsweep run x.toml"), None);
    assert_eq!(promised_path("client/worker.rs"), None);
    assert_eq!(
        code_spans("a `b` c `d e`\n```\n`f`\n```\n`g`"),
        ["b", "d e", "g"]
    );
    assert!(has_identifier("fn resume(", "resume"));
    assert!(!has_identifier("fn resumed(", "resume"));
}

/// The guide whose table must list every command.
const CLI_GUIDE: &str = "docs/guide/cli.md";
/// The heading of that table's section.
const CLI_TABLE_HEADING: &str = "## Every command";

/// The binary's commands as clap has them, read from its help recursively: each command's
/// path (`["data", "check"]`) and whether it runs on its own. `data`, `bench` and `launch` only
/// hold subcommands (their usage ends in `<COMMAND>`); `export` runs, and holds `mlflow`.
fn commands() -> Vec<(Vec<String>, bool)> {
    let mut found = Vec::new();
    let mut level: Vec<Vec<String>> = listed_commands(&help(&trainer_binary(), &[]))
        .into_iter()
        .map(|name| vec![name])
        .collect();
    while !level.is_empty() {
        // The trainer's help loads libtorch, most of a second on a busy machine: one level at
        // once, and the head-node build for the commands it has.
        let helps: Vec<String> = std::thread::scope(|scope| {
            let asked: Vec<_> = level
                .iter()
                .map(|path| {
                    scope.spawn(move || {
                        let args: Vec<&str> = path.iter().map(String::as_str).collect();
                        help(&binary_for(args[0]), &args)
                    })
                })
                .collect();
            asked.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut next = Vec::new();
        for (path, text) in level.into_iter().zip(helps) {
            let usage = text
                .lines()
                .find(|line| line.starts_with("Usage:"))
                .unwrap_or_else(|| panic!("no usage line in `{}`'s help", path.join(" ")));
            for name in listed_commands(&text) {
                let mut child = path.clone();
                child.push(name);
                next.push(child);
            }
            found.push((path, !usage.trim_end().ends_with("<COMMAND>")));
        }
        level = next;
    }
    found
}

/// The command words of a command line (`ltsweep data check --kind list ...` gives `["data",
/// "check"]`): the words after `ltsweep` up to the first flag, placeholder or path.
fn command_words(line: &str) -> Vec<String> {
    line.split_whitespace()
        .skip(1)
        .take_while(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map(str::to_owned)
        .collect()
}

/// The commands the table of `CLI_TABLE_HEADING` lists: each row's first code span, a command
/// line starting with `ltsweep`.
fn table_commands(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|line| line.trim() != CLI_TABLE_HEADING)
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .filter(|line| line.starts_with('|'))
        .filter_map(|line| line.split('`').nth(1))
        .filter(|span| span.starts_with("ltsweep "))
        .map(command_words)
        .collect()
}

/// Every command line the docs show, in code spans and code blocks: the text from each
/// `ltsweep ` that starts a word (`target/release/ltsweep run` counts, `ltsweep-worker` not).
fn shown_command_lines(text: &str) -> Vec<String> {
    let mut code = Vec::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
        } else if in_code_block {
            // A comment in a block is prose.
            code.push(line.split(" # ").next().unwrap_or_default().to_owned());
        } else {
            code.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    let mut lines = Vec::new();
    for text in code {
        for (at, _) in text.match_indices("ltsweep ") {
            let before = text[..at].chars().next_back();
            if before.is_none_or(|c| c.is_whitespace() || c == '/') {
                lines.push(text[at..].to_owned());
            }
        }
    }
    lines
}

register!(the_command_line_guide_lists_every_command_clap_has);
fn the_command_line_guide_lists_every_command_clap_has() {
    let clap = commands();
    assert!(
        clap.len() > 20,
        "only {} commands read from the help: is the parser blind?",
        clap.len()
    );
    let runnable: BTreeSet<Vec<String>> = clap
        .iter()
        .filter(|(_, runs)| *runs)
        .map(|(path, _)| path.clone())
        .collect();
    let guide = std::fs::read_to_string(repo().join(CLI_GUIDE)).unwrap();
    let listed: BTreeSet<Vec<String>> = table_commands(&guide).into_iter().collect();
    let missing: Vec<String> = runnable.difference(&listed).map(|p| p.join(" ")).collect();
    let unknown: Vec<String> = listed.difference(&runnable).map(|p| p.join(" ")).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{CLI_GUIDE}'s \"{CLI_TABLE_HEADING}\" lacks {missing:?} and lists {unknown:?}, \
         which the binary does not run"
    );

    // Every command line anywhere in the docs starts with a command that exists, and a
    // command that only holds subcommands is followed by one of them.
    let known: BTreeSet<Vec<String>> = clap.iter().map(|(path, _)| path.clone()).collect();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let name = document.strip_prefix(repo()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&document).unwrap();
        for line in shown_command_lines(&text) {
            let words = command_words(&line);
            let Some(first) = words.first() else { continue };
            checked += 1;
            if first == "help" {
                continue;
            }
            let top = vec![first.clone()];
            let exists = match clap.iter().find(|(path, _)| *path == top) {
                None => false,
                Some((_, true)) => true,
                Some((_, false)) => words.len() < 2 || known.contains(&words[..2]),
            };
            if !exists {
                wrong.push(format!("{name}: `{line}`"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the docs show commands the binary does not have:\n{}",
        wrong.join("\n")
    );
    assert!(
        checked > 30,
        "only {checked} command lines found: is the parser blind?"
    );
}

register!(command_lines_are_read_as_such);
fn command_lines_are_read_as_such() {
    assert_eq!(
        command_words("ltsweep data check --kind list --path DIR"),
        ["data", "check"]
    );
    assert_eq!(
        command_words("ltsweep export SWEEP --out results"),
        ["export"]
    );
    assert_eq!(
        table_commands(&format!(
            "{CLI_TABLE_HEADING}\n\n| command | does |\n|---|---|\n\
             | `ltsweep launch k8s --workers N` | manifests |\n\n## Next\n| `ltsweep x` | |"
        )),
        [["launch", "k8s"]]
    );
    assert_eq!(
        shown_command_lines(
            "run `target/release/ltsweep run SPEC` or `ltsweep-worker`\n\
             ```sh\nltsweep status   # ltsweep watch\n```"
        ),
        ["ltsweep run SPEC", "ltsweep status  "]
    );
}
