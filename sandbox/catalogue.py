"""The shared catalogue every simulated member draws its holdings from.

`generate_catalogue(size, seed)` returns the curated `CORE_WORKS` followed by
generated filler up to `size` works. The same (size, seed) always yields the
same works in the same order, so every member, test and process agrees on it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from yokodan import MaterialType
from sandbox import vocabulary as v
from sandbox.core_works import CORE_WORKS
from sandbox.works import Author, CatalogueWork, Isbn

__all__ = ["CORE_WORKS", "DEFAULT_SIZE", "Catalogue", "generate_catalogue"]

DEFAULT_SIZE = 1200


@dataclass(frozen=True)
class Catalogue:
    seed: int
    works: tuple[CatalogueWork, ...]
    _by_id: dict[str, CatalogueWork] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {w.work_id: w for w in self.works})

    def __len__(self) -> int:
        return len(self.works)

    def get(self, work_id: str) -> CatalogueWork:
        return self._by_id[work_id]


@lru_cache(maxsize=8)
def generate_catalogue(size: int = DEFAULT_SIZE, seed: int = 0) -> Catalogue:
    """Core works plus seeded filler, `size` works in all (never fewer than the core).

    Cached: catalogues are immutable and several hosts in one process share one.
    """
    works = list(CORE_WORKS)
    filler = _FillerGenerator(random.Random(f"sandbox-catalogue:{seed}"), works)
    while len(works) < size:
        works.extend(filler.next_unit()[: size - len(works)])
    return Catalogue(seed=seed, works=tuple(works))


Title = tuple[str, str | None]  # (title, katakana reading)


class _FillerGenerator:
    """Makes plausible works genre by genre; each call may return a set of volumes."""

    def __init__(self, rng: random.Random, existing: list[CatalogueWork]) -> None:
        self.rng = rng
        self.serial = 0
        self.used_isbns = {w.isbn13 for w in existing if w.isbn13}
        # (weight, maker): roughly the mix of a Japanese public library's catalogue.
        self.genres: list[tuple[int, Callable[[], list[CatalogueWork]]]] = [
            (34, self.novel),
            (7, self.translated_novel),
            (6, self.english_book),
            (8, self.tech_book),
            (12, self.practical_book),
            (8, self.history_book),
            (6, self.science_for_children),
            (8, self.picture_book),
            (4, self.old_book),
            (3, self.recording),
            (2, self.magazine),
            (2, self.road_map),
        ]

    def next_unit(self) -> list[CatalogueWork]:
        weights = [w for w, _ in self.genres]
        maker = self.rng.choices([m for _, m in self.genres], weights=weights)[0]
        return maker()

    # --- building blocks -------------------------------------------------

    def _work_id(self) -> str:
        self.serial += 1
        return f"g{self.serial:05d}"

    def _popularity(self, factor: float = 1.0) -> float:
        # Long tail: most filler is held by few members, a little by many.
        return round(min(3.0, max(0.03, self.rng.expovariate(1.0) * factor)), 3)

    def _isbn(self, group: str, registrant: str) -> Isbn:
        digits = 9 - len(group) - len(registrant)
        while True:
            candidate = Isbn(group, registrant, f"{self.rng.randrange(10**digits):0{digits}d}")
            if candidate.isbn13 not in self.used_isbns:
                self.used_isbns.add(candidate.isbn13)
                return candidate

    def _year(self, low: int, high: int, mode: int | None = None) -> int:
        return round(self.rng.triangular(low, high, mode if mode is not None else high))

    def _japanese_author(self, role: str = "著") -> Author:
        surname, surname_reading = self.rng.choice(v.SURNAMES)
        given, given_reading = self.rng.choice(v.GIVEN_NAMES)
        return Author(f"{surname}{given}", f"{surname}, {given}", f"{surname_reading}, {given_reading}", role)

    def _western_author(self, *, in_katakana: bool) -> Author:
        first, first_kana = self.rng.choice(v.WESTERN_FIRST_NAMES)
        last, last_kana = self.rng.choice(v.WESTERN_SURNAMES)
        if in_katakana:  # how a Japanese translation names its author
            return Author(f"{first_kana}・{last_kana}", f"{last_kana}, {first_kana}", f"{last_kana}, {first_kana}")
        return Author(f"{first} {last}", f"{last}, {first}", None, "")

    def _make(
        self,
        title: Title,
        authors: tuple[Author, ...],
        publisher: tuple[str, str],
        year: int,
        ndc: str,
        collection: str,
        popularity: float,
        *,
        with_isbn: bool = True,
        language: str = "jpn",
        group: str = "4",
        place: str = "東京",
        material: MaterialType = MaterialType.BOOK,
        volume: str | None = None,
        edition: str | None = None,
        set_id: str | None = None,
        work_id: str | None = None,
    ) -> CatalogueWork:
        registrant, publisher_name = publisher
        return CatalogueWork(
            work_id=work_id or self._work_id(),
            title=title[0],
            title_reading=title[1],
            authors=authors,
            publisher=publisher_name,
            place=place,
            year=year,
            isbn=self._isbn(group, registrant) if with_isbn else None,
            ndc=ndc,
            language=language,
            material_type=material,
            collection=collection,
            popularity=popularity,
            volume=volume,
            edition=edition,
            set_id=set_id,
        )

    def _fiction_title(self) -> Title:
        (n1, r1), (n2, r2) = self.rng.sample(v.NOUNS, 2)
        adjective, adjective_reading = self.rng.choice(v.ADJECTIVES)
        place, place_reading, _ = self.rng.choice(v.PLACES)
        return self.rng.choice(
            [
                (f"{n1}の{n2}", f"{r1} ノ {r2}"),
                (f"{adjective}{n1}", f"{adjective_reading} {r1}"),
                (f"{n1}と{n2}", f"{r1} ト {r2}"),
                (f"{place}{n1}殺人事件", f"{place_reading} {r1} サツジン ジケン"),
                (f"さよなら、{n1}", f"サヨナラ {r1}"),
                (f"{n1}をさがして", f"{r1} オ サガシテ"),
                (f"{n1}へ", f"{r1} エ"),
            ]
        )

    # --- genres -----------------------------------------------------------

    def novel(self) -> list[CatalogueWork]:
        title = self._fiction_title()
        authors = (self._japanese_author(),)
        publisher = self.rng.choice(v.JAPANESE_PUBLISHERS)
        year = self._year(1985, 2024, 2019)
        collection = "文庫" if self.rng.random() < 0.6 else "一般"
        popularity = self._popularity(1.2)
        roll = self.rng.random()
        if roll < 0.12:
            volumes = ["上", "下"]
        elif roll < 0.16:
            volumes = [f"第{n}巻" for n in range(1, self.rng.randint(3, 5) + 1)]
        else:
            return [self._make(title, authors, publisher, year, "913.6", collection, popularity)]
        set_id = self._work_id()
        return [
            self._make(
                title,
                authors,
                publisher,
                year,
                "913.6",
                collection,
                popularity,
                volume=volume,
                set_id=set_id,
                work_id=f"{set_id}-{index}",
            )
            for index, volume in enumerate(volumes, start=1)
        ]

    def translated_novel(self) -> list[CatalogueWork]:
        authors = (self._western_author(in_katakana=True), self._japanese_author("訳"))
        publisher = self.rng.choice([p for p in v.JAPANESE_PUBLISHERS if p[1] in ("早川書房", "東京創元社", "新潮社")])
        return [
            self._make(
                self._fiction_title(),
                authors,
                publisher,
                self._year(1990, 2024, 2015),
                "933.7",
                "文庫",
                self._popularity(0.8),
            )
        ]

    def english_book(self) -> list[CatalogueWork]:
        adjective = self.rng.choice(v.ENGLISH_ADJECTIVES)
        noun, other = self.rng.sample(v.ENGLISH_NOUNS, 2)
        first, _ = self.rng.choice(v.WESTERN_FIRST_NAMES)
        title = self.rng.choice(
            [f"The {adjective} {noun}", f"The {noun} & the {other}", f"{first}'s {noun}", f"A {noun} in {adjective}"]
        )
        registrant, publisher, place = self.rng.choice(v.ENGLISH_PUBLISHERS)
        return [
            self._make(
                (title, None),
                (self._western_author(in_katakana=False),),
                (registrant, publisher),
                self._year(1980, 2024, 2012),
                "933.7",
                "一般",
                self._popularity(0.4),
                language="eng",
                group="0",
                place=place,
            )
        ]

    def tech_book(self) -> list[CatalogueWork]:
        topic, reading, ndc = self.rng.choice(v.TECH_TOPICS)
        title = self.rng.choice(
            [
                (f"{topic}入門", f"{reading} ニュウモン"),
                (f"よくわかる{topic}", f"ヨク ワカル {reading}"),
                (f"{topic}実践ガイド", f"{reading} ジッセン ガイド"),
                (f"<実践>{topic}開発", f"ジッセン {reading} カイハツ"),
            ]
        )
        authors = tuple(self._japanese_author() for _ in range(self.rng.choice((1, 1, 2))))
        edition = self.rng.choice((None, None, "第2版", "第3版"))
        return [
            self._make(
                title,
                authors,
                self.rng.choice(v.TECH_PUBLISHERS),
                self._year(2008, 2024, 2021),
                ndc,
                "一般",
                self._popularity(0.8),
                edition=edition,
            )
        ]

    def practical_book(self) -> list[CatalogueWork]:
        if self.rng.random() < 0.5:
            (food, food_reading), (other, other_reading) = self.rng.sample(v.FOOD_TOPICS, 2)
            ndc = "596"
            title = self.rng.choice(
                [
                    (f"はじめての{food}", f"ハジメテ ノ {food_reading}"),
                    (f"毎日の{food}レシピ", f"マイニチ ノ {food_reading} レシピ"),
                    (f"{food}&{other}", f"{food_reading} アンド {other_reading}"),
                ]
            )
        else:
            topic, reading, ndc = self.rng.choice(v.LIFE_TOPICS)
            title = self.rng.choice(
                [
                    (f"{topic}の教科書", f"{reading} ノ キョウカショ"),
                    (f"今日からできる{topic}", f"キョウ カラ デキル {reading}"),
                    (f"{topic}大全", f"{reading} タイゼン"),
                ]
            )
        return [
            self._make(
                title,
                (self._japanese_author(),),
                self.rng.choice(v.PRACTICAL_PUBLISHERS),
                self._year(2005, 2024, 2020),
                ndc,
                "一般",
                self._popularity(1.0),
            )
        ]

    def history_book(self) -> list[CatalogueWork]:
        place, place_reading, ndc = self.rng.choice(v.PLACES)
        topic, topic_reading = self.rng.choice(v.HISTORY_TOPICS)
        title = self.rng.choice(
            [
                (f"{place}の{topic}", f"{place_reading} ノ {topic_reading}"),
                (f"{place}の歴史", f"{place_reading} ノ レキシ"),
            ]
        )
        return [
            self._make(
                title,
                (self._japanese_author(),),
                self.rng.choice(v.HISTORY_PUBLISHERS),
                self._year(1985, 2024, 2010),
                ndc,
                "一般",
                self._popularity(0.9),
            )
        ]

    def science_for_children(self) -> list[CatalogueWork]:
        topic, reading, ndc = self.rng.choice(v.SCIENCE_TOPICS)
        title = self.rng.choice([(f"{topic}のふしぎ", f"{reading} ノ フシギ"), (f"{topic}ずかん", f"{reading} ズカン")])
        return [
            self._make(
                title,
                (self._japanese_author("監修"),),
                self.rng.choice(v.CHILDREN_PUBLISHERS),
                self._year(2000, 2024, 2018),
                ndc,
                "児童",
                self._popularity(1.0),
            )
        ]

    def picture_book(self) -> list[CatalogueWork]:
        (a1, r1), (a2, r2) = self.rng.sample(v.ANIMALS, 2)
        title = self.rng.choice(
            [
                (f"{a1}と{a2}", f"{r1} ト {r2}"),
                (f"おおきな{a1}", f"オオキナ {r1}"),
                (f"{a1}くんのおさんぽ", f"{r1}クン ノ オサンポ"),
            ]
        )
        authors: tuple[Author, ...] = (self._japanese_author("作"),)
        if self.rng.random() < 0.5:
            authors += (self._japanese_author("絵"),)
        return [
            self._make(
                title,
                authors,
                self.rng.choice(v.CHILDREN_PUBLISHERS),
                self._year(1970, 2024, 2015),
                "E",
                "児童",
                self._popularity(1.3),
            )
        ]

    def old_book(self) -> list[CatalogueWork]:
        # Before Japan adopted ISBN (1981): such records have no 020 at all.
        return [
            self._make(
                self._fiction_title(),
                (self._japanese_author(),),
                self.rng.choice(v.JAPANESE_PUBLISHERS),
                self._year(1950, 1980, 1970),
                "913.6",
                "一般",
                self._popularity(0.4),
                with_isbn=False,
            )
        ]

    def recording(self) -> list[CatalogueWork]:
        noun, reading = self.rng.choice(v.NOUNS)
        label = self.rng.choice(("ビクターエンタテインメント", "日本コロムビア", "キングレコード"))
        return [
            self._make(
                (f"{noun}の歌", f"{reading} ノ ウタ"),
                (self._japanese_author("歌"),),
                ("", label),
                self._year(1995, 2024, 2015),
                "767.8",
                "視聴覚",
                self._popularity(0.6),
                with_isbn=False,
                material=MaterialType.AUDIOVISUAL,
            )
        ]

    def magazine(self) -> list[CatalogueWork]:
        word, reading, ndc = self.rng.choice(v.MAGAZINE_WORDS)
        year = self._year(2020, 2024)
        publisher = self.rng.choice(("NHK出版", "誠文堂新光社", "日本文芸社"))
        return [
            self._make(
                (f"月刊{word}", f"ゲッカン {reading}"),
                (),
                ("", publisher),
                year,
                ndc,
                "雑誌",
                self._popularity(1.0),
                with_isbn=False,
                material=MaterialType.SERIAL,
                volume=f"{year}年{self.rng.randint(1, 12)}月号",
            )
        ]

    def road_map(self) -> list[CatalogueWork]:
        place, reading, ndc = self.rng.choice(v.PLACES)
        map_class = f"291.{ndc[2]}{ndc[4:]}"  # 217.5 (history of Okayama) -> 291.75 (its geography)
        return [
            self._make(
                (f"{place}市街地図", f"{reading} シガイ チズ"),
                (),
                ("398", "昭文社"),
                self._year(2010, 2024),
                map_class,
                "一般",
                self._popularity(0.7),
                material=MaterialType.MAP,
            )
        ]
