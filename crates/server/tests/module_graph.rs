//! No two modules of `wagate-server` or `wagate-sandbox` depend on each other, directly or around
//! a loop: each can be read, tested and changed from the modules below it.
//!
//! A module is a source file (a folder's `mod.rs` is the folder's module). It depends on another
//! when its code names it in a path: `crate::…`, `super::…`, `self::…`, or a child module by its
//! name (`number::NumberWorker`). Declaring a child (`mod number;`) is not depending on it. Test
//! modules inside a file count as the file.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// A module's path from the crate root: `["workers", "dispatcher"]`; the root is empty.
type Module = Vec<String>;

/// Where each module depends on another: for each module, the modules it names, each with the
/// first path that names it.
type Graph = BTreeMap<Module, BTreeMap<Module, String>>;

#[test]
fn server_modules_form_no_loop() {
    let graph = crate_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert_sees(&graph, &["app"], &["state"]);
    assert_sees(&graph, &["workers", "dispatcher", "number"], &["workers", "dispatcher", "limiter"]);
    assert_no_loop("wagate-server", &graph);
}

#[test]
fn sandbox_modules_form_no_loop() {
    let graph = crate_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox/src"));
    assert_sees(&graph, &["graph", "messages"], &["errors"]);
    assert_no_loop("wagate-sandbox", &graph);
}

#[test]
fn loops_are_found_through_every_kind_of_path() {
    let files = [
        ("lib.rs", "mod a; mod b; pub use a::Thing;"),
        ("a/mod.rs", "mod child; pub struct Thing; fn f() {} mod tests { use super::*; fn t() { child::g(); } }"),
        ("a/child.rs", "use super::{Thing, super::b::{self, B}};"),
        ("b.rs", "pub struct B; fn f() { let _ = crate::a::Thing; } // crate::lib::nothing\n"),
        (
            "c.rs",
            "const S: &str = \"crate::b::B\"; const R: &str = r#\"crate::a\"#; fn f<'a>(_: &'a str) -> char { '\"' }",
        ),
    ];
    let graph = graph_of(files.iter().map(|(file, text)| (module_of(Path::new(file)), text.to_string())));
    let m = |path: &str| path.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect::<Module>();
    let edges = |from: &str| graph[&m(from)].keys().map(|k| k.join("::")).collect::<Vec<_>>();
    assert_eq!(edges(""), ["a"]);
    assert_eq!(edges("a"), ["a::child"]);
    assert_eq!(edges("a::child"), ["a", "b"]);
    assert_eq!(edges("b"), ["a"]);
    assert!(edges("c").is_empty(), "strings, comments and char literals name nothing");
    let loops = loops(&graph);
    assert_eq!(loops.len(), 1, "{loops:?}");
    assert!(loops[0].starts_with("a -> a::child -> a\n"), "{}", loops[0]);
    assert!(loops[0].ends_with("(all of: a, a::child, b)"), "{}", loops[0]);
}

/// Fails when `graph` does not show `from` depending on `to`: the parser would be blind.
fn assert_sees(graph: &Graph, from: &[&str], to: &[&str]) {
    let from: Module = from.iter().map(|s| s.to_string()).collect();
    let to: Module = to.iter().map(|s| s.to_string()).collect();
    assert!(
        graph.get(&from).is_some_and(|e| e.contains_key(&to)),
        "the module graph misses {} -> {}",
        from.join("::"),
        to.join("::")
    );
}

fn assert_no_loop(krate: &str, graph: &Graph) {
    let loops = loops(graph);
    assert!(
        loops.is_empty(),
        "modules of {krate} depend on each other, around these loops (each step with the path that makes it):\n{}",
        loops.join("\n")
    );
}

/// The modules of the crate whose sources are under `src`, and what each depends on.
fn crate_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    collect(src, src, &mut files);
    assert!(!files.is_empty(), "no sources under {}", src.display());
    graph_of(files)
}

fn collect(root: &Path, dir: &Path, into: &mut Vec<(Module, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            into.push((module_of(path.strip_prefix(root).expect("under the root")), text));
        }
    }
}

/// `lib.rs` → the root, `a/mod.rs` → `a`, `a/b.rs` → `a::b`.
fn module_of(file: &Path) -> Module {
    let mut parts: Module = file.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    match last.trim_end_matches(".rs") {
        "lib" | "main" | "mod" => {}
        name => parts.push(name.to_owned()),
    }
    parts
}

fn graph_of(files: impl IntoIterator<Item = (Module, String)>) -> Graph {
    let files: Vec<(Module, String)> = files.into_iter().collect();
    let known: BTreeSet<Module> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (module, text) in &files {
        let edges = graph.entry(module.clone()).or_default();
        for (named, path) in named_modules(module, &tokens(&strip(text)), &known) {
            if &named != module {
                edges.entry(named).or_insert(path);
            }
        }
    }
    graph
}

/// The source without comments, string and character literals: what they say is not code.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let at = |k: usize| char_at(&c, i + k);
        let starts_word = i == 0 || !ident(c[i - 1]);
        if at(0) == '/' && at(1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(0) == '/' && at(1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if char_at(&c, i) == '/' && char_at(&c, i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if char_at(&c, i) == '*' && char_at(&c, i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if starts_word && (at(0) == 'r' || (at(0) == 'b' && at(1) == 'r')) && raw_string_at(&c, i).is_some() {
            i = raw_string_at(&c, i).expect("checked");
            out.push_str("\"\"");
        } else if at(0) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if at(0) == '\'' && (at(1) == '\\' || at(2) == '\'') {
            // A character literal (a lifetime has no closing quote).
            i += if at(1) == '\\' { 3 } else { 2 };
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn char_at(c: &[char], i: usize) -> char {
    c.get(i).copied().unwrap_or('\0')
}

/// Where the raw string starting at `i` (`r"…"`, `r#"…"#`, `br"…"`) ends, if one starts there.
fn raw_string_at(c: &[char], mut i: usize) -> Option<usize> {
    if c.get(i) == Some(&'b') {
        i += 1;
    }
    i += 1;
    let mut hashes = 0;
    while c.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if c.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(c.len())
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[start..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".to_owned());
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push(c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// The modules the code of `file` names, each with the path that names it.
fn named_modules(file: &Module, tokens: &[String], known: &BTreeSet<Module>) -> Vec<(Module, String)> {
    let mut named = Vec::new();
    // Inline modules (`mod tests { … }`) open in `file`, with the brace depth they close at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        match t {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[i + 1].clone(), depth));
                depth += 1;
                i += 3;
                continue;
            }
            _ => {}
        }
        let starts_path = tokens.get(i + 1).is_some_and(|n| n == "::") && (i == 0 || tokens[i - 1] != "::");
        if starts_path && is_ident(t) {
            let here: Module = file.iter().cloned().chain(inline.iter().map(|(m, _)| m.clone())).collect();
            let (paths, end) = use_tree(tokens, i);
            for path in paths {
                if let Some(module) = resolve(file, &here, &path, known) {
                    named.push((module, path.join("::")));
                }
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    named
}

fn is_ident(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The paths a path or `use` tree starting at `i` spells out (`a::{b, c::d}` is `a::b` and
/// `a::c::d`), and where it ends.
fn use_tree(tokens: &[String], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                let mut paths = Vec::new();
                i += 1;
                while i < tokens.len() && tokens[i] != "}" {
                    if tokens[i] == "," {
                        i += 1;
                        continue;
                    }
                    let (inner, end) = use_tree(tokens, i);
                    for p in inner {
                        paths.push(prefix.iter().cloned().chain(p).collect());
                    }
                    // Past `as name` and anything else up to the next item.
                    i = end;
                    while i < tokens.len() && tokens[i] != "," && tokens[i] != "}" {
                        i += 1;
                    }
                }
                return (paths, i + 1);
            }
            Some(t) if is_ident(t) => {
                prefix.push(t.to_owned());
                i += 1;
                if tokens.get(i).is_some_and(|n| n == "::") {
                    i += 1;
                    continue;
                }
                return (vec![prefix], i);
            }
            // `*`, or a path that goes on into generics (`Vec::<T>`).
            _ => return (vec![prefix], i),
        }
    }
}

/// The module a path written in module `here` (in `file`) names: the longest known module its
/// segments lead to (`crate::Thing` names the root); none for a path outside the crate.
fn resolve(file: &Module, here: &Module, path: &[String], known: &BTreeSet<Module>) -> Option<Module> {
    let child = |of: &Module| known.contains(&[of.as_slice(), &path[..1]].concat());
    let (mut module, rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" | "super" => (here.clone(), path),
        // A child of the module the code is in, by name; in a test module, of its file (which
        // `use super::*` brings in).
        _ if child(here) => (here.clone(), path),
        _ if child(file) => (file.clone(), path),
        _ => return None,
    };
    for segment in rest {
        match segment.as_str() {
            "self" => {}
            "super" => {
                module.pop();
            }
            name => {
                module.push(name.to_owned());
                if !known.contains(&module) {
                    module.pop();
                    break;
                }
            }
        }
    }
    // Within an inline module (`mod tests`): the file it is in.
    while !known.contains(&module) && !module.is_empty() {
        module.pop();
    }
    Some(module)
}

/// Every group of modules that depend on each other, each shown as one loop through them.
fn loops(graph: &Graph) -> Vec<String> {
    let name = |m: &Module| if m.is_empty() { "crate".to_owned() } else { m.join("::") };
    let mut out = Vec::new();
    for group in strongly_connected(graph) {
        if group.len() < 2 {
            continue;
        }
        // The shortest way from the group's first module back to it.
        let start = group.iter().next().expect("not empty").clone();
        let mut came_from: BTreeMap<Module, Module> = BTreeMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        'search: while let Some(m) = queue.pop_front() {
            for next in graph[&m].keys().filter(|n| group.contains(*n)) {
                if next == &start {
                    came_from.insert(start.clone(), m.clone());
                    break 'search;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next.clone(), m.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut between = Vec::new();
        let mut at = came_from[&start].clone();
        while at != start {
            between.push(at.clone());
            at = came_from[&at].clone();
        }
        between.reverse();
        let steps: Vec<Module> = [vec![start.clone()], between, vec![start.clone()]].concat();
        let shown: Vec<String> = steps.iter().map(name).collect();
        let why: Vec<String> =
            steps.windows(2).map(|w| format!("  {} names {}", name(&w[0]), graph[&w[0]][&w[1]])).collect();
        let members: Vec<String> = group.iter().map(name).collect();
        out.push(format!("{}\n{}\n  (all of: {})", shown.join(" -> "), why.join("\n"), members.join(", ")));
    }
    out
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &Graph) -> Vec<BTreeSet<Module>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        groups: Vec<BTreeSet<Module>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, m: &'g Module) {
            let n = self.index.len();
            self.index.insert(m, n);
            self.low.insert(m, n);
            self.stack.push(m);
            self.on_stack.insert(m);
            for next in self.graph[m].keys() {
                let Some((next, _)) = self.graph.get_key_value(next) else { continue };
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[m].min(self.low[next]);
                    self.low.insert(m, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[m].min(self.index[next]);
                    self.low.insert(m, low);
                }
            }
            if self.low[m] == self.index[m] {
                let mut group = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    group.insert(top.clone());
                    if top == m {
                        break;
                    }
                }
                self.groups.push(group);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for m in graph.keys() {
        if !walk.index.contains_key(m) {
            walk.visit(m);
        }
    }
    walk.groups
}
