//! A byte-level PostgreSQL lexer, just precise enough to tell constants,
//! parameters, identifiers, operators and punctuation apart (comments and
//! whitespace skipped). Never fails: malformed input still yields tokens.
//!
//! Follows <https://www.postgresql.org/docs/current/sql-syntax-lexical.html>.

use std::ops::Range;

/// A token kind; the token's bytes are `src[range]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Keyword or unquoted identifier.
    Word,
    /// `"quoted identifier"`.
    Quoted,
    /// Numeric or string constant: `1.5`, `'x'`, `E'x'`, `$$x$$`, `B'1'`, `X'1F'`.
    Const,
    /// `$n`.
    Param(u16),
    /// Operator, or any other single byte.
    Op,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Dot,
    /// `::`
    Cast,
}

#[derive(Debug, Clone)]
pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a [u8]) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    pub(crate) fn at(src: &'a [u8], pos: usize) -> Lexer<'a> {
        Lexer { src, pos }
    }

    fn skip_trivia(&mut self) {
        let s = self.src;
        loop {
            match s.get(self.pos) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') => self.pos += 1,
                Some(b'-') if s.get(self.pos + 1) == Some(&b'-') => {
                    self.pos = match memchr(b'\n', &s[self.pos..]) {
                        Some(i) => self.pos + i + 1,
                        None => s.len(),
                    };
                }
                Some(b'/') if s.get(self.pos + 1) == Some(&b'*') => {
                    self.pos = block_comment_end(s, self.pos + 2);
                }
                _ => return,
            }
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = (Tok, Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        self.skip_trivia();
        let s = self.src;
        let start = self.pos;
        let b = *s.get(start)?;
        let next = s.get(start + 1).copied().unwrap_or(0);
        let (tok, end) = match b {
            b'\'' => (Tok::Const, quoted_end(s, start + 1, b'\'', false)),
            b'"' => (Tok::Quoted, quoted_end(s, start + 1, b'"', false)),
            b'0'..=b'9' => (Tok::Const, number_end(s, start)),
            b'.' if next.is_ascii_digit() => (Tok::Const, number_end(s, start)),
            b'.' => (Tok::Dot, start + 1),
            b'$' => dollar(s, start),
            b'(' => (Tok::LParen, start + 1),
            b')' => (Tok::RParen, start + 1),
            b'[' => (Tok::LBracket, start + 1),
            b']' => (Tok::RBracket, start + 1),
            b',' => (Tok::Comma, start + 1),
            b';' => (Tok::Semi, start + 1),
            b':' if next == b':' => (Tok::Cast, start + 2),
            c if is_ident_start(c) => word(s, start),
            c if is_op_char(c) => (Tok::Op, op_end(s, start)),
            _ => (Tok::Op, start + 1),
        };
        self.pos = end;
        Some((tok, start..end))
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Block comments nest in PostgreSQL.
fn block_comment_end(s: &[u8], mut i: usize) -> usize {
    let mut depth = 1usize;
    while i < s.len() {
        match (s[i], s.get(i + 1)) {
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            (b'/', Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    s.len()
}

/// End of a quoted token whose body starts at `i`: a doubled quote is an
/// escaped quote; with `backslash`, so is `\` + any byte.
fn quoted_end(s: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    while i < s.len() {
        let b = s[i];
        if b == quote {
            if s.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += if backslash && b == b'\\' { 2 } else { 1 };
    }
    s.len()
}

fn number_end(s: &[u8], start: usize) -> usize {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = start;
    if at(i) == b'0' && matches!(at(i + 1), b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
        i += 2;
        while at(i).is_ascii_alphanumeric() || at(i) == b'_' {
            i += 1;
        }
        return i;
    }
    while at(i).is_ascii_digit() || at(i) == b'_' {
        i += 1;
    }
    if at(i) == b'.' && at(i + 1) != b'.' {
        i += 1;
        while at(i).is_ascii_digit() || at(i) == b'_' {
            i += 1;
        }
    }
    if matches!(at(i), b'e' | b'E') {
        if at(i + 1).is_ascii_digit() {
            i += 1;
        } else if matches!(at(i + 1), b'+' | b'-') && at(i + 2).is_ascii_digit() {
            i += 2;
        }
        while at(i).is_ascii_digit() {
            i += 1;
        }
    }
    i
}

/// `$n` parameter, `$tag$...$tag$` constant, or a lone `$`.
fn dollar(s: &[u8], start: usize) -> (Tok, usize) {
    let mut j = start + 1;
    if s.get(j).is_some_and(u8::is_ascii_digit) {
        let mut n: u32 = 0;
        while let Some(d) = s.get(j).filter(|d| d.is_ascii_digit()) {
            n = (n * 10 + u32::from(d - b'0')).min(u32::from(u16::MAX));
            j += 1;
        }
        return (Tok::Param(n as u16), j);
    }
    while s
        .get(j)
        .is_some_and(|&c| is_ident_start(c) || c.is_ascii_digit())
    {
        j += 1;
    }
    if s.get(j) != Some(&b'$') {
        return (Tok::Op, start + 1);
    }
    let delimiter = &s[start..=j];
    let body = j + 1;
    let end = s[body..]
        .windows(delimiter.len())
        .position(|w| w == delimiter)
        .map_or(s.len(), |i| body + i + delimiter.len());
    (Tok::Const, end)
}

/// A word, or a prefixed string constant: `E'..'`, `B'..'`, `X'..'`, `N'..'`, `U&'..'`.
fn word(s: &[u8], start: usize) -> (Tok, usize) {
    let mut j = start + 1;
    while s.get(j).is_some_and(|&c| is_ident_cont(c)) {
        j += 1;
    }
    if j == start + 1 {
        match (s[start], s.get(j), s.get(j + 1)) {
            (b'e' | b'E', Some(b'\''), _) => {
                return (Tok::Const, quoted_end(s, j + 1, b'\'', true))
            }
            (b'b' | b'B' | b'x' | b'X' | b'n' | b'N', Some(b'\''), _) => {
                return (Tok::Const, quoted_end(s, j + 1, b'\'', false))
            }
            (b'u' | b'U', Some(b'&'), Some(b'\'')) => {
                return (Tok::Const, quoted_end(s, j + 2, b'\'', false))
            }
            _ => {}
        }
    }
    (Tok::Word, j)
}

/// An operator run. Per the PostgreSQL lexer, `--` and `/*` end it, and a
/// multi-character operator ends in `+`/`-` only if it also holds one of
/// ``~ ! @ # % ^ & | ` ?`` (so `=-5` is `=` then `-`).
fn op_end(s: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < s.len() && is_op_char(s[j]) {
        if matches!(
            (s[j], s.get(j + 1)),
            (b'-', Some(b'-')) | (b'/', Some(b'*'))
        ) {
            break;
        }
        j += 1;
    }
    let run = &s[start..j];
    if run.len() > 1 && !run.iter().any(|c| b"~!@#%^&|`?".contains(c)) {
        while j > start + 1 && matches!(s[j - 1], b'+' | b'-') {
            j -= 1;
        }
    }
    j
}

const IDENT_START: u8 = 1;
const IDENT_CONT: u8 = 2;
const OP: u8 = 4;

/// Byte classes, by table: the scanner asks for every byte.
const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            table[c] = IDENT_START | IDENT_CONT;
        } else if b.is_ascii_digit() || b == b'$' {
            table[c] = IDENT_CONT;
        }
        c += 1;
    }
    let ops = b"+-*/<>=~!@#%^&|`?";
    let mut i = 0;
    while i < ops.len() {
        table[ops[i] as usize] = OP;
        i += 1;
    }
    table
};

pub(crate) fn is_ident_start(c: u8) -> bool {
    CLASSES[usize::from(c)] & IDENT_START != 0
}

fn is_ident_cont(c: u8) -> bool {
    CLASSES[usize::from(c)] & IDENT_CONT != 0
}

fn is_op_char(c: u8) -> bool {
    CLASSES[usize::from(c)] & OP != 0
}
