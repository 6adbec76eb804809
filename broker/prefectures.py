"""The 47 prefectures of Japan: JIS code, name, region (地方) and land neighbours.

A national portal chooses members by place ("Okayama and its neighbours"), so the broker
needs one table it can trust. No well-kept Python package carries all three facts: the PyPI
packages we found (jp-pref, jp-prefectures-simple, jp-prefecture) map names to codes only, and
adding one for 47 names while the regions and borders still had to be written here would not
save anything. So this is a small data table, with its sources:

- codes and names: JIS X 0401 (都道府県コード), the codes MLIT P27 and CiNii's KENCODE use;
- regions: the eight-region division (八地方区分) of school geography — 北海道, 東北, 関東, 中部,
  近畿, 中国, 四国, 九州 — with 沖縄県 in 九州, as that division counts it;
- neighbours: prefectures that share a land boundary, as drawn on the Geospatial Information
  Authority of Japan's maps (国土地理院 地理院地図). Links over water — bridges (本州四国連絡橋),
  the Kanmon tunnel, ferries — are not boundaries, so 北海道 and 沖縄県 have none and 岡山県's
  neighbours are 兵庫県, 鳥取県 and 広島県. tests/test_prefectures.py checks the relation is
  symmetric and every prefecture but those two has one.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["PREFECTURES", "REGIONS", "Prefecture", "neighbours_of", "prefecture", "region_members"]


@dataclass(frozen=True, slots=True)
class Prefecture:
    code: str  # two digits, '01'..'47'
    name: str  # with its suffix: 岡山県, 東京都, 大阪府, 北海道
    region: str  # 中国, 近畿 …
    neighbours: tuple[str, ...]  # codes of the prefectures it shares a land boundary with

    @property
    def short_name(self) -> str:
        """岡山県 -> 岡山; 北海道 stays whole (道 is part of its name, not a suffix)."""
        return self.name if self.code == "01" else self.name[:-1]


_TABLE: tuple[tuple[str, str, str, str], ...] = (
    # code, name, region, neighbours (space-separated codes)
    ("01", "北海道", "北海道", ""),
    ("02", "青森県", "東北", "03 05"),
    ("03", "岩手県", "東北", "02 04 05"),
    ("04", "宮城県", "東北", "03 05 06 07"),
    ("05", "秋田県", "東北", "02 03 04 06"),
    ("06", "山形県", "東北", "04 05 07 15"),
    ("07", "福島県", "東北", "04 06 08 09 10 15"),
    ("08", "茨城県", "関東", "07 09 11 12"),
    ("09", "栃木県", "関東", "07 08 10 11"),
    ("10", "群馬県", "関東", "07 09 11 15 20"),
    ("11", "埼玉県", "関東", "08 09 10 12 13 19 20"),
    ("12", "千葉県", "関東", "08 11 13"),
    ("13", "東京都", "関東", "11 12 14 19"),
    ("14", "神奈川県", "関東", "13 19 22"),
    ("15", "新潟県", "中部", "06 07 10 16 20"),
    ("16", "富山県", "中部", "15 17 20 21"),
    ("17", "石川県", "中部", "16 18 21"),
    ("18", "福井県", "中部", "17 21 25 26"),
    ("19", "山梨県", "中部", "11 13 14 20 22"),
    ("20", "長野県", "中部", "10 11 15 16 19 21 22 23"),
    ("21", "岐阜県", "中部", "16 17 18 20 23 24 25"),
    ("22", "静岡県", "中部", "14 19 20 23"),
    ("23", "愛知県", "中部", "20 21 22 24"),
    ("24", "三重県", "近畿", "21 23 25 26 29 30"),
    ("25", "滋賀県", "近畿", "18 21 24 26"),
    ("26", "京都府", "近畿", "18 24 25 27 28 29"),
    ("27", "大阪府", "近畿", "26 28 29 30"),
    ("28", "兵庫県", "近畿", "26 27 31 33"),
    ("29", "奈良県", "近畿", "24 26 27 30"),
    ("30", "和歌山県", "近畿", "24 27 29"),
    ("31", "鳥取県", "中国", "28 32 33 34"),
    ("32", "島根県", "中国", "31 34 35"),
    ("33", "岡山県", "中国", "28 31 34"),
    ("34", "広島県", "中国", "31 32 33 35"),
    ("35", "山口県", "中国", "32 34"),
    ("36", "徳島県", "四国", "37 38 39"),
    ("37", "香川県", "四国", "36 38"),
    ("38", "愛媛県", "四国", "36 37 39"),
    ("39", "高知県", "四国", "36 38"),
    ("40", "福岡県", "九州", "41 43 44"),
    ("41", "佐賀県", "九州", "40 42"),
    ("42", "長崎県", "九州", "41"),
    ("43", "熊本県", "九州", "40 44 45 46"),
    ("44", "大分県", "九州", "40 43 45"),
    ("45", "宮崎県", "九州", "43 44 46"),
    ("46", "鹿児島県", "九州", "43 45"),
    ("47", "沖縄県", "九州", ""),
)

PREFECTURES: dict[str, Prefecture] = {
    code: Prefecture(code, name, region, tuple(neighbours.split())) for code, name, region, neighbours in _TABLE
}
# In the order the division lists them (north to south), as a portal shows them.
REGIONS: tuple[str, ...] = tuple(dict.fromkeys(p.region for p in PREFECTURES.values()))

_BY_NAME: dict[str, Prefecture] = {}
for _p in PREFECTURES.values():
    _BY_NAME[_p.name] = _BY_NAME[_p.short_name] = _p


def prefecture(value: str | int) -> Prefecture | None:
    """'33', '3' (an unpadded code), 33, '岡山県' or '岡山' -> 岡山県; None for anything else.

    Full-width digits ('３３') are read as digits (NFKC), as a portal's form may send them.
    """
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if text.isascii() and text.isdigit():
        return PREFECTURES.get(text.zfill(2))
    return _BY_NAME.get(text)


def neighbours_of(code: str) -> tuple[Prefecture, ...]:
    """The prefectures sharing a land boundary with `code` (not including it)."""
    return tuple(PREFECTURES[c] for c in PREFECTURES[code].neighbours)


def region_members(region: str) -> tuple[Prefecture, ...]:
    """The prefectures of one region ('中国' -> 鳥取県 … 山口県); empty for an unknown region."""
    name = unicodedata.normalize("NFKC", region).strip().removesuffix("地方")
    return tuple(p for p in PREFECTURES.values() if p.region == name)
