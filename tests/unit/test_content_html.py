"""sanitize_html: nothing executable survives, and every URL works outside the site."""

from publisher.content.html import sanitize_html

BASE = "https://news.example/"


def test_script_and_style_are_removed_with_their_content() -> None:
    html = sanitize_html("<p>safe</p><script>alert('x')</script><style>p{color:red}</style>", BASE)
    assert html == "<p>safe</p>"


def test_iframe_is_removed_with_its_content() -> None:
    assert sanitize_html('<iframe src="https://evil.example">fallback</iframe><p>ok</p>', BASE) == "<p>ok</p>"


def test_event_handlers_are_removed() -> None:
    html = sanitize_html('<img src="https://cdn.example/a.png" onerror="alert(1)" alt="A">', BASE)
    assert "onerror" not in html
    assert 'alt="A"' in html


def test_javascript_urls_are_removed() -> None:
    html = sanitize_html('<a href="javascript:alert(1)">x</a><img src="data:image/png;base64,AA">', BASE)
    assert "javascript" not in html
    assert "data:" not in html


def test_relative_urls_become_absolute() -> None:
    html = sanitize_html('<a href="/about?x=1#team">a</a><img src="images/b.png"><a href="//cdn.example/c">c</a>', BASE)
    assert 'href="https://news.example/about?x=1#team"' in html
    assert 'src="https://news.example/images/b.png"' in html
    assert 'href="https://cdn.example/c"' in html


def test_absolute_and_mailto_links_are_kept_with_rel() -> None:
    links = '<a href="https://other.example/x" rel="opener">x</a><a href="mailto:desk@news.example">m</a>'
    html = sanitize_html(links, BASE)
    assert '<a href="https://other.example/x" rel="noopener noreferrer">x</a>' in html
    assert 'href="mailto:desk@news.example"' in html


def test_article_structure_is_kept() -> None:
    html = (
        "<h2>Facts</h2><table><caption>GDP</caption><thead><tr><th>A</th></tr></thead>"
        "<tbody><tr><td>1</td></tr></tbody></table>"
        '<figure><img src="https://news.example/a.png" alt="a" width="10" height="20">'
        "<figcaption>c</figcaption></figure>"
        "<blockquote><p>q</p><cite>who</cite></blockquote><ol><li><em>e</em> <strong>s</strong></li></ol>"
        "<pre><code>x = 1</code></pre>"
    )
    assert sanitize_html(html, BASE) == html
