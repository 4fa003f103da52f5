//! The architecture's invariants (`docs/design.md`, "Invariants"), held where a test can hold
//! them: what each crate may reach is read from the dependency graph `Cargo.lock` records, and
//! the one invariant no crate boundary can hold, that the scheduler does no I/O, from the
//! scheduler's source.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::harness::register;
use crate::support::repo;

/// What a crate must never reach, directly or through any other crate, and why.
const FORBIDDEN: [(&str, &[&str], &str); 4] = [
    (
        "ltsweep-domain",
        &["tonic", "tokio", "prost", "hyper", "tower"],
        "the domain knows nothing of the network",
    ),
    (
        "ltsweep-data",
        &["tch", "torch-sys"],
        "the data parsers know no libtorch, so the head-node build links them",
    ),
    (
        "ltsweep-analysis",
        &["tonic"],
        "analysis reads results and calls no one",
    ),
    (
        "ltsweep-web",
        &["ltsweep-coordinator"],
        "the page is a client of the coordinator, not part of it",
    ),
];

/// libtorch's crates, and the only packages that may reach them: the worker, and the binary
/// through its `train` feature.
const LIBTORCH: [&str; 2] = ["tch", "torch-sys"];
const LIBTORCH_HOLDERS: [&str; 2] = ["ltsweep-worker", "ltsweep"];

/// The dependency graph of the workspace as `Cargo.lock` records it. The lock holds the union
/// over features and dependency kinds (a workspace crate's dev- and build-dependencies too), so
/// a check on it is stricter than any one build, never looser.
struct Graph {
    /// Each package (`name version`) and the packages it depends on.
    edges: BTreeMap<String, Vec<String>>,
    /// The workspace's own packages (those without a `source`), by name.
    workspace: BTreeMap<String, String>,
}

impl Graph {
    fn parse(lock: &str) -> Graph {
        let lock: toml::Table = toml::from_str(lock).expect("Cargo.lock is TOML");
        let packages = lock["package"]
            .as_array()
            .expect("Cargo.lock lists packages");
        let key = |p: &toml::Value| {
            let (name, version) = (p["name"].as_str(), p["version"].as_str());
            format!("{} {}", name.unwrap(), version.unwrap())
        };
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for package in packages {
            let name = package["name"].as_str().unwrap().to_owned();
            versions.entry(name).or_default().push(key(package));
        }
        // A dependency is written `name` when one version is locked, else `name version`
        // (and ` (source)` when two sources give that version).
        let resolve = |dependency: &str| -> String {
            let mut words = dependency.split_whitespace();
            let name = words.next().unwrap();
            match words.next() {
                Some(version) => format!("{name} {version}"),
                None => versions[name][0].clone(),
            }
        };
        let mut edges = BTreeMap::new();
        let mut workspace = BTreeMap::new();
        for package in packages {
            let dependencies = package
                .get("dependencies")
                .and_then(toml::Value::as_array)
                .map(|list| list.iter().map(|d| resolve(d.as_str().unwrap())).collect())
                .unwrap_or_default();
            edges.insert(key(package), dependencies);
            if package.get("source").is_none() {
                workspace.insert(package["name"].as_str().unwrap().to_owned(), key(package));
            }
        }
        Graph { edges, workspace }
    }

    fn of_this_repository() -> Graph {
        Graph::parse(&std::fs::read_to_string(repo().join("Cargo.lock")).unwrap())
    }

    /// Every package `crate_name` reaches, each with the chain of names that leads to it.
    fn reached(&self, crate_name: &str) -> BTreeMap<String, Vec<String>> {
        let start = &self.workspace[crate_name];
        let name = |key: &str| key.split(' ').next().unwrap().to_owned();
        let mut chains = BTreeMap::from([(start.clone(), vec![name(start)])]);
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(package) = queue.pop_front() {
            for dependency in &self.edges[&package] {
                if !chains.contains_key(dependency) {
                    let mut chain = chains[&package].clone();
                    chain.push(name(dependency));
                    chains.insert(dependency.clone(), chain);
                    queue.push_back(dependency.clone());
                }
            }
        }
        chains.remove(start);
        chains
            .into_values()
            .map(|chain| (chain.last().unwrap().clone(), chain))
            .collect()
    }

    /// How `crate_name` reaches each of `forbidden` it reaches, as `a → b → c`.
    fn violations(&self, crate_name: &str, forbidden: &[&str]) -> Vec<String> {
        let reached = self.reached(crate_name);
        forbidden
            .iter()
            .filter_map(|name| reached.get(*name))
            .map(|chain| chain.join(" → "))
            .collect()
    }
}

register!(each_crate_reaches_only_what_its_invariant_allows);
fn each_crate_reaches_only_what_its_invariant_allows() {
    let graph = Graph::of_this_repository();
    let mut broken = Vec::new();
    for (crate_name, forbidden, why) in FORBIDDEN {
        if !graph.workspace.contains_key(crate_name) {
            broken.push(format!(
                "{crate_name} is no workspace package, so nothing holds \"{why}\""
            ));
            continue;
        }
        for chain in graph.violations(crate_name, forbidden) {
            broken.push(format!("{chain}: but {why}"));
        }
    }
    for crate_name in graph.workspace.keys() {
        if !LIBTORCH_HOLDERS.contains(&crate_name.as_str()) {
            for chain in graph.violations(crate_name, &LIBTORCH) {
                broken.push(format!("{chain}: but only the worker links libtorch"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

register!(the_dependency_check_sees_the_network_in_the_wire_crate);
fn the_dependency_check_sees_the_network_in_the_wire_crate() {
    // The check above passes by finding nothing; here it must find what proto is built on, or
    // it is blind.
    let graph = Graph::of_this_repository();
    assert_eq!(
        graph.violations("ltsweep-proto", &["tonic", "tch"]),
        ["ltsweep-proto → tonic"]
    );
    let through = graph.violations("ltsweep-coordinator", &["h2"]);
    assert_eq!(through.len(), 1, "{through:?}");
    assert!(
        through[0].starts_with("ltsweep-coordinator → ") && through[0].ends_with(" → h2"),
        "{through:?}"
    );
    assert_eq!(
        graph.violations("ltsweep-worker", &LIBTORCH),
        ["ltsweep-worker → tch", "ltsweep-worker → torch-sys"]
    );
}

register!(the_head_node_build_leaves_libtorch_out);
fn the_head_node_build_leaves_libtorch_out() {
    // The lock cannot tell a feature's dependencies apart, so the binary's manifest must: every
    // way to libtorch is optional and only the `train` feature turns it on. The head-node build
    // itself is checked with `ldd` in deploy_checks.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).unwrap()).unwrap();
    let dependencies = manifest["dependencies"].as_table().unwrap();
    let graph = Graph::of_this_repository();
    let mut to_libtorch = Vec::new();
    for name in dependencies.keys() {
        let reaches = LIBTORCH.contains(&name.as_str())
            || (graph.workspace.contains_key(name)
                && !graph.violations(name, &LIBTORCH).is_empty());
        if reaches {
            let optional = dependencies[name]
                .get("optional")
                .and_then(toml::Value::as_bool);
            assert_eq!(optional, Some(true), "{name} must be optional");
            to_libtorch.push(format!("dep:{name}"));
        }
    }
    assert!(
        to_libtorch.len() >= 2,
        "only {to_libtorch:?} lead to libtorch"
    );
    let features = manifest["features"].as_table().unwrap();
    for (feature, enables) in features {
        let enables: Vec<&str> = enables
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for dependency in &to_libtorch {
            assert!(
                feature == "train" || !enables.contains(&dependency.as_str()),
                "the feature {feature} turns on {dependency}"
            );
        }
    }
    let train = features["train"].as_array().unwrap();
    for dependency in &to_libtorch {
        assert!(
            train.iter().any(|v| v.as_str() == Some(dependency)),
            "train lacks {dependency}"
        );
    }
}

register!(every_crate_states_its_invariant_in_the_design_doc);
fn every_crate_states_its_invariant_in_the_design_doc() {
    let design = std::fs::read_to_string(repo().join("docs/design.md")).unwrap();
    let section: String = design
        .lines()
        .skip_while(|line| line.trim() != "## Invariants")
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !section.is_empty(),
        "docs/design.md has no \"## Invariants\" section"
    );
    let graph = Graph::of_this_repository();
    let unstated: Vec<&String> = graph
        .workspace
        .keys()
        .filter(|name| !section.contains(&format!("`{name}`")))
        .collect();
    assert!(
        unstated.is_empty(),
        "docs/design.md's invariants name no rule for {unstated:?}"
    );
}

/// The scheduler's folder, every file of which is pure but its tests.
const SCHEDULER: &str = "coordinator/src/scheduler";

/// What pure code never names: files, sockets, I/O, the async runtime, RPC, the database, the
/// clock and sleeping. The scheduler takes the time as a parameter.
const NO_IO: [&str; 9] = [
    "fs",
    "net",
    "io",
    "tokio",
    "tonic",
    "rusqlite",
    "SystemTime",
    "Instant",
    "sleep",
];

/// Rust source with its comments and the contents of its string and char literals blanked
/// (newlines kept), so that a word in a message or a comment is not read as code.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                if chars[i] == '\n' {
                    code.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            code.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    code.push('\n');
                }
                i += 1;
            }
            code.push('"');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('{', '\n'), not a lifetime.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            code.push_str("' '");
            i += 1;
        } else {
            code.push(c);
            i += 1;
        }
    }
    code
}

/// `code` without its `#[cfg(test)]` items, and the names of the test modules it declares in
/// files of their own (`#[cfg(test)] mod proptests;`).
fn without_tests(code: &str) -> (String, Vec<String>) {
    const MARK: &str = "#[cfg(test)]";
    let mut kept = String::new();
    let mut test_files = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        kept.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        let end = match item.find([';', '{']) {
            Some(semicolon) if item.as_bytes()[semicolon] == b';' => {
                let declaration = item[..semicolon].trim();
                if let Some(name) = declaration.split_whitespace().last()
                    && declaration.split_whitespace().any(|word| word == "mod")
                {
                    test_files.push(name.to_owned());
                }
                semicolon + 1
            }
            Some(open) => {
                let mut depth = 0;
                let mut close = item.len();
                for (offset, c) in item[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        close = open + offset + 1;
                        break;
                    }
                }
                close
            }
            None => item.len(),
        };
        rest = &item[end..];
    }
    kept.push_str(rest);
    (kept, test_files)
}

/// Whether `name` occurs in `code` as a whole identifier.
fn names(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(code[..at].chars().next_back()) && !ident(code[at + name.len()..].chars().next())
    })
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

register!(the_scheduler_does_no_io);
fn the_scheduler_does_no_io() {
    let mut files = Vec::new();
    rust_files(&repo().join(SCHEDULER), &mut files);
    let mut pure = Vec::new();
    let mut test_modules = BTreeSet::new();
    for file in &files {
        let (code, tests) = without_tests(&code_only(&std::fs::read_to_string(file).unwrap()));
        test_modules.extend(tests);
        pure.push((file, code));
    }
    let mut found = Vec::new();
    let mut scanned = 0;
    for (file, code) in &pure {
        let module = match file.file_stem().unwrap().to_str().unwrap() {
            "mod" => file
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap(),
            stem => stem,
        };
        if test_modules.contains(module) {
            continue;
        }
        scanned += 1;
        for name in NO_IO.into_iter().filter(|name| names(code, name)) {
            let shown = file.strip_prefix(repo()).unwrap().display();
            found.push(format!("{shown} names {name}"));
        }
    }
    assert!(
        scanned >= 8 && test_modules.len() >= 2,
        "{scanned} files scanned, test modules {test_modules:?}: is the scan blind?"
    );
    assert!(
        found.is_empty(),
        "the scheduler does no I/O and reads no clock (time is a parameter):\n{}",
        found.join("\n")
    );
}

register!(the_io_scan_reads_code_not_comments_strings_or_tests);
fn the_io_scan_reads_code_not_comments_strings_or_tests() {
    let source = "use std::{collections::BTreeMap, fs};\n\
                  // tokio would block here\n\
                  fn f() -> &'static str { let c = '{'; \"Instant::now\" }\n\
                  #[cfg(test)]\n\
                  mod proptests;\n\
                  #[cfg(test)]\n\
                  mod tests {\n    fn g() { if true { std::thread::sleep(d) } }\n}\n\
                  fn h(now: u64) -> u64 { now }\n";
    let (code, tests) = without_tests(&code_only(source));
    let named: Vec<&str> = NO_IO.into_iter().filter(|n| names(&code, n)).collect();
    assert_eq!(named, ["fs"]);
    assert_eq!(tests, ["proptests"]);
    assert!(code.contains("fn h(now: u64)"), "{code}");
    assert!(!names("fn refs(files: &Files)", "fs"));
}
