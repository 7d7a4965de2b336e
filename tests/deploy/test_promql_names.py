"""The PromQL name extraction the name-agreement tests rely on."""

import pytest

from tests.deploy.shipped import metric_names, substitute


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (source) (rate(newsradar_fetches_total{outcome="ok", source=~"a|b"}[5m]))',
         {"newsradar_fetches_total"}),
        ("histogram_quantile(0.9, sum by (le) (rate(newsradar_fetch_duration_seconds_bucket[1h])))",
         {"newsradar_fetch_duration_seconds_bucket"}),
        ("source:a_total:rate1h / on (source) group_left (x) (source:b > 0) unless c offset 1d",
         {"source:a_total:rate1h", "source:b", "c"}),
        ('sum(up{job="newsradar-pipeline"}) > 0 unless sum(rate(newsradar_articles_total[30m])) > 0',
         {"up", "newsradar_articles_total"}),
        ("time() - max without (instance) (ts_seconds) > bool 4 * 1e3", {"ts_seconds"}),
        ('label_replace(x, "dst", "$1", "src", "(.*)") or vector(0)', {"x"}),
        ("deriv(lag[15m:1m]) > 0 and lag > 100", {"lag"}),
    ],
)
def test_metric_names_finds_series_not_labels_functions_or_keywords(expr, names):
    assert metric_names(expr) == names


def test_substitute_turns_template_variables_into_match_all_and_windows_into_durations():
    expr = 'rate(m{source=~"$source", org=~"${org}", t=~"[[topic]]"}[$__rate_interval]) + increase(m[$__range])'
    assert substitute(expr) == 'rate(m{source=~".*", org=~".*", t=~".*"}[5m]) + increase(m[1h])'
    assert substitute("m{a=~\"$a\"}", {"a": "x"}) == 'm{a=~"x"}'
