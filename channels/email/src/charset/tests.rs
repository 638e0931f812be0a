use super::*;

/// Every alias of the charsets encoding_rs decodes, in Python's codec registry and the
/// IANA character-set registry, with the encoding it must decode as.
#[rustfmt::skip]
const REGISTRIES: &[(&str, &str)] = &[
    ("950", "Big5"), ("big5", "Big5"), ("big5-hkscs", "Big5"), ("big5_hkscs", "Big5"),
    ("big5_tw", "Big5"), ("big5hkscs", "Big5"), ("cp950", "Big5"), ("csbig5", "Big5"),
    ("csbig5hkscs", "Big5"), ("hkscs", "Big5"), ("ms950", "Big5"),
    ("x_mac_trad_chinese", "Big5"), ("cp51932", "EUC-JP"), ("cscp51932", "EUC-JP"),
    ("cseucpkdfmtjapanese", "EUC-JP"), ("euc-jp", "EUC-JP"), ("euc_jis2004", "EUC-JP"),
    ("euc_jis_2004", "EUC-JP"), ("euc_jisx0213", "EUC-JP"), ("euc_jp", "EUC-JP"),
    ("eucjis2004", "EUC-JP"), ("eucjisx0213", "EUC-JP"), ("eucjp", "EUC-JP"),
    ("extended_unix_code_packed_format_for_japanese", "EUC-JP"), ("jisx0213", "EUC-JP"),
    ("u_jis", "EUC-JP"), ("ujis", "EUC-JP"), ("949", "EUC-KR"), ("cp949", "EUC-KR"),
    ("cseuckr", "EUC-KR"), ("csksc56011987", "EUC-KR"), ("euc-kr", "EUC-KR"),
    ("euc_kr", "EUC-KR"), ("euckr", "EUC-KR"), ("iso-ir-149", "EUC-KR"), ("korean", "EUC-KR"),
    ("ks_c_5601", "EUC-KR"), ("ks_c_5601-1987", "EUC-KR"), ("ks_c_5601-1989", "EUC-KR"),
    ("ks_c_5601_1987", "EUC-KR"), ("ks_x_1001", "EUC-KR"), ("ksc5601", "EUC-KR"),
    ("ksc_5601", "EUC-KR"), ("ksx1001", "EUC-KR"), ("ms949", "EUC-KR"), ("uhc", "EUC-KR"),
    ("x_mac_korean", "EUC-KR"), ("936", "GBK"), ("chinese", "GBK"), ("cp936", "GBK"),
    ("csgb2312", "GBK"), ("csgbk", "GBK"), ("csiso58gb231280", "GBK"), ("euc_cn", "GBK"),
    ("euccn", "GBK"), ("eucgb2312_cn", "GBK"), ("gb2312", "GBK"), ("gb2312_1980", "GBK"),
    ("gb2312_80", "GBK"), ("gb_2312-80", "GBK"), ("gbk", "GBK"), ("iso-ir-58", "GBK"),
    ("iso_ir_58", "GBK"), ("ms936", "GBK"), ("windows-936", "GBK"),
    ("x_mac_simp_chinese", "GBK"), ("866", "IBM866"), ("cp866", "IBM866"),
    ("csibm866", "IBM866"), ("ibm866", "IBM866"), ("cp50220", "ISO-2022-JP"),
    ("cscp50220", "ISO-2022-JP"), ("csiso2022jp", "ISO-2022-JP"),
    ("csiso2022jp2", "ISO-2022-JP"), ("iso-2022-jp", "ISO-2022-JP"),
    ("iso-2022-jp-2", "ISO-2022-JP"), ("iso2022_jp", "ISO-2022-JP"),
    ("iso2022_jp_1", "ISO-2022-JP"), ("iso2022_jp_2", "ISO-2022-JP"),
    ("iso2022_jp_2004", "ISO-2022-JP"), ("iso2022_jp_3", "ISO-2022-JP"),
    ("iso2022_jp_ext", "ISO-2022-JP"), ("iso2022jp", "ISO-2022-JP"),
    ("iso2022jp_1", "ISO-2022-JP"), ("iso2022jp_2", "ISO-2022-JP"),
    ("iso2022jp_2004", "ISO-2022-JP"), ("iso2022jp_3", "ISO-2022-JP"),
    ("iso2022jp_ext", "ISO-2022-JP"), ("iso_2022_jp", "ISO-2022-JP"),
    ("iso_2022_jp_1", "ISO-2022-JP"), ("iso_2022_jp_2", "ISO-2022-JP"),
    ("iso_2022_jp_2004", "ISO-2022-JP"), ("iso_2022_jp_3", "ISO-2022-JP"),
    ("iso_2022_jp_ext", "ISO-2022-JP"), ("csisolatin6", "ISO-8859-10"),
    ("iso-8859-10", "ISO-8859-10"), ("iso-ir-157", "ISO-8859-10"),
    ("iso8859_10", "ISO-8859-10"), ("iso_8859-10:1992", "ISO-8859-10"),
    ("iso_8859_10", "ISO-8859-10"), ("iso_8859_10_1992", "ISO-8859-10"),
    ("iso_ir_157", "ISO-8859-10"), ("l6", "ISO-8859-10"), ("latin6", "ISO-8859-10"),
    ("csiso885913", "ISO-8859-13"), ("iso-8859-13", "ISO-8859-13"),
    ("iso8859_13", "ISO-8859-13"), ("iso_8859_13", "ISO-8859-13"), ("l7", "ISO-8859-13"),
    ("latin7", "ISO-8859-13"), ("csiso885914", "ISO-8859-14"), ("iso-8859-14", "ISO-8859-14"),
    ("iso-celtic", "ISO-8859-14"), ("iso-ir-199", "ISO-8859-14"), ("iso8859_14", "ISO-8859-14"),
    ("iso_8859-14", "ISO-8859-14"), ("iso_8859-14:1998", "ISO-8859-14"),
    ("iso_8859_14", "ISO-8859-14"), ("iso_8859_14_1998", "ISO-8859-14"),
    ("iso_celtic", "ISO-8859-14"), ("iso_ir_199", "ISO-8859-14"), ("l8", "ISO-8859-14"),
    ("latin8", "ISO-8859-14"), ("csiso885915", "ISO-8859-15"), ("iso-8859-15", "ISO-8859-15"),
    ("iso8859_15", "ISO-8859-15"), ("iso_8859-15", "ISO-8859-15"),
    ("iso_8859_15", "ISO-8859-15"), ("l9", "ISO-8859-15"), ("latin-9", "ISO-8859-15"),
    ("latin9", "ISO-8859-15"), ("csiso885916", "ISO-8859-16"), ("iso-8859-16", "ISO-8859-16"),
    ("iso-ir-226", "ISO-8859-16"), ("iso8859_16", "ISO-8859-16"),
    ("iso_8859-16", "ISO-8859-16"), ("iso_8859-16:2001", "ISO-8859-16"),
    ("iso_8859_16", "ISO-8859-16"), ("iso_8859_16_2001", "ISO-8859-16"),
    ("iso_ir_226", "ISO-8859-16"), ("l10", "ISO-8859-16"), ("latin10", "ISO-8859-16"),
    ("csisolatin2", "ISO-8859-2"), ("iso-8859-2", "ISO-8859-2"), ("iso-ir-101", "ISO-8859-2"),
    ("iso8859_2", "ISO-8859-2"), ("iso_8859-2", "ISO-8859-2"),
    ("iso_8859-2:1987", "ISO-8859-2"), ("iso_8859_2", "ISO-8859-2"),
    ("iso_8859_2_1987", "ISO-8859-2"), ("iso_ir_101", "ISO-8859-2"), ("l2", "ISO-8859-2"),
    ("latin2", "ISO-8859-2"), ("csisolatin3", "ISO-8859-3"), ("iso-8859-3", "ISO-8859-3"),
    ("iso-ir-109", "ISO-8859-3"), ("iso8859_3", "ISO-8859-3"), ("iso_8859-3", "ISO-8859-3"),
    ("iso_8859-3:1988", "ISO-8859-3"), ("iso_8859_3", "ISO-8859-3"),
    ("iso_8859_3_1988", "ISO-8859-3"), ("iso_ir_109", "ISO-8859-3"), ("l3", "ISO-8859-3"),
    ("latin3", "ISO-8859-3"), ("csisolatin4", "ISO-8859-4"), ("iso-8859-4", "ISO-8859-4"),
    ("iso-ir-110", "ISO-8859-4"), ("iso8859_4", "ISO-8859-4"), ("iso_8859-4", "ISO-8859-4"),
    ("iso_8859-4:1988", "ISO-8859-4"), ("iso_8859_4", "ISO-8859-4"),
    ("iso_8859_4_1988", "ISO-8859-4"), ("iso_ir_110", "ISO-8859-4"), ("l4", "ISO-8859-4"),
    ("latin4", "ISO-8859-4"), ("csisolatincyrillic", "ISO-8859-5"), ("cyrillic", "ISO-8859-5"),
    ("iso-8859-5", "ISO-8859-5"), ("iso-ir-144", "ISO-8859-5"), ("iso8859_5", "ISO-8859-5"),
    ("iso_8859-5", "ISO-8859-5"), ("iso_8859-5:1988", "ISO-8859-5"),
    ("iso_8859_5", "ISO-8859-5"), ("iso_8859_5_1988", "ISO-8859-5"),
    ("iso_ir_144", "ISO-8859-5"), ("arabic", "ISO-8859-6"), ("asmo-708", "ISO-8859-6"),
    ("asmo_708", "ISO-8859-6"), ("csiso88596e", "ISO-8859-6"), ("csiso88596i", "ISO-8859-6"),
    ("csisolatinarabic", "ISO-8859-6"), ("ecma-114", "ISO-8859-6"), ("ecma_114", "ISO-8859-6"),
    ("iso-8859-6", "ISO-8859-6"), ("iso-8859-6-e", "ISO-8859-6"),
    ("iso-8859-6-i", "ISO-8859-6"), ("iso-ir-127", "ISO-8859-6"), ("iso8859_6", "ISO-8859-6"),
    ("iso_8859-6", "ISO-8859-6"), ("iso_8859-6-e", "ISO-8859-6"),
    ("iso_8859-6-i", "ISO-8859-6"), ("iso_8859-6:1987", "ISO-8859-6"),
    ("iso_8859_6", "ISO-8859-6"), ("iso_8859_6_1987", "ISO-8859-6"),
    ("iso_ir_127", "ISO-8859-6"), ("csisolatingreek", "ISO-8859-7"), ("ecma-118", "ISO-8859-7"),
    ("ecma_118", "ISO-8859-7"), ("elot_928", "ISO-8859-7"), ("greek", "ISO-8859-7"),
    ("greek8", "ISO-8859-7"), ("iso-8859-7", "ISO-8859-7"), ("iso-ir-126", "ISO-8859-7"),
    ("iso8859_7", "ISO-8859-7"), ("iso_8859-7", "ISO-8859-7"),
    ("iso_8859-7:1987", "ISO-8859-7"), ("iso_8859_7", "ISO-8859-7"),
    ("iso_8859_7_1987", "ISO-8859-7"), ("iso_ir_126", "ISO-8859-7"),
    ("csiso88598e", "ISO-8859-8"), ("csisolatinhebrew", "ISO-8859-8"), ("hebrew", "ISO-8859-8"),
    ("iso-8859-8", "ISO-8859-8"), ("iso-8859-8-e", "ISO-8859-8"), ("iso-ir-138", "ISO-8859-8"),
    ("iso8859_8", "ISO-8859-8"), ("iso_8859-8", "ISO-8859-8"), ("iso_8859-8-e", "ISO-8859-8"),
    ("iso_8859-8:1988", "ISO-8859-8"), ("iso_8859_8", "ISO-8859-8"),
    ("iso_8859_8_1988", "ISO-8859-8"), ("iso_ir_138", "ISO-8859-8"),
    ("csiso88598i", "ISO-8859-8-I"), ("iso-8859-8-i", "ISO-8859-8-I"),
    ("iso_8859-8-i", "ISO-8859-8-I"), ("cskoi8r", "KOI8-R"), ("koi8-r", "KOI8-R"),
    ("koi8_r", "KOI8-R"), ("cskoi8u", "KOI8-U"), ("koi8-u", "KOI8-U"), ("koi8_u", "KOI8-U"),
    ("932", "Shift_JIS"), ("cp932", "Shift_JIS"), ("csshiftjis", "Shift_JIS"),
    ("cswindows31j", "Shift_JIS"), ("ms932", "Shift_JIS"), ("ms_kanji", "Shift_JIS"),
    ("mskanji", "Shift_JIS"), ("s_jis", "Shift_JIS"), ("s_jis_2004", "Shift_JIS"),
    ("s_jisx0213", "Shift_JIS"), ("shift_jis", "Shift_JIS"), ("shift_jis_2004", "Shift_JIS"),
    ("shift_jisx0213", "Shift_JIS"), ("shiftjis", "Shift_JIS"), ("shiftjis2004", "Shift_JIS"),
    ("shiftjisx0213", "Shift_JIS"), ("sjis", "Shift_JIS"), ("sjis_2004", "Shift_JIS"),
    ("sjisx0213", "Shift_JIS"), ("windows-31j", "Shift_JIS"), ("x_mac_japanese", "Shift_JIS"),
    ("646", "US-ASCII"), ("ansi_x3.4-1968", "US-ASCII"), ("ansi_x3.4-1986", "US-ASCII"),
    ("ansi_x3.4_1968", "US-ASCII"), ("ansi_x3.4_1986", "US-ASCII"),
    ("ansi_x3_4_1968", "US-ASCII"), ("ascii", "US-ASCII"), ("cp367", "US-ASCII"),
    ("csascii", "US-ASCII"), ("ibm367", "US-ASCII"), ("iso-ir-6", "US-ASCII"),
    ("iso646-us", "US-ASCII"), ("iso646_us", "US-ASCII"), ("iso_646.irv:1991", "US-ASCII"),
    ("iso_646.irv_1991", "US-ASCII"), ("iso_ir_6", "US-ASCII"), ("us", "US-ASCII"),
    ("us-ascii", "US-ASCII"), ("us_ascii", "US-ASCII"), ("csutf16be", "UTF-16BE"),
    ("unicodebigunmarked", "UTF-16BE"), ("utf-16be", "UTF-16BE"), ("utf_16_be", "UTF-16BE"),
    ("utf_16be", "UTF-16BE"), ("csutf16", "UTF-16LE"), ("csutf16le", "UTF-16LE"),
    ("u16", "UTF-16LE"), ("unicodelittleunmarked", "UTF-16LE"), ("utf-16", "UTF-16LE"),
    ("utf-16le", "UTF-16LE"), ("utf16", "UTF-16LE"), ("utf_16", "UTF-16LE"),
    ("utf_16_le", "UTF-16LE"), ("utf_16le", "UTF-16LE"), ("cp65001", "UTF-8"),
    ("csutf8", "UTF-8"), ("u8", "UTF-8"), ("utf", "UTF-8"), ("utf-8", "UTF-8"),
    ("utf8", "UTF-8"), ("utf8_ucs2", "UTF-8"), ("utf8_ucs4", "UTF-8"), ("utf_8", "UTF-8"),
    ("csgb18030", "gb18030"), ("gb18030", "gb18030"), ("gb18030_2000", "gb18030"),
    ("csmacintosh", "macintosh"), ("mac", "macintosh"), ("mac_roman", "macintosh"),
    ("macintosh", "macintosh"), ("macroman", "macintosh"), ("1250", "windows-1250"),
    ("cp1250", "windows-1250"), ("cswindows1250", "windows-1250"),
    ("windows-1250", "windows-1250"), ("windows_1250", "windows-1250"),
    ("1251", "windows-1251"), ("cp1251", "windows-1251"), ("cswindows1251", "windows-1251"),
    ("windows-1251", "windows-1251"), ("windows_1251", "windows-1251"),
    ("1252", "windows-1252"), ("8859", "windows-1252"), ("cp1252", "windows-1252"),
    ("cp819", "windows-1252"), ("csisolatin1", "windows-1252"),
    ("cswindows1252", "windows-1252"), ("ibm819", "windows-1252"),
    ("iso-8859-1", "windows-1252"), ("iso-ir-100", "windows-1252"), ("iso8859", "windows-1252"),
    ("iso8859_1", "windows-1252"), ("iso_8859-1", "windows-1252"),
    ("iso_8859-1:1987", "windows-1252"), ("iso_8859_1", "windows-1252"),
    ("iso_8859_1_1987", "windows-1252"), ("iso_ir_100", "windows-1252"), ("l1", "windows-1252"),
    ("latin", "windows-1252"), ("latin1", "windows-1252"), ("latin_1", "windows-1252"),
    ("windows-1252", "windows-1252"), ("windows_1252", "windows-1252"),
    ("1253", "windows-1253"), ("cp1253", "windows-1253"), ("cswindows1253", "windows-1253"),
    ("windows-1253", "windows-1253"), ("windows_1253", "windows-1253"),
    ("1254", "windows-1254"), ("cp1254", "windows-1254"), ("csisolatin5", "windows-1254"),
    ("cswindows1254", "windows-1254"), ("iso-8859-9", "windows-1254"),
    ("iso-ir-148", "windows-1254"), ("iso8859_9", "windows-1254"),
    ("iso_8859-9", "windows-1254"), ("iso_8859-9:1989", "windows-1254"),
    ("iso_8859_9", "windows-1254"), ("iso_8859_9_1989", "windows-1254"),
    ("iso_ir_148", "windows-1254"), ("l5", "windows-1254"), ("latin5", "windows-1254"),
    ("windows-1254", "windows-1254"), ("windows_1254", "windows-1254"),
    ("1255", "windows-1255"), ("cp1255", "windows-1255"), ("cswindows1255", "windows-1255"),
    ("windows-1255", "windows-1255"), ("windows_1255", "windows-1255"),
    ("1256", "windows-1256"), ("cp1256", "windows-1256"), ("cswindows1256", "windows-1256"),
    ("windows-1256", "windows-1256"), ("windows_1256", "windows-1256"),
    ("1257", "windows-1257"), ("cp1257", "windows-1257"), ("cswindows1257", "windows-1257"),
    ("windows-1257", "windows-1257"), ("windows_1257", "windows-1257"),
    ("1258", "windows-1258"), ("cp1258", "windows-1258"), ("cswindows1258", "windows-1258"),
    ("windows-1258", "windows-1258"), ("windows_1258", "windows-1258"),
    ("cp874", "windows-874"), ("cstis620", "windows-874"), ("cswindows874", "windows-874"),
    ("iso-8859-11", "windows-874"), ("iso8859_11", "windows-874"),
    ("iso_8859_11", "windows-874"), ("iso_8859_11_2001", "windows-874"),
    ("iso_ir_166", "windows-874"), ("thai", "windows-874"), ("tis-620", "windows-874"),
    ("tis620", "windows-874"), ("tis_620", "windows-874"), ("tis_620_0", "windows-874"),
    ("tis_620_2529_0", "windows-874"), ("tis_620_2529_1", "windows-874"),
    ("windows-874", "windows-874"), ("mac_cyrillic", "x-mac-cyrillic"),
    ("maccyrillic", "x-mac-cyrillic"),
];

#[test]
fn every_alias_of_both_registries_names_its_charset_in_any_case() {
    for (alias, expected) in REGISTRIES {
        for label in [alias.to_string(), alias.to_ascii_uppercase()] {
            let got = match charset(&label) {
                Some(Charset::Ascii) => "US-ASCII",
                Some(Charset::Encoding(e)) => e.name(),
                None => "nothing",
            };
            assert_eq!(got, *expected, "{label}");
        }
    }
    assert_eq!(charset("x-unknown-charset"), None);
    assert_eq!(charset("iso-2022-kr"), None, "no decoder: detected instead");
}

#[test]
fn legacy_aliases_decode_real_bytes_as_their_canonical_label_does() {
    for (encoding, text, aliases) in [
        (
            GBK,
            "您好，我的订单还没有到。",
            &[
                "gb2312",
                "euc_cn",
                "EUC-CN",
                "cp936",
                "ms936",
                "csGB2312",
                "GB_2312-80",
                "x-gbk",
                "iso-ir-58",
                "chinese",
                "csISO58GB231280",
                "windows-936",
            ][..],
        ),
        (
            GB18030,
            "退款申请：订单号 12345",
            &["gb18030", "GB18030-2000", "csGB18030"][..],
        ),
        (
            BIG5,
            "請問我的訂單何時出貨？",
            &[
                "big5",
                "cp950",
                "ms950",
                "big5hkscs",
                "Big5-HKSCS",
                "big5_tw",
                "csBig5",
            ][..],
        ),
        (
            SHIFT_JIS,
            "注文がまだ届きません。",
            &[
                "shift_jis",
                "sjis",
                "cp932",
                "ms932",
                "MS_Kanji",
                "windows-31j",
                "shift_jis_2004",
            ][..],
        ),
        (
            EUC_JP,
            "注文がまだ届きません。",
            &["euc-jp", "ujis", "u_jis", "eucjp", "euc_jis_2004"][..],
        ),
        (
            ISO_2022_JP,
            "注文がまだ届きません。",
            &["iso-2022-jp", "csISO2022JP", "iso2022_jp_2"][..],
        ),
        (
            EUC_KR,
            "주문이 아직 도착하지 않았습니다.",
            &[
                "euc-kr",
                "cp949",
                "uhc",
                "ks_c_5601-1987",
                "korean",
                "ksc5601",
            ][..],
        ),
        (
            KOI8_R,
            "Мой заказ ещё не пришёл.",
            &["koi8-r", "cskoi8r"][..],
        ),
        (
            WINDOWS_1251,
            "Мой заказ ещё не пришёл.",
            &["windows-1251", "cp1251", "1251"][..],
        ),
        (
            WINDOWS_1250,
            "Zamówienie jeszcze nie dotarło.",
            &["windows-1250", "cp1250"][..],
        ),
        (
            ISO_8859_2,
            "Zamówienie jeszcze nie dotarło.",
            &["iso-8859-2", "latin2", "l2", "iso_ir_101", "iso8859_2"][..],
        ),
        (
            WINDOWS_1252,
            "Réclamation: la commande est arrivée cassée",
            &["iso-8859-1", "latin_1", "l1", "cp819", "iso_8859_1_1987"][..],
        ),
        (
            ISO_8859_7,
            "Η παραγγελία δεν έφτασε.",
            &["iso-8859-7", "greek", "elot_928"][..],
        ),
        (
            WINDOWS_1254,
            "Sipariş henüz gelmedi.",
            &["iso-8859-9", "latin5", "cp1254"][..],
        ),
        (
            ISO_8859_15,
            "Prix : 12 €",
            &["iso-8859-15", "latin9", "l9"][..],
        ),
    ] {
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{}", encoding.name());
        assert_ne!(
            &bytes[..],
            text.as_bytes(),
            "{}: real legacy bytes",
            encoding.name()
        );
        for alias in aliases {
            assert_eq!(decode(&bytes, Some(alias), None), text, "{alias}");
        }
    }
}

#[test]
fn text_with_no_label_or_a_wrong_one_is_detected() {
    let text = "您好，我的订单还没有到，请帮忙查询一下物流信息。谢谢！";
    let (gbk, _, _) = GBK.encode(text);
    // No label, a label its bytes are not valid in, a label no registry knows, and
    // US-ASCII over 8-bit bytes.
    for label in [None, Some("utf-8"), Some("x-unknown"), Some("us-ascii")] {
        assert_eq!(decode(&gbk, label, Some("cn")), text, "{label:?}");
    }
    let japanese = "ご注文の商品はまだ届いておりません。確認をお願いいたします。";
    let (sjis, _, _) = SHIFT_JIS.encode(japanese);
    assert_eq!(decode(&sjis, None, Some("jp")), japanese);
    let (jis, _, _) = ISO_2022_JP.encode(japanese);
    assert_eq!(decode(&jis, None, None), japanese, "seven-bit ISO-2022-JP");
    let russian = "Здравствуйте, мой заказ до сих пор не пришёл, помогите пожалуйста.";
    let (cp1251, _, _) = WINDOWS_1251.encode(russian);
    assert_eq!(decode(&cp1251, Some("utf-8"), Some("ru")), russian);
    // UTF-8 under a label it is not valid in.
    assert_eq!(decode(text.as_bytes(), Some("iso-2022-jp"), None), text);
    assert_eq!(decode(text.as_bytes(), Some("us-ascii"), None), text);
    // What is valid in its label stays as labelled (as browsers do).
    assert_eq!(decode("Olá".as_bytes(), Some("utf-8"), None), "Olá");
    assert_eq!(decode(b"caf\xe9", Some("latin1"), None), "café");
}

#[test]
fn labels_only_mail_parser_decodes_are_left_to_it_and_byte_order_marks_win() {
    assert_eq!(
        decode(b"+ZYeB9FH6ckh5Pg-", Some("utf-7"), None),
        "文致出版社"
    );
    assert_eq!(decode(b"\xff\xfeh\x00i\x00", Some("utf-16be"), None), "hi");
    assert_eq!(decode(b"\xef\xbb\xbfhi", Some("utf-8"), None), "hi");
    assert_eq!(tld("wang@Mail.Example.CN").as_deref(), Some("cn"));
    assert_eq!(tld("nobody"), Some("nobody".into()));
    assert_eq!(tld("a@b.c_d"), None);
}
