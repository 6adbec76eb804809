"""Author and publisher names -> comparison keys.

Members write one person many ways: the NDL heading '夏目, 漱石, 1867-1916', a
statement of responsibility '夏目漱石 著', a reading 'ナツメ, ソウセキ', Ishikawa's
'尾崎雅嘉∥著', Western 'Natsume, Sōseki' or 'Soseki Natsume'. `normalize_author` maps
all of these to one key:

- life dates and period notes are dropped ('1963-', '-1936', '1867-1916', 'pub. 2016',
  '江戸後期', '文化-文政頃'); a generation mark is kept ('柳亭, 種彦 2世' is not 1世);
- roles are dropped: 著, 編, 訳, 作, 文, 絵, 監修, 編著, [著], ∥編, 'author', 'ed.' …
  (文/作/絵/画 only after a space or bracket: 耕作 and 千絵 are given names);
- Japanese/Chinese names keep their order and lose the comma and spaces
  ('結城, 浩' == '結城浩' == '結城 浩');
- Latin-script names are diacritic-folded and their tokens sorted, because heading
  order ('Natsume, Soseki') and title-page order ('Soseki Natsume') both occur.

`split_names` cuts a statement of responsibility into names first.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from index.text import fold, has_cjk

# Roles that may be glued to the name ('津田宗幸著'): none of them ends a real given name.
_GLUED_ROLES = (
    "編著|共著|共編|編訳|監訳|監修|編集代表|編集|編纂|編輯|責任編集|日本語版監修|代表監修|著・編|編・著|著|編|訳|撰"
)
# Roles that are also common name endings (耕作, 千絵, 一文): only stripped after a space/bracket.
_SPACED_ROLES = (
    "原作|原著|脚本|作曲|音楽|写真|撮影|漫画|まんが|イラスト|解説|校注|校訂|校閲|作・絵|文・絵|絵・文|"
    "作|文|絵|画|注|述|選|写|校|さく|え|ぶん|やく|ほか|他|著者代表|編集・訳|編集・著"
)
_ROLE_LIST = rf"(?:{_GLUED_ROLES}|{_SPACED_ROLES})(?:\s*[・/,、]\s*(?:{_GLUED_ROLES}|{_SPACED_ROLES}))*"
_TRAILING_ROLES = re.compile(
    rf"(?:\s*[\[［(（]\s*(?:ほか\s*)?{_ROLE_LIST}\s*[\]］)）]"  # [著], [ほか著], (編)
    rf"|\s+{_ROLE_LIST}"  # ' 著', ' 文', ' 監修・編集代表/編著'
    rf"|(?:{_GLUED_ROLES})(?:\s*[・/]\s*(?:{_GLUED_ROLES}))*"  # '…著', '…編著'
    r")\s*$"
)
_LATIN_ROLES = re.compile(
    r"[,\s]+(?:\(?(?:eds?|comp|tr|trans|ill|illus|joint author|author|editor|compiler|translator|illustrator)\.?\)?)\s*$"
    r"|\s*\[?et al\.?\]?\s*$",
    re.IGNORECASE,
)
_LATIN_PREFIX = re.compile(
    r"^\s*(?:(?:written|edited|compiled|illustrated|translated|sponsored|prepared|selected)\s+)?by\s+", re.IGNORECASE
)
# Ishikawa-style '尾崎雅嘉∥著大石真虎∥画': the role after ∥ ends one name.
_DOUBLE_BAR_ROLE = re.compile(
    r"∥\s*\[?(?:編・画図|編輯|編次|画図|述画|編画|原著|共著|代作|監修|編著|ほか画|著|編|画|作|校|訳|述|撰|注|選|補)+\]?"
)
_LIST_SEPARATORS = re.compile(r"\s*(?:;|；|\s/\s|／|、|\s=\s|\band\b|&)\s*")

_LIFE_DATES = re.compile(
    r"^\s*(?:"
    r"\d{3,4}\s*\??\s*[-–~～]\s*(?:\d{3,4}\??)?"  # 1963-, 1867-1916, 1949-?
    r"|[-–~～]\s*\d{3,4}"  # -1936
    r"|\d{3,4}"  # 1949
    r"|(?:b|d|fl|pub)\.\s*\d{3,4}"  # b. 1950, pub. 2016
    r"|生没年不詳|\d{3,4}\s*(?:生|没)"
    r"|(?:[^\s,]{1,4}(?:時代|前期|中期|後期|末期|初期|頃))(?:\s*[-–~～]\s*[^\s,]{1,4}(?:時代|前期|中期|後期|末期|初期|頃))?"
    r"|[^\s,]{1,3}\s*[-–~～]\s*[^\s,]{1,3}頃"  # 文化-文政頃
    r")\s*$"
)
_GENERATION = re.compile(r"[(（]?\s*(\d{1,2}|[一二三四五六七八九十初]{1,3})\s*(?:世|代目?)\s*[)）]?")
_BRACKET_NOTE = re.compile(r"\s*[\[［][^\]］]*[\]］]\s*$")  # trailing '[ほか]'
_NON_NAME = re.compile(r"[\W_]+")
_LATIN_TOKEN = re.compile(r"[a-z0-9]+")
_LATIN_STOP = frozenset({"et", "al", "by", "and"})

_NAME_CACHE_SIZE = 1 << 13


def _strip_dates(parts: list[str]) -> list[str]:
    return [p for p in parts if p.strip() and _LIFE_DATES.match(p) is None]


def _strip_roles(text: str) -> str:
    previous = None
    while previous != text:  # '… 編 ; …' already split; roles can stack: '[著] 編'
        previous = text
        text = _TRAILING_ROLES.sub("", text)
        text = _BRACKET_NOTE.sub("", text) if text.endswith(("]", "］")) else text
        text = _LATIN_ROLES.sub("", text)
    return text.strip(" ,、")


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def split_names(statement: str) -> tuple[str, ...]:
    """Cut a heading list or statement of responsibility into single names.

    'トビー・セガラン, コリン・エバンス, ジェイミー・テイラー著 ; 玉川竜司訳'
    -> ('トビー・セガラン', 'コリン・エバンス', 'ジェイミー・テイラー', '玉川竜司').
    A comma inside one heading ('結城, 浩, 1963-') is *not* a list separator.
    """
    text = unicodedata.normalize("NFKC", statement)
    text = _LATIN_PREFIX.sub("", text)
    pieces: list[str] = []
    if "∥" in text:
        text = _DOUBLE_BAR_ROLE.sub(";", text)
    for chunk in _LIST_SEPARATORS.split(text):
        chunk = _LATIN_PREFIX.sub("", _strip_roles(chunk))
        if not chunk:
            continue
        parts = _strip_dates(chunk.split(","))
        if _is_name_list(parts):
            pieces.extend(_strip_roles(p) for p in parts)
        else:
            pieces.append(chunk)
    return tuple(p for p in (x.strip() for x in pieces) if p and _LIFE_DATES.match(p) is None)


def _is_name_list(parts: list[str]) -> bool:
    """Is 'A, B, C' a list of people rather than one 'Family, Given' heading?"""
    if len(parts) < 2:
        return False
    stripped = [_strip_roles(p).strip() for p in parts]
    if any(has_cjk(p) for p in stripped):
        # '植村八潮, 野口武悟' (full names) vs '結城, 浩' / '出久根, 達郎' (family, given):
        # full Japanese names have 3+ characters, given names alone rarely do.
        return all(len(p.replace(" ", "")) >= 3 for p in stripped) and (
            len(stripped) >= 3 or all(len(p.replace(" ", "")) >= 4 or "・" in p for p in stripped)
        )
    # Latin: 'Hideaki Kasai, Muneyuki Tsuda' (each part a full name) vs 'Kasai, Hideaki'.
    return sum(1 for p in stripped if " " in p.strip()) >= 2


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def _clean(name: str) -> tuple[str, str]:
    """(name without dates/roles/generation, generation mark or '')."""
    text = unicodedata.normalize("NFKC", name)
    text = _LATIN_PREFIX.sub("", text)
    if "∥" in text:
        text = _DOUBLE_BAR_ROLE.sub("", text)
    text = _strip_roles(text)
    parts = _strip_dates(text.split(","))
    text = ",".join(parts)
    generation = ""
    match = _GENERATION.search(text)
    if match is not None and has_cjk(text):
        generation = f"{match.group(1)}世"
        text = text[: match.start()] + text[match.end() :]
    return _strip_roles(text), generation


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def normalize_author(name: str) -> str:
    """Comparison key for one person or body: see the module doc for what is equated.

    >>> normalize_author("夏目, 漱石, 1867-1916") == normalize_author("夏目漱石 著")
    True
    >>> normalize_author("Natsume, Sōseki") == normalize_author("Soseki Natsume")
    True
    """
    text, generation = _clean(name)
    folded = fold(text)
    if not has_cjk(folded) and _LATIN_TOKEN.search(folded):
        tokens = sorted(t for t in _LATIN_TOKEN.findall(folded) if t not in _LATIN_STOP)
        return " ".join(tokens)
    return _NON_NAME.sub("", folded) + generation


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def author_tokens_key(name: str) -> str:
    """Order-free key: the name's parts sorted ('ケイヴ, ロデリック' == 'ロデリック・ケイヴ').

    Only for comparison next to `normalize_author`; for Japanese names order matters
    ('やなせ, たかし' must not equal 'たかし やなせ'), so it is never the primary key.
    """
    text, generation = _clean(name)
    tokens = [t for t in re.split(r"[\s,・=·]+", fold(text)) if t]
    return "".join(sorted(_NON_NAME.sub("", t) for t in tokens)) + generation


# Publisher statements: '角川書店 / 角川グループパブリッシング (発売)', '日経BP社 ; 日経BP出版センター (発売)',
# '(株)講談社', '日本点字図書館 (製作)'. We keep the first publisher and drop corporate noise.
_PUBLISHER_SPLIT = re.compile(r"\s*(?:;|；|\s/\s|／)\s*")
_PUBLISHER_NOISE = re.compile(
    r"[(（\[［]\s*(?:発売|発行|製作|制作|出版|編集|販売|ほか|株|有|財|社)\s*[)）\]］]"
    r"|株式会社|有限会社|合同会社|一般財団法人|公益財団法人|一般社団法人|財団法人|社団法人|独立行政法人|㈱|㈲"
    r"|\b(?:inc|ltd|co|corp|llc|gmbh|publishers?|publishing|press)\b\.?",
    re.IGNORECASE,
)
_UNKNOWN_PUBLISHER = re.compile(
    r"^\s*[\[［]?\s*(?:出版者不明|出版地不明|s\.\s*n\.|n\.\s*p\.|不明)\s*[\]］]?\s*$", re.IGNORECASE
)


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def normalize_publisher(statement: str | None) -> str:
    """Key of the first publisher named; '' when unknown ('[出版者不明]', '[s.n.]')."""
    if not statement:
        return ""
    first = _PUBLISHER_SPLIT.split(unicodedata.normalize("NFKC", statement).strip(), maxsplit=1)[0]
    cleaned = _PUBLISHER_NOISE.sub("", first)
    if _UNKNOWN_PUBLISHER.match(cleaned):
        return ""
    return _NON_NAME.sub("", fold(cleaned))
