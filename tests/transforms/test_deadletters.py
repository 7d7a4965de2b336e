"""The dead letter of an article a step failed on: the record, a bounded error, the step."""

from newsradar.records import TaggedArticle, decode_dead_letter, decode_raw
from tests.pipelines.support import raw_article
from transforms.deadletters import MAX_ERROR_CHARS, dead_letter


def test_the_letter_carries_the_news_raw_record_and_a_bounded_error():
    article = raw_article(7, html="<p>gone after Normalize</p>")
    tagged = TaggedArticle(article=article, lang="en", story_id=article.article_id)
    letter = decode_dead_letter(dead_letter(tagged, ValueError("x" * 5000), "tag").encode())
    assert letter.step == "tag" and decode_raw(letter.original_bytes()) == article
    assert letter.error.startswith("ValueError: xxx") and len(letter.error) == MAX_ERROR_CHARS
    short = dead_letter(article, KeyError("lang"), "normalize")
    assert short.error == "KeyError: 'lang'" and decode_raw(short.original_bytes()) == article
