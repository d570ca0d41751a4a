"""A Sphinx extension for the book's HTML: each script tag once per page.

sphinx-thebe and sphinx-togglebutton register their inline configuration twice under jupyter-book 1.x
(once with the file name None, once with ''), so every page declared ``const THEBE_JS_URL`` twice and
threw "Identifier 'THEBE_JS_URL' has already been declared". Scripts that would write the same tag
are kept once.
"""

from __future__ import annotations


def _tag(script) -> tuple:
    """What decides the ``<script>`` tag a script becomes (file name, priority, attributes and body)."""
    attributes = getattr(script, "attributes", {})
    name = getattr(script, "filename", script) or ""
    return name, getattr(script, "priority", 500), tuple(sorted(attributes.items()))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set = set()
    kept = []
    for script in scripts:
        if _tag(script) not in seen:
            seen.add(_tag(script))
            kept.append(script)
    scripts[:] = kept  # in place: the builder's own list, which later handlers may still extend


def setup(app):
    # early: html-page-context stops at the first handler that returns a template name
    app.connect("html-page-context", drop_repeated_scripts, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
