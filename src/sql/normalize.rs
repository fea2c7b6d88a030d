//! Statement fingerprints: the hot-path scanner that turns SQL text into a
//! canonical token stream (constants and `$n` as `?`, case folded, spacing
//! canonical, constant-only `IN (..)`/`ARRAY[..]` lists collapsed to one item)
//! and hashes it. No parser; one buffer for the text, one for the literals.
//!
//! `SET`/`RESET` keep their constants, like pg_stat_statements does for
//! utility statements: the shape cached per fingerprint then carries the
//! value that was set.

use std::ops::Range;

use super::lex::{Lexer, Tok};

/// A statement's fingerprint and where its constants are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub fingerprint: u64,
    /// Byte spans of the constants in the original text, in lexical order
    /// (including those of collapsed lists; not those of `SET` statements).
    pub literals: Vec<Range<usize>>,
    /// The highest `$n` seen.
    pub params: u16,
}

/// Fingerprint `sql` (which may be any bytes, not only UTF-8): the hash
/// of its [`normalized_text`].
pub fn normalize(sql: &[u8]) -> Normalized {
    let mut out = Normalized {
        fingerprint: 0,
        literals: Vec::new(),
        params: 0,
    };
    let mut text = Vec::with_capacity(sql.len() + sql.len() / 4 + 16);
    scan(sql, &mut text, &mut out);
    out.fingerprint = hash(&text);
    out
}

/// The canonical text, e.g. `select * from t where a = ? and b in (?)`.
/// Invalid UTF-8 is replaced.
pub fn normalized_text(sql: &[u8]) -> String {
    let mut text = Vec::with_capacity(sql.len() + sql.len() / 4 + 16);
    let mut discard = Normalized {
        fingerprint: 0,
        literals: Vec::new(),
        params: 0,
    };
    scan(sql, &mut text, &mut discard);
    match String::from_utf8(text) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A 64-bit hash, eight bytes at a time (multiply-xorshift, then the
/// splitmix64 finalizer over the state and the length).
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut state: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        state = (state ^ word).wrapping_mul(K);
        state ^= state >> 29;
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    state = (state ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    let mut z = state ^ (bytes.len() as u64).rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The value of the constant at `span` (one of [`Normalized::literals`]):
/// quotes removed and escapes resolved for strings, numbers as written.
/// `None` for bit/hex/Unicode-escape strings and invalid UTF-8.
pub fn literal_value(sql: &[u8], span: Range<usize>) -> Option<String> {
    let raw = std::str::from_utf8(sql.get(span)?).ok()?;
    let first = raw.bytes().next()?;
    match first {
        b'\'' => Some(raw.get(1..raw.len().checked_sub(1)?)?.replace("''", "'")),
        b'e' | b'E' => unescape(raw.get(2..raw.len().checked_sub(1)?)?),
        b'n' | b'N' => Some(raw.get(2..raw.len().checked_sub(1)?)?.replace("''", "'")),
        b'$' => {
            let tag_end = raw[1..].find('$')? + 2;
            raw.get(tag_end..raw.len().checked_sub(tag_end)?)
                .map(str::to_string)
        }
        b'0'..=b'9' | b'.' => Some(raw.to_string()),
        _ => None,
    }
}

/// Backslash escapes of an `E'..'` string body (the common ones).
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\u{8}',
                'f' => '\u{c}',
                other => other,
            }),
            '\'' => {
                chars.next();
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Words after which `(` opens a list or subquery rather than a call's
/// arguments, so it is written `in (` rather than `lower(`.
const SPACED_BEFORE_PAREN: &[&[u8]] = &[
    b"all",
    b"and",
    b"any",
    b"as",
    b"by",
    b"conflict",
    b"distinct",
    b"do",
    b"else",
    b"except",
    b"exists",
    b"filter",
    b"from",
    b"having",
    b"in",
    b"intersect",
    b"into",
    b"is",
    b"join",
    b"lateral",
    b"not",
    b"on",
    b"or",
    b"over",
    b"returning",
    b"select",
    b"set",
    b"some",
    b"then",
    b"union",
    b"using",
    b"values",
    b"when",
    b"where",
    b"with",
    b"within",
];

fn is_word(sql: &[u8], span: &Range<usize>, word: &[u8]) -> bool {
    sql[span.clone()].eq_ignore_ascii_case(word)
}

/// Canonical spacing: none inside brackets, before `,` `;` `.` `::` or after
/// `.` `::`, none between a function name and `(`; one space elsewhere.
fn spaced(sql: &[u8], prev: Option<(Tok, &Range<usize>)>, next: Tok) -> bool {
    let Some((prev, prev_span)) = prev else {
        return false;
    };
    use Tok::*;
    match (prev, next) {
        (_, RParen | RBracket | Comma | Semi | Dot | Cast | LBracket) => false,
        (LParen | LBracket | Dot | Cast, _) => false,
        (Word, LParen) => SPACED_BEFORE_PAREN
            .iter()
            .any(|w| is_word(sql, prev_span, w)),
        (Quoted | RBracket, LParen) => false,
        _ => true,
    }
}

/// The scan shared by [`normalize`] and [`normalized_text`].
fn scan(sql: &[u8], text: &mut Vec<u8>, out: &mut Normalized) {
    let mut lexer = Lexer::new(sql);
    let mut prev: Option<(Tok, Range<usize>)> = None;
    let mut statement_start = true;
    let mut verbatim = false;
    let mut pending_semi = false;
    // A collapsed list: (end of its first item, its closing bracket).
    let mut skip: Option<(usize, usize)> = None;
    while let Some((tok, span)) = lexer.next() {
        if let Some((first_end, close)) = skip {
            if span.start >= first_end {
                record_skipped(sql, first_end..close, out);
                lexer = Lexer::at(sql, close);
                skip = None;
                continue;
            }
        }
        if tok == Tok::Semi {
            pending_semi = prev.is_some();
            statement_start = true;
            continue;
        }
        if pending_semi {
            text.push(b';');
            prev = Some((Tok::Semi, span.start..span.start));
            pending_semi = false;
        }
        if statement_start {
            statement_start = false;
            verbatim =
                tok == Tok::Word && (is_word(sql, &span, b"set") || is_word(sql, &span, b"reset"));
        }
        if spaced(sql, prev.as_ref().map(|(t, s)| (*t, s)), tok) {
            text.push(b' ');
        }
        match tok {
            Tok::Word => {
                let from = text.len();
                text.extend_from_slice(&sql[span.clone()]);
                text[from..].make_ascii_lowercase();
            }
            Tok::Const | Tok::Param(_) if verbatim => text.extend_from_slice(&sql[span.clone()]),
            Tok::Const => {
                text.push(b'?');
                out.literals.push(span.clone());
            }
            Tok::Param(n) => {
                text.push(b'?');
                out.params = out.params.max(n);
            }
            _ => text.extend_from_slice(&sql[span.clone()]),
        }
        if !verbatim {
            skip = skip.or_else(|| collapsible(sql, prev.as_ref(), tok, &span));
        }
        prev = Some((tok, span));
    }
}

/// Record the constants and parameters of the part of a list that is skipped.
fn record_skipped(sql: &[u8], range: Range<usize>, out: &mut Normalized) {
    let mut lexer = Lexer::at(&sql[..range.end], range.start);
    for (tok, span) in lexer.by_ref() {
        match tok {
            Tok::Const => out.literals.push(span),
            Tok::Param(n) => out.params = out.params.max(n),
            _ => {}
        }
    }
}

/// At `in (` or `array[`: if the list holds only constants and parameters
/// (optionally signed, cast, or grouped in row tuples) and more than one
/// item, where its first item ends and where its closing bracket is.
fn collapsible(
    sql: &[u8],
    prev: Option<&(Tok, Range<usize>)>,
    tok: Tok,
    span: &Range<usize>,
) -> Option<(usize, usize)> {
    let (Tok::Word, word) = prev?.clone() else {
        return None;
    };
    let close = match tok {
        Tok::LParen if is_word(sql, &word, b"in") => Tok::RParen,
        Tok::LBracket if is_word(sql, &word, b"array") => Tok::RBracket,
        _ => return None,
    };
    let mut lexer = Lexer::at(sql, span.end).peekable();
    let mut first_end = None;
    loop {
        if lexer.peek()?.0 == Tok::LParen {
            lexer.next();
            loop {
                constant(sql, &mut lexer)?;
                match lexer.next()? {
                    (Tok::Comma, _) => {}
                    (Tok::RParen, _) => break,
                    _ => return None,
                }
            }
        } else {
            constant(sql, &mut lexer)?;
        }
        match lexer.next()? {
            (Tok::Comma, comma) => {
                first_end.get_or_insert(comma.start);
            }
            (t, end) if t == close => return first_end.map(|f| (f, end.start)),
            _ => return None,
        }
    }
}

/// `[+|-] (constant | $n) [::type[[]]...]`
fn constant(sql: &[u8], lexer: &mut std::iter::Peekable<Lexer<'_>>) -> Option<()> {
    let mut next = lexer.next()?;
    if next.0 == Tok::Op && matches!(&sql[next.1.clone()], b"-" | b"+") {
        next = lexer.next()?;
    }
    if !matches!(next.0, Tok::Const | Tok::Param(_)) {
        return None;
    }
    while lexer.next_if(|(t, _)| *t == Tok::Cast).is_some() {
        lexer.next_if(|(t, _)| matches!(t, Tok::Word | Tok::Quoted))?;
        while lexer.next_if(|(t, _)| *t == Tok::LBracket).is_some() {
            lexer.next_if(|(t, _)| *t == Tok::RBracket)?;
        }
    }
    Some(())
}
