//! The fingerprint: what it keeps apart, what it merges, the canonical text,
//! the literal spans and values, and robustness on arbitrary bytes.

use super::super::{literal_value, normalize, normalized_text};

fn fp(sql: &str) -> u64 {
    normalize(sql.as_bytes()).fingerprint
}

fn spans(sql: &[u8]) -> Vec<String> {
    normalize(sql)
        .literals
        .iter()
        .map(|r| String::from_utf8_lossy(&sql[r.clone()]).into_owned())
        .collect()
}

#[test]
fn same_fingerprint_for_different_constants_spacing_case_and_list_lengths() {
    let groups: &[&[&str]] = &[
        &[
            "SELECT * FROM contacts WHERE tenant_id = 42 AND email = 'a@b.c'",
            "select  *  from contacts\n\twhere tenant_id=7 and email='x'",
            "SELECT * /* hint */ FROM Contacts WHERE tenant_id = $1 -- trailing\n AND EMAIL = $2",
            "SELECT * FROM contacts WHERE tenant_id = 1.5e3 AND email = E'it\\'s'",
            "SELECT * FROM contacts WHERE tenant_id = 0x1F AND email = $q$dollar ' quoted$q$;",
            "SELECT * FROM contacts WHERE tenant_id = 42 AND email = 'a@b.c';  ;",
        ],
        &[
            "SELECT * FROM t WHERE a IN (1)",
            "SELECT * FROM t WHERE a IN (1, 2, 3)",
            "SELECT * FROM t WHERE a in ($1,$2,$3,$4)",
            "SELECT * FROM t WHERE a IN ('x', -1, $1::int, 2.5)",
            "SELECT * FROM t WHERE a IN(1,2)",
        ],
        &[
            "SELECT * FROM t WHERE (a, b) IN ((1, 2))",
            "SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4), ($1, $2))",
        ],
        &[
            "SELECT * FROM t WHERE a = ANY(ARRAY[1])",
            "SELECT * FROM t WHERE a = ANY(ARRAY[1, 2, 3, 4])",
            "SELECT * FROM t WHERE a = any (array[$1, $2])",
        ],
        &[
            "SELECT lower(email) FROM t",
            "SELECT LOWER ( email ) FROM t",
        ],
        &["SELECT x::int FROM t", "select x :: INT from t"],
    ];
    for group in groups {
        let first = fp(group[0]);
        for sql in &group[1..] {
            assert_eq!(
                fp(sql),
                first,
                "{sql:?} vs {:?}: {:?} vs {:?}",
                group[0],
                normalized_text(sql.as_bytes()),
                normalized_text(group[0].as_bytes())
            );
        }
    }
}

#[test]
fn different_fingerprint_for_different_structure() {
    let distinct = [
        "SELECT * FROM contacts WHERE email = 1",
        "SELECT * FROM contacts WHERE phone = 1",
        "SELECT * FROM organizations WHERE email = 1",
        "SELECT * FROM contacts WHERE email < 1",
        "SELECT * FROM contacts WHERE email = 1 AND phone = 2",
        "SELECT * FROM contacts WHERE email = 1 OR phone = 2",
        "SELECT * FROM contacts WHERE email IN (1, phone)",
        "SELECT * FROM contacts WHERE email IN (1, 2)",
        "SELECT * FROM contacts WHERE \"Email\" = 1",
        "SELECT * FROM contacts WHERE \"email\" = 1",
        "SELECT * FROM contacts WHERE email = \"x\"",
        "SELECT * FROM contacts WHERE email = -1",
        "SELECT * FROM contacts WHERE email = 1 LIMIT 5",
        "SELECT * FROM contacts WHERE email = 1 ORDER BY id",
        "SELECT * FROM contacts WHERE email = 1; SELECT 1",
        "SELECT email FROM contacts",
        "SELECT emai FROM contacts",
        "SELECT ema FROM contacts",
        "SELECT * FROM contacts WHERE ab = 1",
        "SELECT * FROM contacts WHERE a b = 1",
    ];
    let mut seen = std::collections::HashMap::new();
    for sql in distinct {
        if let Some(other) = seen.insert(fp(sql), sql) {
            panic!("{sql:?} collides with {other:?}");
        }
    }
}

#[test]
fn canonical_text() {
    let cases = [
        ("SELECT * FROM t WHERE a = 1 AND b IN (1, 2, 3)", "select * from t where a = ? and b in (?)"),
        (
            "select  c.id,count(*)  FROM contacts c\nWHERE c.tenant_id=$1 -- x\nAND lower(c.email)='A' GROUP BY 1;",
            "select c.id, count(*) from contacts c where c.tenant_id = ? and lower(c.email) = ? group by ?",
        ),
        (
            "INSERT INTO \"My Table\" (a, \"B\") VALUES ($1, 'x'), ($2, 'y') RETURNING id",
            "insert into \"My Table\"(a, \"B\") values (?, ?), (?, ?) returning id",
        ),
        ("SELECT data->>'plan', x::text[] FROM t", "select data ->> ?, x::text[] from t"),
        ("SELECT * FROM t WHERE a=-5", "select * from t where a = - ?"),
        ("SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))", "select * from t where (a, b) in ((?, ?))"),
        ("SELECT ARRAY[1, 2] || ARRAY[x, 2]", "select array[?] || array[x, ?]"),
        ("SET app.tenant_id = '42'", "set app.tenant_id = '42'"),
        ("Set Search_Path TO \"Crm\", Public", "set search_path to \"Crm\", public"),
        ("BEGIN; SELECT 1; COMMIT;", "begin; select ?; commit"),
        ("", ""),
    ];
    for (sql, want) in cases {
        assert_eq!(normalized_text(sql.as_bytes()), want, "{sql:?}");
        // The text is what the fingerprint hashes: equal texts, equal hashes.
        assert_eq!(fp(sql), fp(want), "{sql:?}");
    }
}

#[test]
fn literal_spans_in_lexical_order() {
    let sql = b"SELECT 'a''b', E'x\\'y', $$q$$, $t$ $$ $t$, 1.5e-3, .5, 42, B'101', X'ff', U&'d\\0061t', N'n', \
                DATE '2024-01-01', interval '1 day' FROM t WHERE a IN (1, 2) AND b = $3 AND c = $1";
    assert_eq!(
        spans(sql),
        [
            "'a''b'",
            "E'x\\'y'",
            "$$q$$",
            "$t$ $$ $t$",
            "1.5e-3",
            ".5",
            "42",
            "B'101'",
            "X'ff'",
            "U&'d\\0061t'",
            "N'n'",
            "'2024-01-01'",
            "'1 day'",
            "1",
            "2"
        ]
    );
    assert_eq!(normalize(sql).params, 3);
    assert_eq!(spans(b"SET x = 1; SELECT 2"), ["2"]);
    assert_eq!(
        spans(b"SELECT a1, t2.b3, \"4\" FROM t5"),
        Vec::<String>::new()
    );
}

#[test]
fn literal_values() {
    let sql = b"SELECT '42', 'it''s', E'a\\'b\\n', $x$raw 'q'$x$, 17, N'n', B'1'";
    let values: Vec<Option<String>> = normalize(sql)
        .literals
        .into_iter()
        .map(|span| literal_value(sql, span))
        .collect();
    let want = [
        Some("42"),
        Some("it's"),
        Some("a'b\n"),
        Some("raw 'q'"),
        Some("17"),
        Some("n"),
        None,
    ];
    assert_eq!(values, want.map(|v| v.map(str::to_string)));
    assert_eq!(literal_value(b"'x'", 5..9), None);
}

#[test]
fn set_keeps_its_values_apart() {
    assert_ne!(fp("SET app.tenant_id = '1'"), fp("SET app.tenant_id = '2'"));
    assert_ne!(fp("SET app.tenant_id = 1"), fp("set app.tenant_id = 2"));
    assert_eq!(fp("SET app.tenant_id = '1'"), fp("set  APP.TENANT_ID='1'"));
    assert_eq!(
        fp("SET x = 1; SELECT * FROM t WHERE a = 1"),
        fp("SET x = 1; SELECT * FROM t WHERE a = 2")
    );
    assert!(normalize(b"SET x = 'v'").literals.is_empty());
    // `UPDATE .. SET` is not a SET statement.
    assert_eq!(fp("UPDATE t SET a = 1"), fp("UPDATE t SET a = 2"));
}

#[test]
fn non_utf8_bytes_are_fingerprinted() {
    let a = b"SELECT * FROM t WHERE name = '\xff\xfe' AND \xe9t\xe9 = 1";
    let b = b"SELECT * FROM t WHERE name = 'caf\xe9' AND \xe9t\xe9 = 2";
    let c = b"SELECT * FROM t WHERE name = 'x' AND \xe8t\xe9 = 2";
    assert_eq!(normalize(a).fingerprint, normalize(b).fingerprint);
    assert_ne!(normalize(a).fingerprint, normalize(c).fingerprint);
    assert_eq!(normalize(a).literals.len(), 2);
    assert_eq!(
        normalized_text(a),
        "select * from t where name = ? and \u{fffd}t\u{fffd} = ?"
    );
}

#[test]
fn malformed_input_never_panics() {
    let sql = "SELECT E'a\\'b', $$x$$, $tag$ y $tag$, \"q\"\"q\", /* /* nested */ */ a::int[], b IN (1, (2, 3)), \
               ARRAY[$1, 2], c -- end\n FROM t WHERE x IN (1, 2) AND y = ANY(ARRAY[1,2]);";
    let bytes = sql.as_bytes();
    for end in 0..=bytes.len() {
        let prefix = &bytes[..end];
        let n = normalize(prefix);
        for span in &n.literals {
            assert!(
                span.end <= prefix.len() && span.start < span.end,
                "{span:?} in {end}"
            );
        }
        normalized_text(prefix);
        normalize(&bytes[end..]);
    }
    // Pseudo-random bytes.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..200 {
        let len = (state % 64) as usize;
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let alphabet = b"'\"$e(),;.:-/*[]0123x\xff \n";
                alphabet[(state % alphabet.len() as u64) as usize]
            })
            .collect();
        normalize(&noise);
        normalized_text(&noise);
    }
    assert_eq!(normalize(b"$99999").params, u16::MAX);
}
