//! The core's imports run one way: handles → commands → engine → protocol. This test reads
//! every `crate::…` and `super::…` path in `src/` (use declarations and inline paths), maps
//! each to the module file it names, and fails on an import cycle between files or on a layer
//! importing one above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module may import its own layer and those below, never above.
/// Modules not listed (lib.rs, capi/, uniffi/, bin/) sit on top and are unchecked.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "error",
            "event",
            "incoming",
            "options",
            "token",
            "presence",
            "postgres",
            "transport",
            "client/url",
        ],
    ),
    ("engine", &["engine"]),
    ("commands", &["command"]),
    ("dispatch", &["dispatch"]),
    ("driver", &["driver", "runtime"]),
    ("handles", &["client", "channel"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path (`engine/channel`) of each file under `src/`.
fn modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src()).unwrap().with_extension("");
            let mut name = rel.to_string_lossy().replace('\\', "/");
            if let Some(parent) = name.strip_suffix("/mod") {
                name = parent.to_owned();
            }
            out.insert(name, path);
        }
    }
}

/// Drops comments, string and char literals, so doc examples and messages are not read as
/// code.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && (b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\')) {
            // A char literal ('x' or '\x'); a lifetime ('a) has no closing quote there.
            let end = rest[1..].find('\'').map_or(rest.len(), |e| e + 2);
            i += end;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br##"`…: the number of `#`s.
fn raw_string_start(s: &str) -> Option<usize> {
    let s = s.strip_prefix('b').unwrap_or(s).strip_prefix('r')?;
    let hashes = s.len() - s.trim_start_matches('#').len();
    s[hashes..].starts_with('"').then_some(hashes)
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

/// Every path mentioned by the file: use trees expanded, plus inline `crate::x::y` paths.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find(';') {
            out.extend(expand(&rest[..end]));
        }
    }
    for anchor in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            let start = i;
            let end = rest[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(rest.len(), |e| start + e);
            out.push(rest[start..end].trim_end_matches(':').to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// The module file a path names, relative to the importing module `from`.
fn resolve(from: &str, path: &str, files: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = match segs.first() {
        Some(&"crate") => {
            segs.remove(0);
            Vec::new()
        }
        Some(&"super") => {
            let mut base: Vec<&str> = from.split('/').collect();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
            base
        }
        Some(&"self") => {
            segs.remove(0);
            from.split('/').collect()
        }
        _ => return None,
    };
    // The longest prefix that is a module file; `super::Item` names the parent itself.
    let mut best =
        (!base.is_empty() && files.contains_key(&base.join("/"))).then(|| base.join("/"));
    for seg in segs {
        base.push(seg);
        let name = base.join("/");
        if !files.contains_key(&name) {
            break;
        }
        best = Some(name);
    }
    best
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| {
        mods.iter()
            .any(|m| module == *m || module.starts_with(&format!("{m}/")))
    })
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = BTreeMap::new();
    modules(&src(), &mut files);
    let mut graph = BTreeMap::new();
    for (module, path) in &files {
        // The crate root re-exports everything; test files import what they test.
        if module == "lib" || module.ends_with("_tests") {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(path).unwrap());
        let code = code
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let deps: BTreeSet<String> = paths(code)
            .iter()
            .filter_map(|p| resolve(module, p, &files))
            .filter(|d| d != module && d != "lib")
            // A module's own submodules and its parent's items are part of it.
            .filter(|d| !d.starts_with(&format!("{module}/")))
            .collect();
        graph.insert(module.clone(), deps);
    }
    graph
}

#[test]
fn no_import_cycles_between_modules() {
    let g = graph();
    if std::env::var_os("SHOW_IMPORTS").is_some() {
        for (m, d) in &g {
            eprintln!("{m} -> {d:?}");
        }
    }
    assert!(g.contains_key("engine/channel") && g["engine/channel"].contains("engine/outbox"));
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn layers_import_only_downwards() {
    let mut wrong = Vec::new();
    for (module, deps) in graph() {
        let Some(l) = layer(&module) else { continue };
        for d in deps {
            if let Some(dl) = layer(&d) {
                if dl > l {
                    wrong.push(format!(
                        "{module} ({}) imports {d} ({})",
                        LAYERS[l].0, LAYERS[dl].0
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_and_cycles() {
    assert_eq!(
        expand("crate::a::{b, c::{d, e}}"),
        vec!["crate::a::b", "crate::a::c::d", "crate::a::c::e"]
    );
    let code = code_only(
        "use crate::x::{Y, z::W};\n// crate::nope\nlet s = \"crate::str\"; crate::q::f();",
    );
    let p = paths(&code);
    assert!(p.contains(&"crate::x::Y".to_owned()) && p.contains(&"crate::q::f".to_owned()));
    assert!(!p.iter().any(|s| s.contains("nope") || s.contains("str")));
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(find_cycle(&g).is_some());
}
