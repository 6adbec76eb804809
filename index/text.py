"""Text folding for search and for dedup keys: `fold` and `key`.

Both run per record on the search hot path, so they are built from one NFKC call,
one `str.translate` table and a few precompiled regexes that only run when the
character they care about is present (checked with cheap `in` tests first).

What `fold` makes equal (and why each is safe):
- NFKC: full-width ASCII/digits -> ASCII, half-width katakana (ｿﾌﾄｳｪｱ) -> ソフトウェア,
  compatibility ideographs -> unified ones, Ⅲ -> III, ideographic space -> space.
- casefold, and Latin diacritics dropped (Sōseki == Soseki): romanisations differ in macrons.
- hiragana -> katakana (we fold *to* katakana because NDL readings are katakana).
- small kana -> large (ァ->ア, ッ->ツ, ョ->ヨ, ヵ->カ, ヶ->ケ): older NDL readings and many
  OPACs write small kana as large ones (キヨウ for キョウ).
- ヴァ/ヴィ/ヴ/ヴェ/ヴォ -> バ/ビ/ブ/ベ/ボ: ヴ only occurs in loanwords whose バ-row spelling is an
  accepted variant (ヴァイオリン/バイオリン). ヷヸヹヺ likewise.
- ヰ/ヱ/ヲ -> イ/エ/オ and ヂ/ヅ -> ジ/ズ: identical pronunciation; NDL readings write the
  particle を as オ and ぢ/づ as ジ/ズ. (We do *not* fold ハ/ワ or ヘ/エ: not safe outside particles.)
- iteration marks expanded: 々/〻 repeat the previous character (佐々木 == 佐佐木),
  ヽ/ゝ repeat the previous kana, ヾ/ゞ repeat it voiced.
- long vowels: a word-final ー is dropped (コンピューター == コンピュータ, the JIS Z 8301 variant);
  a wave dash or hyphen between kana becomes ー (よ～く == よーく). Medial ー is kept by `fold`
  (ビール != ビル) but dropped by `key`, which is lossy on purpose.
- old-form kanji (旧字体) -> new forms (澤->沢, 眞->真, 龍->竜, 衞->衛, 濱->浜, 邊->辺 …):
  headings and title pages disagree (池澤夏樹 / 池沢, 夏樹; 河南儀兵衞 / 河南儀兵衛).
- whitespace runs collapsed to one space.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Kyūjitai (and a few common name variants) -> the form modern catalogues use.
# Pairs are written as "old new" so the table stays reviewable.
_KANJI_VARIANTS = [
    "亞亜",
    "惡悪",
    "壓圧",
    "圍囲",
    "爲為",
    "醫医",
    "壹壱",
    "稻稲",
    "飮飲",
    "隱隠",
    "營営",
    "榮栄",
    "衞衛",
    "驛駅",
    "圓円",
    "鹽塩",
    "奧奥",
    "應応",
    "歐欧",
    "毆殴",
    "櫻桜",
    "假仮",
    "價価",
    "畫画",
    "會会",
    "囘回",
    "壞壊",
    "懷懐",
    "繪絵",
    "擴拡",
    "殼殻",
    "覺覚",
    "學学",
    "嶽岳",
    "樂楽",
    "渴渇",
    "卷巻",
    "陷陥",
    "勸勧",
    "寬寛",
    "歡歓",
    "觀観",
    "關関",
    "顏顔",
    "歸帰",
    "氣気",
    "龜亀",
    "僞偽",
    "戲戯",
    "犧犠",
    "舊旧",
    "據拠",
    "擧挙",
    "峽峡",
    "挾挟",
    "狹狭",
    "曉暁",
    "區区",
    "驅駆",
    "勳勲",
    "徑径",
    "惠恵",
    "揭掲",
    "溪渓",
    "經経",
    "繼継",
    "莖茎",
    "螢蛍",
    "輕軽",
    "鷄鶏",
    "藝芸",
    "缺欠",
    "儉倹",
    "劍剣",
    "圈圏",
    "檢検",
    "權権",
    "獻献",
    "縣県",
    "險険",
    "顯顕",
    "驗験",
    "嚴厳",
    "效効",
    "廣広",
    "恆恒",
    "鑛鉱",
    "號号",
    "國国",
    "濟済",
    "碎砕",
    "齋斎",
    "齊斉",
    "劑剤",
    "雜雑",
    "參参",
    "慘惨",
    "棧桟",
    "蠶蚕",
    "贊賛",
    "殘残",
    "絲糸",
    "齒歯",
    "兒児",
    "辭辞",
    "濕湿",
    "實実",
    "寫写",
    "釋釈",
    "壽寿",
    "收収",
    "從従",
    "澁渋",
    "獸獣",
    "縱縦",
    "肅粛",
    "處処",
    "敍叙",
    "奬奨",
    "將将",
    "燒焼",
    "稱称",
    "證証",
    "乘乗",
    "剩剰",
    "壤壌",
    "孃嬢",
    "條条",
    "淨浄",
    "疊畳",
    "穰穣",
    "讓譲",
    "釀醸",
    "觸触",
    "寢寝",
    "愼慎",
    "眞真",
    "盡尽",
    "圖図",
    "粹粋",
    "醉酔",
    "隨随",
    "髓髄",
    "數数",
    "樞枢",
    "聲声",
    "靜静",
    "攝摂",
    "竊窃",
    "專専",
    "戰戦",
    "淺浅",
    "潛潜",
    "纖繊",
    "踐践",
    "錢銭",
    "禪禅",
    "雙双",
    "壯壮",
    "搜捜",
    "插挿",
    "爭争",
    "總総",
    "聰聡",
    "莊荘",
    "裝装",
    "騷騒",
    "增増",
    "臟臓",
    "藏蔵",
    "屬属",
    "續続",
    "墮堕",
    "體体",
    "對対",
    "帶帯",
    "滯滞",
    "臺台",
    "瀧滝",
    "擇択",
    "澤沢",
    "單単",
    "擔担",
    "膽胆",
    "團団",
    "彈弾",
    "斷断",
    "癡痴",
    "遲遅",
    "晝昼",
    "蟲虫",
    "鑄鋳",
    "廳庁",
    "聽聴",
    "鎭鎮",
    "遞逓",
    "鐵鉄",
    "轉転",
    "點点",
    "傳伝",
    "黨党",
    "盜盗",
    "燈灯",
    "當当",
    "鬪闘",
    "德徳",
    "獨独",
    "讀読",
    "屆届",
    "繩縄",
    "貳弐",
    "惱悩",
    "腦脳",
    "廢廃",
    "拜拝",
    "賣売",
    "麥麦",
    "發発",
    "髮髪",
    "拔抜",
    "蠻蛮",
    "祕秘",
    "濱浜",
    "甁瓶",
    "拂払",
    "佛仏",
    "竝並",
    "變変",
    "邊辺",
    "邉辺",
    "辨弁",
    "瓣弁",
    "辯弁",
    "舖舗",
    "寶宝",
    "豐豊",
    "沒没",
    "飜翻",
    "每毎",
    "萬万",
    "滿満",
    "默黙",
    "彌弥",
    "藥薬",
    "譯訳",
    "豫予",
    "餘余",
    "與与",
    "譽誉",
    "搖揺",
    "樣様",
    "謠謡",
    "來来",
    "賴頼",
    "亂乱",
    "覽覧",
    "龍竜",
    "兩両",
    "獵猟",
    "綠緑",
    "壘塁",
    "淚涙",
    "勵励",
    "禮礼",
    "隸隷",
    "靈霊",
    "齡齢",
    "戀恋",
    "爐炉",
    "勞労",
    "樓楼",
    "錄録",
    "灣湾",
    "髙高",
    "﨑崎",
    "嵜崎",
    "嶋島",
    "冨富",
    "敎教",
    "卽即",
    "晉晋",
    "曾曽",
    "淸清",
    "靑青",
    "黑黒",
    "郞郎",
    "祿禄",
    "禰祢",
    "槪概",
    "擊撃",
    "澷漫",
    "窻窓",
    "舘館",
    "廐厩",
    "顚顛",
    "巢巣",
    "狀状",
]

_SMALL_KANA = "ァアィイゥウェエォオッツャヤュユョヨヮワヵカヶケ"
_OLD_KANA = "ヰイヱエヲオヂジヅズ"


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    # Hiragana ぁ..ゖ and the iteration marks ゝゞ sit exactly 0x60 below their katakana.
    for code in range(0x3041, 0x3097):
        table[code] = chr(code + 0x60)
    table[ord("ゝ")] = "ヽ"
    table[ord("ゞ")] = "ヾ"
    for old, new in zip(_SMALL_KANA[::2], _SMALL_KANA[1::2], strict=True):
        table[ord(old)] = new
    # Katakana phonetic extensions (small ㇰ ㇱ … used for Ainu) -> their large kana.
    for code, large in zip(range(0x31F0, 0x3200), "クシストヌハヒフヘホムラリルレロ", strict=True):
        table[code] = large
    for old, new in zip(_OLD_KANA[::2], _OLD_KANA[1::2], strict=True):
        table[ord(old)] = new
    for ch, new in zip("ヷヸヹヺ", "バビベボ", strict=True):
        table[ord(ch)] = new
    for pair in _KANJI_VARIANTS:
        table[ord(pair[0])] = pair[1]
    # Apply the hiragana step to the targets too: ゐ -> ヰ -> イ in one pass.
    for code, target in list(table.items()):
        if len(target) == 1 and ord(target) in table and table[ord(target)] != target:
            table[code] = table[ord(target)]
    return table


_FOLD_MAP = _build_table()
# As a list over the whole BMP rather than a dict: str.translate looks every character up,
# and a dict miss (every kanji not in the table) costs a KeyError inside CPython — 3x slower.
# Unchanged characters map to their own code point. ~2 MB, built once at import.
_FOLD_TABLE: list[int | str] = list(range(0x10000))
for _code, _target in _FOLD_MAP.items():
    _FOLD_TABLE[_code] = _target

# ヴ + a (now large) vowel, then a bare ヴ. Runs after the table, so ヴァ already reads ヴア.
_VU = re.compile(r"ヴ([アイエオ]?)")
_VU_MAP = {"ア": "バ", "イ": "ビ", "": "ブ", "エ": "ベ", "オ": "ボ"}

_ITERATION_MARKS = frozenset("々〻ヽヾ")
_VOICED: dict[str, str] = {}
for _code in range(0x30A1, 0x30FB):
    _voiced = unicodedata.normalize("NFC", chr(_code) + "\u3099")
    if len(_voiced) == 1:
        _VOICED[chr(_code)] = _voiced

# A wave dash / hyphen between kana is a long-vowel mark typed with the wrong key.
_DASH_AS_LONG_VOWEL = re.compile(r"(?<=[ァ-ヺー])[~〜\-‐](?=[ァ-ヺ])")
# Starts with the literal so the regex engine can skip ahead; the preceding katakana is
# checked in the callback (a lookbehind would be tried at every position: 3x slower).
_LONG_VOWEL_RUN = re.compile(r"ー+(?![ァ-ヺー])")
_LATIN_WITH_DIACRITIC = re.compile(r"[À-ɏḀ-ỿ]")
_COMBINING_LATIN = re.compile(r"[̀-ͯ]")
_NON_KEY = re.compile(r"[\W_ー]+")

# Titles and names recur across members and searches; bounded so a long-lived broker stays
# small (~16k entries, a few MB: a 1,200-record page has ~1-2k distinct strings).
_FOLD_CACHE_SIZE = 1 << 14


def _expand_iteration_marks(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch in _ITERATION_MARKS and out and out[-1] != _PIECE_SEPARATOR:
            previous = out[-1]
            out.append(_VOICED.get(previous, previous) if ch == "ヾ" else previous)
        else:
            out.append(ch)
    return "".join(out)


def _drop_word_final(match: re.Match[str]) -> str:
    """Drop a word-final ー after katakana (コンピューター -> コンピュータ); keep any other."""
    start = match.start()
    return "" if start and "ァ" <= match.string[start - 1] <= "ヺ" else match.group()


def _strip_latin_diacritics(text: str) -> str:
    # NFD also splits kana voicing marks; NFC puts them back, only U+0300-036F are dropped.
    return unicodedata.normalize("NFC", _COMBINING_LATIN.sub("", unicodedata.normalize("NFD", text)))


@lru_cache(maxsize=_FOLD_CACHE_SIZE)
def fold(text: str) -> str:
    """Normalise for matching: width, case, kana, long vowels, iteration marks, old kanji.

    >>> fold("ｿﾌﾄｳｪｱ") == fold("そふとうぇあ") == "ソフトウエア"
    True
    """
    if text.isascii():  # fast path: most Western titles and all ISBN-ish strings
        return " ".join(text.casefold().split())
    text = unicodedata.normalize("NFKC", text).casefold()
    if _LATIN_WITH_DIACRITIC.search(text):
        text = _strip_latin_diacritics(text)
    text = text.translate(_FOLD_TABLE)
    # Each rare step is guarded by a plain substring test, far cheaper than running its regex.
    if "ヴ" in text:
        text = _VU.sub(lambda m: _VU_MAP[m.group(1)], text)
    if "々" in text or "ヽ" in text or "ヾ" in text or "〻" in text:
        text = _expand_iteration_marks(text)
    if "~" in text or "〜" in text or "-" in text or "‐" in text:
        text = _DASH_AS_LONG_VOWEL.sub("ー", text)
    if "ー" in text:
        text = _LONG_VOWEL_RUN.sub(_drop_word_final, text)
    if "  " in text or text[:1] == " " or text[-1:] == " " or "\n" in text or "\t" in text or "\r" in text:
        text = " ".join(text.split())
    return text


_fold_uncached = fold.__wrapped__  # `keys` caches its own result; no need to cache the joined text twice


@lru_cache(maxsize=_FOLD_CACHE_SIZE)
def key(text: str) -> str:
    """`fold`, then drop everything that is not a letter or digit (and every ー).

    Used for blocking and dedup keys: spaces, ・, ：, 「」, quotes, brackets, ISBD
    punctuation all vanish, so '暗号技術入門 : 秘密の国のアリス' and '暗号技術入門：秘密の国のアリス'
    give the same key.
    """
    return _NON_KEY.sub("", fold(text))


_PIECE_SEPARATOR = "\x00"  # survives every folding step and is never in a title


_NON_KEY_KEEP_SEPARATOR = re.compile(r"[^\w\x00]+|[_ー]+")


@lru_cache(maxsize=_FOLD_CACHE_SIZE)
def keys(*pieces: str) -> tuple[str, ...]:
    """`key` of several pieces of one title (main, subtitle, part) in one pass.

    Each `fold` call has a fixed cost (NFKC, casefold, the guarded regexes); a title cut
    into three pieces and its reading into three more would pay it six times.
    """
    folded = _NON_KEY_KEEP_SEPARATOR.sub("", _fold_uncached(_PIECE_SEPARATOR.join(pieces)))
    return tuple(folded.split(_PIECE_SEPARATOR))


_KANA_ONLY = re.compile(r"[ァ-ヺー]+")


def is_kana_key(folded: str) -> bool:
    """True when a folded key is katakana only (a title written in kana doubles as its reading)."""
    return bool(folded) and _KANA_ONLY.fullmatch(folded) is not None


_CJK_OR_KANA = re.compile(r"[぀-ヿ㐀-䶿一-鿿豈-﫿]")


def has_cjk(text: str) -> bool:
    """True when `text` contains kana or kanji."""
    return _CJK_OR_KANA.search(text) is not None
