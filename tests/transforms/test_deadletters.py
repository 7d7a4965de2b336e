"""The dead letter of a record a step failed on, and RecordStep's rule: any error of the
record's code is a dead letter, only infrastructure errors fail the bundle."""

from dataclasses import dataclass

import pytest
from kafka.errors import KafkaTimeoutError

from newsradar.records import MAX_ERROR_CHARS, DeadLetter, TaggedArticle, decode_dead_letter, decode_raw
from tests.pipelines.support import raw_article
from transforms.deadletters import RecordStep, dead_letter


def test_the_letter_carries_the_news_raw_record_and_a_bounded_error():
    article = raw_article(7, html="<p>gone after Normalize</p>")
    tagged = TaggedArticle(article=article, lang="en", story_id=article.article_id)
    letter = decode_dead_letter(dead_letter(tagged, ValueError("x" * 5000), "tag").encode())
    assert letter.step == "tag" and decode_raw(letter.original_bytes()) == article
    assert letter.error.startswith("ValueError: xxx") and len(letter.error) == MAX_ERROR_CHARS
    short = dead_letter(article, KeyError("lang"), "normalize")
    assert short.error == "KeyError: 'lang'" and decode_raw(short.original_bytes()) == article


def test_a_letter_can_always_be_written_even_for_text_that_cannot_be_encoded():
    # A lone surrogate that got past decoding (a step's own value, an error quoting it):
    # escaped in the letter, never a second UnicodeEncodeError while building it.
    article = raw_article(8, title="bad \ud83d title")
    letter = dead_letter(article, UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed"), "normalize")
    back = decode_dead_letter(letter.encode())
    assert back.step == "normalize" and "UnicodeEncodeError" in back.error
    assert decode_raw(back.original_bytes()).title == "bad \ufffd title"


@dataclass(frozen=True)
class Event:
    org_id: str
    when: float


def test_an_intermediate_value_is_kept_as_json():
    letter = dead_letter(Event("cmw", float("inf")), OverflowError("no"), "novelty")
    assert decode_dead_letter(letter.encode()).original_bytes().startswith(b'{"org_id": "cmw"')


class Step(RecordStep):
    STEP = "test"
    NAMESPACE = "test"

    def __init__(self, exc: BaseException | None):
        super().__init__()
        self.exc = exc

    def apply(self, record):
        if self.exc is not None:
            raise self.exc
        return record


@pytest.mark.parametrize("exc", [RuntimeError("bug"), AttributeError("x"), AssertionError(), RecursionError(),
                                 UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"), StopIteration()])
def test_any_error_of_the_record_s_code_is_a_dead_letter(exc):
    step = Step(exc)
    step.setup()
    [out] = list(step.process(raw_article(1)))
    assert isinstance(out.value, DeadLetter) and out.tag == "dlq"
    assert out.value.error.startswith(type(exc).__name__)


@pytest.mark.parametrize("exc", [OSError("disk full"), ConnectionResetError(), MemoryError(), KafkaTimeoutError()])
def test_infrastructure_errors_fail_the_bundle(exc):
    step = Step(exc)
    step.setup()
    with pytest.raises(type(exc)):
        list(step.process(raw_article(1)))


def test_keyed_steps_keep_the_key_on_both_outputs():
    ok, bad = Step(None), Step(ValueError("x"))
    ok._keyed = bad._keyed = True
    ok.setup()
    bad.setup()
    article = raw_article(2)
    assert list(ok.process((5, article))) == [(5, article)]
    [out] = list(bad.process((6, article)))
    assert out.value[0] == 6 and isinstance(out.value[1], DeadLetter)
