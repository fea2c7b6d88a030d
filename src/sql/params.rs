//! Bind parameter values as text, read from a raw Bind message body without
//! I/O or allocation beyond the result.
//!
//! Layout per <https://www.postgresql.org/docs/current/protocol-message-formats.html>
//! (Bind): portal `\0`, statement `\0`, i16 format count + i16 codes,
//! i16 value count + (i32 length or -1 for NULL, bytes) each, result formats.

/// Parameter `n` (1-based) of a Bind body as text. Text-format values must be
/// UTF-8. Binary values are decoded by length, since the types are not in
/// the message: 2/4/8 bytes as big-endian int2/int4/int8, 16 bytes as a
/// uuid. `None` if absent, NULL, malformed or undecodable.
pub fn bind_param_text(bind_body: &[u8], n: u16) -> Option<String> {
    let index = usize::from(n.checked_sub(1)?);
    let mut r = Reader(bind_body);
    r.cstring()?; // portal
    r.cstring()?; // prepared statement
    let format_count = usize::try_from(r.i16()?).ok()?;
    let formats = r.take(format_count.checked_mul(2)?)?;
    let format = match format_count {
        0 => 0,
        1 => i16::from_be_bytes([formats[0], formats[1]]),
        _ => {
            let at = index.checked_mul(2)?;
            i16::from_be_bytes([*formats.get(at)?, *formats.get(at + 1)?])
        }
    };
    let value_count = usize::try_from(r.i16()?).ok()?;
    if index >= value_count {
        return None;
    }
    for _ in 0..index {
        let len = r.i32()?;
        if len > 0 {
            r.take(usize::try_from(len).ok()?)?;
        }
    }
    let len = usize::try_from(r.i32()?).ok()?; // -1 (NULL) fails here
    let value = r.take(len)?;
    match format {
        0 => std::str::from_utf8(value).ok().map(str::to_string),
        1 => binary_text(value),
        _ => None,
    }
}

fn binary_text(value: &[u8]) -> Option<String> {
    match value.len() {
        2 => Some(i16::from_be_bytes(value.try_into().ok()?).to_string()),
        4 => Some(i32::from_be_bytes(value.try_into().ok()?).to_string()),
        8 => Some(i64::from_be_bytes(value.try_into().ok()?).to_string()),
        16 => {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            ))
        }
        _ => None,
    }
}

/// A cursor over a message body; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn cstring(&mut self) -> Option<&'a [u8]> {
        let end = self.0.iter().position(|&b| b == 0)?;
        let s = self.take(end)?;
        self.take(1)?;
        Some(s)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a Bind body: (format code, value) per parameter.
    fn bind(formats: &[i16], values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = b"portal\0stmt\0".to_vec();
        b.extend((formats.len() as i16).to_be_bytes());
        formats.iter().for_each(|f| b.extend(f.to_be_bytes()));
        b.extend((values.len() as i16).to_be_bytes());
        for v in values {
            match v {
                Some(v) => {
                    b.extend((v.len() as i32).to_be_bytes());
                    b.extend(*v);
                }
                None => b.extend((-1i32).to_be_bytes()),
            }
        }
        b.extend(0i16.to_be_bytes());
        b
    }

    #[test]
    fn text_format_default_and_explicit() {
        let body = bind(&[], &[Some(b"42"), Some(b"acme")]);
        assert_eq!(bind_param_text(&body, 1).as_deref(), Some("42"));
        assert_eq!(bind_param_text(&body, 2).as_deref(), Some("acme"));
        let body = bind(&[0], &[Some(b"7")]);
        assert_eq!(bind_param_text(&body, 1).as_deref(), Some("7"));
    }

    #[test]
    fn binary_integers_and_uuid() {
        let uuid: [u8; 16] = [
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00,
        ];
        let body = bind(
            &[1],
            &[
                Some(&42i32.to_be_bytes()),
                Some(&(-5_000_000_000i64).to_be_bytes()),
                Some(&7i16.to_be_bytes()),
                Some(&uuid),
            ],
        );
        assert_eq!(bind_param_text(&body, 1).as_deref(), Some("42"));
        assert_eq!(bind_param_text(&body, 2).as_deref(), Some("-5000000000"));
        assert_eq!(bind_param_text(&body, 3).as_deref(), Some("7"));
        assert_eq!(
            bind_param_text(&body, 4).as_deref(),
            Some("123e4567-e89b-12d3-a456-426614174000")
        );
    }

    #[test]
    fn per_parameter_formats() {
        let body = bind(&[0, 1], &[Some(b"abc"), Some(&9i64.to_be_bytes())]);
        assert_eq!(bind_param_text(&body, 1).as_deref(), Some("abc"));
        assert_eq!(bind_param_text(&body, 2).as_deref(), Some("9"));
    }

    #[test]
    fn absent_null_malformed() {
        let body = bind(&[], &[None, Some(b"x")]);
        assert_eq!(bind_param_text(&body, 1), None);
        assert_eq!(bind_param_text(&body, 2).as_deref(), Some("x"));
        assert_eq!(bind_param_text(&body, 3), None);
        assert_eq!(bind_param_text(&body, 0), None);
        assert_eq!(bind_param_text(&bind(&[1], &[Some(b"abc")]), 1), None);
        assert_eq!(bind_param_text(&bind(&[], &[Some(b"\xff\xfe")]), 1), None);
        assert_eq!(bind_param_text(b"", 1), None);
        assert_eq!(bind_param_text(b"p\0s\0", 1), None);
        let mut truncated = bind(&[], &[Some(b"12345")]);
        truncated.truncate(truncated.len() - 5);
        assert_eq!(bind_param_text(&truncated, 1), None);
        // A length that lies about the remaining bytes.
        let mut lying = b"\0\0\0\0\0\x01".to_vec();
        lying.extend(i32::MAX.to_be_bytes());
        assert_eq!(bind_param_text(&lying, 1), None);
    }
}
