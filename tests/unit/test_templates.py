"""The email templates: every step renders, links carry UTM tags, the data contract is enforced."""

from __future__ import annotations

import shutil
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hearth.sequences import load_sequences
from hearth.templates import (
    TEMPLATES_DIR,
    TemplateError,
    dynamic_template_data,
    load_manifest,
    render,
    sendgrid_template_payload,
    template_payloads,
    with_utm,
)

UNSUBSCRIBE = "https://hearth.example/unsubscribe/tok-123?sig=a1&list=abandoned"
BASE: dict[str, Any] = {
    "first_name": "Ann",
    "shop_name": "Hearth & Home",
    "shop_url": "https://shop.example/",
    "shop_address": "12 Kiln Lane, Portland, OR 97201, USA",
    "unsubscribe_url": UNSUBSCRIBE,
}
ITEMS = [
    {
        "title": "Smoked Tea & Honey",
        "quantity": 2,
        "price": "$24.00",
        "product_url": "https://shop.example/products/smoked-tea?variant=7",
        "image_url": "https://cdn.shop.example/tea.jpg",
    },
    {"title": "Oat Soap", "quantity": 1, "price": "$8.50", "product_url": "https://shop.example/products/oat-soap"},
]
CHECKOUT = {"checkout_url": "https://shop.example/checkouts/c1/recover?key=abc"}
REORDER = {"reorder_url": "https://shop.example/cart/7:2,9:1"}

# One fixture per template: the data the sequence flow will pass for that step.
SAMPLES: dict[str, dict[str, Any]] = {
    "abandoned_cart/reminder": {**BASE, **CHECKOUT, "items": ITEMS},
    "abandoned_cart/nudge": {**BASE, **CHECKOUT, "items": ITEMS},
    "abandoned_cart/last_chance": {
        **BASE,
        **CHECKOUT,
        "items": ITEMS,
        "discount": {"code": "COMEBACK10", "percent": 10},
    },
    "replenishment/reminder": {**BASE, **REORDER, "items": ITEMS[:1]},
    "replenishment/follow_up": {**BASE, **REORDER, "items": ITEMS[:1]},
    "winback/reminder": {**BASE, "items": ITEMS[1:]},
    "winback/offer": {**BASE, "discount": {"code": "MISSYOU15", "percent": 15}},
    "winback/last_offer": {**BASE, "items": ITEMS, "discount": {"code": "LASTCHANCE20", "percent": 20}},
}
MANIFEST = load_manifest()
KEYS = sorted(MANIFEST.templates)


def split(key: str) -> tuple[str, str]:
    sequence, _, step = key.partition("/")
    return sequence, step


class Anchors(HTMLParser):
    """Collects every link and image and checks that non-void tags are closed in order."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.hrefs.append(values.get("href") or "")
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def parse(html: str) -> Anchors:
    parser = Anchors()
    parser.feed(html)
    parser.close()
    return parser


def assert_utm(url: str, sequence: str, step: str) -> None:
    query = parse_qs(urlsplit(url).query)
    assert query.get("utm_source") == ["hearth"], url
    assert query.get("utm_medium") == ["email"], url
    assert query.get("utm_campaign") == [sequence], url
    assert query.get("utm_content") == [step], url


# -- the manifest ---------------------------------------------------------------------------
def test_every_template_has_a_fixture_and_every_sequence_step_a_template() -> None:
    assert set(SAMPLES) == set(MANIFEST.templates)
    # The sequence definitions name their templates: each one must exist.
    named = {step.template for sequence in load_sequences().values() for step in sequence.steps}
    assert named <= set(MANIFEST.templates), named - set(MANIFEST.templates)


@pytest.mark.parametrize("key", KEYS)
def test_manifest_entry_documents_categories_and_data_keys(key: str) -> None:
    template = MANIFEST.templates[key]
    sequence = template.sequence
    assert template.name == f"hearth:{key}"
    assert 1 <= len(template.categories) <= 10 and len(set(template.categories)) == len(template.categories)
    assert {sequence, key} <= set(template.categories)
    assert {"shop_name", "shop_url", "shop_address", "unsubscribe_url"} <= set(template.required)
    assert "first_name" in template.optional
    if "discount" in SAMPLES[key]:
        assert "discount" in template.required


# -- rendering --------------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_template_renders_with_unsubscribe_address_and_no_leftover_tags(key: str) -> None:
    sequence, step = split(key)
    email = render(sequence, step, SAMPLES[key])
    for part in email:
        assert part.strip() and "{{" not in part and "}}" not in part
    assert "Ann" in email.html and "Hi Ann," in email.text
    # CAN-SPAM: a working unsubscribe link and the postal address, in both parts.
    links = parse(email.html)
    assert UNSUBSCRIBE in links.hrefs
    assert f"Unsubscribe: {UNSUBSCRIBE}" in email.text
    assert "12 Kiln Lane, Portland, OR 97201, USA" in email.html
    assert "12 Kiln Lane, Portland, OR 97201, USA" in email.text
    assert email.html.count("<html") == 1 and email.html.count("</body>") == 1
    assert not links.problems and not links.stack


@pytest.mark.parametrize("key", KEYS)
def test_every_link_but_unsubscribe_carries_the_utm_tags(key: str) -> None:
    sequence, step = split(key)
    email = render(sequence, step, SAMPLES[key])
    hrefs = [h for h in parse(email.html).hrefs if h != UNSUBSCRIBE]
    assert hrefs
    for href in hrefs:
        assert_utm(href, sequence, step)
    products = [h for h in hrefs if "/products/" in h]
    assert len(products) >= len(SAMPLES[key].get("items", [])), "each item links to its product"
    assert parse_qs(urlsplit(UNSUBSCRIBE).query) == {"sig": ["a1"], "list": ["abandoned"]}  # left untouched
    text_links = [w for w in email.text.split() if w.startswith("https://") and w != UNSUBSCRIBE]
    assert text_links
    for url in text_links:
        assert_utm(url, sequence, step)


def test_item_partial_shows_image_title_quantity_price_and_link() -> None:
    email = render("abandoned_cart", "reminder", SAMPLES["abandoned_cart/reminder"])
    links = parse(email.html)
    assert links.images == ["https://cdn.shop.example/tea.jpg"]  # only the item that has an image
    assert "Smoked Tea &amp; Honey" in email.html and "Qty 2 · $24.00" in email.html
    assert "Qty 1 · $8.50" in email.html
    tea = [h for h in links.hrefs if "smoked-tea" in h]
    assert len(tea) == 2 and all(h.startswith("https://shop.example/products/smoked-tea?variant=7&utm_") for h in tea)
    assert "- Smoked Tea & Honey (qty 2, $24.00)" in email.text  # plain text is not HTML-escaped


def test_discount_and_subject_are_personalised() -> None:
    email = render("abandoned_cart", "last_chance", SAMPLES["abandoned_cart/last_chance"])
    assert email.subject == "Last chance: 10% off the items in your cart"
    assert "COMEBACK10" in email.html and "10% off with code COMEBACK10" in email.text
    offer = render("winback", "offer", {**SAMPLES["winback/offer"], "discount": {"code": "X", "percent": 15.0}})
    assert offer.subject == "15% off, just for you"  # a whole float percent shows without ".0"


def test_first_name_falls_back_to_there_and_is_escaped_only_in_html() -> None:
    data = {k: v for k, v in SAMPLES["abandoned_cart/nudge"].items() if k != "first_name"}
    email = render("abandoned_cart", "nudge", data)
    assert email.subject == "Still thinking it over, there?"
    assert "Hi there," in email.html and "Hi there," in email.text
    blank = render("abandoned_cart", "nudge", {**data, "first_name": ""})
    assert "Hi there," in blank.text
    named = render("abandoned_cart", "nudge", {**data, "first_name": "O'Brien <b>"})
    assert named.subject == "Still thinking it over, O'Brien <b>?"  # subjects are plain text
    assert "Hi O&#x27;Brien &lt;b&gt;," in named.html and "<b>" not in named.html.split("<body")[1]
    assert "Hi O'Brien <b>," in named.text


def test_optional_items_may_be_absent() -> None:
    email = render("winback", "reminder", {**BASE})
    assert "We miss you" in email.html and not parse(email.html).images
    assert "products" not in email.text


# -- the data contract ----------------------------------------------------------------------
@pytest.mark.parametrize(("key", "field"), [(k, f) for k in KEYS for f in MANIFEST.templates[k].required])
def test_a_missing_required_key_raises_naming_it(key: str, field: str) -> None:
    sequence, step = split(key)
    data = {k: v for k, v in SAMPLES[key].items() if k != field}
    with pytest.raises(TemplateError) as caught:
        render(sequence, step, data)
    assert caught.value.key == field and caught.value.template == key
    assert repr(field) in str(caught.value) and key in str(caught.value)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"items": []}, "items"),
        ({"items": [{**ITEMS[0], "price": None}]}, "items[0].price"),
        ({"items": [ITEMS[0], {k: v for k, v in ITEMS[1].items() if k != "product_url"}]}, "items[1].product_url"),
        ({"discount": {"percent": 10}}, "discount.code"),
        ({"checkout_url": ""}, "checkout_url"),
    ],
)
def test_nested_and_empty_values_are_named(change: dict[str, Any], key: str) -> None:
    with pytest.raises(TemplateError) as caught:
        dynamic_template_data("abandoned_cart", "last_chance", {**SAMPLES["abandoned_cart/last_chance"], **change})
    assert caught.value.key == key and repr(key) in str(caught.value)


def test_data_is_trimmed_to_the_contract_tagged_and_json_ready() -> None:
    data = {
        **SAMPLES["replenishment/reminder"],
        "customer_id": "gid://shopify/Customer/1",
        "items": [{**ITEMS[0], "price": Decimal("24.00"), "sku": "T-1"}],
    }
    prepared = dynamic_template_data("replenishment", "reminder", data)
    assert "customer_id" not in prepared and "sku" not in prepared["items"][0]
    assert prepared["items"][0]["price"] == "24.00"
    assert_utm(prepared["reorder_url"], "replenishment", "reminder")
    assert_utm(prepared["items"][0]["product_url"], "replenishment", "reminder")
    assert prepared["unsubscribe_url"] == UNSUBSCRIBE
    assert dynamic_template_data("replenishment", "reminder", prepared) == prepared  # tagging is idempotent


def test_with_utm_keeps_the_query_and_fragment_and_replaces_old_tags() -> None:
    url = with_utm("https://s.example/p?a=1&b=x%20y&utm_source=fb&utm_term=z#reviews", "winback", "offer")
    assert url == (
        "https://s.example/p?a=1&b=x%20y&utm_source=hearth&utm_medium=email"
        "&utm_campaign=winback&utm_content=offer#reviews"
    )


def test_unknown_step_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="no template for step 'later' of sequence 'abandoned_cart'"):
        render("abandoned_cart", "later", BASE)


# -- what SendGrid gets ---------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_payload_is_one_inlined_document_in_sendgrids_handlebars(key: str) -> None:
    payload = sendgrid_template_payload(*split(key))
    assert payload.name == f"hearth:{key}" and payload.subject == MANIFEST.templates[key].subject
    html = payload.html_content
    assert "{{>" not in html and "{{>" not in payload.plain_content  # partials were composed in
    assert html.count("<html") == 1 and html.count("<style") == 1  # the media queries survive inlining
    assert "@media only screen" in html and 'class="content" style="padding: 32px;' in html
    assert "{{unsubscribe_url}}" in html and "{{{unsubscribe_url}}}" in payload.plain_content
    assert [p.name for p in template_payloads()] == [f"hearth:{k}" for k in MANIFEST.templates]


def write_manifest(tmp_path: Path, html: str, text: str = "{{{shop_name}}}", data: str = "{}") -> Path:
    shutil.copytree(TEMPLATES_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "probe.html").write_text(html)
    (tmp_path / "probe.txt").write_text(text)
    (tmp_path / "manifest.yml").write_text(
        "base_data: {required: [shop_name, shop_url, shop_address, unsubscribe_url], optional: [logo_url]}\n"
        "item_data: {required: [title, quantity, price, product_url], optional: [image_url]}\n"
        "templates:\n"
        f"  probe/one: {{html: probe.html, text: probe.txt, subject: 'Hi', data: {data}}}\n"
    )
    return tmp_path


def test_a_probe_manifest_loads_and_renders(tmp_path: Path) -> None:
    manifest = load_manifest(
        write_manifest(tmp_path, "<p>{{shop_name}}</p>{{> line_items}}", data="{required: [items]}")
    )
    email = render("probe", "one", {**BASE, "items": ITEMS}, manifest=manifest)
    assert "Oat Soap" in email.html and email.text.startswith("Hearth & Home")


@pytest.mark.parametrize(
    ("html", "message", "key"),
    [
        ("<p>{{coupon}}</p>", "uses 'coupon', which its manifest entry does not declare", "coupon"),
        ("<p>{{#each orders}}x{{/each}}</p>", "uses 'orders'", "orders"),
        ('<p>{{formatDate shop_name "YYYY"}}</p>', "helper 'formatDate' is not in the SendGrid subset", None),
        ("<p>{{> footer_v2}}</p>", "unknown partial {{> footer_v2}}", None),
        ("<table>{{#if shop_name}}<tr><td>x</td></tr>{{/if}}</table>", "sits directly inside <table>", None),
        ('<img alt="{{insert shop_name "default=x"}}">', "HTML parsing changed the Handlebars tag", None),
    ],
)
def test_loader_refuses_what_sendgrid_or_the_contract_would_not_take(
    tmp_path: Path, html: str, message: str, key: str | None
) -> None:
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("(", r"\(")) as caught:
        load_manifest(write_manifest(tmp_path, html))
    assert caught.value.key == key
