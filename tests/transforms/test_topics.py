"""Topic rules over blank pipelines: lemmas, weights, negatives, threshold, evidence."""

import pytest

from newsradar.config.watchlist import Topic
from transforms.nlp import Pipelines, analysis_text
from transforms.topics import TopicMatcher


def topic(**kw):
    base = {"id": "mobilization", "name": "Mobilization", "threshold": 3, "terms": {}}
    base.update(kw)
    return Topic.model_validate(base)


MOBILIZATION = topic(
    terms={
        "en": [{"term": "mobilization", "weight": 3}, {"term": "partial mobilization", "weight": 3},
               {"term": "mobilize", "weight": 1.5}, {"term": "army", "weight": 1}, {"term": "soldier", "weight": 1}],
        "ru": [{"term": "мобилизация", "weight": 3}, {"term": "мобилизованный", "weight": 3},
               {"term": "мобилизовать", "weight": 2}, {"term": "повестка", "weight": 2}],
        "uk": [{"term": "мобілізація", "weight": 3}, {"term": "повістка", "weight": 2}],
    },
    negative={"en": [{"term": "retailer", "weight": 2}], "ru": [{"term": "повестка дня", "weight": 3}]},
)
PROTEST = topic(
    id="protest", name="Protest",
    terms={"en": [{"term": "protest", "weight": 2}, {"term": "rally", "weight": 2}, {"term": "picket", "weight": 3}]},
    negative={"en": [{"term": "protest song", "weight": 1}]},
)


@pytest.fixture(scope="module")
def pipes():
    return Pipelines()


@pytest.fixture(scope="module")
def matchers(pipes):
    return {lang: TopicMatcher([MOBILIZATION, PROTEST], pipes, lang) for lang in ("en", "ru", "uk")}


def tag(pipes, matchers, text, lang, title=""):
    full = analysis_text(title, text)
    return {t.id: t for t in matchers[lang](pipes(full, lang))}, full


@pytest.mark.parametrize(
    "text, lang",
    [
        ("В регионе объявили мобилизацию.", "ru"),
        ("Мобилизованных отправили в учебный центр.", "ru"),
        ("Власти мобилизовали мужчин и раздали повестки.", "ru"),
        ("Мобілізації не буде, заявили в уряді.", "uk"),
        ("The partial mobilization was announced on Wednesday.", "en"),
    ],
)
def test_inflected_terms_reach_the_threshold(pipes, matchers, text, lang):
    tags, _ = tag(pipes, matchers, text, lang)
    assert "mobilization" in tags


def test_a_similar_word_is_not_the_term(pipes, matchers):
    tags, _ = tag(pipes, matchers, "Новый мобильный тариф и мобильное приложение.", "ru")
    assert tags == {}


def test_below_threshold_is_not_tagged_and_weights_add_up(pipes, matchers):
    tags, _ = tag(pipes, matchers, "The army band played.", "en")
    assert tags == {}
    tags, _ = tag(pipes, matchers, "Soldiers were mobilized and the army moved.", "en")
    # mobilize 1.5 + army 1 + soldier 1
    assert tags["mobilization"].score == 3.5


def test_a_repeated_term_adds_half_its_weight_once(pipes, matchers):
    tags, _ = tag(pipes, matchers, "Protest. Protest. Protest.", "en")
    assert tags["protest"].score == 3.0  # 2 + 1, not 6


def test_overlapping_matches_count_once_the_longest(pipes, matchers):
    tags, full = tag(pipes, matchers, "A partial mobilization began.", "en")
    t = tags["mobilization"]
    assert t.score == 3.0
    assert [e.text for e in t.evidence] == ["partial mobilization"]


def test_negative_term_subtracts(pipes, matchers):
    tags, _ = tag(pipes, matchers, "The retailer will mobilize staff; soldiers of the army of shoppers.", "en")
    assert tags == {}  # 1.5 + 1 + 1 - 2


def test_negative_phrase_cancels_the_positive_match_inside_it(pipes, matchers):
    tags, _ = tag(pipes, matchers, "A protest song and a picket fence.", "en")
    assert "protest" not in tags or all(e.text != "protest" for e in tags["protest"].evidence)
    tags, _ = tag(pipes, matchers, "A protest song was sung at the rally and the protest went on.", "en")
    # "protest" inside "protest song" does not count; the other occurrence and the rally do:
    # 2 + 2 - 1 (the negative's weight, once).
    assert tags["protest"].score == 3.0
    assert [e.text for e in tags["protest"].evidence] == ["rally", "protest"]


def test_negative_phrase_in_russian(pipes, matchers):
    tags, _ = tag(pipes, matchers, "В повестке дня заседания мобилизация ресурсов не значилась.", "ru")
    assert tags == {}  # мобилизация 3 - повестка дня 3; the "повестка" inside it is cancelled


def test_evidence_offsets_index_the_analysis_text(pipes, matchers):
    tags, full = tag(pipes, matchers, "Мобилизованных отправили, повестки вручили.", "ru", title="Мобилизация")
    ev = tags["mobilization"].evidence
    assert ev, "evidence is kept for every tag"
    for e in ev:
        assert full[e.start:e.end] == e.text
    assert ev[0].text == "Мобилизация" and ev[0].start == 0


def test_terms_that_key_alike_keep_the_heavier_weight(pipes, matchers):
    # "мобилизованный" (3) and "мобилизовать" (2) both key to the verb.
    tags, _ = tag(pipes, matchers, "Мобилизованные вернулись.", "ru")
    assert tags["mobilization"].score == 3.0


def test_explain_scores_every_topic(pipes, matchers):
    doc = pipes("The retailer held a rally.", "en")
    assert matchers["en"].explain(doc) == {"mobilization": -2.0, "protest": 2.0}


def test_background_words_alone_never_reach_a_topic(pipes):
    war = topic(terms={"en": [
        {"term": "mobilize", "weight": 2}, {"term": "draft notice", "weight": 3},
        {"term": "army", "weight": 1, "background": True}, {"term": "soldier", "weight": 1, "background": True},
        {"term": "front", "weight": 1, "background": True}, {"term": "war", "weight": 1, "background": True},
    ]}, threshold=3)
    matcher = TopicMatcher([war], pipes, "en")

    def score(text):
        return matcher.explain(pipes(text, "en"))["mobilization"]

    # Four setting words, each once and twice: without a call-up word they are no evidence.
    story = "The army said soldiers at the front held; soldiers and the army are tired of the war."
    assert score(story) == 0 and matcher(pipes(story, "en")) == []
    assert matcher.counted_terms(pipes(story, "en")) == {"mobilization": set()}
    # Beside a call-up word they add at most max_background (1) together: 2 + 1, not 2 + 4.
    with_call_up = story + " The state began to mobilize reservists."
    assert score(with_call_up) == 3
    assert matcher.counted_terms(pipes(with_call_up, "en"))["mobilization"] == {
        "mobilize", "army", "soldier", "front", "war"}
    wider = topic(terms=war.terms, threshold=3, max_background=2)
    assert TopicMatcher([wider], pipes, "en").explain(pipes(with_call_up, "en"))["mobilization"] == 4


def test_a_star_in_a_term_is_at_most_one_word_and_never_punctuation(pipes):
    rally = topic(
        id="protest", name="Protest",
        terms={"en": [{"term": "hold * protest", "weight": 3}],
               "ru": [{"term": "мобилизовать", "weight": 3}]},
        negative={"ru": [{"term": "мобилизовать * ресурсы", "weight": 2}]},
    )
    matcher = {lang: TopicMatcher([rally], pipes, lang) for lang in ("en", "ru")}

    def score(text, lang):
        return matcher[lang].explain(pipes(text, lang))["protest"]

    # The negative cancels the verb with no word, or one, between; not with two, nor across a stop.
    assert score("Руководство призвало мобилизовать ресурсы.", "ru") == -2
    assert score("Руководство призвало мобилизовать все ресурсы.", "ru") == -2
    assert score("Руководство призвало мобилизовать все свои ресурсы.", "ru") == 3
    assert score("Власти решили мобилизовать. Ресурсы есть.", "ru") == 3
    # A positive with a star: "held a protest", "held protests"; the evidence is the whole span.
    for text in ("Families held a protest.", "Families held protests.", "Families have held protests."):
        tags = matcher["en"](pipes(text, "en"))
        assert [t.id for t in tags] == ["protest"], text
    assert [e.text for e in matcher["en"](pipes("They held a protest.", "en"))[0].evidence] == ["held a protest"]
    assert score("They held a long noisy protest.", "en") == 0
    assert score(analysis_text("Shareholders will hold", "Protest votes were few."), "en") == 0
    assert matcher["en"].counted_terms(pipes("They held a protest.", "en")) == {"protest": {"hold * protest"}}


@pytest.mark.parametrize(
    "text, lang, expected",
    [
        ("Relatives of the conscripts held protests in twelve regions on Saturday.", "en", True),
        ("Families have staged protests in several cities since the summer.", "en", True),
        ("Родственники военнослужащих провели акцию у стен Кремля.", "ru", True),
        ("В Екатеринбурге прошла акция в поддержку политзаключённых.", "ru", True),
        ("У Києві відбулася акція на підтримку військовополонених.", "uk", True),
        ("Біля Офісу президента пройшла акція родин загиблих військових.", "uk", True),
        ("The French driver won the eighth stage of the Dakar Rally.", "en", False),
        ("The dollar rallied against the euro as investors bet on a rate rise.", "en", False),
        ("The team lodged a protest with the stewards after the race.", "en", False),
        ("Акции нефтяной компании подорожали на пять процентов.", "ru", False),
        ("В сети магазинов стартовала акция: скидки на зимнюю обувь.", "ru", False),
        ("Команда подала протест суддям після фінішу гонки.", "uk", False),
        # A report of actions in N places, or of placards carried somewhere, is the event.
        ("Движение сообщило об акциях в семи регионах России.", "ru", True),
        ("Родичі полонених оголосили акції в кількох містах України.", "uk", True),
        ("Матери срочников вышли с плакатами к военкомату.", "ru", True),
        # ... not a shop's «акції», fans' placards, or a protest lodged with a federation.
        ("Знижки для покупців: акції у всіх регіонах у супермаркетах мережі.", "uk", False),
        ("Болельщики вышли с плакатами к стадиону.", "ru", False),
        ("The federation filed a protest over the result of the rally.", "en", False),
    ],
)
def test_shipped_protest_terms_take_plain_event_reports_and_leave_sport_and_markets(shipped, text, lang, expected):
    assert ("protest" in {t.id for t in shipped.analyze("", text, lang).topics}) is expected


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Families of soldiers killed at the front say death certificates arrive months late, the army says.", "en"),
        ("Армия сообщила об отражении атак на фронте; война идёт четвёртый год, солдаты устали.", "ru"),
        ("Армія повідомила про відбиті атаки на фронті; війна триває, солдати виснажені.", "uk"),
        ("United Russia launched a turnout project called 'Mobilization' before the election.", "en"),
        ("«Единая Россия» запустила проект «Мобилизация», чтобы поднять явку.", "ru"),
        # Contract soldiers and the ministry are the setting too; business contracts and hiring are not.
        ("Семьи погибших контрактников жалуются, что Минобороны задерживает выплаты.", "ru"),
        ("Завод заключил контракт с Минобороны на поставку грузовиков для армии.", "ru"),
        ("The agency offers contract recruitment for IT projects and a sign-up bonus for new clients.", "en"),
        ("Губернатор призвал мобилизовать все имеющиеся ресурсы на борьбу с паводком.", "ru"),
    ],
)
def test_shipped_mobilization_leaves_war_background_and_a_turnout_project_out(shipped, text, lang):
    assert "mobilization" not in {t.id for t in shipped.analyze("", text, lang).topics}


@pytest.mark.parametrize(
    "text, lang",
    [
        ("The defence ministry said contract recruitment was ahead of plan.", "en"),
        ("В Минобороны сообщили о наборе контрактников в Сибири.", "ru"),
        ("Бригада відкрила рекрутинговий центр для добровольців.", "uk"),
        ("Men mobilised last autumn are still at the front.", "en"),
        ("Students must reapply for their deferment from military service.", "en"),
        ("The bill raises the draft age, and compulsory service will last two years.", "en"),
        ("Мужчинам, получившим повестки, помогают выехать из страны.", "ru"),
    ],
)
def test_shipped_mobilization_takes_contract_recruitment_deferments_and_summonses(shipped, text, lang):
    assert "mobilization" in {t.id for t in shipped.analyze("", text, lang).topics}


@pytest.fixture(scope="module")
def shipped():
    from newsradar.config import load_watchlist
    from transforms.tagging import Tagger

    return Tagger(load_watchlist("config/watchlist.yaml"))


SHAPED = topic(
    id="protest", name="Protest",
    terms={"en": [{"term": "placard", "weight": 2}, {"term": "police", "weight": 1}]},
    negative={"en": [{"term": "fan", "weight": 2}]},
    shapes={"en": [
        {"name": "group at a place", "weight": 1.5, "within": 8, "ordered": True,
         "parts": [["women", "relative", "fan"], ["gather outside", "stand along"]]},
        {"name": "group at a place, demanding", "weight": 2, "within": 20,
         "parts": [["women", "relative", "fan"], ["gather outside", "stand along"], ["demand"]]},
    ]},
    negative_shapes={"en": [
        {"name": "a market rallied", "weight": 3, "within": 3, "ordered": True, "parts": [["bond", "stock"], ["rally"]]},
        {"name": "a rally of cars", "weight": 2, "within": "article", "parts": [["rally"], ["leaderboard"]]},
    ]},
)


def test_a_shape_counts_only_when_every_part_is_within_its_window(pipes):
    shaped = TopicMatcher([SHAPED], pipes, "en")

    def score(text):
        return shaped.explain(pipes(text, "en"))["protest"]

    # No piece alone, nor two of the three, reaches 3; all three together do.
    assert score("Women demanded answers.") == 0
    assert score("Women gathered outside the governor's office.") == 1.5
    assert score("Women gathered outside the governor's office, demanding answers.") == 3.5
    # Order: the group before the gathering for the ordered shape, any order for the other.
    assert score("They gathered outside, the women, demanding answers.") == 2
    # The window: the parts spread over more words than it allows are no shape.
    far = "Women " + "said nothing for many long hours and then finally " * 2 + "gathered outside and demanded answers."
    assert score(far) == 0
    # A shape adds its weight once, and beside the terms (no overlap rule between them).
    assert score("Women gathered outside with a placard. Relatives stood along the road. They demand.") == 5.5
    tags = shaped(pipes("Women gathered outside the office, demanding answers.", "en"))
    assert [e.text for e in tags[0].evidence] == ["Women", "gathered outside", "demanding"]
    found = shaped.counted_terms(pipes("Women gathered outside the office, demanding answers.", "en"))
    assert found == {"protest": {"[group at a place]", "[group at a place, demanding]"}}


def test_a_negative_term_cancels_a_shape_part_and_a_negative_shape_cancels_what_it_overlaps(pipes):
    shaped = TopicMatcher([SHAPED], pipes, "en")

    def score(text):
        return shaped.explain(pipes(text, "en"))["protest"]

    # "fan" is a negative term: it is no group (and subtracts 2).
    assert score("Fans gathered outside the stadium, demanding a refund.") == -2
    # "Bonds rallied": the rally is cancelled and 3 subtracted; "a rally" alone is no shape.
    rally = topic(id="protest", name="Protest", terms={"en": [{"term": "rally", "weight": 3}]},
                  negative_shapes=SHAPED.negative_shapes)
    rallied = TopicMatcher([rally], pipes, "en")
    assert rallied.explain(pipes("Bonds rallied on Monday.", "en"))["protest"] == -3
    assert rallied.explain(pipes("Bonds fell. Crowds held a rally.", "en"))["protest"] == 3
    # ``within: article``: anywhere in it.
    text = "Thousands watched the rally. " + "The weather was fine all day. " * 10 + "He tops the leaderboard."
    assert rallied.explain(pipes(text, "en"))["protest"] == -2
    assert rallied(pipes(text, "en")) == []
    # A found negative shape is no counted term.
    assert rallied.counted_terms(pipes("Bonds rallied on Monday.", "en")) == {"protest": set()}
    assert shaped.counted_terms(pipes("Stocks rallied as women gathered outside, demanding.", "en")) == {
        "protest": {"[group at a place]", "[group at a place, demanding]"}}


def test_a_shape_needs_parts_and_a_window_and_takes_no_star():
    good = {"name": "s", "weight": 1, "parts": [["a"], ["b"]]}
    assert topic(shapes={"en": [good]}).shapes["en"][0].window == 12
    assert topic(shapes={"en": [{**good, "within": "article"}]}).shapes["en"][0].window is None
    for bad in ({**good, "parts": [["a"]]}, {**good, "parts": [["a"], []]}, {**good, "within": 0},
                {**good, "parts": [["a * b"], ["c"]]}, {**good, "weight": 0},
                # bounded: the search grows with every part's matches
                {**good, "parts": [["a"], ["b"], ["c"], ["d"], ["e"]]}, {**good, "within": 201},
                {**good, "within": True}, {**good, "weight": float("inf")}, {**good, "parts": [["a*"], ["b"]]}):
        with pytest.raises(ValueError):
            topic(shapes={"en": [bad]})
    # a phrase with no letter or digit can never match: refused, in a shape and as a term
    for bad in ({**good, "parts": [["—"], ["b"]]}, {**good, "parts": [["a"], ["!!"]]}):
        with pytest.raises(ValueError, match="string_pattern_mismatch"):
            topic(shapes={"en": [bad]})
    with pytest.raises(ValueError, match="string_pattern_mismatch"):
        topic(terms={"en": [{"term": "...", "weight": 1}]})
    assert topic(terms={"en": [{"term": "G7", "weight": 1}, {"term": "9 мая", "weight": 1}]}).terms["en"]
    # the same phrase in two parts (in any case and spacing) is refused, naming both parts
    with pytest.raises(ValueError, match=r"'Women' is in parts 0 and 2"):
        topic(shapes={"en": [{**good, "parts": [["women"], ["b"], ["Women"]]}]})


def test_two_shapes_of_one_name_in_a_language_are_refused_with_where(tmp_path):
    from newsradar.config import ConfigError, load_watchlist

    f = tmp_path / "wl.yaml"
    shape = "{name: crowd, weight: 1, parts: [[women], [gather]]}"
    f.write_text(f"topics:\n  - {{id: t, name: T, terms: {{en: [a]}}, shapes: {{en: [{shape}, {shape}]}}}}\n")
    with pytest.raises(ConfigError, match=r"topics\[0\]\.shapes\.en\[1\]\.name: duplicate shape name 'crowd' "
                                          r"\(first used at \[0\]\)"):
        load_watchlist(f)
    # in a file, a phrase with no letter reads as what it is
    f.write_text("topics:\n  - {id: t, name: T, terms: {en: [a, '—']}}\n")
    with pytest.raises(ConfigError, match=r"topics\[0\]\.terms\.en\[1\]: expected a phrase with a letter or "
                                          r"digit in it, got '—'"):
        load_watchlist(f)
    # one name in two languages is fine: they are reported per language
    f.write_text(f"topics:\n  - {{id: t, name: T, terms: {{en: [a]}}, shapes: {{en: [{shape}], ru: [{shape}]}}}}\n")
    assert load_watchlist(f).topic("t").shapes["ru"][0].name == "crowd"


@pytest.mark.parametrize(
    "text, lang, topic_id, expected",
    [
        # Protest by presence: a group + at a place + portraits, placards or a demand; no protest word.
        ("Relatives of prisoners of war stood along the main street holding portraits of their sons.", "en", "protest", True),
        ("Около тридцати водителей собрались у здания мэрии с требованием выплатить долги.", "ru", "protest", True),
        ("Мешканці кількох сіл перекрили трасу до кар'єру.", "uk", "protest", True),
        ("Couriers walked out and gathered outside the company's office.", "en", "protest", True),
        # ... not a group at a place alone, a commemoration, fans, or a market.
        ("Residents gathered outside the town hall for the New Year concert.", "en", "protest", False),
        ("Школьники пришли к памятнику с цветами, чтобы почтить память героев.", "ru", "protest", False),
        ("Oil prices rallied for a third day.", "en", "protest", False),
        ("Ogier topped the leaderboard at the rally after a rival's puncture.", "en", "protest", False),
        # Mobilization by a contract's shape; not a utility's crews, nor a fallen soldier's biography.
        ("Regions raised one-off payments for men who sign a military contract.", "en", "mobilization", True),
        ("Приватні виконавці пропонують боржникам контракт із ЗСУ, щоб списати борги.", "uk", "mobilization", True),
        ("Водоканал мобилизовал все аварийные бригады после прорыва трубы.", "ru", "mobilization", False),
        ("The man signed a contract with the army in 2023 and was killed in the spring.", "en", "mobilization", False),
    ],
)
def test_shipped_shapes_take_the_form_of_a_report_and_leave_its_false_senses(shipped, text, lang, topic_id, expected):
    assert (topic_id in {t.id for t in shipped.analyze("", text, lang).topics}) is expected


def test_a_shape_search_on_text_stuffed_with_its_words_stays_bounded(caplog):
    from transforms import topics

    # Ordered, anywhere in the article, every part after the next one: no occurrence. Checked
    # only once all parts were chosen, each seed tried every pair of the other parts' matches
    # (300 x 300 here, minutes in all); pruned as each part is chosen, it is one step a seed.
    parts = [[(2000 + i, 2001 + i) for i in range(300)], [(1000 + i, 1001 + i) for i in range(300)],
             [(i, i + 1) for i in range(300)]]
    with caplog.at_level("WARNING", logger="transforms.topics"):
        assert topics.shape_matches(parts, None, ordered=True) == set()
        assert len(topics.shape_matches(parts[::-1], None, ordered=True)) == 900  # in order: all of them
    assert "shape search cut" not in caplog.text
    # Unordered, but the last part overlaps everything: each seed tries all of the other part's
    # matches before failing; the search stops at MAX_SHAPE_STEPS, and says so.
    stuffed = [[(2 * i, 2 * i + 1) for i in range(300)], [(2 * i + 1, 2 * i + 2) for i in range(300)], [(0, 700)]]
    with caplog.at_level("WARNING", logger="transforms.topics"):
        assert topics.shape_matches(stuffed, None, ordered=False) == set()
    assert "shape search cut" in caplog.text


def test_shape_matches_is_one_match_per_part_within_the_window_without_overlap():
    from transforms.topics import shape_matches

    # Token spans: part 0 at 0 and 30, part 1 at 5 and 40.
    parts = [[(0, 1), (30, 31)], [(5, 7), (40, 41)]]
    assert shape_matches(parts, 12, False) == {(0, 1), (5, 7), (30, 31), (40, 41)}
    assert shape_matches(parts, 6, False) == set()  # 0..7 is 7 tokens, 30..41 is 11
    assert shape_matches(parts, 7, False) == {(0, 1), (5, 7)}
    # Ordered: part 0 first; a later part 0 may pair with an earlier part 1 only unordered.
    assert shape_matches([[(10, 11)], [(5, 7)]], 12, True) == set()
    assert shape_matches([[(10, 11)], [(5, 7)]], 12, False) == {(10, 11), (5, 7)}
    # One word cannot be two parts; anywhere in the article with None; an empty part: no shape.
    assert shape_matches([[(3, 4)], [(3, 4)]], 12, False) == set()
    assert shape_matches([[(0, 1)], [(500, 501)]], None, True) == {(0, 1), (500, 501)}
    assert shape_matches([[(0, 1)], []], None, False) == set()
    # Three parts: each must be there, and all in one window.
    three = [[(0, 1)], [(4, 5)], [(9, 10), (30, 31)]]
    assert shape_matches(three, 10, False) == {(0, 1), (4, 5), (9, 10)}
    assert shape_matches(three, 9, False) == set()


# Reports the rules fall short on and a learned classifier of the build takes (issue 16).
LEARNED_TAKES = [
    ("Dozens of women stood for an hour outside the regional administration in Barnaul, holding "
     "photographs of their husbands and asking officials to bring the men home.", "en", "protest"),
    ("Около сорока женщин простояли час у здания администрации в Барнауле с фотографиями мужей и "
     "просили вернуть их домой.", "ru", "protest"),
    ("Men were taken off a bus at a checkpoint near Lviv and handed papers ordering them to report "
     "to the recruitment centre.", "en", "mobilization"),
]


@pytest.mark.parametrize("text, lang, topic_id", LEARNED_TAKES)
def test_a_learned_classifier_decides_what_the_rules_fall_short_of(shipped, text, lang, topic_id):
    (tag,) = [t for t in shipped.analyze("", text, lang).topics if t.id == topic_id]
    threshold = shipped.watchlist.topic(topic_id)
    # decided by the classifier: its probability over its threshold, the rules' score under theirs
    classifier = shipped.topic_matchers[lang]._learned
    (probability_threshold,) = [p for ti, (_c, p) in classifier.items() if shipped.watchlist.topics[ti].id == topic_id]
    assert tag.learned is not None and tag.learned >= probability_threshold
    assert tag.score < threshold.threshold
    # evidence: words of the text at their offsets, in text order, none a stop word alone
    full = analysis_text("", text)
    assert tag.evidence and [e.start for e in tag.evidence] == sorted(e.start for e in tag.evidence)
    for e in tag.evidence:
        assert full[e.start:e.end] == e.text
        assert e.text.lower() not in {"in", "on", "the", "and", "у", "в", "на", "и"}
    # the rules alone do not take it, nor the classifier at a threshold it does not reach
    from transforms.tagging import Tagger

    rules = Tagger(shipped.watchlist.without_learned(), pipelines=shipped.pipelines)
    assert topic_id not in {t.id for t in rules.analyze("", text, lang).topics}
    strict = shipped.watchlist.model_copy(update={"topics": tuple(
        t.model_copy(update={"learned": t.learned.model_copy(update={"threshold": 0.9999})}) if t.id == topic_id else t
        for t in shipped.watchlist.topics)})
    assert topic_id not in {t.id for t in Tagger(strict, pipelines=shipped.pipelines).analyze("", text, lang).topics}


def test_what_the_rules_decide_carries_no_learned_probability(shipped):
    tags = shipped.analyze("", "Полиция задержала участников пикета у военкомата; мобилизованных не отпускают.", "ru").topics
    assert {t.id for t in tags} == {"mobilization", "protest"} and all(t.learned is None for t in tags)
    # and a learned classifier scores every article, tagged or not (for reports)
    scores = shipped.topic_matchers["en"].learned_scores(shipped.pipelines("The bonds rallied on Friday.", "en"))
    assert set(scores) == {"mobilization", "protest"} and all(p < 0.5 for p in scores.values())


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Жёны мобилизованных — у здания администрации: «Верните мужей!»", "ru"),
        ("Women stood outside, holding photographs; police watched.\n\nNo one was detained.", "en"),
        ("Біля ТЦК зібралися люди.", "uk"),
        ("", "en"),
        ("!!! — ...", "ru"),
    ],
)
def test_the_numbered_features_are_the_named_ones_and_each_has_its_first_place(pipes, text, lang):
    from transforms.topics import feature_key, feature_names, key_features, key_spans

    doc = pipes(text, lang)
    numbered = key_features(doc)
    # training names the features (feature_names), the tagger numbers them (key_features)
    assert {feature_key(name) for name in feature_names(doc)} == numbered
    spans = key_spans(doc)
    assert set(spans) == numbered
    words = [t for t in doc if not t.is_punct and not t.is_space]
    for a, b in zip(words, words[1:], strict=False):
        start, end = spans[feature_key(f"{a.lemma_} {b.lemma_}")]
        # the first occurrence of the pair: it starts at a word with a's key and ends after one with b's
        assert doc[start].lemma_ == a.lemma_ and doc[end - 1].lemma_ == b.lemma_ and start <= a.i
    for t in words:
        assert spans[feature_key(t.lemma_)] == (first := min(w.i for w in words if w.lemma_ == t.lemma_), first + 1)
