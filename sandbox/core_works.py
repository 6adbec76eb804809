"""The curated core of the sandbox catalogue: real, well-known books.

Tests, the demo and people trying the broker search for these by name, so their
titles, authors and ISBNs never change with the seed or the catalogue size.
ISBNs use the publishers' real prefixes; the check digit is always computed,
so every ISBN here is valid (not every one is the real edition's number).
A high `popularity` makes nearly every member hold the work.
"""

# ruff: noqa: E501  (the table below is kept one work per row; Japanese text counts double)

from __future__ import annotations

from yokodan import MaterialType
from sandbox.works import Author, CatalogueWork, Isbn


def _isbn(parts: str) -> Isbn:
    """'4-10-101001' -> Isbn(group='4', registrant='10', publication='101001')."""
    group, registrant, publication = parts.split("-")
    return Isbn(group, registrant, publication)


def _work(
    work_id: str,
    title: str,
    reading: str | None,
    authors: tuple[Author, ...],
    publisher: str,
    year: int,
    isbn: str | None,
    ndc: str,
    collection: str,
    popularity: float,
    *,
    volume: str | None = None,
    edition: str | None = None,
    set_id: str | None = None,
    language: str = "jpn",
    place: str = "東京",
    material: MaterialType = MaterialType.BOOK,
) -> CatalogueWork:
    return CatalogueWork(
        work_id=work_id,
        title=title,
        title_reading=reading,
        authors=authors,
        publisher=publisher,
        place=place,
        year=year,
        isbn=_isbn(isbn) if isbn else None,
        ndc=ndc,
        language=language,
        material_type=material,
        collection=collection,
        popularity=popularity,
        volume=volume,
        edition=edition,
        set_id=set_id,
    )


SOSEKI = Author("夏目漱石", "夏目, 漱石", "ナツメ, ソウセキ")
AKUTAGAWA = Author("芥川龍之介", "芥川, 龍之介", "アクタガワ, リュウノスケ")
KENJI = Author("宮沢賢治", "宮沢, 賢治", "ミヤザワ, ケンジ")
DAZAI = Author("太宰治", "太宰, 治", "ダザイ, オサム")
MURAKAMI = Author("村上春樹", "村上, 春樹", "ムラカミ, ハルキ")
HIGASHINO = Author("東野圭吾", "東野, 圭吾", "ヒガシノ, ケイゴ")
MIYABE = Author("宮部みゆき", "宮部, みゆき", "ミヤベ, ミユキ")
SHIBA = Author("司馬遼太郎", "司馬, 遼太郎", "シバ, リョウタロウ")
TOLKIEN_JA = Author("J.R.R.トールキン", "トールキン, J. R. R.", "トールキン, J. R. R.", "作")
SETA = Author("瀬田貞二", "瀬田, 貞二", "セタ, テイジ", "訳")
ORWELL_JA = Author("ジョージ・オーウェル", "オーウェル, ジョージ", "オーウェル, ジョージ")
AUSTEN_JA = Author("ジェイン・オースティン", "オースティン, ジェイン", "オースティン, ジェイン")
ROWLING_JA = Author("J.K.ローリング", "ローリング, J. K.", "ローリング, J. K.", "作")


def _volumes(
    set_id: str,
    title: str,
    reading: str,
    authors: tuple[Author, ...],
    publisher: str,
    year: int,
    volumes: list[tuple[str, str]],
    ndc: str,
    collection: str,
    popularity: float,
    *,
    edition: str | None = None,
) -> list[CatalogueWork]:
    """A set of volumes: same title, one record per volume, each with its own ISBN."""
    return [
        _work(
            f"{set_id}-{index}",
            title,
            reading,
            authors,
            publisher,
            year,
            isbn,
            ndc,
            collection,
            popularity,
            volume=volume,
            edition=edition,
            set_id=set_id,
        )
        for index, (volume, isbn) in enumerate(volumes, start=1)
    ]


# A table: one work per row reads better than one argument per line.
# fmt: off
CORE_WORKS: tuple[CatalogueWork, ...] = (
    # Japanese classics (新潮文庫 numbers, 978-4-10-…)
    _work("soseki-wagahai", "吾輩は猫である", "ワガハイ ワ ネコ デ アル", (SOSEKI,), "新潮社", 2003, "4-10-101001", "913.6", "文庫", 4.0,
          edition="改版"),
    _work("soseki-kokoro", "こころ", "ココロ", (SOSEKI,), "新潮社", 2004, "4-10-101013", "913.6", "文庫", 4.0),
    _work("soseki-botchan", "坊っちゃん", "ボッチャン", (SOSEKI,), "新潮社", 2003, "4-10-101003", "913.6", "文庫", 3.5),
    _work("soseki-sanshiro", "三四郎", "サンシロウ", (SOSEKI,), "新潮社", 1986, "4-10-101004", "913.6", "文庫", 2.0),
    # An older edition without ISBN: same title and author as soseki-botchan, a different book.
    _work("soseki-botchan-1955", "坊っちゃん", "ボッチャン", (SOSEKI,), "角川書店", 1955, None, "913.6", "文庫", 0.6),
    *_volumes("soseki-zenshu", "漱石全集", "ソウセキ ゼンシュウ", (SOSEKI,), "岩波書店", 1965, [("第1巻", ""), ("第2巻", "")], "918.68",
              "一般", 0.8),
    _work("akutagawa-rashomon", "羅生門・鼻", "ラショウモン ハナ", (AKUTAGAWA,), "新潮社", 2005, "4-10-102501", "913.6", "文庫", 3.0),
    _work("akutagawa-kumo", "蜘蛛の糸・杜子春", "クモ ノ イト トシシュン", (AKUTAGAWA,), "新潮社", 1990, "4-10-102503", "913.6", "文庫",
          2.0),
    _work("kenji-ginga", "銀河鉄道の夜", "ギンガ テツドウ ノ ヨル", (KENJI,), "新潮社", 1989, "4-10-109203", "913.6", "文庫", 3.5),
    _work("kenji-chumon", "注文の多い料理店", "チュウモン ノ オオイ リョウリテン", (KENJI,), "新潮社", 1990, "4-10-109205", "913.6", "文庫", 2.5),
    _work("dazai-ningen", "人間失格", "ニンゲン シッカク", (DAZAI,), "新潮社", 2006, "4-10-100605", "913.6", "文庫", 4.0,
          edition="改版"),
    _work("dazai-meros", "走れメロス", "ハシレ メロス", (DAZAI,), "新潮社", 2005, "4-10-100606", "913.6", "文庫", 3.0),
    _work("dazai-shayo", "斜陽", "シャヨウ", (DAZAI,), "新潮社", 2003, "4-10-100602", "913.6", "文庫", 2.0),
    _work("kawabata-yukiguni", "雪国", "ユキグニ", (Author("川端康成", "川端, 康成", "カワバタ, ヤスナリ"),), "新潮社", 2006, "4-10-100101",
          "913.6", "文庫", 2.5),
    _work("mishima-kinkakuji", "金閣寺", "キンカクジ", (Author("三島由紀夫", "三島, 由紀夫", "ミシマ, ユキオ"),), "新潮社", 2003, "4-10-105008",
          "913.6", "文庫", 2.5),
    # Contemporary fiction, including sets of volumes
    *_volumes("murakami-norway", "ノルウェイの森", "ノルウェイ ノ モリ", (MURAKAMI,), "講談社", 2004,
              [("上", "4-06-274868"), ("下", "4-06-274869")], "913.6", "文庫", 4.0),
    *_volumes("murakami-kafka", "海辺のカフカ", "ウミベ ノ カフカ", (MURAKAMI,), "新潮社", 2005,
              [("上", "4-10-100154"), ("下", "4-10-100155")], "913.6", "文庫", 3.0),
    *_volumes("murakami-1q84", "1Q84", "イチキュウハチヨン", (MURAKAMI,), "新潮社", 2009,
              [("BOOK1", "4-10-353422"), ("BOOK2", "4-10-353423")], "913.6", "一般", 3.0),
    _work("higashino-yogisha", "容疑者Xの献身", "ヨウギシャ エックス ノ ケンシン", (HIGASHINO,), "文藝春秋", 2008, "4-16-711012", "913.6",
          "文庫", 3.5),
    _work("higashino-byakuyako", "白夜行", "ビャクヤコウ", (HIGASHINO,), "集英社", 2002, "4-08-747439", "913.6", "文庫", 3.0),
    _work("higashino-namiya", "ナミヤ雑貨店の奇蹟", "ナミヤ ザッカテン ノ キセキ", (HIGASHINO,), "KADOKAWA", 2014, "4-04-101451", "913.6",
          "文庫", 3.0),
    _work("miyabe-kasha", "火車", "カシャ", (MIYABE,), "新潮社", 1998, "4-10-136918", "913.6", "文庫", 2.5),
    *_volumes("miyabe-mohohan", "模倣犯", "モホウハン", (MIYABE,), "小学館", 2001, [("上", "4-09-379264"), ("下", "4-09-379265")],
              "913.6", "一般", 2.0),
    *_volumes("shiba-ryoma", "竜馬がゆく", "リョウマ ガ ユク", (SHIBA,), "文藝春秋", 1998,
              [(f"第{n}巻", f"4-16-7105{66 + n}") for n in range(1, 9)], "913.6", "文庫", 3.0, edition="新装版"),
    _work("ogawa-hakase", "博士の愛した数式", "ハカセ ノ アイシタ スウシキ", (Author("小川洋子", "小川, 洋子", "オガワ, ヨウコ"),), "新潮社", 2005,
          "4-10-121523", "913.6", "文庫", 3.0),
    _work("yoshimoto-kitchen", "キッチン", "キッチン", (Author("吉本ばなな", "吉本, ばなな", "ヨシモト, バナナ"),), "角川書店", 1998,
          "4-04-180001", "913.6", "文庫", 2.0),
    _work("onda-mitsubachi", "蜜蜂と遠雷", "ミツバチ ト エンライ", (Author("恩田陸", "恩田, 陸", "オンダ, リク"),), "幻冬舎", 2016, "4-344-03003",
          "913.6", "一般", 3.0),
    _work("yoshino-kimitachi", "君たちはどう生きるか", "キミタチ ワ ドウ イキル カ", (Author("吉野源三郎", "吉野, 源三郎", "ヨシノ, ゲンザブロウ"),), "岩波書店",
          1982, "4-00-331581", "159", "文庫", 2.5),
    _work("kuroyanagi-totto", "窓ぎわのトットちゃん", "マドギワ ノ トットチャン", (Author("黒柳徹子", "黒柳, 徹子", "クロヤナギ, テツコ"),), "講談社", 1984,
          "4-06-183390", "916", "文庫", 2.5),
    _work("oda-onepiece-1", "ONE PIECE", "ワンピース", (Author("尾田栄一郎", "尾田, 栄一郎", "オダ, エイイチロウ"),), "集英社", 1997,
          "4-08-872509", "726.1", "児童", 2.0, volume="巻1"),
    # Children's books
    _work("guri-gura", "ぐりとぐら", "グリ ト グラ",
          (Author("なかがわりえこ", "中川, 李枝子", "ナカガワ, リエコ", "作"), Author("おおむらゆりこ", "大村, 百合子", "オオムラ, ユリコ", "絵")), "福音館書店",
          1967, "4-8340-0082", "E", "児童", 3.5),
    _work("momotaro", "ももたろう", "モモタロウ",
          (Author("松居直", "松居, 直", "マツイ, タダシ", "文"), Author("赤羽末吉", "赤羽, 末吉", "アカバ, スエキチ", "画")), "福音館書店", 1965,
          "4-8340-0085", "E", "児童", 3.0),
    _work("carle-aomushi", "はらぺこあおむし", "ハラペコ アオムシ",
          (Author("エリック・カール", "カール, エリック", "カール, エリック", "作"), Author("もりひさし", "森, 比左志", "モリ, ヒサシ", "訳")), "偕成社", 1976,
          "4-03-328010", "E", "児童", 3.5),
    _work("kadono-majo", "魔女の宅急便", "マジョ ノ タッキュウビン", (Author("角野栄子", "角野, 栄子", "カドノ, エイコ", "作"),), "福音館書店", 1985,
          "4-8340-0311", "913.6", "児童", 2.5),
    _work("rowling-kenja", "ハリー・ポッターと賢者の石", "ハリー ポッター ト ケンジャ ノ イシ",
          (ROWLING_JA, Author("松岡佑子", "松岡, 佑子", "マツオカ, ユウコ", "訳")), "静山社", 1999, "4-915512-37", "933.7", "児童", 3.5),
    *_volumes("tolkien-hobbit-ja", "ホビットの冒険", "ホビット ノ ボウケン", (TOLKIEN_JA, SETA), "岩波書店", 2000,
              [("上", "4-00-114058"), ("下", "4-00-114059")], "933.7", "児童", 2.5),
    _work("saint-exupery-oji", "星の王子さま", "ホシ ノ オウジサマ",
          (Author("サン=テグジュペリ", "Saint-Exupéry, Antoine de", "サン テグジュペリ, アントワーヌ ド", "作"), Author("内藤濯", "内藤, 濯", "ナイトウ, アロウ", "訳")),
          "岩波書店", 2000, "4-00-115676", "953.7", "児童", 3.0),
    # Western books in English and in Japanese translation
    _work("tolkien-hobbit", "The hobbit, or, There and back again", None,
          (Author("J.R.R. Tolkien", "Tolkien, J. R. R.", None, ""),), "HarperCollins", 1995, "0-261-10221", "933.7",
          "一般", 1.5, language="eng", place="London"),
    _work("orwell-1984", "Nineteen eighty-four", None, (Author("George Orwell", "Orwell, George", None, ""),),
          "Penguin", 2003, "0-14-118776", "933.7", "一般", 1.5, language="eng", place="London"),
    _work("orwell-1984-ja", "一九八四年", "センキュウヒャクハチジュウヨネン", (ORWELL_JA, Author("高橋和久", "高橋, 和久", "タカハシ, カズヒサ", "訳")),
          "早川書房", 2009, "4-15-120053", "933.7", "文庫", 2.5, edition="新訳版"),
    _work("rowling-stone", "Harry Potter and the philosopher's stone", None,
          (Author("J.K. Rowling", "Rowling, J. K.", None, ""),), "Bloomsbury", 1997, "0-7475-3269", "933.7", "一般",
          1.5, language="eng", place="London"),
    _work("austen-pride", "Pride and prejudice", None, (Author("Jane Austen", "Austen, Jane", None, ""),), "Penguin",
          2003, "0-14-143951", "933.6", "一般", 1.2, language="eng", place="London"),
    *_volumes("austen-pride-ja", "高慢と偏見", "コウマン ト ヘンケン", (AUSTEN_JA, Author("富田彬", "富田, 彬", "トミタ, アキラ", "訳")), "岩波書店",
              1994, [("上", "4-00-322221"), ("下", "4-00-322222")], "933.6", "文庫", 2.0),
    _work("seuss-cat", "The cat in the hat", None, (Author("Dr. Seuss", "Seuss, Dr.", None, ""),), "Random House",
          1957, "0-394-80002", "E", "児童", 1.0, language="eng", place="New York"),
    # Reference, local interest, other material types
    _work("kojien-7", "広辞苑", "コウジエン", (Author("新村出", "新村, 出", "シンムラ, イズル", "編"),), "岩波書店", 2018, "4-00-080131",
          "813.1", "参考", 3.5, edition="第7版"),
    _work("okayama-rekishi", "岡山県の歴史", "オカヤマケン ノ レキシ",
          (Author("藤井学", "藤井, 学", "フジイ, マナブ"), Author("狩野久", "狩野, 久", "カノ, ヒサシ")), "山川出版社", 2000, "4-634-32330",
          "217.5", "一般", 3.5),
    _work("okayama-map", "岡山県道路地図", "オカヤマケン ドウロ チズ", (), "昭文社", 2020, "4-398-62710", "291.75", "一般", 1.5,
          material=MaterialType.MAP),
    _work("python-tutorial", "Pythonチュートリアル", "パイソン チュートリアル",
          (Author("Guido van Rossum", "Van Rossum, Guido", "ヴァン ロッサム, グイド"), Author("鴨澤眞夫", "鴨澤, 眞夫", "カモサワ, マサオ", "訳")),
          "オライリー・ジャパン", 2021, "4-87311-935", "007.64", "一般", 1.5, edition="第4版"),
    _work("kurashi-techo", "暮しの手帖", "クラシ ノ テチョウ", (), "暮しの手帖社", 2023, None, "590.5", "雑誌", 1.5,
          material=MaterialType.SERIAL),
    _work("beethoven-9", "交響曲第9番ニ短調「合唱付き」", "コウキョウキョク ダイキュウバン ニタンチョウ ガッショウツキ",
          (Author("ベートーヴェン", "Beethoven, Ludwig van", "ベートーヴェン, ルートヴィヒ ヴァン", "作曲"),), "ユニバーサルミュージック", 2012, None,
          "764.31", "視聴覚", 1.0, material=MaterialType.AUDIOVISUAL),
)
# fmt: on
