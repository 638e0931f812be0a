//! Text in the charset its sender declared, whatever name they gave it, or the one it is
//! really in when the name is missing or wrong.
//!
//! A label is looked up as browsers know it (the WHATWG labels, in encoding_rs), then
//! among the aliases real senders write, taken from the two registries mail software
//! follows: Python's codec registry (`encodings/aliases.py` with its codec names, as
//! of Python 3.11) and IANA's character-set registry
//! (<https://www.iana.org/assignments/character-sets>, names and aliases), each mapped
//! to the encoding encoding_rs decodes it as (GB2312 as GBK, Big5-HKSCS as Big5,
//! ISO-8859-1 and US-ASCII as windows-1252, Shift_JIS-2004 as Shift_JIS…). Labels are
//! compared without case and without punctuation (`GB_2312-80` is `gb231280`). A label
//! of an encoding encoding_rs does not implement (UTF-7, DOS code page 850…) is left to
//! mail-parser's decoders; one neither knows (EBCDIC, HZ…) is treated as missing.
//!
//! Bytes that are not valid in the declared charset, and 8-bit bytes with no label, are
//! detected as Firefox does (chardetng), with the sender's top-level domain as its hint.

use encoding_rs::*;

/// The aliases encoding_rs's own labels leave out, compared as [`normalise`] writes them.
/// Sources: Python's codec registry and the IANA character-set registry (see above).
#[rustfmt::skip]
const ALIASES: &[(&str, &Encoding)] = &[
    ("cp65001", UTF_8), ("csutf8", UTF_8), ("u8", UTF_8), ("utf", UTF_8), ("utf8", UTF_8),
    ("utf8ucs2", UTF_8), ("utf8ucs4", UTF_8),
    ("csutf16", UTF_16LE), ("csutf16le", UTF_16LE), ("u16", UTF_16LE),
    ("unicodelittleunmarked", UTF_16LE), ("utf16", UTF_16LE), ("utf16le", UTF_16LE),
    ("csutf16be", UTF_16BE), ("unicodebigunmarked", UTF_16BE), ("utf16be", UTF_16BE),
    ("936", GBK), ("cp936", GBK), ("csgbk", GBK), ("euccn", GBK), ("eucgb2312cn", GBK),
    ("gb23121980", GBK), ("gb231280", GBK), ("isoir58", GBK), ("ms936", GBK),
    ("windows936", GBK), ("xmacsimpchinese", GBK),
    ("csgb18030", GB18030), ("gb180302000", GB18030),
    ("950", BIG5), ("big5hkscs", BIG5), ("big5tw", BIG5), ("cp950", BIG5),
    ("csbig5hkscs", BIG5), ("hkscs", BIG5), ("ms950", BIG5), ("xmactradchinese", BIG5),
    ("932", SHIFT_JIS), ("cp932", SHIFT_JIS), ("cswindows31j", SHIFT_JIS),
    ("mskanji", SHIFT_JIS), ("shiftjis", SHIFT_JIS), ("shiftjis2004", SHIFT_JIS),
    ("shiftjisx0213", SHIFT_JIS), ("sjis", SHIFT_JIS), ("sjis2004", SHIFT_JIS),
    ("sjisx0213", SHIFT_JIS), ("xmacjapanese", SHIFT_JIS),
    ("cp51932", EUC_JP), ("cscp51932", EUC_JP), ("eucjis2004", EUC_JP), ("eucjisx0213", EUC_JP),
    ("eucjp", EUC_JP), ("extendedunixcodepackedformatforjapanese", EUC_JP),
    ("jisx0213", EUC_JP), ("ujis", EUC_JP),
    ("cp50220", ISO_2022_JP), ("cscp50220", ISO_2022_JP), ("csiso2022jp2", ISO_2022_JP),
    ("iso2022jp", ISO_2022_JP), ("iso2022jp1", ISO_2022_JP), ("iso2022jp2", ISO_2022_JP),
    ("iso2022jp2004", ISO_2022_JP), ("iso2022jp3", ISO_2022_JP), ("iso2022jpext", ISO_2022_JP),
    ("949", EUC_KR), ("cp949", EUC_KR), ("euckr", EUC_KR), ("ksc5601", EUC_KR),
    ("ksc56011987", EUC_KR), ("ksx1001", EUC_KR), ("ms949", EUC_KR), ("uhc", EUC_KR),
    ("xmackorean", EUC_KR),
    ("cskoi8u", KOI8_U), ("koi8u", KOI8_U),
    ("macroman", MACINTOSH),
    ("maccyrillic", X_MAC_CYRILLIC),
    ("cp874", WINDOWS_874), ("cstis620", WINDOWS_874), ("cswindows874", WINDOWS_874),
    ("iso885911", WINDOWS_874), ("iso8859112001", WINDOWS_874), ("isoir166", WINDOWS_874),
    ("thai", WINDOWS_874), ("tis620", WINDOWS_874), ("tis6200", WINDOWS_874),
    ("tis62025290", WINDOWS_874), ("tis62025291", WINDOWS_874),
    ("1250", WINDOWS_1250), ("cswindows1250", WINDOWS_1250), ("windows1250", WINDOWS_1250),
    ("1251", WINDOWS_1251), ("cswindows1251", WINDOWS_1251), ("windows1251", WINDOWS_1251),
    ("1252", WINDOWS_1252), ("8859", WINDOWS_1252), ("cswindows1252", WINDOWS_1252),
    ("iso8859", WINDOWS_1252), ("iso88591", WINDOWS_1252), ("iso885911987", WINDOWS_1252),
    ("isoir100", WINDOWS_1252), ("latin", WINDOWS_1252), ("latin1", WINDOWS_1252),
    ("windows1252", WINDOWS_1252),
    ("1253", WINDOWS_1253), ("cswindows1253", WINDOWS_1253), ("windows1253", WINDOWS_1253),
    ("1254", WINDOWS_1254), ("cswindows1254", WINDOWS_1254), ("iso88599", WINDOWS_1254),
    ("iso885991989", WINDOWS_1254), ("isoir148", WINDOWS_1254), ("windows1254", WINDOWS_1254),
    ("1255", WINDOWS_1255), ("cswindows1255", WINDOWS_1255), ("windows1255", WINDOWS_1255),
    ("1256", WINDOWS_1256), ("cswindows1256", WINDOWS_1256), ("windows1256", WINDOWS_1256),
    ("1257", WINDOWS_1257), ("cswindows1257", WINDOWS_1257), ("windows1257", WINDOWS_1257),
    ("1258", WINDOWS_1258), ("cswindows1258", WINDOWS_1258), ("windows1258", WINDOWS_1258),
    ("iso88592", ISO_8859_2), ("iso885921987", ISO_8859_2), ("isoir101", ISO_8859_2),
    ("iso88593", ISO_8859_3), ("iso885931988", ISO_8859_3), ("isoir109", ISO_8859_3),
    ("iso88594", ISO_8859_4), ("iso885941988", ISO_8859_4), ("isoir110", ISO_8859_4),
    ("iso88595", ISO_8859_5), ("iso885951988", ISO_8859_5), ("isoir144", ISO_8859_5),
    ("asmo708", ISO_8859_6), ("ecma114", ISO_8859_6), ("iso88596", ISO_8859_6),
    ("iso885961987", ISO_8859_6), ("iso88596e", ISO_8859_6), ("iso88596i", ISO_8859_6),
    ("isoir127", ISO_8859_6),
    ("ecma118", ISO_8859_7), ("iso88597", ISO_8859_7), ("iso885971987", ISO_8859_7),
    ("isoir126", ISO_8859_7),
    ("iso88598", ISO_8859_8), ("iso885981988", ISO_8859_8), ("iso88598e", ISO_8859_8),
    ("isoir138", ISO_8859_8),
    ("iso88598i", ISO_8859_8_I),
    ("iso885910", ISO_8859_10), ("iso8859101992", ISO_8859_10), ("isoir157", ISO_8859_10),
    ("csiso885913", ISO_8859_13), ("iso885913", ISO_8859_13), ("l7", ISO_8859_13),
    ("latin7", ISO_8859_13),
    ("csiso885914", ISO_8859_14), ("iso885914", ISO_8859_14), ("iso8859141998", ISO_8859_14),
    ("isoceltic", ISO_8859_14), ("isoir199", ISO_8859_14), ("l8", ISO_8859_14),
    ("latin8", ISO_8859_14),
    ("csiso885915", ISO_8859_15), ("iso885915", ISO_8859_15), ("latin9", ISO_8859_15),
    ("csiso885916", ISO_8859_16), ("iso885916", ISO_8859_16), ("iso8859162001", ISO_8859_16),
    ("isoir226", ISO_8859_16), ("l10", ISO_8859_16), ("latin10", ISO_8859_16),
];

/// US-ASCII's names, which encoding_rs reads as windows-1252: 8-bit bytes under them are
/// not what the label says, and are detected instead.
const ASCII: &[&str] = &[
    "646",
    "ansix341968",
    "ansix341986",
    "ascii",
    "cp367",
    "csascii",
    "ibm367",
    "iso646irv1991",
    "iso646us",
    "isoir6",
    "us",
    "usascii",
];

/// A label as [`ALIASES`] holds it: lower case, letters and digits only.
fn normalise(label: &str) -> String {
    label
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What a charset label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// US-ASCII: seven bits only.
    Ascii,
    /// An encoding encoding_rs decodes.
    Encoding(&'static Encoding),
}

/// The charset `label` names, if the registries know it and encoding_rs decodes it.
pub fn charset(label: &str) -> Option<Charset> {
    let label = label.trim().trim_matches('"');
    let key = normalise(label);
    if ASCII.contains(&key.as_str()) {
        return Some(Charset::Ascii);
    }
    Encoding::for_label(label.as_bytes())
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == key).map(|(_, e)| *e))
        .filter(|e| *e != REPLACEMENT)
        .map(Charset::Encoding)
}

/// Whether mail-parser names the charset `label` declares (it reads UTF-8 unnamed).
pub fn mail_parser_names(label: &str) -> bool {
    mail_parser::decoders::charsets::map::charset_decoder(label.trim().as_bytes()).is_some()
        || charset(label) == Some(Charset::Encoding(UTF_8))
}

/// The sender's top-level domain as chardetng takes it (lower-case letters, digits and
/// hyphens), from an address or a domain.
pub fn tld(address: &str) -> Option<String> {
    let tld = address.rsplit(['.', '@']).next()?.to_ascii_lowercase();
    (!tld.is_empty() && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')).then_some(tld)
}

/// The encoding `bytes` are most likely in, as Firefox guesses for a page with no label.
pub fn detect(bytes: &[u8], tld: Option<&str>) -> &'static Encoding {
    if std::str::from_utf8(bytes).is_ok() && !is_iso_2022_jp(bytes) {
        return UTF_8;
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Allow);
    detector.feed(bytes, true);
    detector.guess(tld.map(str::as_bytes), chardetng::Utf8Detection::Allow)
}

/// Seven-bit text with ISO-2022-JP's escapes into JIS X 0208 (`ESC $ B`, `ESC $ @`).
fn is_iso_2022_jp(bytes: &[u8]) -> bool {
    bytes
        .windows(3)
        .any(|w| w[0] == 0x1b && w[1] == b'$' && matches!(w[2], b'B' | b'@'))
}

/// `bytes` as text: in the charset `label` declares when they are valid in it, else in
/// the one detected. Never fails; undecodable bytes become U+FFFD.
pub fn decode(bytes: &[u8], label: Option<&str>, tld: Option<&str>) -> String {
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    let declared = match label.map(|l| (l, charset(l))) {
        None => None,
        Some((_, Some(Charset::Ascii))) => {
            (bytes.is_ascii() && !is_iso_2022_jp(bytes)).then_some(UTF_8)
        }
        Some((_, Some(Charset::Encoding(e)))) => Some(e),
        // Known to mail-parser alone (UTF-7, IBM850…): its decoder.
        Some((l, None)) => {
            if let Some(decoder) =
                mail_parser::decoders::charsets::map::charset_decoder(l.as_bytes())
            {
                return decoder(bytes);
            }
            None
        }
    };
    if let Some(e) = declared {
        if e == UTF_16LE || e == UTF_16BE {
            // A byte-order mark wins over the label's byte order.
            return e.decode(bytes).0.into_owned();
        }
        let bytes = if e == UTF_8 {
            bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
        } else {
            bytes
        };
        if let Some(text) = e.decode_without_bom_handling_and_without_replacement(bytes) {
            return text.into_owned();
        }
    }
    detect(bytes, tld)
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
}

#[cfg(test)]
mod tests;
