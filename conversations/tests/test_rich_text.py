"""Message text as HTML in the thread: escaped, links made clickable, line breaks kept."""

from __future__ import annotations

from conversations.templatetags.inbox import rich_text


def test_web_addresses_become_links_and_trailing_punctuation_stays_text():
    html = rich_text("See https://example.com/a?b=1&c=2. Or www.example.org!")
    assert (
        '<a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="nofollow noopener">'
        "https://example.com/a?b=1&amp;c=2</a>." in html
    )
    link = '<a href="http://www.example.org" target="_blank" rel="nofollow noopener">www.example.org</a>'
    assert link + "!" in html


def test_text_is_escaped_and_only_web_addresses_are_linked():
    html = rich_text('<script>alert(1)</script> "javascript:alert(1)" mail@example.com')
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<a " not in html
    assert "&quot;javascript:alert(1)&quot;" in html


def test_a_quote_ends_a_link_and_cannot_break_out_of_the_attribute():
    html = rich_text('go to https://example.com/"onmouseover="x')
    assert html.startswith('go to <a href="https://example.com/" ')
    assert 'onmouseover="x' not in html


def test_line_breaks_are_kept_and_empty_text_is_empty():
    assert rich_text("one\r\ntwo\nthree") == "one<br>two<br>three"
    assert rich_text(None) == ""
    assert rich_text("") == ""
