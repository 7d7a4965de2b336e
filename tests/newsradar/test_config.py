"""Config files: the shipped ones load; each kind of bad file gives exit 2 naming file and path."""

import subprocess

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from newsradar.cli import main
from newsradar.config import ConfigError, load_sources, load_watchlist, loader, parse_duration, parse_size
from tests.conftest import FIXTURES, REPO, newsradar_cmd

CFG = FIXTURES / "config"


def test_shipped_watchlist_has_the_required_organizations_and_topics():
    wl = load_watchlist(REPO / "config" / "watchlist.yaml")
    required = {
        "soldiers-mothers-union", "council-of-mothers-and-wives", "united-russia",
        "russian-ministry-of-defence", "verstka",
    }
    assert required <= {o.id for o in wl.organizations}
    for org in wl.organizations:
        assert all(org.aliases.get(lang) for lang in ("en", "ru", "uk")), org.id
    assert {"mobilization", "protest"} <= {t.id for t in wl.topics}
    for topic in wl.topics:
        assert all(topic.terms.get(lang) for lang in ("en", "ru", "uk")), topic.id
    assert wl.organization("verstka").window(wl.novelty) == 7 * 86400


def test_shipped_sources_load():
    s = load_sources(REPO / "config" / "sources.yaml")
    assert not s.allow_private_networks
    assert {src.kind for src in s.sources} == {"rss", "telegram"}


def test_sources_defaults_and_modes():
    s = load_sources(CFG / "good-sources.yaml")
    assert s.allow_private_networks
    feed, web, bot, export = s.sources
    assert s.interval_of(feed) == 300 and s.interval_of(web) == 90
    assert s.defaults.max_body == 1024 * 1024
    assert web.mode == "web" and web.channel == "Some_Channel"
    assert bot.mode == "bot" and bot.channels == ("chan_one",)
    assert export.mode == "export"
    with pytest.raises(ValidationError, match="frozen"):
        feed.url = "http://elsewhere"


@pytest.mark.parametrize(
    "name, loader_fn, path, words",
    [
        ("bad-syntax.yaml", load_watchlist, "", "YAML syntax error"),
        ("bad-type.yaml", load_watchlist, "organizations[1].aliases.ru", "expected a list"),
        ("bad-unknown-key.yaml", load_watchlist, "topics[0].treshold", "unknown key; expected one of"),
        ("bad-alias-bomb.yaml", load_watchlist, "", "anchors"),
        ("bad-python-tag.yaml", load_watchlist, "", "tag"),
        ("bad-example-ref.yaml", load_watchlist, "examples[0].topics[0]", "unknown topic id 'rallies'"),
        ("bad-sources-kind.yaml", load_sources, "sources[1].channel", "channel username"),
        ("bad-sources-url.yaml", load_sources, "sources[0].url", "http:// or https://"),
        ("bad-sources-duplicate.yaml", load_sources, "sources[1].id", "duplicate source id 'feed'"),
    ],
)
def test_bad_files_name_file_path_and_expectation(name, loader_fn, path, words):
    with pytest.raises(ConfigError) as err:
        loader_fn(CFG / name)
    assert err.value.file.endswith(name)
    assert err.value.path == path
    assert words in str(err.value)
    assert err.value.line is not None


def test_unknown_key_points_at_its_line():
    with pytest.raises(ConfigError) as err:
        load_watchlist(CFG / "bad-unknown-key.yaml")
    assert err.value.line == 5
    assert "threshold" in str(err.value)  # the hint lists the key the operator meant


def test_oversized_and_deep_and_empty_files(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("organizations: []\n# " + "x" * loader.MAX_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_watchlist(big)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * (loader.MAX_DEPTH + 5) + "]" * (loader.MAX_DEPTH + 5) + "\n")
    with pytest.raises(ConfigError, match="nested deeper"):
        load_watchlist(deep)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="empty"):
        load_watchlist(empty)
    with pytest.raises(ConfigError, match="cannot read"):
        load_watchlist(tmp_path / "missing.yaml")


def test_node_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_NODES", 50)
    many = tmp_path / "many.yaml"
    many.write_text("examples:\n" + "".join(f"  - {{text: t{i}}}\n" for i in range(40)))
    with pytest.raises(ConfigError, match="more than 50 YAML nodes"):
        load_watchlist(many)


def test_durations_and_sizes():
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600 and parse_duration(5) == 5
    assert parse_duration("1d") == 86400 and parse_duration("250ms") == 0.25
    assert parse_size("15MiB") == 15 * 1024 * 1024 and parse_size(10) == 10
    for bad in ("soon", -1, True, "10 parsecs"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    "args",
    [
        ["watchlist", "check", str(CFG / "bad-type.yaml")],
        ["sources", "check", str(CFG / "bad-sources-url.yaml")],
        ["tag", "--watchlist", str(CFG / "bad-alias-bomb.yaml")],
        ["pipeline", "--watchlist", str(CFG / "bad-python-tag.yaml")],
        ["connect", "--sources", str(CFG / "bad-sources-kind.yaml"), "--once"],
    ],
)
def test_cli_exit_code_2_and_one_line(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("newsradar: config error: ")
    assert "Traceback" not in result.output


def test_installed_script_reports_config_errors_without_traceback():
    proc = subprocess.run(newsradar_cmd("watchlist", "check", str(CFG / "bad-type.yaml")), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "bad-type.yaml:9: organizations[1].aliases.ru: expected a list" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_accepts_the_shipped_files():
    result = CliRunner().invoke(main, ["watchlist", "check", str(REPO / "config" / "watchlist.yaml")])
    assert result.exit_code == 0 and "ok" in result.output
    assert "2 topics (learned classifiers mobilization: mobilization, protest: protest)" in result.output


def _write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


ORG = "organizations:\n  - id: org-a\n    name: Org A\n"


def test_unknown_language_key_is_reported_not_a_hang(tmp_path):
    f = _write(tmp_path, "wl.yaml", ORG + "    aliases:\n      en: [Org A]\n      ua: [Орг А]\n")
    proc = subprocess.run(newsradar_cmd("watchlist", "check", str(f)), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{f}:6: organizations[0].aliases.ua: expected 'en', 'ru' or 'uk', got 'ua'" in proc.stderr


def test_duplicate_key_names_both_lines(tmp_path):
    f = _write(tmp_path, "wl.yaml", ORG + "    aliases: {en: [Org A]}\n    name: Org B\n")
    with pytest.raises(ConfigError) as err:
        load_watchlist(f)
    assert err.value.line == 5 and err.value.path == "organizations[0].name"
    assert "duplicate key (also on line 3)" in str(err.value)
    s = _write(tmp_path, "s.yaml", "sources: []\ndefaults: {}\nsources: []\n")
    with pytest.raises(ConfigError, match=r"s.yaml:3: sources: duplicate key \(also on line 1\)"):
        load_sources(s)


@pytest.mark.parametrize("alias, path, words", [
    ('"   "', "organizations[0].aliases.en[0]", "expected text that is not blank"),
    ("{text: ' '}", "organizations[0].aliases.en[0].text", "expected text that is not blank"),
    ("{regex: 'Org.*'}", "organizations[0].aliases.en[0].regex", "unknown key; expected one of: case, generic, text"),
    ('{"text": 5}', "organizations[0].aliases.en[0].text", "expected a string, got 5"),
])
def test_alias_mistakes_are_named_for_what_they_are(tmp_path, alias, path, words):
    f = _write(tmp_path, "wl.yaml", ORG + f"    aliases:\n      en: [{alias}]\n")
    with pytest.raises(ConfigError) as err:
        load_watchlist(f)
    assert err.value.path == path and err.value.line == 5
    assert words in str(err.value)


@pytest.mark.parametrize("loader_fn, text, path, line", [
    (load_watchlist, ORG + "    aliases: {en: [Org A]}\n    novelty_window: 7\n", "organizations[0].novelty_window", 5),
    (load_watchlist, "novelty:\n  surge: {cooldown: '6'}\n", "novelty.surge.cooldown", 2),
    (load_sources, "defaults:\n  interval: 600\nsources: []\n", "defaults.interval", 2),
    (load_sources, "sources:\n  - {id: a, kind: rss, url: 'https://e.org/', interval: 30}\n", "sources[0].interval", 2),
])
def test_durations_in_files_need_a_unit(tmp_path, loader_fn, text, path, line):
    f = _write(tmp_path, "c.yaml", text)
    with pytest.raises(ConfigError) as err:
        loader_fn(f)
    assert (err.value.path, err.value.line) == (path, line)
    assert "the unit is required" in str(err.value)
    fixed = _write(tmp_path, "ok.yaml", text.replace(": 7\n", ": 7d\n").replace("'6'", "6h")
                   .replace("600", "10m").replace("30}", "30s}"))
    loader_fn(fixed)


def test_weights_and_thresholds_must_be_positive(tmp_path):
    f = _write(tmp_path, "wl.yaml", "topics:\n  - {id: t, name: T, threshold: 0, terms: {en: [a]}}\n")
    with pytest.raises(ConfigError, match=r"topics\[0\]\.threshold: expected a number > 0, got 0"):
        load_watchlist(f)
    f = _write(tmp_path, "wl.yaml", "topics:\n  - {id: t, name: T, terms: {en: [{term: a, weight: -1}]}}\n")
    with pytest.raises(ConfigError, match=r"topics\[0\]\.terms\.en\[0\]\.weight: expected a number > 0, got -1"):
        load_watchlist(f)
    f = _write(tmp_path, "wl.yaml", "topics:\n  - {id: Bad_Id, name: T, terms: {en: [a]}}\n")
    with pytest.raises(ConfigError, match=r"topics\[0\]\.id: expected an id of lower-case letters, digits and '-', got 'Bad_Id'"):
        load_watchlist(f)


@pytest.mark.parametrize("text, where", [
    ("organizations: []\n'': 1\n", "wl.yaml:2: ['']: unknown key"),
    ("organizations: []\n'a b': 1\n", "wl.yaml:2: ['a b']: unknown key"),
    ("organizations: []\nnull: 1\n", "wl.yaml:2: null: expected a text key, got None"),
    (ORG + "    aliases: {en: [A]}\n    5: x\n", "wl.yaml:5: organizations[0].5: expected a text key, got 5"),
    ("version: 1\n1: a\n1.0: b\n", "wl.yaml:3: 1.0: duplicate key (also on line 2)"),
    # Not a date (no config value is one), so no crash on a day that does not exist.
    ("organizations: []\n2020-02-30: 1\n", "wl.yaml:2: 2020-02-30: unknown key"),
    ("version: 2020-02-30\n", "wl.yaml:1: version: expected 1, got '2020-02-30'"),
    ("organizations: []\n<<: {version: 1}\n", "wl.yaml:2: YAML merge keys (<<) are not allowed"),
])
def test_odd_keys_are_named_and_found_on_their_line(tmp_path, text, where):
    f = _write(tmp_path, "wl.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_watchlist(f)
    assert str(err.value).startswith(f"{tmp_path}/{where}"), str(err.value)


@pytest.mark.parametrize("value, words", [("-1s", "expected a duration"), ("5", "unit"), ("2h", "<= 3600")])
def test_a_bad_grouping_window_names_its_line_and_field(tmp_path, value, words):
    f = _write(tmp_path, "wl.yaml", f"alerts:\n  sinks: []\n  group_window: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_watchlist(f)
    assert err.value.path == "alerts.group_window" and err.value.line == 3
    assert words in str(err.value)
    assert load_watchlist(_write(tmp_path, "ok.yaml", "alerts:\n  group_window: 500ms\n")).alerts.group_window == 0.5
    assert load_watchlist(_write(tmp_path, "default.yaml", "alerts:\n  sinks: []\n")).alerts.group_window == 5.0


@pytest.mark.parametrize("term", ["* ресурсы", "мобилизовать *", "мобилизовать *все ресурсы", "*"])
def test_a_gap_in_a_term_stands_alone_between_two_words(tmp_path, term):
    f = _write(tmp_path, "wl.yaml", f"topics:\n  - {{id: t, name: T, terms: {{ru: ['{term}']}}}}\n")
    # a star alone is not a phrase at all (no letter in it); the others misplace it
    problem = "expected a phrase with a letter or digit" if term == "*" else r"a '\*' stands alone between two words"
    with pytest.raises(ConfigError, match=r"topics\[0\]\.terms\.ru\[0\]: " + problem):
        load_watchlist(f)
    ok = _write(tmp_path, "ok.yaml", "topics:\n  - {id: t, name: T, terms: {ru: ['мобилизовать * * ресурсы']}}\n")
    assert load_watchlist(ok).topics[0].terms["ru"][0].term == "мобилизовать * * ресурсы"


def test_a_topic_names_a_learned_classifier_of_the_build(tmp_path):
    f = _write(tmp_path, "wl.yaml", "topics:\n  - {id: t, name: T, learned: protest, terms: {en: [a]}}\n"
                                    "  - {id: u, name: U, learned: {model: mobilization, threshold: 0.7}, terms: {en: [b]}}\n")
    wl = load_watchlist(f)
    assert wl.topic("t").learned.model == "protest" and wl.topic("t").learned.threshold is None
    assert wl.topic("u").learned.threshold == 0.7
    assert all(t.learned is None for t in wl.without_learned().topics)
    assert wl.without_learned().topic("u").terms == wl.topic("u").terms
    f = _write(tmp_path, "wl.yaml", "topics:\n  - {id: t, name: T, learned: riots, terms: {en: [a]}}\n")
    with pytest.raises(ConfigError, match=r"wl.yaml:2: topics\[0\]\.learned\.model: unknown classifier 'riots' "
                                          r"\(this build has: mobilization, protest\)"):
        load_watchlist(f)
    f = _write(tmp_path, "wl.yaml", "topics:\n  - {id: t, name: T, learned: {model: protest, threshold: 1}, "
                                    "terms: {en: [a]}}\n")
    with pytest.raises(ConfigError, match=r"topics\[0\]\.learned\.threshold: expected a number < 1, got 1"):
        load_watchlist(f)
