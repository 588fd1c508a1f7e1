use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::dlp::format::FieldPath;

/// Rules from path texts; context: keys containing `ssn` give `[7]`.
struct Names(Vec<FieldPath>);

impl Resolver for Names {
    fn key_context(&mut self, key: &[u8]) -> Option<Arc<[u32]>> {
        key.windows(3)
            .any(|w| w == b"ssn")
            .then(|| Arc::from([7u32]))
    }
    fn has_rules(&self) -> bool {
        !self.0.is_empty()
    }
    fn rule(&self, position: &[Step<'_>]) -> Option<u32> {
        self.0
            .iter()
            .position(|p| p.covers(position))
            .map(|i| i as u32)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Tok {
    token: Token,
    text: String,
    rule: Option<u32>,
    context: bool,
}

fn tokens(
    data: &[u8],
    cuts: &[usize],
    ndjson: bool,
    rules: &[&str],
) -> (Vec<Tok>, Vec<(u64, u64)>) {
    let mut names = Names(rules.iter().map(|r| FieldPath::parse(r).unwrap()).collect());
    let mut t = JsonTokenizer::new(ndjson);
    let mut ev = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        let c = c.max(at).min(data.len());
        t.feed(&data[at..c], &mut names, &mut ev);
        at = c;
    }
    t.finish(&mut ev);
    let (mut out, mut escapes, mut open) = (Vec::new(), Vec::new(), None);
    for e in ev {
        match e {
            JsonEvent::Open {
                start,
                token,
                rule,
                context,
            } => {
                assert!(open.is_none(), "open inside open");
                open = Some((start, token, rule, context.is_some()));
            }
            JsonEvent::Close { end } => {
                let (start, token, rule, context) = open.take().expect("close without open");
                let text = String::from_utf8_lossy(&data[start as usize..end as usize]).into();
                out.push(Tok {
                    token,
                    text,
                    rule,
                    context,
                });
            }
            JsonEvent::Escape { start, end } => escapes.push((start, end)),
        }
    }
    assert!(open.is_none());
    (out, escapes)
}

fn tok(token: Token, text: &str, rule: Option<u32>, context: bool) -> Tok {
    Tok {
        token,
        text: text.into(),
        rule,
        context,
    }
}

#[test]
fn values_carry_their_rule_and_the_context_of_their_key() {
    let doc = br#"{"customer": {"ssn": "536-22-8845", "n": [1, -2.5e3]}, "items": [{"card": "4111"}, {"card": 4222}], "ok": true, "x": null}"#;
    let rules = ["customer.ssn", "$.items[*].card"];
    let (t, _) = tokens(doc, &[], false, &rules);
    use Token::*;
    assert_eq!(
        t,
        vec![
            tok(Key, "customer", None, false),
            tok(Key, "ssn", None, false),
            tok(String, "536-22-8845", Some(0), true),
            tok(Key, "n", None, false),
            tok(Number, "1", None, false),
            tok(Number, "-2.5e3", None, false),
            tok(Key, "items", None, false),
            tok(Key, "card", None, false),
            tok(String, "4111", Some(1), false),
            tok(Key, "card", None, false),
            tok(Number, "4222", Some(1), false),
            tok(Key, "ok", None, false),
            tok(Key, "x", None, false),
        ]
    );
    // Under an array under a key with context, the context still applies.
    let (t, _) = tokens(br#"{"ssns": [], "ssn_list": ["1", "2"]}"#, &[], false, &[]);
    assert!(t.iter().filter(|t| t.token == String).all(|t| t.context));
}

#[test]
fn escapes_are_reported_and_keys_compare_as_written() {
    let doc = br#"{"a\u0062": "x\n\u0041y", "k": 1}"#;
    let (t, esc) = tokens(doc, &[], false, &["[\"a\\u0062\"]"]);
    assert_eq!(t[1], tok(Token::String, r"x\n\u0041y", Some(0), false));
    let texts: Vec<&[u8]> = esc
        .iter()
        .map(|&(s, e)| &doc[s as usize..e as usize])
        .collect();
    assert_eq!(texts, vec![&br"\u0062"[..], br"\n", br"\u0041"]);
}

#[test]
fn a_syntax_error_makes_the_rest_raw_and_ndjson_recovers_at_the_newline() {
    let data = b"{\"a\": \"1\"}\n{\"a\": x \"2\"}\n{\"a\": \"3\"}\n";
    let (t, _) = tokens(data, &[], true, &["a"]);
    use Token::*;
    assert_eq!(
        t,
        vec![
            tok(Key, "a", None, false),
            tok(String, "1", Some(0), false),
            tok(Key, "a", None, false),
            tok(Raw, "x \"2\"}", None, false),
            tok(Key, "a", None, false),
            tok(String, "3", Some(0), false),
        ]
    );
    let (t, _) = tokens(data, &[], false, &["a"]);
    assert_eq!(t.last().unwrap().token, Raw);
    assert_eq!(t.len(), 4);
    // A raw newline inside a string is an error; NDJSON goes on with the next line.
    let (t, _) = tokens(b"{\"a\": \"x\n{\"a\": \"y\"}\n", &[], true, &[]);
    assert_eq!(t.last().unwrap(), &tok(String, "y", None, false));
    // Too deep.
    let deep = format!(
        "{}1{}",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    let (t, _) = tokens(deep.as_bytes(), &[], false, &[]);
    assert_eq!(t.last().unwrap().token, Raw);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\"\\\\\n\u{e9}\u{1F600} ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z\"]{0,5}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Keys, strings and numbers of a document in order, as the tokenizer should see them.
fn expected(v: &Value, out: &mut Vec<(Token, String)>) {
    match v {
        Value::String(s) => out.push((Token::String, s.clone())),
        Value::Number(n) => out.push((Token::Number, n.to_string())),
        Value::Array(a) => a.iter().for_each(|x| expected(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push((Token::Key, k.clone()));
                expected(x, out);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn tokens_match_serde_json_however_the_input_is_cut(
        v in arb_json(),
        pretty in any::<bool>(),
        cuts in proptest::collection::vec(0usize..400, 0..6),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        let data = text.as_bytes();
        let mut cuts = cuts;
        cuts.sort_unstable();
        let whole = tokens(data, &[], false, &["*"]);
        prop_assert_eq!(&tokens(data, &cuts, false, &["*"]), &whole);
        let got: Vec<(Token, String)> = whole
            .0
            .iter()
            .map(|t| {
                let text = match t.token {
                    Token::Key | Token::String => {
                        serde_json::from_str::<String>(&format!("\"{}\"", t.text)).unwrap()
                    }
                    _ => t.text.clone(),
                };
                (t.token, text)
            })
            .collect();
        let mut want = Vec::new();
        expected(&v, &mut want);
        prop_assert_eq!(got, want);
        // Every escape lies inside a string token.
        for &(s, e) in &whole.1 {
            prop_assert_eq!(data[s as usize], b'\\');
            prop_assert!(e as usize <= data.len());
        }
    }
}
