"""Names resolved by the article's context (issue 16), with the shipped watchlist: short and
generic names of the two defence ministries, names that are also ordinary words, word-order
variants, and what the alert says about the decision."""

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from newsradar.cli.commands import main
from newsradar.config import ConfigError, load_watchlist
from newsradar.config.watchlist import Organization
from newsradar.records import RawArticle, TaggedArticle, format_time
from transforms.alert_rules import Trigger, events_of, why
from transforms.nlp import Pipelines, analysis_text
from transforms.orgs import OrgMatcher
from transforms.tagging import Tagger

RU, UA = "russian-ministry-of-defence", "ukrainian-ministry-of-defence"


@pytest.fixture(scope="module")
def tagger():
    return Tagger(load_watchlist("config/watchlist.yaml"))


def mentions(tagger, text, lang):
    result = tagger.analyze("", text, lang)
    for m in result.mentions:
        assert text[m.start:m.end] == m.text
    return result.mentions


def orgs(tagger, text, lang):
    return sorted({m.org_id for m in mentions(tagger, text, lang)})


@pytest.mark.parametrize(
    "text, lang, org",
    [
        ("Жёны мобилизованных провели пикет у Минобороны в Москве, Песков отказался комментировать.", "ru", RU),
        ("В Киеве Министерство обороны объявило о новых правилах отсрочки; Зеленский подписал закон.", "ru", UA),
        ("Міноборони оновило застосунок «Резерв+» для військовозобов'язаних, повідомили у Києві.", "uk", UA),
        ("У Москві Міноборони заявило про новий призов, повідомив Пєсков.", "uk", RU),
        ("The Defense Ministry in Moscow said the men would be paid a bonus, the Kremlin said.", "en", RU),
        ("In Kyiv, the Defence Ministry released an update for reservists; Zelensky praised it.", "en", UA),
    ],
)
def test_the_two_ministries_are_told_apart_by_the_story_in_both_directions(tagger, text, lang, org):
    found = mentions(tagger, text, lang)
    assert [(m.org_id, m.match) for m in found] == [(org, "contextual")]
    owner = "Russia's" if org == RU else "Ukraine's"
    assert found[0].resolved_by.startswith(f"{owner}: ")


def test_the_decision_names_its_cues(tagger):
    [m] = mentions(tagger, "Жёны мобилизованных провели пикет у Минобороны в Москве, у стен Кремля.", "ru")
    assert m.text == "Минобороны" and m.resolved_by == "Russia's: Москве, Кремля"


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Минобороны опубликовало видео с полигона.", "ru"),  # the language alone is half a cue
        ("The Ministry of Defence in Canberra announced a new submarine programme.", "en"),
        ("Israel's defence ministry approved a contract for drones, a Russian-made part included.", "en"),
        # as many cues of each country: nobody's (in Russian text the language would tip it)
        ("The Defence Ministry commented on the talks between Moscow and Kyiv.", "en"),
    ],
)
def test_a_short_name_the_story_does_not_resolve_is_nobodys(tagger, text, lang):
    assert orgs(tagger, text, lang) == []


def test_an_earlier_full_mention_resolves_a_short_name_and_the_ministry(tagger):
    text = "Russia's Defence Ministry said the drills would last a week. The ministry gave no numbers."
    found = [(m.org_id, m.text, m.match, m.resolved_by) for m in mentions(tagger, text, "en")]
    assert found == [(RU, "Russia's Defence Ministry", "exact", None),
                     (RU, "The ministry", "contextual", "after «Russia's Defence Ministry»")]
    # Ukraine's full name first: the same short name is Ukraine's, whatever else is said.
    text = "Міністерство оборони України оголосило тендер. У Міноборони уточнили, що Москва не завадить."
    assert [(m.org_id, m.match) for m in mentions(tagger, text, "uk")] == [(UA, "exact"), (UA, "contextual")]
    # "the ministry" with no full mention before it is nobody's, whatever the country.
    assert orgs(tagger, "The ministry in Moscow said the Kremlin agreed.", "en") == []


@pytest.mark.parametrize(
    "text, lang",
    [
        ("В кинотеатрах показали фильм «Путь домой» о ветеране, вернувшемся в деревню.", "ru"),
        ("Кинотеатр «Весна» закрылся на реконструкцию, сообщили в мэрии.", "ru"),
        ("В День Победы жители возложили цветы к Мемориалу Славы.", "ru"),
        ("Біля Меморіалу Слави у Полтаві поклали квіти.", "uk"),
        ("На фестивалі показали фільм «Шлях додому» про родину.", "uk"),
        ("A new drama called The Way Home premiered at the festival.", "en"),
    ],
)
def test_a_film_a_cinema_and_a_memorial_are_not_the_watched_names(tagger, text, lang):
    assert orgs(tagger, text, lang) == []


@pytest.mark.parametrize(
    "text, lang, org",
    [
        ("The Way Home, a movement of soldiers' wives, held a picket near the Kremlin.", "en", "put-domoy"),
        ("Движение «Путь домой» провело акцию у Кремля.", "ru", "put-domoy"),
        ("Активистов движения «Весна» задержали после акции.", "ru", "vesna"),
        ("Правозащитное общество «Мемориал» опубликовало список.", "ru", "memorial"),
    ],
)
def test_a_name_with_support_counts(tagger, text, lang, org):
    assert orgs(tagger, text, lang) == [org]


def test_the_context_window_counts_words_not_punctuation(tagger):
    # «повесткой» is the 7th word after the name but its 12th token: commas and dashes
    # between them must not push a context word out of reach; the 9th word is out of reach.
    assert orgs(tagger, "«Идите лесом», по словам юристов, — опять — помогают с повесткой.", "ru") == ["idite-lesom"]
    assert orgs(tagger, "«Идите лесом», по словам юристов, опять и опять помогают всем, кто получил повестку.",
                "ru") == []


@pytest.mark.parametrize(
    "text, lang, surface",
    [
        ("A statement from the Council of Wives and Mothers was read out.", "en", "Council of Wives and Mothers"),
        ("Совет жён и матерей обратился к президенту.", "ru", "Совет жён и матерей"),
        ("Рада дружин і матерів звернулася до Кремля.", "uk", "Рада дружин і матерів"),
    ],
)
def test_coordinated_words_in_the_other_order_are_fuzzy(tagger, text, lang, surface):
    found = [(m.org_id, m.text, m.match) for m in mentions(tagger, text, lang)]
    assert found == [("council-of-mothers-and-wives", surface, "fuzzy")]


def test_the_alert_says_how_the_short_name_was_read(tagger):
    text = "Жёны мобилизованных провели пикет у Минобороны в Москве."
    now = format_time(datetime(2026, 12, 1, tzinfo=UTC))
    raw = RawArticle(article_id="a1", source_id="s", source_kind="rss", url="u", title="", text=text,
                     published_at=now, fetched_at=now)
    tagged = tagger.tag(TaggedArticle(article=raw, lang="ru", story_id="a1"))
    assert tagged.version() == 2  # a contextual mention is a version-2 record
    [(org_id, event)] = events_of(tagged)
    org = tagger.watchlist.organization(org_id)
    sentence = why(Trigger("new_mention", org_id, "a1", event), org, tagger.watchlist)
    assert "“Минобороны” (a short name, read as Russia's: Москве)" in sentence


def test_a_shared_acronym_marked_proper_needs_support():
    fas = Organization.model_validate({
        "id": "fas", "name": "Fund", "aliases": {"ru": ["Фонд антикоррупционных садов"]},
        "acronyms": [{"text": "ФАС", "case": "proper"}], "context": {"ru": ["расследование"]},
    })
    pipes = Pipelines(("ru",))
    matcher = OrgMatcher([fas], pipes, "ru")

    def found(text):
        return [m.text for m in matcher(pipes(analysis_text("", text), "ru"))]

    assert found("ФАС оштрафовала торговую сеть за цены.") == []
    assert found("ФАС опубликовал новое расследование.") == ["ФАС"]
    assert found("Фонд антикоррупционных садов сообщил, что ФАС помогает.") == ["Фонд антикоррупционных садов", "ФАС"]


GENERIC_WITHOUT_RESOLUTION = """\
version: 1
organizations:
  - id: mod
    name: Some ministry
    aliases:
      ru:
        - Министерство обороны Атлантиды
        - {text: Минобороны, generic: true}
"""


def test_the_check_refuses_a_generic_alias_nothing_resolves(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(GENERIC_WITHOUT_RESOLUTION, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_watchlist(path)
    assert str(err.value).startswith(f"{path}:8: organizations[0].aliases.ru[1].generic: ")
    assert "country" in str(err.value) and "context" in str(err.value)
    result = CliRunner().invoke(main, ["watchlist", "check", str(path)])
    assert result.exit_code == 2, result.output
    # A country that is not defined is refused too; with one defined the file loads.
    path.write_text(GENERIC_WITHOUT_RESOLUTION.replace("    aliases:", "    country: atlantis\n    aliases:"))
    with pytest.raises(ConfigError, match=r"organizations\[0\]\.country: unknown country id 'atlantis'"):
        load_watchlist(path)
    countries = "countries:\n  - {id: atlantis, name: Atlantis's, cues: {ru: [Посейдония]}}\n"
    path.write_text(countries + GENERIC_WITHOUT_RESOLUTION.replace("    aliases:", "    country: atlantis\n    aliases:"))
    assert load_watchlist(path).organization("mod").country == "atlantis"


def test_the_source_is_half_a_cue(tagger):
    text = "Минобороны сообщило о новых выплатах."  # Russian text: half a cue for Russia
    assert orgs(tagger, text, "ru") == []
    found = tagger.analyze("", text, "ru", source_id="meduza-ru").mentions
    assert [(m.org_id, m.resolved_by) for m in found] == [(RU, "Russia's: source meduza-ru")]
    # A Ukrainian outlet writing in Russian: half a cue each, a tie, nobody's.
    assert tagger.analyze("", text, "ru", source_id="ukrainska-pravda").mentions == ()


@pytest.mark.parametrize(
    "text",
    [
        # A synonym-swapped rewrite of a generic name names another body.
        "A court in Tula jailed a former deputy head of the city's civil defence department for taking "
        "two million roubles.",
        # "civil" before it: an emergencies ministry, not the defence ministry.
        "The civil defence ministry in Moscow sent 300 rescuers to the Kursk region.",
    ],
)
def test_civil_defence_is_not_a_defence_ministry(tagger, text):
    assert orgs(tagger, text, "en") == []
    # The same story about the ministry itself is still read.
    assert orgs(tagger, "The Defence Ministry in Moscow sent 300 soldiers to the Kursk region.", "en") == [RU]


@pytest.mark.parametrize(
    "text, lang",
    [
        # Another country's ministry in a story that names Russia: its name qualifies the short
        # one (OTHER_COUNTRIES), before it in English, after it (the genitive) in Russian and Ukrainian.
        ("Poland's Defence Ministry said fighter jets were scrambled after a Russian drone entered the country's "
         "airspace; Moscow has not commented.", "en"),
        ("The Lithuanian Defence Ministry said a Russian aircraft had violated its airspace; the Kremlin denied it.", "en"),
        ("The Ministry of Defence of Finland said a tanker bound for St. Petersburg had damaged a cable; Moscow was silent.", "en"),
        ("Накануне Минобороны Финляндии сообщило, что российский танкер повредил кабель; МИД России вручил ноту.",
         "ru"),
        ("Міноборони Польщі повідомило про російський дрон, запущений з Бєлгорода, над Люблінським воєводством.", "uk"),
    ],
)
def test_a_short_name_qualified_by_another_country_is_that_countrys(tagger, text, lang):
    assert orgs(tagger, text, lang) == []


def test_a_short_name_beside_a_watched_country_is_still_resolved(tagger):
    # Russia's own qualifier is an alias (a full name); a foreign country elsewhere changes nothing.
    assert orgs(tagger, "Минобороны России сообщило о перехвате дронов над Финляндией.", "ru") == [RU]
    text = "The Defence Ministry in Moscow said its jets had been scrambled; Poland protested."
    assert [(m.org_id, m.match) for m in mentions(tagger, text, "en")] == [(RU, "contextual")]


def test_the_ministry_after_a_foreign_ministry_named_since_is_not_the_defence_ministry(tagger):
    text = ("Russia's Defence Ministry said it had shot down 20 drones over Kursk. Later the foreign ministry "
            "summoned Poland's ambassador, and the ministry said a note of protest had been handed to him.")
    found = [(m.org_id, m.text) for m in mentions(tagger, text, "en")]
    assert found == [(RU, "Russia's Defence Ministry")]
    # With no foreign ministry between, "the ministry" is the defence ministry named before it.
    text = "Russia's Defence Ministry said it had shot down 20 drones over Kursk, and the ministry said more would follow."
    assert [(m.org_id, m.text) for m in mentions(tagger, text, "en")] == [
        (RU, "Russia's Defence Ministry"), (RU, "the ministry")]


@pytest.mark.parametrize(
    "text, lang, org, cue",
    [
        # Ukrainian text: the language is Ukraine's, the text names Putin (and Ukraine, less).
        ("Путін доручив Міноборони та уряду розв'язати питання житла для офіцерів, які повернулися з війни "
         "проти України.", "uk", RU, "Путін"),
        # Russian text: the language is Russia's, the text names Zelensky (and Russia, less).
        ("Зеленский поручил Минобороны решить вопрос жилья для офицеров, вернувшихся с войны с Россией.",
         "ru", UA, "Зеленский"),
    ],
)
def test_on_equal_evidence_the_text_outweighs_the_language(tagger, text, lang, org, cue):
    [m] = mentions(tagger, text, lang)
    assert m.org_id == org and m.match == "contextual" and m.resolved_by.endswith(f": {cue}")


def test_a_cue_in_several_languages_lists_counts_once(tagger):
    doc = tagger.pipelines("Минобороны выплатит сто тысяч рублей.", "ru")
    evidence = tagger.org_matchers["ru"]._country_evidence(doc)
    russia = [i for i, c in enumerate(tagger.watchlist.countries) if c.id == "russia"][0]
    # «рубль» is in Russia's ru and uk cue lists: one cue (1) plus the language (0.5).
    assert evidence[russia][:2] == (1.5, 1.0)


def test_medvedev_and_the_security_council_are_russian_cues(tagger):
    [m] = mentions(tagger, "Зампред Совбеза Дмитрий Медведев провёл совещание в Минобороны.", "ru")
    assert m.org_id == RU and m.resolved_by == "Russia's: Совбеза, Медведев"


def test_a_cue_in_the_headline_weighs_double(tagger):
    body = "The Defence Ministry had warned that the change would need new training capacity."
    # "Ukrainian" is half a cue: in the body not enough, in the headline it is.
    assert orgs(tagger, f"Ukrainian MPs shelve the bill. {body}", "en") == []
    [m] = tagger.analyze("Ukrainian MPs shelve the bill", body, "en").mentions
    assert (m.org_id, m.resolved_by) == (UA, "Ukraine's: Ukrainian")
    # Without a body there is no headline apart: the same words weigh as in a body.
    assert tagger.analyze(f"Ukrainian MPs shelve the bill. {body}", "", "en").mentions == ()


def test_the_title_of_its_head_resolves_the_ministry(tagger):
    text = ("Defence Minister Andrei Belousov told a Kremlin meeting that the ministry saw no need for "
            "another round of mobilisation.")
    [m] = mentions(tagger, text, "en")
    assert (m.org_id, m.text, m.match) == (RU, "the ministry", "contextual")
    assert m.resolved_by == "after «Defence Minister», Russia's: Belousov, Kremlin"
    # The title is no mention itself, and resolves only what comes after it.
    assert orgs(tagger, "Defence Minister Andrei Belousov told a Kremlin meeting nothing new.", "en") == []
    assert orgs(tagger, "The ministry said Defence Minister Andrei Belousov was at the Kremlin.", "en") == []
    # A title nothing resolves resolves nothing.
    assert orgs(tagger, "The Defence Minister said the ministry would buy new tanks.", "en") == []
