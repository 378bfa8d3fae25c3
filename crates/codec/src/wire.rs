//! Protobuf wire format reading. Every read is bounds-checked; malformed input yields
//! [`CodecError`], never a panic.

use crate::CodecError;

/// One field occurrence on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2 (strings, bytes, messages, packed repeated scalars).
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Reads varints from `buf` starting at `*pos`.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, CodecError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos) else {
            return Err(CodecError("truncated varint".into()));
        };
        *pos += 1;
        if i == 9 && b > 1 {
            return Err(CodecError("varint overflows 64 bits".into()));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(CodecError("varint longer than 10 bytes".into()))
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], CodecError> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| CodecError("truncated field".into()))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}

/// Splits a message into its field occurrences, in wire order.
pub(crate) fn fields(buf: &[u8]) -> Result<Vec<(u32, Val<'_>)>, CodecError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos)?;
        let num = u32::try_from(tag >> 3)
            .ok()
            .filter(|&n| n != 0 && n < (1 << 29))
            .ok_or_else(|| CodecError(format!("invalid field number {}", tag >> 3)))?;
        let val = match tag & 7 {
            0 => Val::Varint(read_varint(buf, &mut pos)?),
            1 => {
                let b = take(buf, &mut pos, 8)?;
                Val::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| trunc())?))
            }
            2 => {
                let len = read_varint(buf, &mut pos)?;
                let len = usize::try_from(len).map_err(|_| trunc())?;
                Val::Bytes(take(buf, &mut pos, len)?)
            }
            5 => {
                let b = take(buf, &mut pos, 4)?;
                Val::Fixed32(u32::from_le_bytes(b.try_into().map_err(|_| trunc())?))
            }
            wt => {
                return Err(CodecError(format!(
                    "unsupported wire type {wt} for field {num}"
                )));
            }
        };
        out.push((num, val));
    }
    Ok(out)
}

fn trunc() -> CodecError {
    CodecError("truncated field".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut p = 0;
        assert_eq!(read_varint(&[0x96, 0x01], &mut p), Ok(150));
        assert_eq!(p, 2);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max, &mut 0), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(read_varint(&over, &mut 0).is_err());
        assert!(read_varint(&[0x80], &mut 0).is_err());
        assert!(read_varint(&[], &mut 0).is_err());
    }

    #[test]
    fn splits_fields_and_rejects_bad_ones() {
        let buf = [0x08, 0x02, 0x12, 0x02, b'h', b'i', 0x1d, 1, 0, 0, 0];
        assert_eq!(
            fields(&buf).unwrap(),
            vec![
                (1, Val::Varint(2)),
                (2, Val::Bytes(b"hi")),
                (3, Val::Fixed32(1))
            ]
        );
        assert!(fields(&[0x12, 0x05, b'a']).is_err(), "length past end");
        assert!(fields(&[0x00, 0x01]).is_err(), "field number 0");
        assert!(fields(&[0x0b]).is_err(), "group start");
        assert!(fields(&[0x09, 1, 2]).is_err(), "short fixed64");
        let huge_len = [
            0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(fields(&huge_len).is_err());
    }
}
