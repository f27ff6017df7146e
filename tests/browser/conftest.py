"""Headless Chromium (Debian's package) driven by Playwright, and helpers to log in through the real form."""

import pytest


@pytest.fixture
def laptop_page(browser):
    """A page the size of a common laptop screen (1366×768), where "above the fold" is checked."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def above_the_fold(page, selector: str) -> bool:
    """Whether the element is wholly on screen without scrolling the page."""
    return page.evaluate(
        """(selector) => {
            const box = document.querySelector(selector).getBoundingClientRect();
            return window.scrollY === 0 && box.top >= 0 && box.bottom <= window.innerHeight && box.height > 0;
        }""",
        selector,
    )


@pytest.fixture
def project_with(tmp_path, researcher, annotator):
    """A project of `kind` with the given items (dicts of Loupe JSONL), imported with shapes-world images;
    the annotator is a member. Items without an image get the first shapes scene's picture."""
    import json

    from annotation import services
    from tests.helpers import write_shapes_import

    def make(kind: str, items: list[dict], **options):
        shapes = write_shapes_import(tmp_path / f"shapes-{kind}", n=1, seed=11)
        picture = json.loads(shapes.read_text().splitlines()[0])["image"]
        project = services.project_create(slug=f"browser-{kind}", kind=kind, created_by=researcher, **options)
        services.project_member_add(project=project, user=annotator)
        path = shapes.parent / "browser-items.jsonl"
        path.write_text("".join(json.dumps({"image": picture, **item}) + "\n" for item in items), encoding="utf-8")
        services.items_import(project=project, path=path)
        return project

    return make


def char_box(page, selector: str, needle: str, occurrence: int = 0) -> dict:
    """Screen boxes of the first and last character of `needle` inside `selector` (for real mouse drags)."""
    return page.evaluate(
        """([selector, needle, occurrence]) => {
            const root = document.querySelector(selector);
            let at = -1;
            for (let i = 0; i <= occurrence; i += 1) at = root.textContent.indexOf(needle, at + 1);
            if (at < 0) throw new Error(`${needle} not found`);
            const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            const points = [];
            let seen = 0;
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                for (const target of [at, at + needle.length - 1]) {
                    if (target >= seen && target < seen + node.data.length) points.push([node, target - seen]);
                }
                seen += node.data.length;
            }
            const box = ([node, offset]) => {
                const range = document.createRange();
                range.setStart(node, offset);
                range.setEnd(node, offset + 1);
                const r = range.getBoundingClientRect();
                return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
            };
            return { first: box(points[0]), last: box(points[1]) };
        }""",
        [selector, needle, occurrence],
    )


def mouse_select(page, selector: str, needle: str, occurrence: int = 0) -> None:
    """Select `needle` by pressing the mouse on its first character and releasing it on its last."""
    boxes = char_box(page, selector, needle, occurrence)
    first, last = boxes["first"], boxes["last"]
    page.mouse.move(first["left"] + 1, (first["top"] + first["bottom"]) / 2)
    page.mouse.down()
    page.mouse.move(last["right"] - 1, (last["top"] + last["bottom"]) / 2, steps=4)
    page.mouse.up()
