//! Pattern file loading: every error at once, each with file and line.

use super::*;

fn load(files: &[(&str, &str)]) -> Result<Pack, PatternErrors> {
    Pack::from_sources(files.iter().map(|(n, t)| (n.to_string(), t.to_string())))
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    load(files)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const GOOD: &str = r#"
[[detector]]
id = "order_id"
entity = "ORDER_ID"
regex = 'ORD-\d{6}'
keywords = ["ord-"]
max_len = 10
examples = [{ text = "see ORD-123456.", match = "ORD-123456" }]
negative_examples = ["ORD-12345"]
"#;

#[test]
fn a_good_file_loads_with_lowercased_keywords_and_a_version() {
    let pack = load(&[("good.toml", GOOD)]).unwrap();
    let d = &pack.detectors[0];
    assert_eq!(
        (&*d.id, &*d.entity, d.max_len, d.line),
        ("order_id", "ORDER_ID", 10, 2)
    );
    assert_eq!(d.keywords, vec!["ord-"]);
    assert_eq!(pack.version().len(), 16);
    let other = load(&[("good.toml", &GOOD.replace("max_len = 10", "max_len = 11"))]).unwrap();
    assert_ne!(
        pack.version(),
        other.version(),
        "the version names the exact contents"
    );
}

#[test]
fn syntax_and_unknown_fields_fail_with_file_and_line() {
    let e = errors(&[("a.toml", "[[detector]]\nid = \"x\"\nregx = 'a'\n")]);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("a.toml:3: unknown field `regx`"), "{e:?}");
    let e = errors(&[("b.toml", "[[detector]]\nid = \"x\n")]);
    assert!(e[0].starts_with("b.toml:2: "), "{e:?}");
    let e = errors(&[(
        "c.toml",
        "[[detector]]\nid = \"x\"\nentity = \"X\"\nregex = 'a'\n",
    )]);
    assert!(e[0].contains("missing field `max_len`"), "{e:?}");
}

#[test]
fn semantic_errors_are_all_reported_at_once_with_their_lines() {
    let bad = r#"
[[detector]]
id = "Bad-Id"
entity = "lower"
regex = '\d+'
validator = "lunh"
context = ["ssn"]
max_len = 0
examples = [{ text = "1", match = "1" }]

[[detector]]
id = "no_examples"
entity = "X"
regex = '(a'
max_len = 5
"#;
    let e = errors(&[("bad.toml", bad)]);
    let want = [
        "bad.toml:3: `id` must be lowercase",
        "bad.toml:4: `entity` must be uppercase",
        "bad.toml:5: regex can match unbounded lengths",
        "bad.toml:8: `max_len` must be 1 to 65536",
        "bad.toml:6: unknown validator `lunh`",
        "bad.toml:7: `context` needs a `context_window`",
        "bad.toml:14: bad regex",
        "bad.toml:12: detector `no_examples` has no `examples`",
    ];
    for w in want {
        assert!(
            e.iter().any(|x| x.starts_with(w)),
            "missing {w:?} in {e:#?}"
        );
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn examples_that_misbehave_fail_the_load_with_the_example_line() {
    let wrong = GOOD
        .replace("match = \"ORD-123456\"", "match = \"ORD-12345\"")
        .replace(
            "negative_examples = [\"ORD-12345\"]",
            "negative_examples = [\n  \"x ORD-999999\",\n]",
        );
    let e = errors(&[("ex.toml", &wrong)]);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("ex.toml:8: detector `order_id`: example"),
        "{e:?}"
    );
    assert!(e[0].contains("gives [\"ORD-123456\"]"), "{e:?}");
    assert!(
        e[1].starts_with("ex.toml:10: detector `order_id`: negative example"),
        "{e:?}"
    );
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let e = errors(&[("a.toml", GOOD), ("b.toml", GOOD)]);
    assert_eq!(
        e,
        vec!["b.toml:2: duplicate detector id `order_id` (first in a.toml:2)"]
    );
}

#[test]
fn load_dir_reads_toml_files_in_name_order_and_reports_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let e = Pack::load_dir(dir.path()).unwrap_err();
    assert!(e.to_string().contains("no *.toml detector files"), "{e}");
    std::fs::write(dir.path().join("b.toml"), GOOD.replace("order_id", "b_id")).unwrap();
    std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a pattern file").unwrap();
    let pack = Pack::load_dir(dir.path()).unwrap();
    let ids: Vec<&str> = pack.detectors.iter().map(|d| &*d.id).collect();
    assert_eq!(ids, ["order_id", "b_id"]);
    std::fs::write(dir.path().join("c.toml"), "[[detector]]\nid = 1\n").unwrap();
    let e = Pack::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("c.toml:2: "), "{e}");
}
