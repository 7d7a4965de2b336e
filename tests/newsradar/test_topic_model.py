"""The learned classifiers' file and scoring (newsradar/topic_model.py), pure logic."""

import json
import math

import pytest

from newsradar import topic_model as tm


def model(**classifier) -> dict:
    body = {"bias": -1.0, "threshold": 0.5, "weights": {"пикет": 2.0, "жена мобилизованный": 1.0, "матч": -3.0},
            "languages": {"ru": 0.5}}
    body.update(classifier)
    return {"format": tm.FORMAT, "features": tm.FEATURES, "trained": {"items": 3}, "classifiers": {"protest": body}}


def test_a_score_is_the_logistic_of_the_weights_over_the_vectors_length():
    protest = tm.parse(model()).classifiers["protest"]
    # four features present, one of them unknown to the classifier: the length counts all four
    verdict = protest.score(["пикет", "жена мобилизованный", "у", "матч"], "ru")
    z = -1.0 + 0.5 + (2.0 + 1.0 - 3.0) / math.sqrt(4)
    assert verdict.probability == pytest.approx(1 / (1 + math.exp(-z)))
    assert [f for f, _c in verdict.contributions] == ["пикет", "жена мобилизованный", "матч"]
    assert verdict.top(5) == ["пикет", "жена мобилизованный"]  # only what raised it
    # another language has no weight of its own; no features at all is the bias alone
    assert protest.score(["пикет"], "en").probability == pytest.approx(1 / (1 + math.exp(-(-1.0 + 2.0))))
    assert protest.score([], "uk").probability == pytest.approx(1 / (1 + math.exp(1.0)))


@pytest.mark.parametrize(
    "change, field",
    [
        ({"format": "something-else/1"}, "format"),
        ({"features": "words-9"}, "features"),
        ({"classifiers": {}}, "classifiers"),
        ({"classifiers": {"protest": []}}, "classifiers.protest"),
        ({"trained": []}, "trained"),
    ],
)
def test_a_bad_file_names_the_field(change, field):
    data = {**model(), **change}
    with pytest.raises(tm.ModelError) as err:
        tm.parse(data, "m.json")
    assert err.value.field == field and str(err.value).startswith("m.json: ")


@pytest.mark.parametrize(
    "classifier, field",
    [
        ({"threshold": 1.0}, "classifiers.protest.threshold"),
        ({"threshold": 0}, "classifiers.protest.threshold"),
        ({"bias": None}, "classifiers.protest.bias"),
        ({"bias": True}, "classifiers.protest.bias"),
        ({"weights": {"пикет": float("nan")}}, "classifiers.protest.weights['пикет']"),
        ({"weights": {"": 1.0}}, "classifiers.protest.weights"),
        ({"weights": [1.0]}, "classifiers.protest.weights"),
        ({"languages": {"ru": "high"}}, "classifiers.protest.languages['ru']"),
    ],
)
def test_a_bad_classifier_names_the_field(classifier, field):
    with pytest.raises(tm.ModelError) as err:
        tm.parse(model(**classifier), "m.json")
    assert err.value.field == field


def test_dump_is_stable_one_weight_a_line_and_loads_back(tmp_path):
    data = model(weights={"b": 0.1234567891, "a": -2.0})
    text = tm.dump(data)
    assert text == tm.dump(json.loads(text))  # rounding is idempotent: the same model, the same bytes
    assert '   "a": -2.0,\n' in text and '"b": 0.123457' in text
    path = tmp_path / "m.json"
    path.write_text(text, encoding="utf-8")
    assert tm.load(path).classifiers["protest"].weights == {"a": -2.0, "b": 0.123457}


def test_an_unreadable_or_broken_file_is_a_model_error(tmp_path):
    with pytest.raises(tm.ModelError, match="cannot read"):
        tm.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(tm.ModelError, match="not JSON"):
        tm.load(broken)


def test_the_shipped_file_loads_with_a_classifier_per_shipped_topic():
    shipped = tm.load()
    assert set(shipped.classifiers) == {"mobilization", "protest"}
    for classifier in shipped.classifiers.values():
        assert 0 < classifier.threshold < 1 and len(classifier.weights) > 1000
        assert set(classifier.languages) == {"en", "ru", "uk"}


def test_a_rekeyed_classifier_scores_alike_and_probability_is_scores():
    protest = tm.parse(model()).classifiers["protest"]
    features = {"пикет", "жена мобилизованный", "у"}
    assert protest.probability(features, "ru") == pytest.approx(protest.score(features, "ru").probability)
    numbered = protest.rekeyed(str.upper)  # features known by another name
    assert set(numbered.weights) == {"ПИКЕТ", "ЖЕНА МОБИЛИЗОВАННЫЙ", "МАТЧ"}
    assert numbered.probability({f.upper() for f in features}, "ru") == pytest.approx(protest.probability(features, "ru"))
    assert numbered.threshold == protest.threshold and numbered.languages == protest.languages
